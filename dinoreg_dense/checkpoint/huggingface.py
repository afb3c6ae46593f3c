"""Hugging Face ``Dinov2WithRegistersModel``, ``Dinov2Model``, ``DINOv3ViTModel`` and ``ViTModel``
(DINO v1) weights and their ``config.json``.

Two generations of names are accepted: the names on the Hub and written by ``save_pretrained``
(``encoder.layer.i.attention.attention.query``, ``mlp.weights_in``, ``intermediate.dense``) and
the module names of transformers >= 5 (``attention.q_proj``, ``mlp.gate_proj``, ``layers.i``).
Separate q / k / v projections are concatenated into our fused ``attn.qkv``; SwiGLU's gate and
value projections into ``mlp.w12`` (gate first, as DINOv2 packs them). DINOv3 names its GELU MLP
``mlp.up_proj`` / ``mlp.down_proj`` (our ``fc1`` / ``fc2``) and has no key bias (a zero one is
filled in; the model masks it anyway).
"""

import re
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ..arch import ViTArch
from .infer import mlp_ratio_for, swiglu_ratio_for

_LAYER = re.compile(r"^(?:encoder\.|model\.)?layers?\.(\d+)\.(.+)\.(weight|bias|lambda1)$")
# Module path inside an HF layer -> ours. Legacy names first, transformers-5 names second.
_LAYER_MODULES = {
    "norm1": "norm1",
    "norm2": "norm2",
    "layernorm_before": "norm1",
    "layernorm_after": "norm2",
    "attention.output.dense": "attn.proj",
    "attention.o_proj": "attn.proj",
    "layer_scale1": "ls1",
    "layer_scale2": "ls2",
    "mlp.fc1": "mlp.fc1",
    "mlp.fc2": "mlp.fc2",
    "intermediate.dense": "mlp.fc1",
    "output.dense": "mlp.fc2",
    "mlp.weights_in": "mlp.w12",
    "mlp.weights_out": "mlp.w3",
    "mlp.down_proj": "mlp.w3",
}
# A GELU MLP under SwiGLU-style names (DINOv3 S/B/L): no gate_proj in the layer.
_UNGATED_MLP = {"mlp.up_proj": "mlp.fc1", "mlp.down_proj": "mlp.fc2"}
# Parts concatenated along the output dimension: module path -> (our module, position).
_FUSED_PARTS = {
    "attention.attention.query": ("attn.qkv", 0),
    "attention.attention.key": ("attn.qkv", 1),
    "attention.attention.value": ("attn.qkv", 2),
    "attention.q_proj": ("attn.qkv", 0),
    "attention.k_proj": ("attn.qkv", 1),
    "attention.v_proj": ("attn.qkv", 2),
    "mlp.gate_proj": ("mlp.w12", 0),
    "mlp.up_proj": ("mlp.w12", 1),
}
_NUM_PARTS = {"attn.qkv": 3, "mlp.w12": 2}
_TOP_LEVEL = {
    "embeddings.cls_token": "cls_token",
    "embeddings.register_tokens": "register_tokens",
    "embeddings.position_embeddings": "pos_embed",
    "embeddings.patch_embeddings.projection.weight": "patch_embed.weight",
    "embeddings.patch_embeddings.projection.bias": "patch_embed.bias",
    "embeddings.patch_embeddings.weight": "patch_embed.weight",  # DINOv3
    "embeddings.patch_embeddings.bias": "patch_embed.bias",
    "layernorm.weight": "norm.weight",
    "layernorm.bias": "norm.bias",
}
# Not part of the backbone: iBOT's mask token, ViTModel's pooler, classifier heads.
_DROPPED_PREFIXES = ("embeddings.mask_token", "pooler.", "classifier.")

# Defaults of the HF config classes, used for keys an older config.json does not spell out.
_DINOV2_DEFAULTS: dict[str, Any] = dict(
    patch_size=14,
    mlp_ratio=4,
    hidden_act="gelu",
    layer_norm_eps=1e-6,
    qkv_bias=True,
    layerscale_value=1.0,
    use_swiglu_ffn=False,
)
_HF_DEFAULTS: dict[str, dict[str, Any]] = {
    "dinov2": _DINOV2_DEFAULTS,
    "dinov2_with_registers": {**_DINOV2_DEFAULTS, "patch_size": 16, "num_register_tokens": 4},
    "vit": dict(patch_size=16, hidden_act="gelu", layer_norm_eps=1e-12, qkv_bias=True),
    # DINOv3ViTConfig's defaults (ViT-S/16 sizes aside).
    "dinov3_vit": dict(
        patch_size=16,
        hidden_act="gelu",
        layer_norm_eps=1e-5,
        rope_theta=100.0,
        query_bias=True,
        key_bias=False,
        value_bias=True,
        proj_bias=True,
        mlp_bias=True,
        layerscale_value=1.0,
        use_gated_mlp=False,
        num_register_tokens=0,
    ),
}
HF_MODEL_TYPES = tuple(_HF_DEFAULTS)


def convert_hf(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """HF DINOv2 / DINOv2-with-registers / ViT state dict -> :class:`RegisterViT` keys.

    Args:
        state: base-model tensors without the ``dinov2.`` / ``vit.`` wrapper prefix, e.g.
            ``embeddings.position_embeddings`` (1, 1 + G, C),
            ``encoder.layer.i.attention.attention.query.weight`` (C, C).

    Returns:
        Our names; q / k / v fused into ``blocks.i.attn.qkv`` (3C, C) / (3C,); ``mask_token``,
        ``pooler.*`` and ``classifier.*`` dropped; unknown keys passed through unchanged.
    """
    converted: dict[str, Tensor] = {}
    gated = any(".mlp.gate_proj." in key for key in state)
    # (block index, our module, param) -> {position: (original key, tensor)}
    parts: dict[tuple[str, str, str], dict[int, tuple[str, Tensor]]] = {}
    for key, value in state.items():
        if key.startswith(_DROPPED_PREFIXES):
            continue
        if key in _TOP_LEVEL:
            converted[_TOP_LEVEL[key]] = value
            continue
        layer = _LAYER.match(key)
        if layer is None:
            converted[key] = value
            continue
        index, module, param = layer.groups()
        param = "gamma" if param == "lambda1" else param
        if module in _UNGATED_MLP and not gated:
            converted[f"blocks.{index}.{_UNGATED_MLP[module]}.{param}"] = value
        elif module in _LAYER_MODULES:
            converted[f"blocks.{index}.{_LAYER_MODULES[module]}.{param}"] = value
        elif module in _FUSED_PARTS:
            ours, position = _FUSED_PARTS[module]
            parts.setdefault((index, ours, param), {})[position] = (key, value)
        else:
            converted[key] = value
    for (index, ours, param), pieces in parts.items():
        if ours == "attn.qkv" and param == "bias" and set(pieces) == {0, 2}:
            # DINOv3 has no key bias: a zero one is exact (our model masks it to zero too).
            query = pieces[0][1]
            pieces[1] = (f"{index}.key_bias", query.new_zeros(query.shape))
        if len(pieces) != _NUM_PARTS[ours]:
            # An incomplete set keeps its original names, which loading then reports.
            converted.update(dict(pieces.values()))
            continue
        fused = torch.cat([pieces[i][1] for i in sorted(pieces)], dim=0)
        converted[f"blocks.{index}.{ours}.{param}"] = fused
    return converted


def hf_variant(state: Mapping[str, Tensor], config: Mapping[str, Any] | None) -> str:
    """``'dinov2_with_registers'``, ``'dinov2'`` or ``'vit'``: the config's ``model_type`` when
    there is a config, else guessed from the keys (registers; LayerScale)."""
    config = backbone_config(config) if config is not None else None
    if config is not None and "model_type" in config:
        return str(config["model_type"])
    if "embeddings.patch_embeddings.weight" in state:
        return "dinov3_vit"
    if "embeddings.register_tokens" in state:
        return "dinov2_with_registers"
    if any(".layer_scale1." in key for key in state):
        return "dinov2"
    return "vit"


def arch_from_hf_config(config: Mapping[str, Any]) -> ViTArch:
    """The :class:`ViTArch` that reproduces an HF model from its ``config.json`` (a depth
    model's: from its ``backbone_config``).

    Position embeddings are resampled the way transformers does it: to the exact target size
    (offset 0), bicubic, antialiased only for ``dinov2_with_registers``.

    Raises:
        ValueError: unsupported ``model_type`` or activation, or a key is missing.
    """
    config = backbone_config(config)
    model_type = config.get("model_type")
    if model_type not in _HF_DEFAULTS:
        raise ValueError(
            f"unsupported Hugging Face model_type {model_type!r}; supported: "
            f"{', '.join(HF_MODEL_TYPES)}"
        )
    values = {**_HF_DEFAULTS[model_type], **config}
    missing = [
        k for k in ("hidden_size", "num_hidden_layers", "num_attention_heads") if k not in values
    ]
    if missing:
        raise ValueError(f"config.json lacks {missing}")
    patch = _pair(values["patch_size"])
    if patch[0] != patch[1]:
        raise ValueError(f"non-square patches {patch} are not supported")
    if model_type == "dinov3_vit":
        return _dinov3_arch(values, patch[0])
    image = _pair(values.get("image_size", 224))
    dim = int(values["hidden_size"])
    swiglu = bool(values.get("use_swiglu_ffn", False))
    if not swiglu and values["hidden_act"] != "gelu":
        raise ValueError(f"hidden_act {values['hidden_act']!r} is not supported (only 'gelu')")
    if model_type == "vit":
        mlp_ratio = mlp_ratio_for(dim, int(values.get("intermediate_size", 4 * dim)))
        layerscale = None
    else:
        mlp_ratio = float(values["mlp_ratio"])
        # The checkpoint holds the learned scales; the value only initialises them.
        layerscale = float(values["layerscale_value"]) or 1e-5
    return ViTArch(
        patch_size=patch[0],
        embed_dim=dim,
        depth=int(values["num_hidden_layers"]),
        num_heads=int(values["num_attention_heads"]),
        mlp_ratio=mlp_ratio,
        qkv_bias=bool(values["qkv_bias"]),
        ffn_layer="swiglu" if swiglu else "mlp",
        layerscale_init=layerscale,
        norm_eps=float(values["layer_norm_eps"]),
        num_register_tokens=int(values.get("num_register_tokens", 0)),
        pos_embed_grid=(image[0] // patch[0], image[1] // patch[1]),
        interpolate_antialias=model_type == "dinov2_with_registers",
        interpolate_offset=0.0,
    )


def _dinov3_arch(values: Mapping[str, Any], patch: int) -> ViTArch:
    """:class:`ViTArch` of a ``DINOv3ViTConfig`` (defaults filled in): RoPE, no position table.

    ``use_gated_mlp`` (S+ / H+ / 7B) is a SwiGLU of width ``intermediate_size`` with a SiLU gate;
    otherwise a GELU MLP. The training-time coordinate augmentations (``pos_embed_shift`` /
    ``jitter`` / ``rescale``) act in train mode only and are left off: eval outputs are what the
    config determines.
    """
    gated = bool(values["use_gated_mlp"])
    activation = "silu" if gated else "gelu"
    if values["hidden_act"] != activation:
        raise ValueError(
            f"hidden_act {values['hidden_act']!r} is not supported with use_gated_mlp={gated} "
            f"(only {activation!r})"
        )
    if values["query_bias"] != values["value_bias"]:
        raise ValueError(
            "query_bias and value_bias must agree (RegisterViT has one qkv bias); got "
            f"{values['query_bias']}, {values['value_bias']}"
        )
    dim = int(values["hidden_size"])
    hidden = int(values.get("intermediate_size", 4 * dim))
    ffn: dict[str, Any] = dict(ffn_layer="mlp", mlp_ratio=mlp_ratio_for(dim, hidden))
    if gated:
        ratio = swiglu_ratio_for(dim, hidden)
        ffn = dict(ffn_layer="swiglu", mlp_ratio=ratio or 4.0)
        if ratio is None:
            ffn["ffn_hidden_dim"] = hidden
    return ViTArch(
        patch_size=patch,
        embed_dim=dim,
        depth=int(values["num_hidden_layers"]),
        num_heads=int(values["num_attention_heads"]),
        qkv_bias=bool(values["query_bias"]),
        proj_bias=bool(values["proj_bias"]),
        ffn_bias=bool(values["mlp_bias"]),
        layerscale_init=float(values["layerscale_value"]) or 1e-5,
        norm_eps=float(values["layer_norm_eps"]),
        num_register_tokens=int(values["num_register_tokens"]),
        key_bias=bool(values["key_bias"]) and bool(values["query_bias"]),
        pos_encoding="rope",
        rope_base=float(values["rope_theta"]),
        **ffn,
    )


def backbone_config(config: Mapping[str, Any]) -> Mapping[str, Any]:
    """The backbone's config of a task model's ``config.json`` (``DPTForDepthEstimation``,
    ``DepthAnythingForDepthEstimation``: its ``backbone_config``), else the config itself."""
    nested = config.get("backbone_config")
    return nested if isinstance(nested, Mapping) else config


def _pair(value: int | list[int] | tuple[int, int]) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    first, second = value
    return int(first), int(second)
