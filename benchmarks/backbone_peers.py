"""The peers ``backbone.py`` times, one set of random weights per model family.

A family (DINOv2 ViT-S/14-reg4, DINOv3 ViT-S/16) names our preset, the timm model and how
transformers builds and names the same network. The weights start in timm; ours loads them from a
timm safetensors file through our own converter (the architecture read from the file, checked
against the preset), and transformers receives ours renamed by :func:`ours_to_hf`.
"""

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import timm
import torch
from safetensors.torch import save_file
from torch import Tensor, nn
from transformers import (
    Dinov2WithRegistersConfig,
    Dinov2WithRegistersModel,
    DINOv3ViTConfig,
    DINOv3ViTModel,
)

from dinoreg_dense.backbones import ARCHS, RegisterViT, ViTArch

EXTERNAL_PEERS = ("hf-sdpa", "timm")


@dataclass(frozen=True)
class HFLayout:
    """Where transformers keeps our tensors: prefixes of top-level keys (ours -> HF), the blocks'
    prefix and renames inside a block. Our fused ``attn.qkv`` is split into ``{q,k,v}_proj``."""

    top: dict[str, str]
    layer: str
    block: dict[str, str]


_BLOCK = {
    "attn.proj.": "attention.o_proj.",
    "ls1.gamma": "layer_scale1.lambda1",
    "ls2.gamma": "layer_scale2.lambda1",
}
_EMBEDDINGS = {"cls_token": "embeddings.cls_token", "register_tokens": "embeddings.register_tokens"}


@dataclass(frozen=True)
class Family:
    """One model family: our preset, timm's name, transformers' model and key layout."""

    arch: str
    timm_name: str
    hf_model: Callable[[ViTArch], nn.Module]
    hf_layout: HFLayout
    sizes: tuple[int, ...]  # default image sides, multiples of the patch size


def dinov2_hf(arch: ViTArch) -> nn.Module:
    """transformers ``Dinov2WithRegistersModel`` of ``arch``'s shape, sdpa attention."""
    config = Dinov2WithRegistersConfig(
        hidden_size=arch.embed_dim,
        num_hidden_layers=arch.depth,
        num_attention_heads=arch.num_heads,
        mlp_ratio=int(arch.mlp_ratio),
        num_register_tokens=arch.num_register_tokens,
        image_size=arch.pos_embed_grid[0] * arch.patch_size,
        patch_size=arch.patch_size,
        layer_norm_eps=arch.norm_eps,
        attn_implementation="sdpa",
    )
    return Dinov2WithRegistersModel(config)


def dinov3_hf(arch: ViTArch) -> nn.Module:
    """transformers ``DINOv3ViTModel`` of ``arch``'s shape (GELU MLP, RoPE), sdpa attention."""
    config = DINOv3ViTConfig(
        hidden_size=arch.embed_dim,
        num_hidden_layers=arch.depth,
        num_attention_heads=arch.num_heads,
        intermediate_size=int(arch.mlp_ratio * arch.embed_dim),
        num_register_tokens=arch.num_register_tokens,
        patch_size=arch.patch_size,
        layer_norm_eps=arch.norm_eps,
        rope_theta=arch.rope_base,
        key_bias=arch.key_bias,
        attn_implementation="sdpa",
    )
    return DINOv3ViTModel(config)


FAMILIES = {
    "dinov2": Family(
        arch="vits14_reg4",
        timm_name="vit_small_patch14_reg4_dinov2",
        hf_model=dinov2_hf,
        hf_layout=HFLayout(
            top=_EMBEDDINGS
            | {
                "pos_embed": "embeddings.position_embeddings",
                "patch_embed.": "embeddings.patch_embeddings.projection.",
                "norm.": "layernorm.",
            },
            layer="encoder.layer.",
            block=_BLOCK,
        ),
        sizes=(224, 518),
    ),
    "dinov3": Family(
        arch="vits16_dinov3",
        timm_name="vit_small_patch16_dinov3_qkvb",
        hf_model=dinov3_hf,
        hf_layout=HFLayout(
            top=_EMBEDDINGS | {"patch_embed.": "embeddings.patch_embeddings.", "norm.": "norm."},
            layer="model.layer.",
            block=_BLOCK | {"mlp.fc1.": "mlp.up_proj.", "mlp.fc2.": "mlp.down_proj."},
        ),
        sizes=(224, 512),
    ),
}


def ours_to_hf(
    ours: dict[str, Tensor], layout: HFLayout, hf_state: dict[str, Tensor]
) -> dict[str, Tensor]:
    """RegisterViT keys -> the transformers model's keys (q / k / v split).

    Args:
        ours: RegisterViT state dict.
        layout: the family's key layout.
        hf_state: the HF model's own state dict; its ``embeddings.mask_token`` (no counterpart
            in ours, unused by a forward without a mask) is kept.

    Returns:
        A complete HF state dict; a tensor HF has no key for (DINOv3's key bias) is dropped.

    Raises:
        ValueError: a dropped tensor is not all zeros, so HF would compute something else.
    """
    out = {"embeddings.mask_token": hf_state["embeddings.mask_token"]}
    for key, value in ours.items():
        if key.startswith("blocks."):
            _, index, rest = key.split(".", 2)
            prefix = f"{layout.layer}{index}."
            if rest.startswith("attn.qkv."):
                part = rest.removeprefix("attn.qkv.")
                for name, tensor in zip("qkv", value.chunk(3), strict=True):
                    out[f"{prefix}attention.{name}_proj.{part}"] = tensor
                continue
            for old, new in layout.block.items():
                rest = rest.replace(old, new)
            out[prefix + rest] = value
            continue
        old = next(old for old in layout.top if key.startswith(old))
        out[layout.top[old] + key.removeprefix(old)] = value
    for key in [key for key in out if key not in hf_state]:
        if out.pop(key).any():
            raise ValueError(f"transformers has no {key!r}, and ours is not zero there")
    return out


def build_models(family: Family, seed: int) -> dict[str, nn.Module]:
    """ours, hf-sdpa and timm in eval mode with one set of random weights.

    LayerScale starts at 1e-5, which would make every block nearly the identity and the equality
    check blind; gammas, prefix tokens and biases (zero at init: a misplaced one would not show)
    are therefore re-drawn at realistic magnitudes.
    """
    torch.manual_seed(seed)
    timm_model = timm.create_model(family.timm_name, pretrained=False, dynamic_img_size=True)
    with torch.no_grad():
        for name, param in timm_model.named_parameters():
            if name.endswith((".gamma", ".gamma_1", ".gamma_2")):
                param.uniform_(0.05, 0.5)
            elif name in ("cls_token", "reg_token") or name.endswith("bias"):
                param.normal_(0.0, 0.02)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"{family.timm_name}.safetensors"
        save_file({k: v.contiguous() for k, v in timm_model.state_dict().items()}, path)
        ours = RegisterViT(arch=None, checkpoint=path)
    if ours.arch != ARCHS[family.arch]:
        raise RuntimeError(f"timm file read as {ours.arch}, not the preset {family.arch!r}")
    hf = family.hf_model(ours.arch)
    if hf.config._attn_implementation != "sdpa":
        raise RuntimeError(f"HF model uses {hf.config._attn_implementation!r}, not 'sdpa'")
    hf.load_state_dict(ours_to_hf(ours.state_dict(), family.hf_layout, hf.state_dict()))
    return {"ours": ours.eval(), "hf-sdpa": hf.eval(), "timm": timm_model.eval()}


def patch_tokens(name: str, model: nn.Module, x: Tensor) -> Tensor:
    """Final-norm patch tokens (B, N, C) of any peer from images (B, 3, H, W); the timed forward."""
    if name == "hf-sdpa":
        prefix = 1 + model.config.num_register_tokens
        return model(pixel_values=x).last_hidden_state[:, prefix:]
    if name == "timm":
        return model.forward_features(x)[:, model.num_prefix_tokens :]
    return model.forward_features(x)["x_norm_patchtokens"]
