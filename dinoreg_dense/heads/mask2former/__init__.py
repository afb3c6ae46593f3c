"""Mask2Former's building blocks on register-ViT features (pure PyTorch, no compiled ops)."""

from .deform_attn import MSDeformAttn, multi_scale_deformable_attention

__all__ = ["MSDeformAttn", "multi_scale_deformable_attention"]
