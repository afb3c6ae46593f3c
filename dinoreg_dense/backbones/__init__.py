"""Register Vision Transformer backbones."""

from .attention import AttentionMaps
from .pos_embed import resample_pos_embed
from .presets import ARCHS, ViTArch, resolve_arch
from .vit import RegisterViT, ViTFeatures, count_flops

__all__ = [
    "ARCHS",
    "AttentionMaps",
    "RegisterViT",
    "ViTArch",
    "ViTFeatures",
    "count_flops",
    "resample_pos_embed",
    "resolve_arch",
]
