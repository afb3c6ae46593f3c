"""Mask2Former's transformer decoder with masked attention, in pure PyTorch.

Source: Cheng, Misra, Schwing, Kirillov and Girdhar, "Masked-attention Mask Transformer for
Universal Image Segmentation" (CVPR 2022, arXiv 2112.01527), section 3.2. Learnable query features
(and query position embeddings) are refined by ``num_layers`` layers; each layer runs

1. masked cross-attention to one level of the pixel decoder's pyramid, the levels visited
   round-robin (layer ``i`` reads level ``i % num_feature_levels``, coarsest first). A query may
   only attend where its previous mask prediction, resized to that level, has probability >= 0.5;
2. self-attention among the queries (after the cross-attention: the paper swaps the usual order);
3. a ReLU feed-forward block,

each with a residual connection and LayerNorm (after the block by default, before it with
``pre_norm``), no dropout. After every layer, and once on the learnable queries before the first,
a shared head predicts class logits and mask logits (mask embedding dotted with the per-pixel
mask features); every prediction but the last is returned for deep supervision.

The reference implementation is facebookresearch/Mask2Former
``mask2former/modeling/transformer_decoder/mask2former_transformer_decoder.py``; Hugging Face's
``Mask2FormerMaskedAttentionDecoder`` computes the same function, and the tests check ours against
it on copied weights. Parameter names follow the reference (``query_feat``, ``query_embed``,
``level_embed``, ``input_proj``, ``decoder_norm``, ``class_embed``, ``mask_embed.layers``) so
official checkpoints map onto this module by renaming; the three per-layer blocks live together in
``layers[i]``.
"""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dinoreg_dense.registry import MODELS

from .position_encoding import sine_position_embedding


def attention_mask_from_masks(pred_masks: Tensor, size: Sequence[int], num_heads: int) -> Tensor:
    """Masked-attention mask (paper eq. 2-3) from the previous layer's mask logits.

    The logits are resized bilinearly to the attended level's ``size``; a position is masked
    where the sigmoid is below 0.5. A query whose mask would hide every position attends
    everywhere instead (the reference's rule; a fully masked softmax row would be NaN). The mask
    carries no gradient.

    Args:
        pred_masks: (B, Q, H, W) mask logits.
        size: (h, w) of the attended feature map.
        num_heads: attention heads; the mask is repeated for each.

    Returns:
        (B * num_heads, Q, h * w) bool, True where attention is forbidden, batch-major
        (row ``b * num_heads + head``) as ``nn.MultiheadAttention``'s ``attn_mask`` expects.
    """
    resized = F.interpolate(
        pred_masks.detach(), size=tuple(size), mode="bilinear", align_corners=False
    )
    masked = resized.sigmoid().flatten(2) < 0.5
    masked = masked & ~masked.all(dim=-1, keepdim=True)
    return masked.repeat_interleave(num_heads, dim=0)


class MLP(nn.Module):
    """Linear layers with ReLU between them (none after the last); the mask-embedding head.

    Input (..., in_dim) -> output (..., out_dim).
    """

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, num_layers: int) -> None:
        super().__init__()
        dims = [in_dim] + [hidden_dim] * (num_layers - 1) + [out_dim]
        self.layers = nn.ModuleList(
            nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:], strict=True)
        )

    def forward(self, x: Tensor) -> Tensor:
        """(..., in_dim) -> (..., out_dim)."""
        for index, layer in enumerate(self.layers):
            x = layer(x)
            if index < len(self.layers) - 1:
                x = F.relu(x)
        return x


class MaskedAttentionDecoderLayer(nn.Module):
    """One decoder layer: masked cross-attention, then self-attention, then FFN (paper fig. 2).

    Args:
        hidden_dim: query and key channels.
        num_heads: attention heads of both attentions.
        dim_feedforward: hidden width of the FFN.
        pre_norm: LayerNorm before each block (residual around the normalised block) instead of
            after the residual sum.
    """

    def __init__(
        self, hidden_dim: int, num_heads: int, dim_feedforward: int, pre_norm: bool = False
    ) -> None:
        super().__init__()
        self.pre_norm = pre_norm
        self.cross_attn = nn.MultiheadAttention(hidden_dim, num_heads, batch_first=True)
        self.cross_attn_norm = nn.LayerNorm(hidden_dim)
        self.self_attn = nn.MultiheadAttention(hidden_dim, num_heads, batch_first=True)
        self.self_attn_norm = nn.LayerNorm(hidden_dim)
        self.linear1 = nn.Linear(hidden_dim, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, hidden_dim)
        self.ffn_norm = nn.LayerNorm(hidden_dim)
        # The reference initialises every matrix of the three blocks with Xavier-uniform.
        for parameter in self.parameters():
            if parameter.dim() > 1:
                nn.init.xavier_uniform_(parameter)

    def _cross(
        self,
        queries: Tensor,
        query_pos: Tensor,
        memory: Tensor,
        memory_pos: Tensor,
        attn_mask: Tensor,
    ) -> Tensor:
        return self.cross_attn(
            queries + query_pos,
            memory + memory_pos,
            memory,
            attn_mask=attn_mask,
            need_weights=False,
        )[0]

    def _self(self, queries: Tensor, query_pos: Tensor) -> Tensor:
        q = queries + query_pos
        return self.self_attn(q, q, queries, need_weights=False)[0]

    def _ffn(self, queries: Tensor) -> Tensor:
        return self.linear2(F.relu(self.linear1(queries)))

    def forward(
        self,
        queries: Tensor,
        query_pos: Tensor,
        memory: Tensor,
        memory_pos: Tensor,
        attn_mask: Tensor,
    ) -> Tensor:
        """Refine the queries once.

        Args:
            queries: (B, Q, C) query features.
            query_pos: (B, Q, C) query position embeddings, added to queries and self-attn keys.
            memory: (B, S, C) one pyramid level, flattened row-major, level embedding added.
            memory_pos: (B, S, C) its sine position embedding, added to the cross-attn keys.
            attn_mask: (B * heads, Q, S) bool, True where attention is forbidden
                (:func:`attention_mask_from_masks`).

        Returns:
            (B, Q, C) refined queries.
        """
        if self.pre_norm:
            normed = self.cross_attn_norm(queries)
            queries = queries + self._cross(normed, query_pos, memory, memory_pos, attn_mask)
            queries = queries + self._self(self.self_attn_norm(queries), query_pos)
            return queries + self._ffn(self.ffn_norm(queries))
        queries = self.cross_attn_norm(
            queries + self._cross(queries, query_pos, memory, memory_pos, attn_mask)
        )
        queries = self.self_attn_norm(queries + self._self(queries, query_pos))
        return self.ffn_norm(queries + self._ffn(queries))


@MODELS.register_module()
class MaskedAttentionDecoder(nn.Module):
    """Mask2Former's masked-attention transformer decoder with its class and mask heads.

    Args:
        num_classes: foreground classes; the class head adds one "no object" logit at the end.
        in_channels: channels of the multi-scale features.
        hidden_dim: query channels.
        num_queries: learnable queries.
        num_heads: attention heads.
        dim_feedforward: FFN hidden width.
        num_layers: decoder layers (9 in the paper: three rounds over three levels).
        mask_dim: channels of the per-pixel mask features.
        num_feature_levels: pyramid levels read round-robin.
        pre_norm: LayerNorm before each block instead of after it.
        enforce_input_projection: 1x1-project the features even when ``in_channels ==
            hidden_dim`` (otherwise the projection is the identity then).
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 256,
        hidden_dim: int = 256,
        num_queries: int = 100,
        num_heads: int = 8,
        dim_feedforward: int = 2048,
        num_layers: int = 9,
        mask_dim: int = 256,
        num_feature_levels: int = 3,
        pre_norm: bool = False,
        enforce_input_projection: bool = False,
    ) -> None:
        super().__init__()
        if hidden_dim % 2:
            raise ValueError(
                f"hidden_dim must be even for the sine position embedding, got {hidden_dim}"
            )
        self.num_classes = num_classes
        self.num_heads = num_heads
        self.num_layers = num_layers
        self.num_feature_levels = num_feature_levels
        self.query_feat = nn.Embedding(num_queries, hidden_dim)
        self.query_embed = nn.Embedding(num_queries, hidden_dim)
        self.level_embed = nn.Embedding(num_feature_levels, hidden_dim)
        self.input_proj = nn.ModuleList()
        for _ in range(num_feature_levels):
            if in_channels != hidden_dim or enforce_input_projection:
                projection = nn.Conv2d(in_channels, hidden_dim, kernel_size=1)
                # Detectron2's c2_xavier_fill, as the reference.
                nn.init.kaiming_uniform_(projection.weight, a=1)
                nn.init.zeros_(projection.bias)
                self.input_proj.append(projection)
            else:
                self.input_proj.append(nn.Identity())
        self.layers = nn.ModuleList(
            MaskedAttentionDecoderLayer(hidden_dim, num_heads, dim_feedforward, pre_norm)
            for _ in range(num_layers)
        )
        self.decoder_norm = nn.LayerNorm(hidden_dim)
        self.class_embed = nn.Linear(hidden_dim, num_classes + 1)
        self.mask_embed = MLP(hidden_dim, hidden_dim, mask_dim, 3)

    def predict(self, queries: Tensor, mask_features: Tensor) -> tuple[Tensor, Tensor]:
        """Class and mask logits of the current queries.

        Args:
            queries: (B, Q, C) decoder queries (before ``decoder_norm``).
            mask_features: (B, mask_dim, H, W) per-pixel embeddings.

        Returns:
            (B, Q, num_classes + 1) class logits, (B, Q, H, W) mask logits.
        """
        normed = self.decoder_norm(queries)
        mask_embed = self.mask_embed(normed)
        pred_masks = torch.einsum("bqc,bchw->bqhw", mask_embed, mask_features)
        return self.class_embed(normed), pred_masks

    def forward(self, multi_scale_features: Sequence[Tensor], mask_features: Tensor) -> dict:
        """Decode the queries against the pyramid.

        Args:
            multi_scale_features: ``num_feature_levels`` maps (B, in_channels, H_l, W_l),
                coarsest first.
            mask_features: (B, mask_dim, H_0, W_0) per-pixel embeddings (the pixel decoder's
                finest output).

        Returns:
            dict with ``pred_logits`` (B, Q, num_classes + 1), ``pred_masks`` (B, Q, H_0, W_0)
            mask logits of the last layer, and ``aux_outputs``: ``num_layers`` dicts with the
            same two keys, the predictions from the learnable queries and after every layer but
            the last, in order.

        Raises:
            ValueError: the number of levels differs from ``num_feature_levels``.
        """
        if len(multi_scale_features) != self.num_feature_levels:
            raise ValueError(
                f"expected {self.num_feature_levels} feature levels, "
                f"got {len(multi_scale_features)}"
            )
        batch = mask_features.shape[0]
        memories, memory_pos, sizes = [], [], []
        for level, features in enumerate(multi_scale_features):
            height, width = features.shape[-2:]
            sizes.append((height, width))
            pos = sine_position_embedding(
                height,
                width,
                self.query_embed.embedding_dim // 2,
                device=features.device,
                dtype=features.dtype,
            )
            memory_pos.append(pos.flatten(1).t().expand(batch, -1, -1))
            memory = self.input_proj[level](features).flatten(2).transpose(1, 2)
            memories.append(memory + self.level_embed.weight[level])

        queries = self.query_feat.weight.expand(batch, -1, -1)
        query_pos = self.query_embed.weight.expand(batch, -1, -1)
        predictions = [self.predict(queries, mask_features)]
        for index, layer in enumerate(self.layers):
            level = index % self.num_feature_levels
            attn_mask = attention_mask_from_masks(predictions[-1][1], sizes[level], self.num_heads)
            queries = layer(queries, query_pos, memories[level], memory_pos[level], attn_mask)
            predictions.append(self.predict(queries, mask_features))

        pred_logits, pred_masks = predictions[-1]
        return dict(
            pred_logits=pred_logits,
            pred_masks=pred_masks,
            aux_outputs=[dict(pred_logits=c, pred_masks=m) for c, m in predictions[:-1]],
        )
