"""birder ViT weights (``birder.net.vit.ViT``: ``vit_reg4_b16``, ``vit_reg4_m16_rms_avg``,
``deit3_reg4_b16``, ``vit_reg1_s16_rms_ls`` ...), from birder's ``.pt`` and ``.safetensors``.

birder writes ``.pt`` files as ``{'state': <state dict>, 'birder_version', 'task', 'signature',
'class_to_idx', 'rgb_stats'[, 'config']}`` and ``.safetensors`` files as the state dict with the
same entries as header metadata (dicts as JSON). ``signature['inputs'][0]['data_shape']`` is
``[0, 3, H, W]``, the input size the position embeddings were trained for. ``config`` holds only
the settings that override the registered network's; the network's name is in neither file (it is
the start of birder's file name, ``<network>[_<tag>][_<epoch>].pt``). ``tools/convert-model
--config`` also writes ``<weights file>_config.json`` with the name and the full config, which is
read when it sits next to the weights.

Key layout: ``conv_proj`` (patch embedding), ``class_token``, ``reg_tokens``, ``pos_embedding``,
``encoder.block.<i>.{norm1, attn.qkv, attn.proj, layer_scale_1.gamma, norm2, mlp.0, mlp.3,
layer_scale_2.gamma}``, ``norm``, ``classifier``. The token order is ``[reg, cls, patches]``.
By default (``pos_embed_special_tokens=True``) ``pos_embedding`` has a row for every special token,
in token order, added after the tokens are concatenated; DINOv2-converted and DeiT III register
models (``pos_embed_special_tokens=False``) position the patches only. Resampling to another grid
(``set_dynamic_size()``) is bicubic to the exact size, antialiased only with
``pos_embed_antialias=True`` (default False).

The conversion folds each register's position row into the register token (they only ever enter
the network as their sum, so outputs are unchanged) and keeps the cls row as our ``pos_embed``'s
leading row. Variants our :class:`RegisterViT` does not compute are refused by name.
"""

import json
import math
import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from torch import Tensor

from ..arch import ViTArch
from .infer import infer_arch, require_tensor, square_grid_side

# Head counts of birder's ViT sizes (its _vit_configs: tiny ... enormous, SoViT, vit_1b).
_HEADS_BY_WIDTH = {
    192: 3,
    384: 6,
    512: 8,
    768: 12,
    896: 16,
    1024: 16,
    1152: 16,
    1280: 16,
    1408: 16,
    1536: 24,
    1664: 16,
    1792: 16,
}
_TOP_LEVEL = {
    "conv_proj.weight": "patch_embed.weight",
    "conv_proj.bias": "patch_embed.bias",
    "class_token": "cls_token",
    "norm.weight": "norm.weight",
    "norm.bias": "norm.bias",
}
_BLOCK = re.compile(r"^encoder\.block\.(\d+)\.(.+)$")
_BLOCK_PARTS = {
    "norm1.": "norm1.",
    "attn.qkv.": "attn.qkv.",
    "attn.proj.": "attn.proj.",
    "layer_scale_1.gamma": "ls1.gamma",
    "norm2.": "norm2.",
    "mlp.0.": "mlp.fc1.",
    "mlp.3.": "mlp.fc2.",
    "layer_scale_2.gamma": "ls2.gamma",
}
# Heads that are not part of the backbone.
_DROPPED_PREFIXES = ("classifier.", "attn_pool.")
# Tensors of ViT variants RegisterViT does not compute: (key pattern, what it means).
_UNSUPPORTED = (
    (re.compile(r"^conv_proj\.\d+\."), "the hMLP patch stem (stem_type='hmlp')"),
    (re.compile(r"^encoder\.pre_block\."), "a norm before the first block (pre_norm=True)"),
    (re.compile(r"^encoder\.block\.\d+\.attn\.[qk]_norm\."), "q / k norms (qk_norm=True)"),
    (re.compile(r"^encoder\.block\.\d+\.attn\.norm\."), "a norm inside attention (attn_norm=True)"),
    (
        re.compile(r"^encoder\.block\.\d+\.mlp\.(?![03]\.)"),
        "an FFN other than the GELU MLP (SwiGLU_FFN, SoftMoE_FFN or MoE)",
    ),
    (re.compile(r"^embedding_norm\."), "a norm after pooling (norm_after_pool=True)"),
    (re.compile(r"^dist_token$"), "DeiT's distillation token"),
)
# birder networks whose tensors have ViT's names but whose forward differs (RoPE, windowed
# attention, NaFlex ...) or was not verified (FlexiViT, SimpleViT). A file does not store its
# network, so its name is all there is.
_OTHER_NETWORKS = (
    "rope_",
    "naflex_",
    "flexivit",
    "simple_vit",
    "vit_windowed",
    "vit_parallel",
    "vit_moe",
    "vit_sam",
    "vit_det",
)


def convert_birder(
    state: Mapping[str, Tensor],
    *,
    image_size: tuple[int, int] | None = None,
    config: Mapping[str, Any] | None = None,
) -> dict[str, Tensor]:
    """birder ViT state dict -> :class:`RegisterViT` keys.

    Args:
        state: the ``'state'`` of a birder file without container prefixes: ``conv_proj.weight``
            (C, 3, p, p), ``class_token`` (1, 1, C), ``reg_tokens`` (1, R, C), ``pos_embedding``
            (1, [R + 1 +] G, C), ``encoder.block.i.*``, ``norm.*``, ``classifier.*``.
        image_size: (H, W) of the file's signature; tells whether ``pos_embedding`` has rows for
            the special tokens. Without it a square patch grid is assumed.
        config: the file's config overrides; ``pos_embed_special_tokens`` is used when present.

    Returns:
        Our tensors: ``register_tokens`` with their position rows added in, ``pos_embed``
        (1, [1 +] G, C) with the cls row first when birder positions the cls token,
        ``blocks.i.{norm1, attn, ls1, norm2, mlp.fc1, mlp.fc2, ls2}``; ``classifier`` and
        ``attn_pool`` dropped; unknown keys passed through so that loading reports them.

    Raises:
        ValueError: tensors of a variant RegisterViT does not compute (pre-norm, hMLP stem,
            q / k norm, SwiGLU / MoE FFN, post-pool norm), no encoder blocks, or position rows
            that fit neither layout.
    """
    for key in state:
        for pattern, meaning in _UNSUPPORTED:
            if pattern.match(key):
                raise ValueError(f"{key!r} belongs to {meaning}; RegisterViT does not compute it")
    if not any(_BLOCK.match(key) for key in state):
        raise ValueError(
            "no 'encoder.block.<i>.*' tensors: not a birder ViT (torchvision's VisionTransformer "
            "also names its patch embedding 'conv_proj' and is not supported)"
        )
    converted: dict[str, Tensor] = {}
    for key, value in state.items():
        if key.startswith(_DROPPED_PREFIXES) or key in ("reg_tokens", "pos_embedding"):
            continue
        converted[_rename(key)] = value
    converted.update(_prefix_tensors(state, image_size, config or {}))
    return converted


def arch_from_birder(
    state: Mapping[str, Tensor],
    *,
    image_size: tuple[int, int] | None = None,
    config: Mapping[str, Any] | None = None,
) -> ViTArch:
    """The :class:`ViTArch` of converted birder tensors, computing as birder's ViT does.

    Args:
        state: the output of :func:`convert_birder`.
        image_size, config: as for :func:`convert_birder`; ``config`` gives ``num_heads``,
            ``norm_layer_eps``, ``pos_embed_antialias``, ``layer_scale_init_value`` when set.

    The head count comes from the config or birder's size presets (64-dim heads up to width 768,
    16 heads above, 24 at 1536). The resampling is birder's forward with ``set_dynamic_size()``:
    bicubic to the exact size, antialiased only with ``pos_embed_antialias``.

    Raises:
        ValueError: a required tensor is missing, a width without a known head count, a position
            table that fits no grid, or config settings RegisterViT does not compute.
    """
    config = dict(config or {})
    act = config.get("act_layer_type")
    if act not in (None, "gelu"):
        raise ValueError(f"act_layer_type={act!r}; RegisterViT's MLP uses exact GELU")
    mode = config.get("pos_embed_interpolation_mode", "bicubic")
    if mode != "bicubic":
        raise ValueError(f"pos_embed_interpolation_mode={mode!r}; RegisterViT resamples bicubic")
    dim, _, patch, _ = require_tensor(state, "patch_embed.weight").shape
    heads = config.get("num_heads", _HEADS_BY_WIDTH.get(dim))
    if heads is None:
        raise ValueError(f"no head count for embed dim {dim}: the file's config has no num_heads")
    class_token = "cls_token" in state
    rows = require_tensor(state, "pos_embed").shape[1]
    grid, cls_row = _grid(rows, class_token, patch, image_size)
    arch = infer_arch(
        state,
        interpolate_antialias=bool(config.get("pos_embed_antialias", False)),
        interpolate_offset=0.0,
        norm_eps=float(config.get("norm_layer_eps", 1e-6)),
        num_heads=int(heads),
        pos_embed_grid=grid,
    )
    norm = config.get("norm_layer_type")
    return replace(
        arch,
        registers_before_cls=True,
        pos_embed_includes_cls=cls_row,
        layerscale_init=(
            float(config.get("layer_scale_init_value") or 1e-5) if arch.layerscale_init else None
        ),
        norm_layer=arch.norm_layer
        if norm is None
        else ("rmsnorm" if norm == "RMSNorm" else "layernorm"),
    )


def birder_file_options(path: str | Path, metadata: Mapping[str, str]) -> dict[str, Any]:
    """``image_size`` and ``config`` of a birder file for :func:`convert_birder` and
    :func:`arch_from_birder`, from its header (``metadata``: the safetensors metadata, or the
    ``.pt`` file's non-tensor entries in that form) and ``<file>_config.json`` when present.

    Raises:
        ValueError: malformed header / sidecar, or a network other than birder's ViT (named by
            the sidecar, or by the file name starting with e.g. ``rope_vit_``).
    """
    path = Path(path)
    sidecar = _read_sidecar(path) or {}
    if "encoder" in sidecar:  # a masked-image-modelling network: its encoder is the backbone
        sidecar = {
            "name": sidecar["encoder"],
            "model_config": sidecar.get("encoder_config"),
            "signature": sidecar.get("signature"),
        }
    network = sidecar.get("name")
    if network is not None and network != "vit":
        raise ValueError(f"{path.name}_config.json names the birder network {network!r}, not 'vit'")
    if network is None and path.name.lower().startswith(_OTHER_NETWORKS):
        raise ValueError(
            f"the file name says it is a birder {path.name.split('_')[0]!r}-family network, whose "
            "tensors look like ViT's but whose forward differs or was not verified (RoPE, "
            "windowed attention, NaFlex, FlexiViT ...); only birder's plain ViT is supported. "
            "Rename the file if it is a plain ViT."
        )
    config: dict[str, Any] = dict(sidecar.get("model_config") or {})
    config.update(_json_entry(metadata, "config") or {})
    signature = _json_entry(metadata, "signature") or sidecar.get("signature")
    image_size = None
    if signature is not None:
        try:
            shape = signature["inputs"][0]["data_shape"]
            image_size = (int(shape[2]), int(shape[3]))
        except (KeyError, IndexError, TypeError, ValueError) as error:
            raise ValueError(f"malformed birder signature {signature!r}") from error
    return dict(image_size=image_size, config=config)


def _rename(key: str) -> str:
    if key in _TOP_LEVEL:
        return _TOP_LEVEL[key]
    block = _BLOCK.match(key)
    if not block:
        return key
    index, rest = block.groups()
    for theirs, ours in _BLOCK_PARTS.items():
        if rest.startswith(theirs):
            return f"blocks.{index}.{ours}{rest[len(theirs) :]}"
    return f"blocks.{index}.{rest}"


def _prefix_tensors(
    state: Mapping[str, Tensor], image_size: tuple[int, int] | None, config: Mapping[str, Any]
) -> dict[str, Tensor]:
    """``register_tokens`` and ``pos_embed`` from birder's ``reg_tokens`` and ``pos_embedding``."""
    out: dict[str, Tensor] = {}
    registers = state.get("reg_tokens")
    pos = state.get("pos_embedding")
    if pos is None:  # loading reports the missing position embedding
        if registers is not None:
            out["register_tokens"] = registers
        return out
    num_reg = 0 if registers is None else registers.shape[1]
    special = num_reg + int("class_token" in state)
    covered = config.get("pos_embed_special_tokens")
    if covered is None:
        patches = None
        if image_size is not None and "conv_proj.weight" in state:
            p = state["conv_proj.weight"].shape[-1]
            patches = (image_size[0] // p) * (image_size[1] // p)
        covered = _covers_special_tokens(pos.shape[1], special, patches)
    if not covered:
        out["pos_embed"] = pos
        if registers is not None:
            out["register_tokens"] = registers
        return out
    if registers is not None:
        # Exactly birder's sum: the register tokens meet their rows before the first block.
        out["register_tokens"] = registers + pos[:, :num_reg].to(registers.dtype)
    out["pos_embed"] = pos[:, num_reg:].contiguous()  # [cls row,] patch rows
    return out


def _covers_special_tokens(rows: int, special: int, patches: int | None) -> bool:
    """Whether a position table of ``rows`` rows has rows for ``special`` prefix tokens."""
    if special == 0:
        return False
    if patches is not None:
        if rows in (patches, patches + special):
            return rows == patches + special
        raise ValueError(
            f"pos_embedding has {rows} rows; the signature's input has {patches} patches "
            f"({patches + special} with the {special} special tokens)"
        )
    plain, covered = _is_square(rows), _is_square(rows - special)
    if plain != covered:
        return covered
    raise ValueError(
        f"pos_embedding has {rows} rows and the file has no signature: "
        + (
            f"both {rows} and {rows - special} are square grids"
            if plain
            else "neither it nor it without the special tokens' rows is a square grid"
        )
    )


def _grid(
    rows: int, class_token: bool, patch: int, image_size: tuple[int, int] | None
) -> tuple[tuple[int, int], bool]:
    """Position grid and whether ``pos_embed`` (converted) leads with a cls row."""
    if image_size is not None:
        grid = (image_size[0] // patch, image_size[1] // patch)
        patches = grid[0] * grid[1]
        if rows == patches or (class_token and rows == patches + 1):
            return grid, rows == patches + 1
        raise ValueError(f"{rows} position rows do not fit the signature's {grid} patch grid")
    side = square_grid_side(rows, class_token)
    return (side, side), rows == side * side + 1


def _is_square(n: int) -> bool:
    return n > 0 and math.isqrt(n) ** 2 == n


def _json_entry(metadata: Mapping[str, str], key: str) -> Any:
    text = metadata.get(key)
    if not text:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"malformed birder {key!r} entry: {error}") from error


def _read_sidecar(path: Path) -> dict[str, Any] | None:
    """``tools/convert-model --config``'s JSON next to the weights, if any."""
    for candidate in (
        path.with_name(path.name + "_config.json"),  # what birder writes: x.pt_config.json
        path.with_name(path.stem + "_config.json"),
    ):
        if candidate.is_file():
            try:
                return json.loads(candidate.read_text())
            except (OSError, json.JSONDecodeError) as error:
                raise ValueError(f"cannot read {candidate}: {error}") from error
    return None
