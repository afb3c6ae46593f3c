"""Which weights a tool's CHECKPOINT argument holds, and how they reach the model.

``tools/test.py`` and ``tools/infer.py`` take one CHECKPOINT. It is either a run checkpoint written
by ``tools/train.py`` (backbone and head under our key names), or a file whose weights exist
elsewhere: DINOv2's released depth heads, Hugging Face ``DPTForDepthEstimation`` /
``DepthAnythingForDepthEstimation`` folders, Depth-Anything-V2 ``.pth`` files (see
:data:`~dinoreg_dense.checkpoint.depth_heads.SUPPORTED_FORMATS`). The second kind is put into the
model config (``backbone.checkpoint`` / ``decode_head.checkpoint`` plus the settings the file
fixes), so the model loads it strictly when it is built.
"""

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mmengine.config import Config, ConfigDict
from mmengine.logging import print_log
from torch import nn

from ..checkpoint import CheckpointError, detect_format
from ..checkpoint.depth_heads import SUPPORTED_FORMATS, HeadWeights, read_head_weights
from ..registry import MODELS
from .run_checkpoint import RunCheckpointError, check_state_dict_shapes, load_run_checkpoint

# Formats whose file also holds the backbone the head was trained on.
_WITH_BACKBONE = frozenset(SUPPORTED_FORMATS[2:])


def is_run_state_dict(state_dict: dict[str, Any]) -> bool:
    """Whether a state dict holds a whole model under our key names (``backbone.*`` and
    ``decode_head.*``), as ``tools/train.py`` writes it."""
    return any(k.startswith("backbone.") for k in state_dict) and any(
        k.startswith("decode_head.") for k in state_dict
    )


def resolve_checkpoint(cfg: Config, path: str | Path) -> dict[str, Any] | None:
    """Point ``cfg.model`` at the weights in ``path``.

    Args:
        cfg: the tool's config; edited in place when ``path`` is not a run checkpoint.
        path: a run checkpoint file, or any file / folder of ``SUPPORTED_FORMATS``.

    Returns:
        The run checkpoint (a dict with ``state_dict`` and ``meta``) when ``path`` is one; the
        caller loads it. ``None`` when ``path`` holds released weights: then
        ``cfg.model.decode_head.checkpoint`` is ``path``, so is ``cfg.model.backbone.checkpoint``
        when the file holds the backbone too, and the settings the file fixes (head sizes,
        ``use_bn``, the depth range, the backbone layers) replace the config's, with a log line
        naming each change.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is a head only and the config names no backbone checkpoint.
        CheckpointError: neither a run checkpoint nor a supported released format (the message
            lists them), or a head type other than the config's.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if path.is_file():
        try:
            checkpoint = load_run_checkpoint(path, mmap=True)  # keys only: no tensor is read
        except RunCheckpointError:
            checkpoint = None  # e.g. safetensors: maybe a released format below
        if checkpoint is not None and is_run_state_dict(checkpoint.get("state_dict", checkpoint)):
            return checkpoint
    try:
        weights = read_head_weights(path)
    except CheckpointError as err:
        try:
            backbone_format = detect_format(path)
        except CheckpointError:
            backbone_format = None
        if backbone_format is not None:
            raise CheckpointError(
                f"{path} holds backbone weights only ({backbone_format}), no trained head: "
                "backbone weights go in model.backbone.checkpoint (--cfg-options "
                f"model.backbone.checkpoint={path}); CHECKPOINT is a run checkpoint written by "
                "tools/train.py or released depth weights"
            ) from None
        raise CheckpointError(
            f"{err}. A run checkpoint written by tools/train.py (backbone.* and decode_head.* "
            "tensors) is accepted too."
        ) from None
    _into_config(cfg.model, weights)
    return None


def build_model_with_weights(cfg: Config, path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """``cfg.model`` built with the weights of ``path`` (see :func:`resolve_checkpoint`).

    A run checkpoint's tensors replace every weight after the build, so the backbone's warning
    about random weights (the config names no backbone checkpoint) is not shown then.

    Returns:
        The model (train mode, on the CPU) and the run checkpoint's ``meta`` (``{}`` for
        released weights).

    Raises:
        Whatever :func:`resolve_checkpoint` raises; ``ValueError`` (naming ``path``) when the
        run checkpoint's tensors do not fit the config's model.
    """
    checkpoint = resolve_checkpoint(cfg, path)
    if checkpoint is None:
        return MODELS.build(cfg.model), {}  # released weights load here, strictly
    with _quiet_random_weights():
        model = MODELS.build(cfg.model)
    state_dict = checkpoint["state_dict"]
    check_state_dict_shapes(model, state_dict, path)
    model.load_state_dict(state_dict)
    return model, checkpoint.get("meta") or {}


@contextmanager
def _quiet_random_weights() -> Iterator[None]:
    vit_logger = logging.getLogger("dinoreg_dense.backbones.vit")
    level = vit_logger.level
    vit_logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        vit_logger.setLevel(level)


def _into_config(model: ConfigDict, weights: HeadWeights) -> None:
    """Put ``weights`` into a model config (see :func:`resolve_checkpoint`)."""
    head, backbone = model.decode_head, model.backbone
    if head.get("type") != weights.head_type:
        raise CheckpointError(
            f"{weights.path} holds a {weights.head_type} ({weights.format}) but the config builds "
            f"a {head.get('type')}; use a config with model.decode_head.type="
            f"'{weights.head_type}'"
        )
    changes = _update(head, weights.config, "model.decode_head")
    changes += _update(backbone, weights.backbone, "model.backbone")
    head.checkpoint = str(weights.path)
    if weights.format in _WITH_BACKBONE:
        backbone.checkpoint = str(weights.path)
    elif backbone.get("checkpoint") is None:
        raise ValueError(
            f"{weights.path} holds only a depth head ({weights.format}); the backbone it was "
            "trained on is a separate file: add --cfg-options "
            "model.backbone.checkpoint=<e.g. dinov2_vits14_pretrain.pth> model.backbone.arch=None"
        )
    for change in changes:
        print_log(f"from {weights.path}: {change}", logger="current")


def _update(cfg: ConfigDict, values: dict[str, Any], where: str) -> list[str]:
    """Set ``values`` in ``cfg``; one line per value the config set otherwise."""
    changes = []
    for key, value in values.items():
        old = cfg.get(key)
        if old is not None and _normalise(old) != _normalise(value):
            changes.append(f"{where}.{key}={value!r} (config: {old!r})")
        cfg[key] = value
    return changes


def _normalise(value: Any) -> Any:
    """Lists and tuples compare equal element-wise."""
    return list(value) if isinstance(value, list | tuple) else value
