"""Our own format: a safetensors file of :class:`RegisterViT` weights whose header metadata holds
``{"format": "dinoreg_dense", "arch": <ViTArch as JSON>}``, so it loads with ``arch=None``."""

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from safetensors.torch import save_file

from ..arch import ViTArch, resolve_arch

FORMAT_TAG = "dinoreg_dense"


def is_native(metadata: Mapping[str, str]) -> bool:
    """Whether safetensors metadata marks our format."""
    return metadata.get("format") == FORMAT_TAG


def arch_from_metadata(metadata: Mapping[str, str]) -> ViTArch:
    """The :class:`ViTArch` stored in our safetensors metadata.

    Raises:
        ValueError: no or malformed ``arch`` entry, or fields this version does not know.
    """
    if "arch" not in metadata:
        raise ValueError("the metadata has no 'arch' entry")
    try:
        fields = json.loads(metadata["arch"])
        return resolve_arch(fields)
    except (json.JSONDecodeError, TypeError) as error:
        raise ValueError(f"malformed 'arch' metadata: {error}") from error


class SavableBackbone(Protocol):
    """What :func:`save_checkpoint` reads of a backbone (a ``RegisterViT``)."""

    arch: ViTArch

    def state_dict(self) -> dict[str, Any]:
        """Name -> tensor."""
        ...


def save_checkpoint(model: SavableBackbone, path: str | Path) -> Path:
    """Write the model's weights and architecture as one safetensors file.

    Args:
        model: the backbone; its ``arch`` goes to the metadata and every tensor of its
            ``state_dict()`` is written (made contiguous).
        path: output file, conventionally ``*.safetensors``; parent folders are created.

    Returns:
        The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {key: value.detach().contiguous() for key, value in model.state_dict().items()}
    metadata = {"format": FORMAT_TAG, "arch": json.dumps(model.arch.to_dict())}
    save_file(tensors, str(path), metadata=metadata)
    return path
