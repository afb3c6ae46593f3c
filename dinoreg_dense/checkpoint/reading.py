"""Reading checkpoint files without executing code: safetensors, weights-only torch pickles and
Hugging Face model folders."""

import argparse
import json
import pickle
import re
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file as load_safetensors
from torch import Tensor

from .errors import CheckpointError

# Weight files of a Hugging Face folder, in the order transformers prefers them.
HF_WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)

# A weight file inside an HF folder (possibly one shard), whose config.json sits next to it.
_HF_WEIGHT_NAME = re.compile(r"^(model|pytorch_model)(-\d+-of-\d+)?\.(safetensors|bin)$")

# Plain containers found in training checkpoints that are safe to rebuild: DINO v1 stores its
# command-line arguments as an ``argparse.Namespace`` under ``'args'``.
_SAFE_GLOBALS = [argparse.Namespace]

# Non-tensor entries that birder writes next to ``'state'`` in its ``.pt`` files; its
# ``.safetensors`` files carry the same entries as header metadata (JSON text for the dicts).
_BIRDER_HEADER_KEYS = ("birder_version", "task", "signature", "config")


@dataclass
class CheckpointFile:
    """The tensors of a checkpoint and what came with them.

    Attributes:
        path: the file or folder that was asked for.
        tensors: every tensor in the file, nested dicts flattened to dotted keys
            (``{'teacher': {'backbone.x': t}}`` becomes ``'teacher.backbone.x'``).
        metadata: safetensors header metadata; for a birder ``.pt`` file its ``birder_version``,
            ``task``, ``signature`` and ``config`` entries in the same form (dicts as JSON text);
            empty for other files.
        hf_config: the ``config.json`` of a Hugging Face folder, else ``None``.
    """

    path: Path
    tensors: dict[str, Tensor]
    metadata: dict[str, str] = field(default_factory=dict)
    hf_config: dict[str, Any] | None = None


def check_exists(path: str | Path) -> Path:
    """The path as a ``Path``; ``FileNotFoundError`` naming it when it does not exist."""
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    return path


def read_header(path: str | Path) -> tuple[dict[str, str], dict[str, Any] | None]:
    """Safetensors metadata and HF ``config.json`` of a checkpoint without reading any tensor.

    Returns ``({}, None)`` for files that have neither (e.g. ``.pth``).
    """
    path = check_exists(path)
    config = _read_hf_config(path)
    weights = _weight_files(path) if path.is_dir() else [path]
    if len(weights) == 1 and weights[0].suffix == ".safetensors":
        with _reading(weights[0]), safe_open(str(weights[0]), framework="pt") as handle:
            return dict(handle.metadata() or {}), config
    return {}, config


def read_checkpoint(path: str | Path) -> CheckpointFile:
    """Read every tensor of a checkpoint file or HF folder into memory (``.pth`` files mmapped).

    ``.pth`` / ``.bin`` files load with ``torch.load(weights_only=True)``: only tensors and plain
    containers are rebuilt, never arbitrary objects or code.

    Raises:
        FileNotFoundError: the path does not exist.
        CheckpointError: the file is truncated, corrupt or holds Python objects.
    """
    path = check_exists(path)
    metadata, config = read_header(path)
    tensors: dict[str, Tensor] = {}
    for weight_file in _weight_files(path) if path.is_dir() else [path]:
        with _reading(weight_file):
            if weight_file.suffix == ".safetensors":
                tensors.update(load_safetensors(weight_file))
            else:
                contents = _torch_load(weight_file)
                tensors.update(flatten_tensors(contents))
                metadata = metadata or birder_header(contents)
    if not tensors:
        raise CheckpointError(f"{path}: the file holds no tensors")
    return CheckpointFile(path, tensors, metadata, config)


def flatten_tensors(obj: Any, prefix: str = "") -> dict[str, Tensor]:
    """Tensors of nested dicts under dotted keys; every other leaf (epochs, args) is skipped."""
    if isinstance(obj, Tensor):
        return {prefix[:-1]: obj}
    if not isinstance(obj, Mapping):
        return {}
    flat: dict[str, Tensor] = {}
    for key, value in obj.items():
        flat.update(flatten_tensors(value, f"{prefix}{key}."))
    return flat


def birder_header(contents: Any) -> dict[str, str]:
    """The non-tensor entries of a birder ``.pt`` file (``{'state': ..., 'birder_version': ...,
    'signature': {...}, 'config': {...}}``) as birder's safetensors metadata holds them: strings
    as they are, dicts and lists as JSON. Empty for anything that is not a birder file."""
    if not isinstance(contents, Mapping) or "birder_version" not in contents:
        return {}
    header = {}
    for key in _BIRDER_HEADER_KEYS:
        value = contents.get(key)
        if isinstance(value, str):
            header[key] = value
        elif value is not None:
            try:
                header[key] = json.dumps(value)
            except (TypeError, ValueError):
                continue  # not plain data; the entry is optional
    return header


def _weight_files(folder: Path) -> list[Path]:
    for name in HF_WEIGHT_FILES:
        candidate = folder / name
        if not candidate.exists():
            continue
        if name.endswith(".index.json"):
            with _reading(candidate):
                weight_map = json.loads(candidate.read_text())["weight_map"]
            return [folder / shard for shard in sorted(set(weight_map.values()))]
        return [candidate]
    raise CheckpointError(
        f"{folder}: a checkpoint folder must hold one of {', '.join(HF_WEIGHT_FILES)} "
        "(a Hugging Face model folder)"
    )


def _read_hf_config(path: Path) -> dict[str, Any] | None:
    if path.is_dir():
        config_file = path / "config.json"
    elif _HF_WEIGHT_NAME.match(path.name):
        config_file = path.parent / "config.json"
    else:
        return None
    if not config_file.is_file():
        return None
    with _reading(config_file):
        return json.loads(config_file.read_text())


def _torch_load(path: Path) -> Any:
    # mmap avoids a second copy of large files; only the zip format (torch >= 1.6) supports it.
    mmap = zipfile.is_zipfile(path)
    with torch.serialization.safe_globals(_SAFE_GLOBALS):
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)


@contextmanager
def _reading(path: Path) -> Iterator[None]:
    """Turn read errors of one file into a ``CheckpointError`` naming it."""
    try:
        yield
    except (CheckpointError, FileNotFoundError):
        raise
    except pickle.UnpicklingError as error:
        # "Unsupported operand": bytes that are no pickle at all (text, another format), not
        # a pickle of objects that weights_only refuses.
        if "weights only" not in str(error).lower() or "Unsupported operand" in str(error):
            raise CheckpointError(
                f"{path}: cannot read the file; it looks truncated or corrupt ({error})"
            ) from error
        raise CheckpointError(
            f"{path}: the file holds Python objects other than tensors, so it is not unpickled "
            "(torch.load(weights_only=True) refused it). Re-save the weights alone: "
            "torch.save(model.state_dict(), path) or safetensors."
        ) from error
    except (OSError, RuntimeError, ValueError, KeyError, EOFError, SafetensorError) as error:
        raise CheckpointError(
            f"{path}: cannot read the file; it looks truncated or corrupt ({error})"
        ) from error
