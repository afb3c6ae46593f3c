"""Reading a :class:`ViTArch` off the tensor shapes of a converted state dict, describing it, and
naming the preset a user should configure.

What the shapes determine: patch size, width, depth, cls token, number of registers, position
grid (square grids only), SwiGLU or GELU MLP and its width, LayerScale, biases, LayerNorm or
RMSNorm. What they do not: the number of heads (taken from the presets of the same width, i.e.
64-dim heads as in every released DINO / DINOv2 model), the norm epsilon, the token order of
registers and cls (DINOv2's ``[cls, reg, patches]`` assumed) and the position-embedding
resampling rule (given by the caller from the format's implementation).
"""

import math
from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from torch import Tensor

from ..arch import ARCHS, ViTArch, swiglu_hidden_dim

_HEADS_BY_WIDTH = {arch.embed_dim: arch.num_heads for arch in ARCHS.values()}
_SIZE_LETTERS = {384: "S", 768: "B", 1024: "L", 1280: "H", 1536: "g", 4096: "7B"}
# Fields a preset is allowed to differ in when it is suggested for a file.
_FREE_FIELDS = ("depth", "pos_embed_grid")
_IGNORED_FIELDS = (
    "layerscale_init",
    "norm_eps",
    "interpolate_antialias",
    "interpolate_offset",
    "rope_periods_dtype",
)


def infer_arch(
    state: Mapping[str, Tensor],
    *,
    interpolate_antialias: bool,
    interpolate_offset: float,
    norm_eps: float = 1e-6,
    num_heads: int | None = None,
    pos_embed_grid: tuple[int, int] | None = None,
    **known: Any,
) -> ViTArch:
    """The architecture of a state dict in :class:`RegisterViT` naming.

    Args:
        state: e.g. ``patch_embed.weight`` (C, 3, p, p), ``pos_embed`` (1, [1 +] G, C),
            ``blocks.i.*``; position rows for the cls token are optional.
        interpolate_antialias, interpolate_offset: the resampling rule of the implementation the
            weights come from; shapes cannot tell.
        norm_eps: LayerNorm epsilon of that implementation.
        num_heads: the head count when the file records it; else the presets' for the width.
        pos_embed_grid: the position grid when the file records it (e.g. a non-square trained
            size); else the square grid the position rows form.
        **known: further :class:`ViTArch` fields the format fixes (DINOv3: ``rope_base``,
            ``key_bias`` ...). Without a ``pos_embed`` the model is taken to use RoPE.

    Raises:
        ValueError: a required tensor is missing or the shapes are ambiguous (non-square
            position grid, a width no preset has, an unusual SwiGLU width).
    """
    patch = require_tensor(state, "patch_embed.weight")
    dim, _, patch_h, patch_w = patch.shape
    if patch_h != patch_w:
        raise ValueError(f"non-square patches {patch_h}x{patch_w}")
    num_heads = num_heads or _HEADS_BY_WIDTH.get(dim)
    if num_heads is None:
        raise ValueError(f"cannot tell the number of heads of embed dim {dim} from the tensors")
    depth = block_depth(state)
    class_token = "cls_token" in state
    registers = state["register_tokens"].shape[1] if "register_tokens" in state else 0
    rope = "pos_embed" not in state
    if rope:
        known = {"pos_encoding": "rope", **known}
    elif pos_embed_grid is None:
        side = square_grid_side(state["pos_embed"].shape[1], class_token)
        pos_embed_grid = (side, side)
    ffn_hidden_dim = None
    if "blocks.0.mlp.w12.weight" in state:
        hidden = require_tensor(state, "blocks.0.mlp.w3.weight").shape[1]
        ffn, ffn_bias_key = "swiglu", "blocks.0.mlp.w12.bias"
        mlp_ratio = swiglu_ratio_for(dim, hidden)
        if mlp_ratio is None:
            mlp_ratio, ffn_hidden_dim = 4.0, hidden
    else:
        hidden = require_tensor(state, "blocks.0.mlp.fc1.weight").shape[0]
        ffn, mlp_ratio, ffn_bias_key = "mlp", mlp_ratio_for(dim, hidden), "blocks.0.mlp.fc1.bias"
    if pos_embed_grid is None:
        pos_embed_grid = ViTArch.pos_embed_grid  # unused with RoPE
    return ViTArch(
        patch_size=patch_h,
        embed_dim=dim,
        depth=depth,
        num_heads=num_heads,
        mlp_ratio=mlp_ratio,
        qkv_bias="blocks.0.attn.qkv.bias" in state,
        proj_bias="blocks.0.attn.proj.bias" in state,
        ffn_bias=ffn_bias_key in state,
        ffn_layer=ffn,
        layerscale_init=1e-5 if "blocks.0.ls1.gamma" in state else None,
        norm_layer="layernorm" if "norm.bias" in state else "rmsnorm",
        norm_eps=norm_eps,
        class_token=class_token,
        num_register_tokens=registers,
        pos_embed_grid=pos_embed_grid,
        pos_embed_includes_cls=class_token,
        interpolate_antialias=interpolate_antialias,
        interpolate_offset=interpolate_offset,
        ffn_hidden_dim=ffn_hidden_dim,
        **known,
    )


def swiglu_ratio_for(dim: int, hidden: int) -> float | None:
    """The ``mlp_ratio`` of the released SwiGLU models (DINOv2 g: 4; DINOv3 S+ / H+: 6;
    DINOv3 7B: 3) whose width rule gives ``hidden``, else ``None``."""
    return next((r for r in (4.0, 6.0, 3.0) if swiglu_hidden_dim(dim, r) == hidden), None)


def mlp_ratio_for(dim: int, hidden: int) -> float:
    """The ``mlp_ratio`` for which ``int(dim * mlp_ratio) == hidden`` (the MLP's width rule);
    ``hidden / dim`` can land just below and truncate to ``hidden - 1``."""
    ratio = hidden / dim
    while int(dim * ratio) < hidden:
        ratio = math.nextafter(ratio, math.inf)
    return ratio


def describe_arch(arch: ViTArch) -> str:
    """Short human description, e.g. ``'ViT-S/14 + 4 registers (embed 384, depth 12, 6 heads)'``."""
    size = _SIZE_LETTERS.get(arch.embed_dim, f"{arch.embed_dim}d")
    text = f"ViT-{size}/{arch.patch_size}"
    if arch.num_register_tokens:
        text += f" + {arch.num_register_tokens} registers"
    extras = [f"embed {arch.embed_dim}", f"depth {arch.depth}", f"{arch.num_heads} heads"]
    if arch.ffn_layer == "swiglu":
        extras.append("SwiGLU")
    if not arch.class_token:
        extras.append("no cls token")
    if arch.pos_encoding == "rope":
        extras.append("RoPE")
    return f"{text} ({', '.join(extras)})"


def describe_state(state: Mapping[str, Tensor]) -> str:
    """Description of a state dict from its shapes alone (no head count needed)."""
    facts = []
    if "patch_embed.weight" in state:
        dim, _, patch, _ = state["patch_embed.weight"].shape
        facts.append(f"ViT/{patch} with embed {dim}")
    if any(key.startswith("blocks.") for key in state):
        facts.append(f"depth {block_depth(state)}")
    if "register_tokens" in state:
        facts.append(f"{state['register_tokens'].shape[1]} registers")
    return ", ".join(facts) or "no recognisable ViT tensors"


def suggest_arch(arch: ViTArch) -> str:
    """How to select ``arch`` in a config, e.g. ``"model.backbone.arch='vitb14_reg4',
    model.backbone.depth=2 (--cfg-options model.backbone.arch=vitb14_reg4
    model.backbone.depth=2)"``: a preset plus the overrides it needs, written for the config file
    and for the command line; else a ``dict`` of every field, for the config file (a dict does
    not fit on a command line)."""
    for name, preset in ARCHS.items():
        if _structure(arch) == _structure(preset):
            values = {"arch": name} | {
                f: getattr(arch, f) for f in _FREE_FIELDS if getattr(arch, f) != getattr(preset, f)
            }
            in_config = ", ".join(f"model.backbone.{k}={v!r}" for k, v in values.items())
            options = " ".join(f"model.backbone.{k}={_option(v)}" for k, v in values.items())
            return f"{in_config} (--cfg-options {options})"
    values = ", ".join(f"{key}={value!r}" for key, value in arch.to_dict().items())
    return f"model.backbone.arch=dict({values}) in the config file"


def _option(value: Any) -> str:
    """``value`` as MMEngine's ``--cfg-options`` parses it: no quotes, lists without spaces."""
    if isinstance(value, tuple | list):
        return "[" + ",".join(str(v) for v in value) + "]"
    return str(value)


def _structure(arch: ViTArch) -> tuple:
    skipped = _FREE_FIELDS + _IGNORED_FIELDS
    values = tuple(getattr(arch, f.name) for f in fields(ViTArch) if f.name not in skipped)
    return (*values, arch.layerscale_init is not None)


def require_tensor(state: Mapping[str, Tensor], key: str) -> Tensor:
    """``state[key]``; ValueError naming the key if the file lacks it."""
    if key not in state:
        raise ValueError(f"the file has no {key!r}")
    return state[key]


def block_depth(state: Mapping[str, Tensor]) -> int:
    """Number of ``blocks.<i>.*`` blocks; ValueError unless the indices are 0..n-1."""
    indices = {int(key.split(".")[1]) for key in state if key.startswith("blocks.")}
    if not indices or indices != set(range(max(indices) + 1)):
        raise ValueError(f"block indices {sorted(indices)} are not 0..n-1")
    return len(indices)


def square_grid_side(rows: int, class_token: bool) -> int:
    """Side of the square grid that ``rows`` position rows form, with or without a cls row."""
    # n^2 + 1 is never a square (n >= 1), so a square grid tells whether a cls row is present.
    for patches in (rows - 1, rows) if class_token else (rows,):
        side = math.isqrt(patches)
        if patches > 0 and side * side == patches:
            return side
    raise ValueError(f"{rows} position embeddings do not form a square grid")
