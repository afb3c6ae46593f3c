"""Loading MMEngine run checkpoints (ours) safely on torch >= 2.6.

Run checkpoints hold, besides tensors, MMEngine's ``HistoryBuffer`` log history (numpy arrays).
``torch.load(weights_only=True)`` rejects them; instead of unpickling arbitrary code with
``weights_only=False`` we allow exactly the few classes such a checkpoint contains.
"""

from pathlib import Path
from typing import Any

import numpy as np
import torch
from mmengine.logging import HistoryBuffer
from torch import nn


def _run_checkpoint_globals() -> list[Any]:
    """Classes a MMEngine run checkpoint may contain beyond plain tensors and containers."""
    allowed: list[Any] = [HistoryBuffer, np.ndarray, np.dtype, np.core.multiarray._reconstruct]
    allowed += [np.dtype(t).type for t in ("f4", "f8", "i4", "i8", "u1", "b1")]
    allowed += [type(np.dtype(t)) for t in ("f4", "f8", "i4", "i8", "u1", "b1")]
    allowed.append(np.core.multiarray.scalar)
    return allowed


def load_run_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by our runner with ``weights_only=True`` plus an allowlist.

    Raises:
        FileNotFoundError: the file does not exist.
        RuntimeError: the file is truncated, corrupt or contains other pickled objects.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        with torch.serialization.safe_globals(_run_checkpoint_globals()):
            checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises several types for corrupt / unsafe files
        raise RuntimeError(
            f"cannot load run checkpoint {path}: {err}. The file is truncated, corrupt or not a "
            "dinoreg-dense run checkpoint (backbone weights go in model.backbone.checkpoint)."
        ) from err
    if not isinstance(checkpoint, dict):
        raise RuntimeError(f"{path} holds a {type(checkpoint).__name__}, not a checkpoint dict")
    return checkpoint


def check_state_dict_shapes(model: nn.Module, state_dict: dict[str, Any], path: str | Path) -> None:
    """Raise a ``ValueError`` naming the file and the fix when tensors do not fit ``model``.

    A different class count in the head is the usual cause, so it is spelled out.
    """
    own = model.state_dict()
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
