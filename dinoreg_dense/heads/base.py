"""The protocol every dense head follows, in the spirit of mmsegmentation 1.x's decode heads.

A head maps backbone features to a task output with ``forward``; ``loss`` and ``predict`` wrap it
with the task's ``loss_by_feat`` and ``predict_by_feat``, so task models stay task-free::

    loss(features, data_samples)          -> {"loss_...": scalar tensor, ...}
    predict(features, batch_img_metas)    -> (B, out_channels, H, W) per-pixel output
"""

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from torch import Tensor, nn

from ..backbones import ViTFeatures
from ..checkpoint import CheckpointError
from ..checkpoint.depth_heads import HeadWeights, read_head_weights
from ..registry import MODELS
from ..structures import DenseDataSample

_SHOWN = 5  # offending keys quoted per kind in error messages


class BaseDenseHead(nn.Module):
    """Base of the dense heads.

    Subclasses set ``out_channels`` (channels of the per-pixel output that test-time views and
    sliding windows average: classes for segmentation, 1 for depth) and define ``forward``,
    ``loss_by_feat`` and ``predict_by_feat``.
    """

    out_channels: int

    @classmethod
    def in_channels_for(cls, cfg: dict, backbone: nn.Module) -> int:
        """``in_channels`` of a head built from ``cfg`` on ``backbone`` (its ``embed_dim``, its
        cls token), used by the task model when the config leaves ``in_channels`` unset: one
        map here."""
        return backbone.embed_dim

    def forward(self, features: ViTFeatures) -> Any:
        """Backbone features -> the head's raw output (e.g. patch-grid logits)."""
        raise NotImplementedError

    def loss(self, features: ViTFeatures, data_samples: Sequence[DenseDataSample]) -> dict:
        """Training losses for a batch whose targets the preprocessor padded to the input."""
        return self.loss_by_feat(self(features), features, data_samples)

    def predict(self, features: ViTFeatures, batch_img_metas: Sequence[dict]) -> Tensor:
        """Per-pixel output (B, out_channels, H, W) at each input's ``img_shape`` (H, W)."""
        return self.predict_by_feat(self(features), features, batch_img_metas)

    def loss_by_feat(
        self, outputs: Any, features: ViTFeatures, data_samples: Sequence[DenseDataSample]
    ) -> dict:
        """Loss dict from ``forward``'s outputs and the samples' targets."""
        raise NotImplementedError

    def predict_by_feat(
        self, outputs: Any, features: ViTFeatures, batch_img_metas: Sequence[dict]
    ) -> Tensor:
        """Per-pixel output from ``forward``'s outputs (see ``predict``)."""
        raise NotImplementedError

    def load_head_checkpoint(self, checkpoint: str | Path) -> None:
        """Load this head's weights from a depth-head file or folder, strictly.

        Args:
            checkpoint: any file :func:`~dinoreg_dense.checkpoint.depth_heads.read_head_weights`
                reads (DINOv2's released heads, HF DPT / Depth Anything folders, DA-V2 ``.pth``).

        Raises:
            FileNotFoundError: the path does not exist.
            CheckpointError: the file holds another head type, its settings differ from this
                head's (named with the config key to set), or tensors are missing / unexpected /
                mis-shaped; nothing is loaded then.
        """
        weights = read_head_weights(checkpoint)
        state = _check_head_weights(self, weights)
        self.load_state_dict(state, strict=False)
        print_log(
            f"{type(self).__name__}: loaded {weights.path} ({weights.format}, {len(state)} "
            "tensors)",
            logger="current",
        )


def padded_input_size(features: ViTFeatures) -> tuple[int, int]:
    """(H, W) of the backbone's padded input: its patch grid times the patch size."""
    grid_h, grid_w = features.patch_maps[0].shape[-2:]
    return grid_h * features.patch_size, grid_w * features.patch_size


def upsample_to_input(maps: Tensor, features: ViTFeatures, img_shape: Sequence[int]) -> Tensor:
    """Patch-grid maps (B, C, h, w) -> (B, C, H, W) at ``img_shape``.

    The maps are upsampled bilinearly (align_corners=False) to the backbone's padded input and
    cropped to the top-left ``img_shape``: the backbone pads on the right and bottom.
    """
    maps = F.interpolate(
        maps, size=padded_input_size(features), mode="bilinear", align_corners=False
    )
    return maps[..., : img_shape[0], : img_shape[1]]


def _check_head_weights(head: nn.Module, weights: HeadWeights) -> dict[str, Tensor]:
    """The file's tensors checked against ``head``: every parameter and buffer but the losses'
    state and BatchNorm's batch counters must come from the file with its shape, and nothing
    else may be there."""
    where = f"{weights.path}: the head weights ({weights.format})"
    if weights.head_type != type(head).__name__:
        raise CheckpointError(
            f"{where} are for a {weights.head_type}, but the config builds a "
            f"{type(head).__name__}; set model.decode_head.type='{weights.head_type}'"
        )
    settings = [
        f"{key}={value!r} (config: {getattr(head, key)!r})"
        for key, value in weights.config.items()
        if hasattr(head, key) and _plain(getattr(head, key)) != _plain(value)
    ]
    if settings:
        raise CheckpointError(
            f"{where} do not fit the head's settings; set model.decode_head." + "; ".join(settings)
        )
    expected = {
        key: value
        for key, value in head.state_dict().items()
        if not key.startswith("loss_decode.") and key not in getattr(head, "derived_buffers", ())
    }
    state = dict(weights.state_dict)
    optional = [k for k in expected if k.endswith("num_batches_tracked") and k not in state]
    problems = {
        "shape mismatch": [
            f"{key} file {tuple(state[key].shape)} vs head {tuple(value.shape)}"
            for key, value in expected.items()
            if key in state and state[key].shape != value.shape
        ],
        "missing from the file": [k for k in expected if k not in state and k not in optional],
        "unexpected in the file": [key for key in state if key not in expected],
    }
    problems = {kind: keys for kind, keys in problems.items() if keys}
    if problems:
        lines = [f"{where} do not fit the {type(head).__name__} the config builds"]
        for kind, keys in problems.items():
            more = f" (+{len(keys) - _SHOWN} more)" if len(keys) > _SHOWN else ""
            lines.append(f"  {kind}: {'; '.join(keys[:_SHOWN])}{more}")
        lines.append(f"The file's head settings: {weights.config}; set them in the config.")
        raise CheckpointError("\n".join(lines))
    return state


def _plain(value: Any) -> Any:
    """Sequences compared as lists, numbers as floats (a config's 10 equals a file's 10.0)."""
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return value


def build_losses(
    cfg: Mapping | Sequence[Mapping] | None, default: Mapping
) -> nn.Module | nn.ModuleList:
    """A loss module from ``cfg`` (``default`` when None), or a ModuleList from a list of
    configs (e.g. DINOv2's DPT recipe: ``[SigLoss, GradientLoss(loss_weight=0.5)]``).

    A single loss stays a plain module, so heads trained before lists existed keep their
    state-dict keys (``loss_decode.<buffer>``)."""
    if cfg is None:
        return MODELS.build(dict(default))
    if isinstance(cfg, Mapping):
        return MODELS.build(dict(cfg))
    return nn.ModuleList(MODELS.build(dict(c)) for c in cfg)


def apply_losses(losses: nn.Module, pred: Tensor, target: Tensor) -> dict[str, Tensor]:
    """``{loss_name: value}`` of one loss or a ModuleList of them on ``pred`` and ``target``;
    losses sharing a name are summed (each applies its own ``loss_weight``)."""
    result: dict[str, Tensor] = {}
    for loss in losses if isinstance(losses, nn.ModuleList) else [losses]:
        value = loss(pred, target)
        result[loss.loss_name] = (
            result[loss.loss_name] + value if loss.loss_name in result else value
        )
    return result


def depth_losses(
    losses: nn.Module,
    depth: Tensor,
    features: ViTFeatures,
    data_samples: Sequence[DenseDataSample],
) -> dict[str, Tensor]:
    """Depth losses of any depth head's output (B, 1, h', w'), metres.

    The output is resized bilinearly (align_corners=False) to the backbone's padded input and
    cropped to the samples' ``gt_depth_map`` (B, H, W) (metres, 0 = invalid), which the
    preprocessor padded to the input.
    """
    target = torch.stack([s.gt_depth_map for s in data_samples])
    size = padded_input_size(features)
    if depth.shape[-2:] != size:
        depth = F.interpolate(depth, size=size, mode="bilinear", align_corners=False)
    depth = depth[..., : target.shape[-2], : target.shape[-1]]
    return apply_losses(losses, depth, target)
