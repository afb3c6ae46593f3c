"""Mask2Former's building blocks on register-ViT features (pure PyTorch, no compiled ops)."""

from .deform_attn import MSDeformAttn, multi_scale_deformable_attention
from .pixel_decoder import MSDeformAttnPixelDecoder
from .position_encoding import sine_position_embedding
from .transformer_decoder import (
    MaskedAttentionDecoder,
    MaskedAttentionDecoderLayer,
    attention_mask_from_masks,
)

__all__ = [
    "MSDeformAttn",
    "MSDeformAttnPixelDecoder",
    "MaskedAttentionDecoder",
    "MaskedAttentionDecoderLayer",
    "attention_mask_from_masks",
    "multi_scale_deformable_attention",
    "sine_position_embedding",
]
