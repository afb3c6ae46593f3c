"""DPT: reassemble four ViT layers into a feature pyramid, fuse it top-down, predict per pixel.

Source: Ranftl, Bochkovskiy and Koltun, "Vision Transformers for Dense Prediction" (ICCV 2021,
arXiv 2103.13413), section 3 and figure 1. The variants in use differ in small choices, all of
them constructor parameters here:

- DINOv2's depth DPT (dinov2 repo ``dinov2/hub/depth/decode_heads.py``, ``hub/depthers.py``):
  readout "project", post-process channels [D/8, D/4, D/2, D], 256 channels, residual convs
  without bias, a 3x3 conv + ReLU before the output convs, output ReLU + min_depth, fixed x2
  upsampling (``resize_to_grid=False``).
- Hugging Face ``DPTForDepthEstimation`` with a DINOv2 backbone (``facebook/dpt-dinov2-*``): the
  same with biased residual convs (``use_bias_in_fusion_residual``) and output ReLU.
- Depth-Anything-V2 (``depth_anything_v2/dpt.py``; HF ``DepthAnythingForDepthEstimation``):
  readout "ignore", per-size post-process and fusion channels, no conv before the output convs,
  each fused map resized to the next level's size and the output resized to the input grid
  (``resize_to_grid=True``); ReLU (relative inverse depth) or sigmoid x max_depth (metric).
"""

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..backbones import ViTFeatures
from ..registry import MODELS
from ..structures import DenseDataSample
from .base import BaseDenseHead, build_losses, depth_losses, padded_input_size, upsample_to_input
from .linear import DEFAULT_SEG_LOSS, LinearHead

READOUTS = ("ignore", "add", "project")
OUTPUT_ACTIVATIONS = ("relu", "relu_plus_min_depth", "sigmoid_times_max_depth", "none")
OUTPUT_KINDS = ("metric_depth", "relative_disparity", "logits")


class ResidualConvUnit(nn.Module):
    """Pre-activation residual unit: x + conv(relu(bn(conv(relu(x))))) at constant size."""

    def __init__(self, channels: int, use_batch_norm: bool, bias: bool) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=bias)
        self.bn1 = nn.BatchNorm2d(channels) if use_batch_norm else nn.Identity()
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=bias)
        self.bn2 = nn.BatchNorm2d(channels) if use_batch_norm else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, h, w) -> (B, C, h, w)."""
        out = self.bn1(self.conv1(F.relu(x)))
        return x + self.bn2(self.conv2(F.relu(out)))


class FusionBlock(nn.Module):
    """One top-down fusion step: add the refined skip, refine, upsample, 1x1 projection.

    The deepest block has no skip and so no ``residual_unit1``.
    """

    def __init__(
        self, channels: int, use_batch_norm: bool, conv_bias: bool, with_skip: bool
    ) -> None:
        super().__init__()
        self.residual_unit1 = (
            ResidualConvUnit(channels, use_batch_norm, conv_bias) if with_skip else None
        )
        self.residual_unit2 = ResidualConvUnit(channels, use_batch_norm, conv_bias)
        self.project = nn.Conv2d(channels, channels, 1)

    def forward(
        self, x: Tensor, skip: Tensor | None = None, size: Sequence[int] | None = None
    ) -> Tensor:
        """Fused (B, C, h, w) [+ skip (B, C, h', w')] -> (B, C, 2h, 2w), or ``size`` if given.

        A skip of another size is resized to ``x`` (bilinear, align_corners=False, as DINOv2's and
        HF's blocks do when an odd grid makes the two differ); the upsampling uses
        align_corners=True in every reference.
        """
        if skip is not None:
            # While exporting, always resize: the size test would fix the grid's parity in the
            # graph (a same-size bilinear resize is an exact copy).
            if skip.shape[-2:] != x.shape[-2:] or torch.compiler.is_exporting():
                skip = F.interpolate(skip, size=x.shape[-2:], mode="bilinear", align_corners=False)
            x = x + self.residual_unit1(skip)
        x = self.residual_unit2(x)
        if size is None:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
        else:
            x = F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=True)
        return self.project(x)


@MODELS.register_module()
class DPTHead(BaseDenseHead):
    """DPT depth head on four backbone layers (``ViTFeatures.patch_maps`` selected by
    ``in_index``).

    Args:
        in_channels: the backbone width D; ``None`` in a model config: derived from it.
        post_process_channels: channels of the four reassembled levels (DINOv2 / HF DPT:
            [D/8, D/4, D/2, D], the default; Depth-Anything-V2 S: [48, 96, 192, 384]).
        channels: channels of the fusion path (DINOv2 / HF DPT 256; DA-V2 64 / 128 / 256 / 384).
        in_index: which four of the backbone's returned maps to use, shallow to deep.
        readout: what becomes of the cls token: "ignore" (dropped), "add" (added to every patch),
            "project" (joined to every patch, Linear 2D -> D, GELU).
        use_batch_norm: BatchNorm in the residual units of the fusion blocks.
        fusion_conv_bias: bias in the residual units' convolutions (DINOv2: False).
        head_projection: a 3x3 conv + ReLU on the fused map before the output convs (DINOv2, HF
            DPT with ``add_projection``).
        head_channels: channels of the last hidden output conv (32 in every reference).
        resize_to_grid: resize each fused map to the next level's size and the output to the
            padded input (DA-V2); else upsample by 2 at every step (DPT, DINOv2, HF DPT).
        output_activation: "relu", "relu_plus_min_depth" (DINOv2), "sigmoid_times_max_depth"
            (DA-V2 metric), "none" (class logits).
        output_kind: what the output is: "metric_depth" (metres, clamped to
            [min_depth, max_depth] by the Depther), "relative_disparity" (DA-V2 relative models:
            affine-invariant inverse depth, not metres, never clamped), "logits".
        out_channels: output channels (1 for depth).
        min_depth, max_depth: depth range in metres (NYU 1e-3..10, KITTI 1e-3..80).
        loss_decode: a loss config or a list of them (default ``SigLoss``); their values are
            summed under each ``loss_name``.
        checkpoint: head weights to load after building (see :func:`read_head_weights`).

    Shapes: ``forward`` takes (B, D, h, w) patch maps and gives (B, out_channels, 16h, 16w)
    (x2 steps) or (B, out_channels, p h, p w) (``resize_to_grid``), p = ``features.patch_size``.
    """

    def __init__(
        self,
        in_channels: int,
        post_process_channels: Sequence[int] | None = None,
        channels: int = 256,
        in_index: Sequence[int] = (0, 1, 2, 3),
        readout: str = "project",
        use_batch_norm: bool = False,
        fusion_conv_bias: bool = True,
        head_projection: bool = False,
        head_channels: int = 32,
        resize_to_grid: bool = False,
        output_activation: str = "relu",
        output_kind: str = "metric_depth",
        out_channels: int = 1,
        min_depth: float = 1e-3,
        max_depth: float = 10.0,
        loss_decode: dict | Sequence[dict] | None = None,
        checkpoint: str | Path | None = None,
    ) -> None:
        super().__init__()
        _check_choice("readout", readout, READOUTS)
        _check_choice("output_activation", output_activation, OUTPUT_ACTIVATIONS)
        _check_choice("output_kind", output_kind, OUTPUT_KINDS)
        if len(in_index) != 4:
            raise ValueError(f"DPTHead takes four backbone layers, got in_index={list(in_index)}")
        if not 0 <= min_depth < max_depth:
            raise ValueError(f"need 0 <= min_depth < max_depth, got {min_depth}, {max_depth}")
        dim = in_channels
        levels = list(post_process_channels or [dim // 8, dim // 4, dim // 2, dim])
        if len(levels) != 4:
            raise ValueError(f"post_process_channels needs four values, got {levels}")
        self.in_channels = dim
        self.post_process_channels = levels
        self.channels = channels
        self.in_index = list(in_index)
        self.readout = readout
        self.use_batch_norm = use_batch_norm
        self.fusion_conv_bias = fusion_conv_bias
        self.head_projection = head_projection
        self.head_channels = head_channels
        self.resize_to_grid = resize_to_grid
        self.output_activation = output_activation
        self.output_kind = output_kind
        self.out_channels = out_channels
        self.min_depth, self.max_depth = min_depth, max_depth

        if readout == "project":
            self.readout_projects = nn.ModuleList(
                nn.Sequential(nn.Linear(2 * dim, dim), nn.GELU()) for _ in levels
            )
        self.projects = nn.ModuleList(nn.Conv2d(dim, c, 1) for c in levels)
        # Patch grid -> strides p/4, p/2, p, 2p of the input (the paper's 4, 8, 16, 32 for p=16).
        self.resize_layers = nn.ModuleList(
            [
                nn.ConvTranspose2d(levels[0], levels[0], kernel_size=4, stride=4),
                nn.ConvTranspose2d(levels[1], levels[1], kernel_size=2, stride=2),
                nn.Identity(),
                nn.Conv2d(levels[3], levels[3], kernel_size=3, stride=2, padding=1),
            ]
        )
        self.convs = nn.ModuleList(nn.Conv2d(c, channels, 3, padding=1, bias=False) for c in levels)
        # fusion_blocks[0] takes the deepest level, as in DINOv2 and HF (DA-V2's refinenet4).
        self.fusion_blocks = nn.ModuleList(
            FusionBlock(channels, use_batch_norm, fusion_conv_bias, with_skip=i > 0)
            for i in range(4)
        )
        if head_projection:
            self.project = nn.Conv2d(channels, channels, 3, padding=1)
        self.output_conv1 = nn.Conv2d(channels, channels // 2, 3, padding=1)
        self.output_conv2 = nn.Conv2d(channels // 2, head_channels, 3, padding=1)
        self.output_conv3 = nn.Conv2d(head_channels, out_channels, 1)
        if output_activation in ("relu", "relu_plus_min_depth"):
            # A random init can put every pixel below the output ReLU, where no gradient flows
            # and training never starts; an open ReLU at init (1 m) avoids that. Loaded weights
            # replace it.
            nn.init.constant_(self.output_conv3.bias, 1.0)
        self.loss_decode = build_losses(loss_decode, dict(type="SigLoss"))
        if checkpoint is not None:
            self.load_head_checkpoint(checkpoint)

    def reassemble(self, features: ViTFeatures) -> list[Tensor]:
        """The four selected (B, D, h, w) maps -> levels (B, c_i, s_i h, s_i w), s = 4, 2, 1,
        1/2 (rounded up), with the cls token read out as ``readout`` says."""
        levels = []
        for level, index in enumerate(self.in_index):
            x = features.patch_maps[index]
            if self.readout != "ignore":
                if features.cls_tokens is None:
                    raise ValueError(
                        f"DPTHead readout={self.readout!r} needs a cls token but the backbone has "
                        "none; set model.decode_head.readout='ignore'"
                    )
                cls = features.cls_tokens[index][:, :, None, None].expand_as(x)
                if self.readout == "add":
                    x = x + cls
                else:
                    joined = torch.cat([x, cls], dim=1).permute(0, 2, 3, 1)
                    x = self.readout_projects[level](joined).permute(0, 3, 1, 2)
            levels.append(self.resize_layers[level](self.projects[level](x)))
        return levels

    def forward(self, features: ViTFeatures) -> Tensor:
        """Four (B, D, h, w) maps -> (B, out_channels, H', W'); see the class docstring."""
        width = features.patch_maps[self.in_index[0]].shape[1]
        if width != self.in_channels:
            raise ValueError(
                f"DPTHead expects {self.in_channels}-channel backbone maps but gets {width}; set "
                f"model.decode_head.in_channels={width} or leave it unset"
            )
        levels = [conv(x) for conv, x in zip(self.convs, self.reassemble(features), strict=True)]
        deep_to_shallow = levels[::-1]
        x = None
        for step, (block, skip) in enumerate(zip(self.fusion_blocks, deep_to_shallow, strict=True)):
            size = None
            if self.resize_to_grid and step < len(levels) - 1:
                size = deep_to_shallow[step + 1].shape[-2:]
            x = block(skip, size=size) if x is None else block(x, skip, size=size)
        if self.head_projection:
            x = F.relu(self.project(x))
        x = self.output_conv1(x)
        if self.resize_to_grid:
            size = padded_input_size(features)
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=True)
        else:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
        x = self.output_conv3(F.relu(self.output_conv2(x)))
        return self._activate(x)

    def _activate(self, x: Tensor) -> Tensor:
        if self.output_activation == "relu":
            return F.relu(x)
        if self.output_activation == "relu_plus_min_depth":
            return F.relu(x) + self.min_depth
        if self.output_activation == "sigmoid_times_max_depth":
            return torch.sigmoid(x) * self.max_depth
        return x

    def loss_by_feat(
        self, depth: Tensor, features: ViTFeatures, data_samples: Sequence[DenseDataSample]
    ) -> dict[str, Tensor]:
        """``loss_decode`` of the depth resized to the padded input and cropped to the samples'
        ``gt_depth_map`` (B, H, W), metres, 0 = invalid."""
        return depth_losses(self.loss_decode, depth, features, data_samples)

    def predict_by_feat(
        self, depth: Tensor, features: ViTFeatures, batch_img_metas: Sequence[dict]
    ) -> Tensor:
        """Output (B, out_channels, H, W) at the inputs' ``img_shape`` (metres for depth)."""
        return upsample_to_input(depth, features, batch_img_metas[0]["img_shape"])


@MODELS.register_module()
class DPTSegHead(DPTHead):
    """DPT as a segmentation head: class logits, trained and predicted like :class:`LinearHead`.

    Args:
        num_classes: number of classes (the output channels).
        loss_decode: the loss (default: cross-entropy ignoring the ignore label).
        **kwargs: :class:`DPTHead`'s arguments except the depth-only ones.
    """

    def __init__(
        self, in_channels: int, num_classes: int, loss_decode: dict | None = None, **kwargs
    ) -> None:
        super().__init__(
            in_channels,
            out_channels=num_classes,
            output_activation="none",
            output_kind="logits",
            loss_decode=loss_decode or DEFAULT_SEG_LOSS,
            **kwargs,
        )
        self.num_classes = num_classes

    # Class logits follow one protocol whatever head makes them: LinearHead's.
    loss_by_feat = LinearHead.loss_by_feat
    predict_by_feat = LinearHead.predict_by_feat


def _check_choice(name: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f"DPTHead {name} must be one of {', '.join(choices)}; got {value!r}")
