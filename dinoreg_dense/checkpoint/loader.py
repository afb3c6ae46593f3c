"""One entry point for every supported checkpoint: detect the format, convert, check.

This package hands out state dicts and architectures; the backbone loads them into itself
(:meth:`~dinoreg_dense.backbones.RegisterViT.load_pretrained`).
"""

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmengine.logging import print_log
from torch import Tensor

from ..arch import ViTArch
from .birder import arch_from_birder, birder_file_options, convert_birder
from .dinov3 import (
    arch_from_dinov3_official,
    convert_dinov3_official,
    dinov3_arch_hints,
    dinov3_fields,
    is_official_dinov3,
)
from .errors import CheckpointError
from .huggingface import arch_from_hf_config, convert_hf, hf_variant
from .infer import describe_arch, describe_state, infer_arch, suggest_arch
from .native import arch_from_metadata, is_native
from .official import convert_official, is_chunked
from .reading import CheckpointFile, check_exists, read_checkpoint, read_header
from .timm_vit import convert_timm, fit_cls_pos_row, is_timm_dinov3

# The patch embedding's name in each key layout; its prefix in a file is the backbone's prefix
# ('teacher.backbone.', 'module.', 'dinov2.' ...).
_ANCHORS = (
    "embeddings.patch_embeddings.projection.weight",
    "embeddings.patch_embeddings.weight",  # HF DINOv3
    "patch_embed.proj.weight",
    "patch_embed.weight",
    "conv_proj.weight",  # birder
    "conv_proj.0.weight",  # birder's hMLP stem, located only to be refused by name
)
_HF_CLASSES = {
    "dinov2": "Dinov2Model",
    "dinov2_with_registers": "Dinov2WithRegistersModel",
    "dinov3_vit": "DINOv3ViTModel",
    "vit": "ViTModel (DINO v1)",
}
_SHOWN = 5  # offending keys quoted per kind in error messages


@dataclass(frozen=True)
class _Format:
    """A source layout: its converter and how its implementation resamples position embeddings
    (used only when the architecture has to be inferred from shapes). ``options``, when set,
    reads keyword arguments for ``convert`` from the file (its path and header metadata)."""

    name: str
    convert: Callable[..., dict[str, Tensor]]
    interpolate_antialias: bool
    interpolate_offset: float
    options: Callable[[Path, Mapping[str, str]], dict[str, Any]] | None = None


def _identity(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    return dict(state)


_FORMATS = {
    "native": _Format("dinoreg_dense safetensors", _identity, True, 0.0),
    "ours": _Format("dinoreg_dense state dict without arch metadata", _identity, True, 0.0),
    "official_dinov2_reg": _Format("official DINOv2 with registers", convert_official, True, 0.0),
    "official_dinov2": _Format("official DINOv2", convert_official, False, 0.1),
    # DINO v1's .pth and timm's DINO / plain ViTs share one key layout; DINO v1 is assumed.
    "official_dino": _Format("official DINO v1 (or timm ViT)", convert_official, False, 0.1),
    "timm": _Format("timm VisionTransformer", convert_timm, True, 0.0),
    "official_dinov3": _Format("official DINOv3", convert_dinov3_official, False, 0.0),
    "timm_dinov3": _Format("timm DINOv3 (Eva)", convert_timm, False, 0.0),
    "hf": _Format("Hugging Face", convert_hf, False, 0.0),
    "birder": _Format("birder ViT", convert_birder, False, 0.0, birder_file_options),
}


@dataclass
class _Loaded:
    file: CheckpointFile
    kind: str
    name: str
    state: dict[str, Tensor]
    options: dict[str, Any]
    # What conversion drops but the architecture needs (official DINOv3: periods, key mask).
    arch_hints: dict[str, Any] = field(default_factory=dict)
    arch: ViTArch | None = None  # set by _file_arch on first use


def detect_format(path: str | Path) -> str:
    """Human-readable name of a checkpoint's format and where its backbone sits in the file,
    e.g. ``"official DINO v1 (or timm ViT) under 'teacher.backbone.'"``."""
    return PretrainedFile(path).format_name


def read_arch(path: str | Path) -> ViTArch:
    """The architecture of a checkpoint.

    From an HF ``config.json`` (``dinov2``, ``dinov2_with_registers``, ``vit``), with HF's
    position-embedding resampling so outputs equal HF's; from our safetensors metadata; for
    birder files from shapes plus their signature and config (see
    :mod:`dinoreg_dense.checkpoint.birder`), with birder's resampling; for other formats inferred
    from tensor shapes (see :mod:`dinoreg_dense.checkpoint.infer`), with the resampling rule of
    the implementation the format comes from.

    Raises:
        FileNotFoundError: the path does not exist.
        CheckpointError: unreadable file, unknown format, or shapes that do not determine the
            architecture (then set ``arch`` explicitly).
    """
    path = check_exists(path)
    metadata, config = read_header(path)
    if not is_native(metadata) and config is None:
        return PretrainedFile(path).arch
    try:
        return arch_from_metadata(metadata) if is_native(metadata) else arch_from_hf_config(config)
    except ValueError as error:
        raise CheckpointError(f"{path}: cannot read the architecture: {error}") from error


class PretrainedFile:
    """A checkpoint read and converted once, for both its architecture and its weights.

    ``RegisterViT(arch=None, checkpoint=...)`` needs the architecture before it can build the
    model and the weights after; a multi-GB ``.pth`` is read a single time this way.
    """

    def __init__(self, path: str | Path) -> None:
        self.loaded = _load(check_exists(path))

    @property
    def format_name(self) -> str:
        """What :func:`detect_format` says of the file."""
        return self.loaded.name

    @property
    def arch(self) -> ViTArch:
        """The file's architecture, as :func:`read_arch` gives it."""
        return _file_arch(self.loaded)

    @property
    def path(self) -> Path:
        """The file or folder that was read."""
        return self.loaded.file.path

    def state_dict_for(self, arch: ViTArch, expected: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """The converted weights for a model of ``arch``, checked against its state dict.

        Every tensor of ``expected`` must come from the file with the same shape, and the file
        may hold nothing else besides non-backbone parts (heads, optimiser state, iBOT's mask
        token), so the result loads with ``load_state_dict(strict=True)``.

        Args:
            arch: the architecture of the model the weights are for.
            expected: the model's own ``state_dict()`` (only names and shapes are read).

        Raises:
            CheckpointError: missing / unexpected / mis-shaped tensors, or a setting the file
                records that the shapes cannot show (head count, RoPE, masked key bias) differs
                from ``arch``, or the file's own settings are invalid (e.g. DINOv3 RoPE periods
                of another base); the message names the file, the format and the fix.
        """
        loaded = self.loaded
        state = fit_cls_pos_row(loaded.state, arch)
        problems = _compare(state, expected)
        if problems:
            raise CheckpointError(_mismatch_message(loaded, arch, problems))
        _check_recorded_fields(loaded, arch)
        _note_numeric_differences(loaded, arch)
        return state


def _load(path: Path) -> _Loaded:
    file = read_checkpoint(path)
    prefix, state = _backbone_tensors(file)
    kind = _detect(state, file.metadata)
    fmt = _FORMATS[kind]
    name = fmt.name
    if kind == "hf":
        name = f"Hugging Face {_HF_CLASSES.get(hf_variant(state, file.hf_config), 'model')}"
    if prefix:
        name += f" under {prefix!r}"
    try:
        options = fmt.options(file.path, file.metadata) if fmt.options else {}
        converted = fmt.convert(state, **options)
    except ValueError as error:
        raise CheckpointError(
            f"{file.path}: cannot convert the checkpoint ({name}): {error}"
        ) from error
    hints = dinov3_arch_hints(state) if kind == "official_dinov3" else {}
    return _Loaded(file, kind, name, converted, options, hints)


def _backbone_tensors(file: CheckpointFile) -> tuple[str, dict[str, Tensor]]:
    prefixes = {
        key[: len(key) - len(anchor)]
        for key in file.tensors
        for anchor in _ANCHORS
        if key == anchor or key.endswith("." + anchor)
    }
    if not prefixes:
        first = ", ".join(list(file.tensors)[:_SHOWN])
        raise CheckpointError(
            f"{file.path}: unrecognised checkpoint format (no ViT patch embedding found; first "
            f"keys: {first}). Supported: official DINOv3 / DINOv2 / DINOv2-reg / DINO .pth, "
            "Hugging Face DINOv3ViTModel / Dinov2(WithRegisters)Model / ViTModel folders, timm "
            "ViT and DINOv3 state dicts, birder ViT .pt / .safetensors, dinoreg_dense "
            "safetensors."
        )
    # Training checkpoints hold student and teacher; DINO and DINOv2 evaluate the teacher.
    prefix = min(prefixes, key=lambda p: ("teacher" not in p, len(p), p))
    state = {k[len(prefix) :]: v for k, v in file.tensors.items() if k.startswith(prefix)}
    return prefix, state


def _detect(state: Mapping[str, Tensor], metadata: Mapping[str, str]) -> str:
    if is_native(metadata):
        return "native"
    if any(key in state for key in _ANCHORS[:2]):
        return "hf"
    if "conv_proj.weight" in state or "conv_proj.0.weight" in state:
        return "birder"
    if "patch_embed.weight" in state:
        return "ours"
    if is_official_dinov3(state):
        return "official_dinov3"
    if is_timm_dinov3(state):
        return "timm_dinov3"
    if "reg_token" in state:
        return "timm"
    if "register_tokens" in state:
        return "official_dinov2_reg"
    if "mask_token" in state or is_chunked(state):
        return "official_dinov2"
    if any(key.endswith(".ls1.gamma") for key in state):
        return "timm"
    return "official_dino"


def _file_arch(loaded: _Loaded) -> ViTArch:
    """Architecture of a loaded file, read once (building a model from a file asks for it, then
    checks and notes against it); CheckpointError when it cannot be determined."""
    if loaded.arch is None:
        loaded.arch = _read_file_arch(loaded)
    return loaded.arch


def _read_file_arch(loaded: _Loaded) -> ViTArch:
    file = loaded.file
    try:
        if loaded.kind == "native":
            return arch_from_metadata(file.metadata)
        if loaded.kind == "hf" and file.hf_config is not None:
            return arch_from_hf_config(file.hf_config)
        if loaded.kind == "hf" and "pos_embed" not in loaded.state:
            # Only DINOv3 (RoPE) has no position table; its shapes do not give its RoPE settings.
            raise ValueError("DINOv3ViTModel weights need the config.json saved next to them")
        if loaded.kind == "birder":
            return arch_from_birder(loaded.state, **loaded.options)
        if loaded.kind == "official_dinov3":
            return arch_from_dinov3_official(loaded.state, **loaded.arch_hints)
        if loaded.kind == "timm_dinov3":
            return infer_arch(loaded.state, **dinov3_fields())
        return infer_arch(loaded.state, **_inference_defaults(loaded))
    except ValueError as error:
        raise CheckpointError(
            f"{file.path}: cannot infer the architecture of the checkpoint ({loaded.name}): "
            f"{error}; set model.backbone.arch to a preset name (see ARCHS) or a dict of "
            "ViTArch fields"
        ) from error


def _arch_from_file(loaded: _Loaded) -> bool:
    """Whether ``arch=None`` rebuilds the file's own model: its format records the architecture,
    or (timm DINOv3) its shapes plus DINOv3's fixed settings give it for the released widths."""
    kinds = ("native", "birder", "official_dinov3", "timm_dinov3")
    return loaded.kind in kinds or loaded.file.hf_config is not None


def _records_head_count(loaded: _Loaded) -> bool:
    """Whether the file itself records what shapes cannot show (head count, RoPE, key bias):
    our metadata, an HF config.json, the official DINOv3 periods."""
    return loaded.kind in ("native", "official_dinov3") or loaded.file.hf_config is not None


def _inference_defaults(loaded: _Loaded) -> dict[str, Any]:
    fmt = _FORMATS[loaded.kind]
    defaults: dict[str, Any] = dict(
        interpolate_antialias=fmt.interpolate_antialias,
        interpolate_offset=fmt.interpolate_offset,
    )
    registers = "register_tokens" in loaded.state
    if loaded.kind == "hf":
        # transformers' config defaults: antialias for registers only; ViT (no LayerScale) eps.
        defaults["interpolate_antialias"] = registers
        if not any(key.endswith(".ls1.gamma") for key in loaded.state):
            defaults["norm_eps"] = 1e-12
    elif loaded.kind == "ours":
        # Same rule as the presets: registers -> DINOv2-reg resampling, else DINO / DINOv2.
        defaults["interpolate_antialias"] = registers
        defaults["interpolate_offset"] = 0.0 if registers else 0.1
    return defaults


def _compare(state: Mapping[str, Tensor], expected: Mapping[str, Tensor]) -> dict[str, list[str]]:
    problems = {
        "shape mismatch": [
            f"{key} file {tuple(state[key].shape)} vs model {tuple(value.shape)}"
            for key, value in expected.items()
            if key in state and state[key].shape != value.shape
        ],
        "missing from the file": [key for key in expected if key not in state],
        "unexpected in the file": [key for key in state if key not in expected],
    }
    return {kind: keys for kind, keys in problems.items() if keys}


def _mismatch_message(loaded: _Loaded, model_arch: ViTArch, problems: dict[str, list[str]]) -> str:
    lines = [f"{loaded.file.path}: the checkpoint ({loaded.name}) does not fit the model"]
    for kind, keys in problems.items():
        more = f" (+{len(keys) - _SHOWN} more)" if len(keys) > _SHOWN else ""
        lines.append(f"  {kind}: {'; '.join(keys[:_SHOWN])}{more}")
    try:
        file_arch = _file_arch(loaded)
    except CheckpointError:
        lines.append(
            f"The file holds {describe_state(loaded.state)} but the config builds "
            f"{describe_arch(model_arch)}; set model.backbone.arch to the file's architecture."
        )
        return "\n".join(lines)
    if file_arch == model_arch:
        lines.append(
            f"The config builds the file's own architecture, {describe_arch(model_arch)}, so the "
            "file itself lacks or adds tensors (damaged or edited?)."
        )
        return "\n".join(lines)
    fix = f"set {suggest_arch(file_arch)}"
    if _arch_from_file(loaded):
        fix = "set model.backbone.arch=None to take the architecture from the file, or " + fix
    lines.append(
        f"The file looks like {describe_arch(file_arch)} but the config builds "
        f"{describe_arch(model_arch)}; {fix}."
    )
    return "\n".join(lines)


# Settings that change what the weights compute without changing any tensor's shape.
_SHAPELESS_FIELDS = ("num_heads", "pos_encoding", "rope_base", "key_bias")


def _check_recorded_fields(loaded: _Loaded, model_arch: ViTArch) -> None:
    """CheckpointError when a file that records its architecture (config.json, our metadata,
    official DINOv3 periods) disagrees with ``model_arch`` on a setting the shapes cannot show:
    the weights would load and compute something else. Also reads (and so validates) the
    official DINOv3 periods whatever ``model_arch`` is."""
    if not _records_head_count(loaded):
        return
    source = _file_arch(loaded)
    differences = [
        f"{name}={getattr(model_arch, name)!r} (file: {getattr(source, name)!r})"
        for name in _SHAPELESS_FIELDS
        if getattr(model_arch, name) != getattr(source, name)
    ]
    if differences:
        raise CheckpointError(
            f"{loaded.file.path}: the checkpoint ({loaded.name}) fits the model's shapes but the "
            f"model uses {', '.join(differences)}, so these weights would compute something else; "
            f"set model.backbone.arch=None to take the architecture from the file, or set "
            f"{suggest_arch(source)}"
        )


def _note_numeric_differences(loaded: _Loaded, model_arch: ViTArch) -> None:
    """Log (INFO) settings in which the model departs from the implementation of the file:
    they change outputs slightly, not the weights."""
    try:
        source = _file_arch(loaded)
    except CheckpointError:
        return
    fields = ("interpolate_antialias", "interpolate_offset", "norm_eps", "rope_periods_dtype")
    differences = [
        f"{name}={getattr(model_arch, name)} (file: {getattr(source, name)})"
        for name in fields
        if getattr(model_arch, name) != getattr(source, name)
    ]
    if differences:
        print_log(
            f"{loaded.name}: the model uses {', '.join(differences)}; outputs differ slightly "
            "from the original implementation (arch=None reproduces it)",
            logger="current",
            level=logging.INFO,
        )
