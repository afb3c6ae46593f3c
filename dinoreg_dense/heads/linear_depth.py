"""DINOv2's linear depth probe: classification over uniform depth bins, expected depth.

Source: DINOv2 (arXiv 2304.07193, section 7.4 and appendix), the dinov2 repo's depth ``BNHead``
(``dinov2/eval/depth/models/decode_heads``): patch features upsampled x4, the cls token joined
to every patch, BatchNorm and a 1x1 convolution to 256 bins between min and max depth, "linear"
normalisation (ReLU, plus a small constant, divided by the sum), depth = sum of bin centres
weighted by the normalised scores. lin.1 takes the last layer, lin.4 four layers.
"""

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..backbones import ViTFeatures
from ..registry import MODELS
from ..structures import DenseDataSample
from .base import BaseDenseHead, build_losses, depth_losses, upsample_to_input


@MODELS.register_module()
class LinearDepthHead(BaseDenseHead):
    """Per-pixel depth from a linear classifier over depth bins.

    Args:
        in_channels: channels of the concatenated inputs: per selected map D, or 2D with the
            cls token joined; ``None`` in a model config: derived from the backbone.
        in_index: which of the backbone's returned maps to use (lin.1: ``-1``; lin.4: four).
        min_depth, max_depth: range of the bins, metres (NYU 1e-3..10, KITTI 1e-3..80); the
            reference code hard-codes 80 whatever the dataset, this head does not.
        num_bins: number of uniform bins (DINOv2: 256).
        upsample: factor applied to the patch maps before the classifier (DINOv2: 4).
        use_cls_token: join the cls token to every patch (when the backbone has one).
        norm_eps: constant added after the ReLU before normalising the scores (DINOv2: 0.1).
        use_bn: BatchNorm on the features first; DINOv2's released linear depth heads have none
            (their ``BNHead`` leaves it commented out).
        loss_decode: a loss config or a list of them (default ``SigLoss``, in metres).
        checkpoint: head weights to load after building, e.g. DINOv2's
            ``dinov2_vits14_nyu_linear4_head.pth`` (see :func:`read_head_weights`); those were
            trained with bins up to 80 m whatever the dataset, so they need ``max_depth=80``.

    Outputs: ``forward`` gives depth (B, 1, upsample * h, upsample * w) in metres.
    """

    out_channels = 1
    output_kind = "metric_depth"
    derived_buffers = ("bins",)  # computed from the depth range, never read from a checkpoint

    def __init__(
        self,
        in_channels: int,
        in_index: int | Sequence[int] = -1,
        min_depth: float = 1e-3,
        max_depth: float = 10.0,
        num_bins: int = 256,
        upsample: int = 4,
        use_cls_token: bool = True,
        norm_eps: float = 0.1,
        use_bn: bool = True,
        loss_decode: dict | Sequence[dict] | None = None,
        checkpoint: str | Path | None = None,
    ) -> None:
        super().__init__()
        if not 0 <= min_depth < max_depth:
            raise ValueError(f"need 0 <= min_depth < max_depth, got {min_depth}, {max_depth}")
        self.in_index = [in_index] if isinstance(in_index, int) else list(in_index)
        self.in_channels = in_channels
        self.min_depth, self.max_depth = min_depth, max_depth
        self.upsample = upsample
        self.use_cls_token = use_cls_token
        self.norm_eps = norm_eps
        self.num_bins = num_bins
        self.use_bn = use_bn
        self.register_buffer("bins", torch.linspace(min_depth, max_depth, num_bins))
        self.bn = nn.BatchNorm2d(in_channels) if use_bn else nn.Identity()
        self.conv_depth = nn.Conv2d(in_channels, num_bins, kernel_size=1)
        self.loss_decode = build_losses(loss_decode, dict(type="SigLoss"))
        if checkpoint is not None:
            self.load_head_checkpoint(checkpoint)

    @classmethod
    def in_channels_for(cls, cfg: dict, backbone: nn.Module) -> int:
        """D per selected map, doubled when the cls token is joined (and the backbone has one)."""
        in_index = cfg.get("in_index", -1)
        maps = 1 if isinstance(in_index, int) else len(in_index)
        with_cls = cfg.get("use_cls_token", True) and backbone.cls_token is not None
        return backbone.embed_dim * maps * (2 if with_cls else 1)

    def forward(self, features: ViTFeatures) -> Tensor:
        """Selected (B, D, h, w) maps -> depth (B, 1, upsample * h, upsample * w), metres."""
        maps = []
        for i in self.in_index:
            x = features.patch_maps[i]
            if self.upsample != 1:
                x = F.interpolate(x, scale_factor=self.upsample, mode="bilinear")
            if self.use_cls_token and features.cls_tokens is not None:
                cls = features.cls_tokens[i][:, :, None, None].expand_as(x)
                x = torch.cat([x, cls], dim=1)
            maps.append(x)
        x = torch.cat(maps, dim=1)
        if x.shape[1] != self.in_channels:
            raise ValueError(
                f"LinearDepthHead expects {self.in_channels} input channels but gets "
                f"{x.shape[1]}; set model.decode_head.in_channels={x.shape[1]} or leave it unset"
            )
        scores = F.relu(self.conv_depth(self.bn(x))) + self.norm_eps
        scores = scores / scores.sum(dim=1, keepdim=True)
        return torch.einsum("bkhw,k->bhw", scores, self.bins)[:, None]

    def loss_by_feat(
        self, depth: Tensor, features: ViTFeatures, data_samples: Sequence[DenseDataSample]
    ) -> dict[str, Tensor]:
        """``loss_decode`` of the depth upsampled to the padded input and cropped to the samples'
        ``gt_depth_map`` (B, H, W), metres, 0 = invalid."""
        return depth_losses(self.loss_decode, depth, features, data_samples)

    def predict_by_feat(
        self, depth: Tensor, features: ViTFeatures, batch_img_metas: Sequence[dict]
    ) -> Tensor:
        """Depth (B, 1, H, W) in metres at the inputs' ``img_shape``."""
        return upsample_to_input(depth, features, batch_img_metas[0]["img_shape"])
