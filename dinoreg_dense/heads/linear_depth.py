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
from torch import Tensor, nn

from ..backbones import ViTFeatures
from ..registry import MODELS
from ..structures import DenseDataSample
from .base import BaseDenseHead, build_losses, depth_losses, upsample_to_input
from .depth_bins import (
    classify_then_upsample,
    classify_then_upsample_is_faster,
    classify_upsampled,
    expected_depth,
)


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
        classify_before_upsample: apply BatchNorm and the classifier on the patch grid and
            upsample the bin logits (:func:`~.depth_bins.classify_then_upsample`, the same
            logits and gradients, 2x faster training steps on CPU); ``None`` (auto): on CPU
            only (``classify_then_upsample_is_faster``), ``True`` / ``False``: always / never.
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
        classify_before_upsample: bool | None = None,
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
        self.classify_before_upsample = classify_before_upsample
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
        patch_maps = [features.patch_maps[i] for i in self.in_index]
        cls_tokens = None
        if self.use_cls_token and features.cls_tokens is not None:
            cls_tokens = [features.cls_tokens[i] for i in self.in_index]
        channels = sum(m.shape[1] for m in patch_maps) * (1 if cls_tokens is None else 2)
        if channels != self.in_channels:
            raise ValueError(
                f"LinearDepthHead expects {self.in_channels} input channels but gets "
                f"{channels}; set model.decode_head.in_channels={channels} or leave it unset"
            )
        low_res = self.classify_before_upsample
        if low_res is None:
            low_res = classify_then_upsample_is_faster(patch_maps[0].device.type)
        classify = classify_then_upsample if low_res else classify_upsampled
        logits = classify(patch_maps, cls_tokens, self.bn, self.conv_depth, self.upsample)
        return expected_depth(logits, self.bins, self.norm_eps)

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
