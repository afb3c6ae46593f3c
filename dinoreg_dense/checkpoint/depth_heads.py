"""Depth heads that exist as files, converted to the key names of our heads.

Pure state-dict converters (no model import): each takes the file's tensors and returns the
head's config (the settings the tensors and the file's own config fix) and the tensors under
the names of :class:`~dinoreg_dense.heads.DPTHead` / :class:`~dinoreg_dense.heads.LinearDepthHead`.

Formats (key names from each project's module tree):

- DINOv2's released heads ``dinov2_vit{s,b,l,g}14_{nyu,kitti}_{linear,linear4,dpt}_head.pth``:
  ``state_dict`` with ``decode_head.*`` (dinov2 repo, ``dinov2/hub/depth/decode_heads.py``:
  ``BNHead.conv_depth``; ``DPTHead.reassemble_blocks / convs / fusion_blocks / project /
  conv_depth.head``, convolutions wrapped as ``<name>.conv``).
- Hugging Face ``DPTForDepthEstimation`` with a DINOv2 backbone (``facebook/dpt-dinov2-*``) and
  ``DepthAnythingForDepthEstimation`` folders: ``backbone.*``, ``neck.*``, ``head.*`` and a
  ``config.json`` with ``backbone_config``.
- Depth-Anything-V2's own ``.pth`` (``depth_anything_v2/dpt.py``): ``pretrained.*`` (the official
  DINOv2 backbone names) and ``depth_head.{projects, resize_layers, readout_projects,
  scratch.layer{k}_rn, scratch.refinenet{k}, scratch.output_conv1, scratch.output_conv2}``.

The backbone part of a file loads through ``RegisterViT(checkpoint=...)`` itself.
"""

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import Tensor

from .errors import CheckpointError
from .reading import read_checkpoint

SUPPORTED_FORMATS = (
    "DINOv2 linear / linear4 depth head .pth (dinov2_vit*14_{nyu,kitti}_linear[4]_head.pth)",
    "DINOv2 DPT depth head .pth (dinov2_vit*14_{nyu,kitti}_dpt_head.pth)",
    "Hugging Face DPTForDepthEstimation folder with a DINOv2 backbone (facebook/dpt-dinov2-*)",
    "Hugging Face DepthAnythingForDepthEstimation folder (Depth-Anything-V2)",
    "Depth-Anything-V2 .pth (depth_anything_v2_vit{s,b,l}.pth)",
)
# DINOv2 and Depth-Anything-V2 take these blocks per backbone depth (ViT-S/B, L, g).
_LAYERS_BY_DEPTH = {12: [2, 5, 8, 11], 24: [4, 11, 17, 23], 40: [9, 19, 29, 39]}
_LAYERS_BY_WIDTH = {384: 12, 768: 12, 1024: 24, 1536: 40}
_SHOWN = 5

Rule = tuple[str, str | Callable[[re.Match], str] | None]


@dataclass
class HeadWeights:
    """A depth head read from a file.

    Attributes:
        path: the file or folder read.
        format: which of :data:`SUPPORTED_FORMATS` it is, in words.
        head_type: the registered head class the tensors are for (``DPTHead``,
            ``LinearDepthHead``).
        config: that head's constructor arguments fixed by the file (tensor shapes and the
            file's own config), e.g. ``in_channels``, ``post_process_channels``, ``channels``,
            ``readout``, ``output_activation``; a head built with other values is refused.
        state_dict: the head's tensors under our key names.
        backbone: what the file's model feeds the head, when known: ``out_indices`` (0-based
            blocks) and ``norm_outputs`` (final norm on them), as ``RegisterViT`` arguments.
    """

    path: Path
    format: str
    head_type: str
    config: dict[str, Any]
    state_dict: dict[str, Tensor]
    backbone: dict[str, Any] = field(default_factory=dict)


def read_head_weights(path: str | Path) -> HeadWeights:
    """Read and convert the depth head of any of :data:`SUPPORTED_FORMATS`.

    Raises:
        FileNotFoundError: the path does not exist.
        CheckpointError: unreadable file, a format that is none of the supported ones (the
            message lists them), or tensors the converter does not know.
    """
    file = read_checkpoint(path)
    tensors, config = file.tensors, file.hf_config or {}
    model_type = config.get("model_type")
    if model_type == "dpt":
        fmt, convert = SUPPORTED_FORMATS[2], lambda: convert_hf_dpt(tensors, config)
    elif model_type == "depth_anything":
        fmt, convert = SUPPORTED_FORMATS[3], lambda: convert_hf_depth_anything(tensors, config)
    elif any("depth_head." in key for key in tensors):
        fmt, convert = SUPPORTED_FORMATS[4], lambda: convert_depth_anything_v2(tensors)
    elif any("decode_head.reassemble_blocks." in key for key in tensors):
        fmt, convert = SUPPORTED_FORMATS[1], lambda: convert_dinov2_dpt(tensors)
    elif any(key.endswith("decode_head.conv_depth.weight") for key in tensors):
        fmt, convert = SUPPORTED_FORMATS[0], lambda: convert_dinov2_linear(tensors)
    else:
        kind = f"Hugging Face model_type {model_type!r}" if model_type else "no known head keys"
        first = ", ".join(list(tensors)[:_SHOWN])
        raise CheckpointError(
            f"{file.path}: not a supported depth-head checkpoint ({kind}; first keys: {first}). "
            "Supported: " + "; ".join(SUPPORTED_FORMATS)
        )
    try:
        head_type, head_config, state, backbone = convert()
    except ValueError as error:
        raise CheckpointError(f"{file.path}: cannot convert the head ({fmt}): {error}") from error
    return HeadWeights(file.path, fmt, head_type, head_config, state, backbone)


# ---------------------------------------------------------------------- converters
Converted = tuple[str, dict[str, Any], dict[str, Tensor], dict[str, Any]]

_HF_NECK_RULES: list[Rule] = [
    (r"neck\.reassemble_stage\.readout_projects\.(\d)\.0\.(\w+)", r"readout_projects.\1.0.\2"),
    (r"neck\.reassemble_stage\.layers\.(\d)\.projection\.(\w+)", r"projects.\1.\2"),
    (r"neck\.reassemble_stage\.layers\.(\d)\.resize\.(\w+)", r"resize_layers.\1.\2"),
    (r"neck\.convs\.(\d)\.weight", r"convs.\1.weight"),
    # HF builds a skip unit for the deepest block too, which never runs.
    (r"neck\.fusion_stage\.layers\.0\.residual_layer1\..+", None),
    (r"neck\.fusion_stage\.layers\.(\d)\.projection\.(\w+)", r"fusion_blocks.\1.project.\2"),
    (
        r"neck\.fusion_stage\.layers\.(\d)\.residual_layer(\d)\.convolution(\d)\.(\w+)",
        r"fusion_blocks.\1.residual_unit\2.conv\3.\4",
    ),
    (
        r"neck\.fusion_stage\.layers\.(\d)\.residual_layer(\d)\.batch_norm(\d)\.(\w+)",
        r"fusion_blocks.\1.residual_unit\2.bn\3.\4",
    ),
]


def convert_hf_dpt(state: Mapping[str, Tensor], config: Mapping[str, Any]) -> Converted:
    """HF ``DPTForDepthEstimation`` (DINOv2 backbone) ``neck.*`` / ``head.*`` -> ``DPTHead``.

    ``head.head`` is conv 3x3 (C -> C/2), x2 upsampling, conv 3x3 (-> 32), ReLU, conv 1x1 (-> 1),
    ReLU; ``head.projection`` (``add_projection``) a 3x3 conv + ReLU before it.

    Raises:
        ValueError: not a DINOv2 backbone, other reassemble factors than (4, 2, 1, 0.5), or
            unknown tensors.
    """
    backbone = config.get("backbone_config") or {}
    if config.get("is_hybrid") or backbone.get("model_type") not in ("dinov2",):
        raise ValueError(
            "only DPT with a DINOv2 backbone (backbone_config.model_type 'dinov2') is supported, "
            f"got {backbone.get('model_type', 'its own ViT')!r}"
        )
    _check_factors(config)
    rules = _HF_NECK_RULES + [
        (r"head\.projection\.(\w+)", r"project.\1"),
        (r"head\.head\.0\.(\w+)", r"output_conv1.\1"),
        (r"head\.head\.2\.(\w+)", r"output_conv2.\1"),
        (r"head\.head\.4\.(\w+)", r"output_conv3.\1"),
    ]
    ours = _rename(_without(state, "backbone."), rules)
    head_config = _dpt_config(ours, readout=config.get("readout_type", "project"))
    head_config.update(resize_to_grid=False, output_activation="relu")
    return "DPTHead", head_config, ours, _hf_backbone_inputs(backbone)


def convert_hf_depth_anything(state: Mapping[str, Tensor], config: Mapping[str, Any]) -> Converted:
    """HF ``DepthAnythingForDepthEstimation`` ``neck.*`` / ``head.conv{1,2,3}`` -> ``DPTHead``.

    ``depth_estimation_type`` 'relative' gives ReLU output of relative inverse depth (times
    ``max_depth``, 1 by default, which must stay 1); 'metric' gives sigmoid x ``max_depth``
    metres.

    Raises:
        ValueError: other reassemble factors than (4, 2, 1, 0.5), or unknown tensors.
    """
    _check_factors(config)
    rules = _HF_NECK_RULES + [
        (r"head\.conv1\.(\w+)", r"output_conv1.\1"),
        (r"head\.conv2\.(\w+)", r"output_conv2.\1"),
        (r"head\.conv3\.(\w+)", r"output_conv3.\1"),
    ]
    ours = _rename(_without(state, "backbone."), rules)
    head_config = _dpt_config(ours, readout="ignore")
    head_config["resize_to_grid"] = True
    if config.get("depth_estimation_type", "relative") == "metric":
        head_config.update(
            output_activation="sigmoid_times_max_depth",
            output_kind="metric_depth",
            max_depth=float(config["max_depth"]),
        )
    else:
        if float(config.get("max_depth") or 1) != 1:
            raise ValueError(f"a relative model with max_depth {config['max_depth']} (not 1)")
        head_config.update(output_activation="relu", output_kind="relative_disparity")
    return "DPTHead", head_config, ours, _hf_backbone_inputs(config.get("backbone_config") or {})


def convert_depth_anything_v2(state: Mapping[str, Tensor]) -> Converted:
    """Depth-Anything-V2 ``depth_head.*`` -> ``DPTHead``: ``scratch.layer{k}_rn`` are the 3x3
    convs of level k, ``scratch.refinenet{k}`` the fusion block of level k (refinenet4 is the
    deepest: our ``fusion_blocks.0``), ``scratch.output_conv2`` = conv, ReLU, conv, ReLU.

    The file does not say whether it is a relative or a metric model (same tensors), so the
    config returned leaves the output to the user: relative models ``output_activation='relu'``,
    ``output_kind='relative_disparity'``; metric ones ``'sigmoid_times_max_depth'`` with
    ``max_depth`` 20 m indoor / 80 m outdoor. The backbone (``pretrained.*``) is DINOv2 without
    registers.

    Raises:
        ValueError: unknown tensors.
    """
    prefix = _prefix_of(state, "depth_head.")
    head = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}

    def level(match: re.Match) -> str:
        return f"convs.{int(match[1]) - 1}.weight"

    def fusion(match: re.Match) -> str:
        part = match[2].replace("out_conv", "project").replace("resConfUnit", "residual_unit")
        return f"fusion_blocks.{4 - int(match[1])}.{part}"

    rules: list[Rule] = [
        (r"projects\.(\d)\.(\w+)", r"projects.\1.\2"),
        (r"resize_layers\.(\d)\.(\w+)", r"resize_layers.\1.\2"),
        (r"readout_projects\.(\d)\.0\.(\w+)", r"readout_projects.\1.0.\2"),
        (r"scratch\.layer(\d)_rn\.weight", level),
        (r"scratch\.refinenet4\.resConfUnit1\..+", None),  # built, never run
        (r"scratch\.refinenet(\d)\.(out_conv\.\w+|resConfUnit\d\.(?:conv|bn)\d\.\w+)", fusion),
        (r"scratch\.output_conv1\.(\w+)", r"output_conv1.\1"),
        (r"scratch\.output_conv2\.0\.(\w+)", r"output_conv2.\1"),
        (r"scratch\.output_conv2\.2\.(\w+)", r"output_conv3.\1"),
    ]
    ours = _rename(head, rules)
    head_config = _dpt_config(ours, readout="ignore")
    head_config["resize_to_grid"] = True
    depth = len({k.split(".")[2] for k in state if re.match(r".*pretrained\.blocks\.\d+\.", k)})
    backbone = {"norm_outputs": True}
    if depth in _LAYERS_BY_DEPTH:
        backbone["out_indices"] = _LAYERS_BY_DEPTH[depth]
    return "DPTHead", head_config, ours, backbone


def convert_dinov2_dpt(state: Mapping[str, Tensor]) -> Converted:
    """DINOv2's released DPT head (``decode_head.*``) -> ``DPTHead``.

    DINOv2's residual units have no bias, a 3x3 conv + ReLU (``project``) precedes the output
    convs (``conv_depth.head``: conv, x2 upsampling, conv, ReLU, conv) and the output is
    ReLU + min_depth. Its depther feeds the head blocks [2,5,8,11] (S/B), [4,11,17,23] (L),
    [9,19,29,39] (g) without the final norm.

    Raises:
        ValueError: unknown tensors (e.g. a head trained with BatchNorm in the fusion blocks).
    """
    rules: list[Rule] = [
        (r"reassemble_blocks\.projects\.(\d)\.conv\.(\w+)", r"projects.\1.\2"),
        (r"reassemble_blocks\.resize_layers\.(\d)\.(\w+)", r"resize_layers.\1.\2"),
        (r"reassemble_blocks\.readout_projects\.(\d)\.0\.(\w+)", r"readout_projects.\1.0.\2"),
        (r"convs\.(\d)\.conv\.weight", r"convs.\1.weight"),
        (r"fusion_blocks\.(\d)\.project\.conv\.(\w+)", r"fusion_blocks.\1.project.\2"),
        (
            r"fusion_blocks\.(\d)\.res_conv_unit(\d)\.conv(\d)\.conv\.(\w+)",
            r"fusion_blocks.\1.residual_unit\2.conv\3.\4",
        ),
        (r"project\.conv\.(\w+)", r"project.\1"),
        (r"conv_depth\.head\.0\.(\w+)", r"output_conv1.\1"),
        (r"conv_depth\.head\.2\.(\w+)", r"output_conv2.\1"),
        (r"conv_depth\.head\.4\.(\w+)", r"output_conv3.\1"),
    ]
    ours = _rename(_decode_head(state), rules)
    head_config = _dpt_config(ours, readout="ignore")
    head_config.update(resize_to_grid=False, output_activation="relu_plus_min_depth")
    backbone: dict[str, Any] = {"norm_outputs": False}
    depth = _LAYERS_BY_WIDTH.get(head_config["in_channels"])
    if depth is not None:
        backbone["out_indices"] = _LAYERS_BY_DEPTH[depth]
    return "DPTHead", head_config, ours, backbone


def convert_dinov2_linear(state: Mapping[str, Tensor]) -> Converted:
    """DINOv2's released linear / linear4 head (``decode_head.conv_depth``, (256, C, 1, 1),
    C = 2D per layer: patch and cls token) -> ``LinearDepthHead`` without BatchNorm.

    Its bins span 1e-3..80 m for NYU and KITTI alike (the hub code hard-codes 80), so the config
    asks for ``max_depth=80``. lin.1 takes the last block, lin.4 blocks [2,5,8,11] (S/B) /
    [4,11,17,23] (L) / [9,19,29,39] (g), both without the final norm; the file does not say
    which (C = 2D or 8D).

    Raises:
        ValueError: unknown tensors.
    """
    rules: list[Rule] = [
        (r"conv_depth\.(weight|bias)", r"conv_depth.\1"),
        (r"bn\.(\w+)", r"bn.\1"),
    ]
    ours = _rename(_decode_head(state), rules)
    weight = ours["conv_depth.weight"]
    head_config = dict(
        in_channels=int(weight.shape[1]),
        num_bins=int(weight.shape[0]),
        use_bn="bn.weight" in ours,
        min_depth=1e-3,
        max_depth=80.0,
    )
    return "LinearDepthHead", head_config, ours, {"norm_outputs": False}


# ---------------------------------------------------------------------- helpers
def _rename(state: Mapping[str, Tensor], rules: list[Rule]) -> dict[str, Tensor]:
    """Apply the first full-match rule to every key (a ``None`` target drops the tensor).

    Raises:
        ValueError: keys no rule matches, quoted.
    """
    compiled = [(re.compile(pattern), target) for pattern, target in rules]
    out: dict[str, Tensor] = {}
    unknown = []
    for key, value in state.items():
        for pattern, target in compiled:
            match = pattern.fullmatch(key)
            if match is None:
                continue
            if target is not None:
                out[target(match) if callable(target) else match.expand(target)] = value
            break
        else:
            unknown.append(key)
    if unknown:
        more = f" (+{len(unknown) - _SHOWN} more)" if len(unknown) > _SHOWN else ""
        raise ValueError(f"unknown head tensors {unknown[:_SHOWN]}{more}")
    if not out:
        raise ValueError("no head tensors in the file")
    return out


def _dpt_config(state: Mapping[str, Tensor], readout: str) -> dict[str, Any]:
    """The ``DPTHead`` settings the converted tensors fix (widths, readout, norms, biases)."""
    for key in (
        "projects.0.weight",
        "convs.0.weight",
        "output_conv2.weight",
        "output_conv3.weight",
    ):
        if key not in state:
            raise ValueError(f"the head lacks {key}")
    return dict(
        in_channels=int(state["projects.0.weight"].shape[1]),
        post_process_channels=[int(state[f"projects.{i}.weight"].shape[0]) for i in range(4)],
        channels=int(state["convs.0.weight"].shape[0]),
        readout="project" if "readout_projects.0.0.weight" in state else readout,
        use_batch_norm=any(".bn1." in key for key in state),
        fusion_conv_bias="fusion_blocks.0.residual_unit2.conv1.bias" in state,
        head_projection="project.weight" in state,
        head_channels=int(state["output_conv2.weight"].shape[0]),
        out_channels=int(state["output_conv3.weight"].shape[0]),
    )


def _check_factors(config: Mapping[str, Any]) -> None:
    factors = [float(f) for f in config.get("reassemble_factors", (4, 2, 1, 0.5))]
    if factors != [4.0, 2.0, 1.0, 0.5]:
        raise ValueError(f"reassemble_factors {factors} (only [4, 2, 1, 0.5] is supported)")


def _hf_backbone_inputs(backbone: Mapping[str, Any]) -> dict[str, Any]:
    """``out_indices`` / ``norm_outputs`` of an HF backbone config: its ``out_indices`` count
    stages with the embeddings as stage 0, so block i is stage i + 1."""
    inputs: dict[str, Any] = {"norm_outputs": bool(backbone.get("apply_layernorm", True))}
    stages = backbone.get("out_indices")
    if stages is None and backbone.get("out_features"):
        stages = [int(name.removeprefix("stage")) for name in backbone["out_features"]]
    if stages:
        inputs["out_indices"] = [int(s) - 1 for s in stages]
    return inputs


def _without(state: Mapping[str, Tensor], prefix: str) -> dict[str, Tensor]:
    return {k: v for k, v in state.items() if not k.startswith(prefix)}


def _prefix_of(state: Mapping[str, Tensor], marker: str) -> str:
    """Everything up to and including the first ``marker`` in a key (e.g. ``'state_dict.'``
    before ``'decode_head.'``)."""
    key = next(k for k in state if marker in k)
    return key[: key.index(marker) + len(marker)]


def _decode_head(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The ``decode_head.*`` tensors of a DINOv2 depther file, without the prefix (its
    ``backbone.*`` tensors, if any, are the backbone's business)."""
    prefix = _prefix_of(state, "decode_head.")
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
