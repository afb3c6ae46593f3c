"""Mask2Former's building blocks on register-ViT features (pure PyTorch, no compiled ops)."""

from .deform_attn import MSDeformAttn, multi_scale_deformable_attention
from .head import Mask2FormerHead
from .inference import (
    instance_inference,
    mask_scores,
    masks_to_boxes,
    semantic_inference,
    top_query_classes,
)
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
    "Mask2FormerHead",
    "MaskedAttentionDecoder",
    "MaskedAttentionDecoderLayer",
    "attention_mask_from_masks",
    "instance_inference",
    "mask_scores",
    "masks_to_boxes",
    "multi_scale_deformable_attention",
    "semantic_inference",
    "sine_position_embedding",
    "top_query_classes",
]
