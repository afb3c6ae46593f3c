"""Our own format: a safetensors file of :class:`RegisterViT` weights whose header metadata holds
``{"format": "dinoreg_dense", "arch": <ViTArch as JSON>}``, so it loads with ``arch=None``."""

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from safetensors.torch import save_file

from ..backbones.presets import ViTArch, resolve_arch

if TYPE_CHECKING:
    from ..backbones.vit import RegisterViT

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


def save_checkpoint(model: "RegisterViT", path: str | Path) -> Path:
    """Write the model's weights and architecture as one safetensors file.

    Args:
        model: the backbone; every tensor of its ``state_dict`` is written (made contiguous).
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
