"""Architecture descriptions of the supported register ViTs, addressable by name.

A leaf module (it imports nothing from this package): checkpoint readers produce
a :class:`ViTArch` and :class:`~dinoreg_dense.backbones.RegisterViT` is built from one, so both
depend on this file and neither on the other.
"""

import difflib
import math
import types
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal, Union, get_args, get_origin

NormKind = Literal["layernorm", "rmsnorm"]
FFNKind = Literal["mlp", "swiglu"]
PosEncoding = Literal["learned", "rope"]
PeriodsDtype = Literal["float32", "bfloat16"]


@dataclass(frozen=True)
class ViTArch:
    """Every architectural choice of :class:`RegisterViT`.

    Attributes:
        patch_size: side of a square patch in pixels.
        embed_dim, depth, num_heads, mlp_ratio: the usual transformer sizes.
        qkv_bias, proj_bias, ffn_bias: biases of the attention input / output and the FFN.
        ffn_layer: ``'mlp'`` (GELU) or ``'swiglu'`` (DINOv2 ViT-g, DINOv3 S+ / H+ / 7B).
        ffn_hidden_dim: the FFN's hidden width (per SwiGLU branch) when it is not the one
            ``mlp_ratio`` gives (``int(dim * mlp_ratio)``, or :func:`swiglu_hidden_dim`);
            ``None`` (default) derives it. See :attr:`ffn_hidden`.
        layerscale_init: LayerScale initial value, ``None`` for no LayerScale (DINO v1).
        norm_layer, norm_eps: ``'layernorm'`` or ``'rmsnorm'`` and its epsilon.
        class_token: whether the model has a cls token.
        num_register_tokens: number of register tokens (0 for none).
        registers_before_cls: token order ``[reg, cls, patches]`` (birder) instead of DINOv2's
            ``[cls, reg, patches]``.
        pos_embed_grid: (rows, cols) patch grid the position embeddings were trained for.
        pos_embed_includes_cls: the position table has a leading row added to the cls token.
        interpolate_antialias, interpolate_offset: how position embeddings are resampled to
            other grids (see :func:`resample_pos_embed`).
        key_bias: whether the key third of the qkv bias is used; DINOv3 masks it to zero (with
            RoPE a key bias is no longer a per-query constant that softmax ignores).
        pos_encoding: ``'learned'`` (a position table added to the patch tokens; the
            ``pos_embed_*`` and ``interpolate_*`` fields) or ``'rope'`` (DINOv3's axial 2D
            rotary encoding of patch queries and keys; no table, see
            :mod:`~dinoreg_dense.backbones.rope`).
        rope_base: base of the RoPE periods, ``base ** (4 i / head_dim)``.
        rope_rescale: training-time RoPE coordinate rescaling: in train mode the coordinates
            are multiplied by one log-uniform factor in ``[1 / s, s]`` per forward (DINOv3 trains
            with 2.0); ``None`` (default) never; eval mode never rescales.
        rope_periods_dtype: ``'bfloat16'`` rounds the RoPE periods to bfloat16 before use
            (still computing in float32): the official DINOv3 ``.pth`` files store them so, and
            the official model computes with the stored values. ``'float32'`` (default) is what
            Hugging Face and timm compute.
    """

    patch_size: int = 14
    embed_dim: int = 384
    depth: int = 12
    num_heads: int = 6
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    proj_bias: bool = True
    ffn_bias: bool = True
    ffn_layer: FFNKind = "mlp"
    layerscale_init: float | None = 1e-5
    norm_layer: NormKind = "layernorm"
    norm_eps: float = 1e-6
    class_token: bool = True
    num_register_tokens: int = 0
    registers_before_cls: bool = False
    pos_embed_grid: tuple[int, int] = (37, 37)
    pos_embed_includes_cls: bool = True
    interpolate_antialias: bool = False
    interpolate_offset: float = 0.1
    key_bias: bool = True
    pos_encoding: PosEncoding = "learned"
    rope_base: float = 100.0
    rope_rescale: float | None = None
    ffn_hidden_dim: int | None = None
    rope_periods_dtype: PeriodsDtype = "float32"

    @property
    def ffn_hidden(self) -> int:
        """The FFN's hidden width: ``ffn_hidden_dim`` if set, else from ``mlp_ratio``."""
        if self.ffn_hidden_dim is not None:
            return self.ffn_hidden_dim
        if self.ffn_layer == "swiglu":
            return swiglu_hidden_dim(self.embed_dim, self.mlp_ratio)
        return int(self.embed_dim * self.mlp_ratio)

    @property
    def num_prefix_tokens(self) -> int:
        """Tokens before the patches: cls (if any) plus registers."""
        return int(self.class_token) + self.num_register_tokens

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-friendly) of all fields."""
        return asdict(self)


_DINOV2 = ViTArch()
_DINOV2_REG = replace(
    _DINOV2, num_register_tokens=4, interpolate_antialias=True, interpolate_offset=0.0
)
_DINO = ViTArch(layerscale_init=None, pos_embed_grid=(14, 14))
_SIZES = {
    "s": dict(embed_dim=384, depth=12, num_heads=6),
    "b": dict(embed_dim=768, depth=12, num_heads=12),
    "l": dict(embed_dim=1024, depth=24, num_heads=16),
    "g": dict(embed_dim=1536, depth=40, num_heads=24, ffn_layer="swiglu"),
}

ARCHS: dict[str, ViTArch] = {}
for _size in "sblg":
    ARCHS[f"vit{_size}14"] = replace(_DINOV2, **_SIZES[_size])
    ARCHS[f"vit{_size}14_reg4"] = replace(_DINOV2_REG, **_SIZES[_size])
for _size in "sb":
    for _patch in (8, 16):
        ARCHS[f"dino_vit{_size}{_patch}"] = replace(
            _DINO, patch_size=_patch, pos_embed_grid=(224 // _patch,) * 2, **_SIZES[_size]
        )
# birder's register ViTs: RMSNorm, patch 16, 4 registers, no cls token, and birder's resampling
# (bicubic to the exact size, no antialias). M/16 is the size of its released I-JEPA encoders
# (`vit_reg4_m16_rms_avg_i-jepa*`); B/16 is the same layout at ViT-B width.
for _name, _size in (("m", dict(embed_dim=512, depth=12, num_heads=8)), ("b", _SIZES["b"])):
    ARCHS[f"vit{_name}16_reg4_rms_nocls"] = ViTArch(
        patch_size=16,
        layerscale_init=None,
        norm_layer="rmsnorm",
        class_token=False,
        num_register_tokens=4,
        pos_embed_grid=(14, 14),
        pos_embed_includes_cls=False,
        interpolate_antialias=False,
        interpolate_offset=0.0,
        **_size,
    )
# DINOv3 (facebookresearch/dinov3 hub/backbones.py): patch 16, cls + 4 registers, LayerScale,
# LayerNorm eps 1e-5, RoPE base 100, key bias masked to zero. S / B / L: GELU MLP x4; S+ and H+:
# SwiGLU ratio 6; 7B: SwiGLU ratio 3 and no qkv bias. The SwiGLU widths (1536, 5120, 8192) are
# the files'; DINOv3 rounds 7B's to a multiple of 64, which 8192 already is.
_DINOV3 = ViTArch(
    patch_size=16,
    norm_eps=1e-5,
    num_register_tokens=4,
    key_bias=False,
    pos_encoding="rope",
    rope_base=100.0,
)
for _size in "sbl":
    ARCHS[f"vit{_size}16_dinov3"] = replace(_DINOV3, **_SIZES[_size])
ARCHS["vits16plus_dinov3"] = replace(_DINOV3, **_SIZES["s"], ffn_layer="swiglu", mlp_ratio=6.0)
ARCHS["vith16plus_dinov3"] = replace(
    _DINOV3, embed_dim=1280, depth=32, num_heads=20, ffn_layer="swiglu", mlp_ratio=6.0
)
ARCHS["vit7b16_dinov3"] = replace(
    _DINOV3,
    embed_dim=4096,
    depth=40,
    num_heads=32,
    ffn_layer="swiglu",
    mlp_ratio=3.0,
    qkv_bias=False,
)


def swiglu_hidden_dim(dim: int, mlp_ratio: float) -> int:
    """DINOv2's SwiGLU width: two thirds of ``dim * mlp_ratio`` rounded up to a multiple of 8."""
    return (int(int(dim * mlp_ratio) * 2 / 3) + 7) // 8 * 8


def resolve_arch(arch: str | ViTArch | dict[str, Any] | None, **overrides: Any) -> ViTArch:
    """Turn a preset name, a :class:`ViTArch`, a dict of fields or ``None`` (defaults, ViT-S/14)
    into a :class:`ViTArch`, with ``overrides`` applied on top.

    Raises:
        ValueError: an unknown preset name (the closest one is suggested) or a value of another
            type (e.g. the list MMEngine's ``--cfg-options`` makes of ``"'a', depth=4"``).
        TypeError: an unknown field or a field value of the wrong type.
    """
    if arch is None:
        base = ViTArch()
    elif isinstance(arch, ViTArch):
        base = arch
    elif isinstance(arch, dict):
        base = ViTArch(**_check_fields(arch))
    elif not isinstance(arch, str):
        raise ValueError(
            f"backbone arch must be a preset name, a dict of ViTArch fields or None, got "
            f"{arch!r}; on the command line each field is its own option, e.g. --cfg-options "
            "model.backbone.arch=vits16_dinov3 model.backbone.depth=4"
        )
    elif arch in ARCHS:
        base = ARCHS[arch]
    else:
        close = difflib.get_close_matches(arch, list(ARCHS), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ValueError(
            f"unknown backbone arch {arch!r}{hint}; available: {', '.join(sorted(ARCHS))}"
        )
    return replace(base, **_check_fields(overrides))


def _check_fields(values: dict[str, Any]) -> dict[str, Any]:
    known = {f.name for f in fields(ViTArch)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise TypeError(f"unknown backbone arguments {unknown}; valid: {sorted(known)}")
    values = dict(values)
    grid = values.get("pos_embed_grid")
    if isinstance(grid, int | list):
        values["pos_embed_grid"] = (grid, grid) if isinstance(grid, int) else tuple(grid)
    types_ = {f.name: f.type for f in fields(ViTArch)}
    for name, value in values.items():
        if not _fits(value, types_[name]):
            raise TypeError(
                f"backbone argument {name}={value!r} is not of type {_describe(types_[name])}"
            )
    return values


def _fits(value: Any, annotation: Any) -> bool:
    """Whether ``value`` is of the field type ``annotation`` (bools are not ints here)."""
    origin, args = get_origin(annotation), get_args(annotation)
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if annotation is type(None):
        return value is None
    if origin is Literal:
        return value in args
    if origin in (Union, types.UnionType):
        return any(_fits(value, arg) for arg in args)
    if origin is tuple:
        return len(value) == len(args) and all(map(_fits, value, args))
    return True


def _describe(annotation: Any) -> str:
    if get_origin(annotation) is Literal:
        return " or ".join(repr(a) for a in get_args(annotation))
    return getattr(annotation, "__name__", str(annotation))


def block_indices(out_indices: int | Sequence[int], depth: int) -> list[int]:
    """Absolute block indices: an int n means the last n blocks; negative indices count from
    the end.

    Raises:
        ValueError: an index outside the ``depth`` blocks (the message names the config key).
    """
    if isinstance(out_indices, int):
        if not 1 <= out_indices <= depth:
            raise ValueError(
                f"cannot take the last {out_indices} of {depth} blocks; set "
                "model.backbone.out_indices"
            )
        return list(range(depth - out_indices, depth))
    indices = [i + depth if i < 0 else i for i in out_indices]
    bad = [i for i, j in zip(out_indices, indices, strict=True) if not 0 <= j < depth]
    if bad or not indices:
        raise ValueError(
            f"out_indices {list(out_indices)} invalid for a {depth}-block backbone; set "
            f"model.backbone.out_indices (n = the last n blocks, e.g. {min(4, depth)})"
        )
    return indices


def count_flops(arch: ViTArch, height: int, width: int) -> float:
    """Forward FLOPs (2 per multiply-add) of the transformer at an input size:
    2 * [L * (4 T D^2 + 2 T^2 D + m T D H) + P D 3 p^2] with T tokens, P patches, p patch size,
    H the FFN width and m its matrices (2 for the GELU MLP, 3 for SwiGLU); 12 T D^2 per block
    for the usual 4x MLP."""
    p = arch.patch_size
    patches = math.ceil(height / p) * math.ceil(width / p)
    t = patches + arch.num_prefix_tokens
    d = arch.embed_dim
    ffn = (3 if arch.ffn_layer == "swiglu" else 2) * t * d * arch.ffn_hidden
    block = 4 * t * d * d + 2 * t * t * d + ffn
    return 2.0 * (arch.depth * block + patches * d * 3 * p * p)
