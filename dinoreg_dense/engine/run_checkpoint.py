"""Loading MMEngine run checkpoints (ours) safely on torch >= 2.6.

MMEngine stores its ``HistoryBuffer`` log history in run checkpoints; a pickled HistoryBuffer
refers to ``getattr`` and its class, which ``torch.load(weights_only=True)`` rightly rejects, so
plain MMEngine must resume with ``weights_only=False`` (arbitrary code execution). Our runner
instead saves the log history as plain lists (:func:`portable_message_hub`) and rebuilds the
buffers on load (:func:`restore_message_hub`); loading then needs only numpy arrays on top of
the weights-only allowlist.
"""

from pathlib import Path
from typing import Any

import numpy as np
import torch
from mmengine.logging import HistoryBuffer
from torch import nn

_HISTORY_KEY = "__history_buffer__"


class RunCheckpointError(RuntimeError):
    """A file given as a run checkpoint (``--resume``, ``load_from``, ``tools/test.py``) is not
    one: truncated, not a PyTorch file, or holding other pickled objects."""


def portable_message_hub(state: dict[str, Any]) -> dict[str, Any]:
    """MessageHub state dict with every ``HistoryBuffer`` replaced by a dict of plain lists."""
    scalars = {}
    for key, buffer in state.get("log_scalars", {}).items():
        if isinstance(buffer, HistoryBuffer):
            logs, counts = buffer.data
            buffer = {
                _HISTORY_KEY: True,
                "log_history": logs.tolist(),
                "count_history": counts.tolist(),
                "max_length": buffer.max_length,
            }
        scalars[key] = buffer
    return {**state, "log_scalars": scalars}


def restore_message_hub(state: dict[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`portable_message_hub`."""
    scalars = {}
    for key, value in state.get("log_scalars", {}).items():
        if isinstance(value, dict) and value.get(_HISTORY_KEY):
            value = HistoryBuffer(value["log_history"], value["count_history"], value["max_length"])
        scalars[key] = value
    return {**state, "log_scalars": scalars}


def _numpy_globals() -> list[Any]:
    """numpy arrays and scalars of numeric dtypes (metrics, palettes); no object dtype."""
    dtypes = [np.dtype(t) for t in ("f2", "f4", "f8", "i1", "i2", "i4", "i8", "u1", "u2", "b1")]
    multiarray = np._core.multiarray
    return [np.ndarray, np.dtype, multiarray._reconstruct, multiarray.scalar] + [
        type(d) for d in dtypes
    ]


HEAD_BYTES = 64
"""How much of a file :func:`describe_non_checkpoint` looks at."""
PICKLE_PROTOCOL_OPCODE = 0x80
"""First byte of a pickle of protocol 2+: the legacy (non-zip) ``torch.save`` format."""


def describe_non_checkpoint(head: bytes) -> str | None:
    """Why a file that begins with ``head`` cannot be a ``torch.save`` file, or None if it can.

    ``torch.load`` reads anything that is not a zip archive as a legacy pickle, so a text file
    fails with an opcode error such as ``KeyError: 101`` (the code of its first letter); this
    names what the file holds instead.

    Args:
        head: the first bytes of the file (:data:`HEAD_BYTES` are enough).

    Returns:
        A phrase such as ``"it starts with text: 'hello'"``; None for a zip archive (the format of
        ``torch.save`` since torch 1.6) or a pickle.
    """
    if head.startswith(b"PK") or head[:1] == bytes([PICKLE_PROTOCOL_OPCODE]):
        return None
    if not head:
        return "it is empty"
    if head.startswith(b"version https://git-lfs"):
        return "it is a Git LFS pointer: fetch the file itself with `git lfs pull`"
    if head[8:10] == b'{"':
        return (
            "it is a safetensors file; pretrained backbone weights go in model.backbone.checkpoint"
        )
    text = _utf8_prefix(head)
    if text is not None and all(c.isprintable() or c in "\t\r\n" for c in text):
        first_line = text.strip().splitlines()[0] if text.strip() else text
        return f"it starts with text: {first_line[:40]!r}"
    return f"it starts with the bytes {head[:8].hex(' ')}"


def _utf8_prefix(head: bytes) -> str | None:
    """``head`` decoded as UTF-8, allowing a character cut at its end; None if not UTF-8."""
    try:
        return head.decode("utf-8")
    except UnicodeDecodeError as err:
        if err.start < len(head) - 3:
            return None
        return head[: err.start].decode("utf-8")


def load_run_checkpoint(
    path: str | Path, map_location: Any = "cpu", mmap: bool = False
) -> dict[str, Any]:
    """Load a checkpoint written by our runner with ``weights_only=True`` plus an allowlist.

    ``mmap=True`` maps the tensors instead of reading them: cheap when only the keys or the
    metadata are looked at.

    Raises:
        FileNotFoundError: the file does not exist.
        RuntimeError: the file is not a ``torch.save`` file at all (text, empty, a Git LFS
            pointer, safetensors; see :func:`describe_non_checkpoint`), or it is truncated,
            corrupt or contains other pickled objects.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    with open(path, "rb") as f:
        head = f.read(HEAD_BYTES)
    problem = describe_non_checkpoint(head)
    if problem:
        raise RunCheckpointError(
            f"{path} is not a PyTorch checkpoint ({problem}). tools/test.py, tools/infer.py and "
            "--resume need a run checkpoint written by tools/train.py (a .pth file: a zip archive "
            "whose first bytes are 'PK')."
        )
    try:
        with torch.serialization.safe_globals(_numpy_globals()):
            checkpoint = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except Exception as err:  # torch raises several types for corrupt / unsafe files
        raise RunCheckpointError(
            f"cannot load run checkpoint {path}: {err}. The file is truncated, corrupt or not a "
            "dinoreg-dense run checkpoint (backbone weights go in model.backbone.checkpoint)."
        ) from err
    if not isinstance(checkpoint, dict):
        raise RunCheckpointError(
            f"{path} holds a {type(checkpoint).__name__}, not a checkpoint dict"
        )
    if "message_hub" in checkpoint:
        checkpoint["message_hub"] = restore_message_hub(checkpoint["message_hub"])
    return checkpoint


def check_state_dict_shapes(model: nn.Module, state_dict: dict[str, Any], path: str | Path) -> None:
    """Raise a ``ValueError`` naming the file and the fix when the tensors do not fit ``model``:
    missing or unexpected keys (e.g. backbone-only weights given where a training checkpoint is
    needed) or other shapes (a different class count in the head is spelled out)."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    if missing or unexpected:
        counts = [f"{len(missing)} of {len(own)} missing (first: {missing[:3]})"] if missing else []
        if unexpected:
            counts.append(f"{len(unexpected)} unexpected (first: {unexpected[:3]})")
        raise ValueError(
            f"checkpoint {path} does not hold this model's weights: {', '.join(counts)}. "
            "tools/test.py, infer.py, export.py and --resume need a checkpoint written by "
            "tools/train.py with this config: if the run had --cfg-options (e.g. another "
            "model.backbone.arch), pass the same ones, or give the config the run saved in its "
            "work dir (work_dirs/<run>/<config>.py); pretrained backbone weights go in "
            "model.backbone.checkpoint instead."
        )
    mismatched = [
        (k, tuple(v.shape), tuple(own[k].shape))
        for k, v in state_dict.items()
        if k in own and hasattr(v, "shape") and tuple(v.shape) != tuple(own[k].shape)
    ]
    if not mismatched:
        return
    lines = [f"  {k}: checkpoint {a} vs model {b}" for k, a, b in mismatched[:5]]
    hint = ""
    head = [m for m in mismatched if "conv_seg" in m[0] or "cls_seg" in m[0]]
    if head:
        key, ckpt_shape, model_shape = head[0]
        hint = (
            f"\nThe checkpoint's head predicts {ckpt_shape[0]} classes but the config builds "
            f"{model_shape[0]}: use the dataset / config the checkpoint was trained with, or set "
            f"--cfg-options model.decode_head.num_classes={ckpt_shape[0]}."
        )
    raise ValueError(
        f"checkpoint {path} does not fit the model ({len(mismatched)} tensors differ):\n"
        + "\n".join(lines)
        + hint
    )
