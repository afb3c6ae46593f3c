"""Mask2Former's pixel decoder: a deformable-attention encoder on the coarse levels plus an FPN.

Source: Cheng, Misra, Schwing, Kirillov and Girdhar, "Masked-attention Mask Transformer for
Universal Image Segmentation" (CVPR 2022, arXiv 2112.01527), section 3.2.2 and appendix A
("MSDeformAttn" pixel decoder), whose reference is facebookresearch/Mask2Former
``mask2former/modeling/pixel_decoder/msdeformattn.py``; the encoder is Deformable DETR's
(Zhu et al., arXiv 2010.04159, section 4.1). Steps:

1. The ``num_deform_levels`` coarsest input levels (strides 8, 16, 32 in the paper) are projected
   to ``conv_dim`` channels by 1x1 conv + GroupNorm(32), coarsest first.
2. They are flattened and concatenated; ``num_encoder_layers`` encoder layers let every position
   attend to all those levels with multi-scale deformable attention around its own pixel centre,
   the query carrying a 2D sine position embedding plus a learned per-level embedding.
3. The remaining finer levels (stride 4) are merged FPN-style, coarse to fine: a lateral
   1x1 conv + GroupNorm plus the bilinearly upsampled coarser output, then 3x3 conv + GroupNorm +
   ReLU.
4. A 1x1 conv of the finest output gives the per-pixel mask embeddings.

Unlike the reference, which resizes by the integer stride ratio, every step reads each level's
own (H, W) and upsamples to the finer map's exact size, so the odd, ceil-rounded sizes of a
max-pooled patch grid (and the non-integer strides of patch 14) work. Inputs are unpadded maps:
no padding mask is taken (the reference passes all-valid masks too), so every valid ratio is 1.
"""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...registry import MODELS
from .deform_attn import LevelSizes, MSDeformAttn
from .position_encoding import sine_position_embedding


def encoder_reference_points(
    spatial_shapes: Sequence[tuple[int, int]],
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Pixel centres of every level, normalised to that level's map (Deformable DETR encoder).

    Args:
        spatial_shapes: (H_l, W_l) of each level, in the order the levels are concatenated.

    Returns:
        (S, 2) with S = sum_l H_l W_l: for cell (i, j) of level l, ((j + 0.5) / W_l,
        (i + 0.5) / H_l) as (x, y), row-major within a level. Without padding the same point
        serves as reference on every level (valid ratio 1), so callers broadcast it to
        (B, S, L, 2).
    """
    points = []
    for height, width in spatial_shapes:
        y = (torch.arange(height, device=device, dtype=dtype) + 0.5) / height
        x = (torch.arange(width, device=device, dtype=dtype) + 0.5) / width
        grid_y, grid_x = torch.meshgrid(y, x, indexing="ij")
        points.append(torch.stack((grid_x.flatten(), grid_y.flatten()), dim=-1))
    return torch.cat(points, dim=0)


class DeformableEncoderLayer(nn.Module):
    """Deformable DETR's encoder layer: deformable self-attention and a ReLU FFN, both post-norm.

    Args:
        embed_dim: channels C.
        num_heads, num_levels, num_points: of the :class:`MSDeformAttn` self-attention.
        dim_feedforward: hidden width of the FFN.
        dropout: after the attention, inside and after the FFN.
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        num_levels: int,
        num_points: int,
        dim_feedforward: int,
        dropout: float,
    ) -> None:
        super().__init__()
        self.self_attn = MSDeformAttn(embed_dim, num_heads, num_levels, num_points)
        self.norm1 = nn.LayerNorm(embed_dim)
        self.linear1 = nn.Linear(embed_dim, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, embed_dim)
        self.norm2 = nn.LayerNorm(embed_dim)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self, x: Tensor, pos: Tensor, reference_points: Tensor, spatial_shapes: LevelSizes
    ) -> Tensor:
        """One layer over the flattened levels.

        Args:
            x: (B, S, C) the levels flattened row-major and concatenated.
            pos: (B or 1, S, C) position + level embedding, added to the queries only.
            reference_points: (B, S, L, 2) normalised (x, y) on each level.
            spatial_shapes: (H_l, W_l) of each level.

        Returns:
            (B, S, C).
        """
        attended = self.self_attn(x + pos, reference_points, x, spatial_shapes)
        x = self.norm1(x + self.dropout(attended))
        hidden = self.dropout(F.relu(self.linear1(x)))
        return self.norm2(x + self.dropout(self.linear2(hidden)))


def _conv_norm(in_channels: int, out_channels: int, kernel_size: int, bias: bool) -> nn.Sequential:
    """Conv (same padding) + GroupNorm(32), Mask2Former's projection / FPN building block."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias),
        nn.GroupNorm(32, out_channels),
    )


@MODELS.register_module()
class MSDeformAttnPixelDecoder(nn.Module):
    """Mask2Former's multi-scale deformable-attention pixel decoder (see the module docstring).

    Args:
        in_channels: channels of each input level, finest first (e.g. a
            :class:`~dinoreg_dense.heads.SimpleFeaturePyramid`'s four levels).
        conv_dim: width of the encoder and the FPN (Mask2Former 256); a multiple of 32
            (GroupNorm) and of ``num_heads``.
        mask_dim: channels of the mask features (Mask2Former 256).
        num_encoder_layers: deformable encoder layers (Mask2Former 6).
        num_heads, num_points: of the deformable attention (Mask2Former 8, 4).
        dim_feedforward: FFN width of the encoder layers (Mask2Former 1024).
        dropout: in the encoder layers (Mask2Former 0.0).
        num_deform_levels: how many of the coarsest levels the encoder attends over (3); the
            finer ones go through the FPN.

    Initialisation as the reference: Xavier-uniform input projections with zero bias; in the
    encoder Xavier-uniform matrices, then :class:`MSDeformAttn`'s own scheme, and a standard
    normal level embedding; Caffe2-Xavier (Kaiming-uniform, a=1) FPN and mask convs.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        conv_dim: int = 256,
        mask_dim: int = 256,
        num_encoder_layers: int = 6,
        num_heads: int = 8,
        num_points: int = 4,
        dim_feedforward: int = 1024,
        dropout: float = 0.0,
        num_deform_levels: int = 3,
    ) -> None:
        super().__init__()
        self.in_channels = list(in_channels)
        if not 1 <= num_deform_levels <= len(self.in_channels):
            raise ValueError(
                f"num_deform_levels must be between 1 and the {len(self.in_channels)} input "
                f"levels, got {num_deform_levels}"
            )
        self.conv_dim = conv_dim
        self.num_deform_levels = num_deform_levels
        self.num_fpn_levels = len(self.in_channels) - num_deform_levels
        # Coarsest first, the order of the flattened encoder input and the level embedding.
        self.input_projections = nn.ModuleList(
            _conv_norm(channels, conv_dim, 1, bias=True)
            for channels in self.in_channels[::-1][:num_deform_levels]
        )
        self.level_embed = nn.Parameter(torch.empty(num_deform_levels, conv_dim))
        self.encoder_layers = nn.ModuleList(
            DeformableEncoderLayer(
                conv_dim, num_heads, num_deform_levels, num_points, dim_feedforward, dropout
            )
            for _ in range(num_encoder_layers)
        )
        # FPN levels in the order they are merged, coarse to fine; bias-free before GroupNorm.
        fpn_channels = self.in_channels[: self.num_fpn_levels][::-1]
        self.lateral_convs = nn.ModuleList(
            _conv_norm(channels, conv_dim, 1, bias=False) for channels in fpn_channels
        )
        self.output_convs = nn.ModuleList(
            nn.Sequential(_conv_norm(conv_dim, conv_dim, 3, bias=False), nn.ReLU())
            for _ in fpn_channels
        )
        self.mask_features = nn.Conv2d(conv_dim, mask_dim, kernel_size=1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The reference initialisation (see the class docstring)."""
        for projection in self.input_projections:
            nn.init.xavier_uniform_(projection[0].weight)
            nn.init.zeros_(projection[0].bias)
        for layer in self.encoder_layers:
            for parameter in layer.parameters():
                if parameter.dim() > 1:
                    nn.init.xavier_uniform_(parameter)
            layer.self_attn.reset_parameters()
        nn.init.normal_(self.level_embed)
        for module in (*self.lateral_convs.modules(), *self.output_convs.modules()):
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_uniform_(module.weight, a=1)
        nn.init.kaiming_uniform_(self.mask_features.weight, a=1)
        nn.init.zeros_(self.mask_features.bias)

    def encode(self, features: Sequence[Tensor]) -> list[Tensor]:
        """The deformable encoder on the coarsest levels.

        Args:
            features: the ``num_deform_levels`` coarsest inputs, coarsest first, each
                (B, in_channels_l, H_l, W_l).

        Returns:
            ``num_deform_levels`` maps (B, conv_dim, H_l, W_l), coarsest first.
        """
        maps = [
            projection(x) for projection, x in zip(self.input_projections, features, strict=True)
        ]
        shapes = [(x.shape[-2], x.shape[-1]) for x in maps]
        batch, device, dtype = maps[0].shape[0], maps[0].device, maps[0].dtype
        tokens = torch.cat([x.flatten(2).transpose(1, 2) for x in maps], dim=1)  # (B, S, C)
        pos = torch.cat(
            [
                sine_position_embedding(h, w, self.conv_dim // 2, device=device, dtype=dtype)
                .flatten(1)
                .T
                + self.level_embed[level]
                for level, (h, w) in enumerate(shapes)
            ],
            dim=0,
        )[None]  # (1, S, C)
        reference = encoder_reference_points(shapes, device=device, dtype=dtype)
        reference = reference[None, :, None, :].expand(batch, -1, len(shapes), -1)
        # The sizes stay Python ints read from .shape (no tensor round trip), which torch.export
        # keeps symbolic: the ONNX export with dynamic height and width depends on it.
        for layer in self.encoder_layers:
            tokens = layer(tokens, pos, reference, shapes)
        return [
            x.transpose(1, 2).reshape(batch, self.conv_dim, h, w)
            for x, (h, w) in zip(
                tokens.split([h * w for h, w in shapes], dim=1), shapes, strict=True
            )
        ]

    def forward(self, features: Sequence[Tensor]) -> tuple[Tensor, list[Tensor]]:
        """Multi-scale maps -> mask features and the transformer decoder's memory.

        Args:
            features: ``len(in_channels)`` maps (B, in_channels[l], H_l, W_l), finest (level 0,
                stride ~4) to coarsest; any sizes, each level's own is used.

        Returns:
            mask_features: (B, mask_dim, H_0, W_0).
            multi_scale_features: ``num_deform_levels`` maps (B, conv_dim, H_l, W_l), the encoder
                outputs, coarsest first (the order the transformer decoder's layers cycle
                through).

        Raises:
            ValueError: the number of maps differs from ``len(in_channels)``.
        """
        if len(features) != len(self.in_channels):
            raise ValueError(
                f"built for {len(self.in_channels)} levels (in_channels={self.in_channels}), "
                f"got {len(features)} maps"
            )
        outputs = self.encode(list(features)[::-1][: self.num_deform_levels])
        fpn_inputs = list(features)[: self.num_fpn_levels][::-1]
        merged = outputs[-1]
        for lateral, output, x in zip(
            self.lateral_convs, self.output_convs, fpn_inputs, strict=True
        ):
            lateral_map = lateral(x)
            # To the finer map's exact size: ceil-rounded levels are not twice the coarser one.
            upsampled = F.interpolate(
                merged, size=lateral_map.shape[-2:], mode="bilinear", align_corners=False
            )
            merged = output(lateral_map + upsampled)
        return self.mask_features(merged), outputs
