"""DINOv2's linear segmentation probe: BatchNorm then a 1x1 convolution on patch maps."""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..backbones import ViTFeatures
from ..registry import MODELS
from ..structures import IGNORE_INDEX, DenseDataSample
from .base import BaseDenseHead, padded_input_size, upsample_to_input

# Every class-logit head's default loss: per-pixel cross-entropy ignoring the ignore label.
DEFAULT_SEG_LOSS = dict(type="CrossEntropyLoss", ignore_index=IGNORE_INDEX)


@MODELS.register_module()
class LinearHead(BaseDenseHead):
    """Per-patch linear classifier over one layer ("linear") or several concatenated ("+ms").

    Args:
        in_channels: channels after concatenating the selected maps (D, or 4 * D for +ms);
            ``None`` in a model config: derived from the backbone by the task model.
        num_classes: number of output classes.
        in_index: which of the backbone's returned maps to use; an int or a sequence.
        use_bn: BatchNorm on the features first (DINOv2's BNHead does).
        dropout: dropout probability before the classifier.
        loss_decode: config of the loss applied to the upsampled logits (default: cross-entropy
            ignoring :data:`~dinoreg_dense.structures.IGNORE_INDEX`).

    Source: DINOv2's ``BNHead`` (dinov2 repo, ``dinov2/eval/segmentation/models/decode_heads``):
    the "linear" probe takes the last layer, "+ms" the last four concatenated.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        in_index: int | Sequence[int] = -1,
        use_bn: bool = True,
        dropout: float = 0.0,
        loss_decode: dict | None = None,
    ) -> None:
        super().__init__()
        self.in_index = [in_index] if isinstance(in_index, int) else list(in_index)
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.out_channels = num_classes
        self.bn = nn.BatchNorm2d(in_channels) if use_bn else nn.Identity()
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.conv_seg = nn.Conv2d(in_channels, num_classes, kernel_size=1)
        nn.init.normal_(self.conv_seg.weight, std=0.01)
        nn.init.zeros_(self.conv_seg.bias)
        self.loss_decode = MODELS.build(loss_decode or DEFAULT_SEG_LOSS)

    @classmethod
    def in_channels_for(cls, cfg: dict, backbone: nn.Module) -> int:
        """The concatenated width of the selected maps: ``embed_dim`` x their number."""
        in_index = cfg.get("in_index", -1)
        return backbone.embed_dim * (1 if isinstance(in_index, int) else len(in_index))

    def forward(self, features: ViTFeatures) -> Tensor:
        """Selected (B, C_i, h, w) maps -> logits (B, num_classes, h, w) on the patch grid."""
        maps = [features.patch_maps[i] for i in self.in_index]
        size = maps[0].shape[-2:]
        maps = [m if m.shape[-2:] == size else _resize(m, size) for m in maps]
        x = torch.cat(maps, dim=1)
        if x.shape[1] != self.in_channels:
            raise ValueError(
                f"LinearHead expects {self.in_channels} input channels but the selected backbone "
                f"layers give {x.shape[1]}; set model.decode_head.in_channels={x.shape[1]} or "
                "leave it unset to derive it from the backbone"
            )
        return self.conv_seg(self.dropout(self.bn(x)))

    def loss_by_feat(
        self, logits: Tensor, features: ViTFeatures, data_samples: Sequence[DenseDataSample]
    ) -> dict[str, Tensor]:
        """Cross-entropy of patch-grid logits (B, K, h, w) against the samples' ``gt_sem_seg``
        (B, H, W): the logits are upsampled bilinearly to the backbone's padded input and cropped
        to the labels, without materialising the upsampled logits (``upsampled_cross_entropy``).
        """
        labels = torch.stack([s.gt_sem_seg for s in data_samples]).long()
        size = padded_input_size(features)
        return {self.loss_decode.loss_name: self.loss_decode(logits, labels, size)}

    def predict_by_feat(
        self, logits: Tensor, features: ViTFeatures, batch_img_metas: Sequence[dict]
    ) -> Tensor:
        """Patch-grid logits (B, K, h, w) -> logits (B, K, H, W) at the inputs' ``img_shape``."""
        return upsample_to_input(logits, features, batch_img_metas[0]["img_shape"])


def _resize(x: Tensor, size: Sequence[int]) -> Tensor:
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)
