"""Register Vision Transformer backbones."""

from ..arch import ARCHS, ViTArch, count_flops, resolve_arch
from .attention import AttentionMaps, TokenAttention
from .pos_embed import resample_pos_embed
from .vit import RegisterViT, ViTFeatures

__all__ = [
    "ARCHS",
    "AttentionMaps",
    "RegisterViT",
    "TokenAttention",
    "ViTArch",
    "ViTFeatures",
    "count_flops",
    "resample_pos_embed",
    "resolve_arch",
]
