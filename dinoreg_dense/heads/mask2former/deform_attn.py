"""Multi-scale deformable attention in pure PyTorch: ``grid_sample`` per level, autograd backward.

Source: Zhu, Su, Lu, Li, Wang and Dai, "Deformable DETR: Deformable Transformers for End-to-End
Object Detection" (ICLR 2021, arXiv 2010.04159), equations 2 and 3. Each query attends, per head,
to ``num_points`` sampled locations on each of ``num_levels`` feature maps around its reference
point; the sampled values are averaged with weights softmax-normalised over all levels and points
of that head. The reference implementations (fundamentalvision/Deformable-DETR
``models/ops/modules/ms_deform_attn.py``, reused by Mask2Former's pixel decoder) run the sampling
in a compiled CUDA op; here it is ``F.grid_sample``, so it runs and trains on any device torch
supports, and its gradient comes from autograd.

Coordinates: sampling locations and reference points are (x, y) in [0, 1] of each level's map,
(0, 0) the top-left corner of the top-left cell and (1, 1) the bottom-right corner of the
bottom-right cell, i.e. ``grid_sample``'s ``align_corners=False`` convention; locations outside
the map read zeros.

Level sizes: both functions take them as Python ``(H_l, W_l)`` pairs, e.g. read from the maps'
``.shape``, so that ``torch.export`` traces them as symbolic sizes (the ONNX export with dynamic
height and width); an (L, 2) int64 tensor, the reference implementations' form, is accepted too
and read on the host, which only eager mode can do.
"""

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LevelSizes = Sequence[tuple[int, int]] | Tensor
"""(H_l, W_l) of each level: Python pairs (traceable) or an (L, 2) int64 tensor (eager only)."""


def level_sizes(spatial_shapes: LevelSizes) -> list[tuple[int, int]]:
    """``spatial_shapes`` as a list of ``(H_l, W_l)`` pairs.

    Pairs pass through unchanged, so sizes taken from ``.shape`` stay symbolic under
    ``torch.export``; a tensor is read with ``.tolist()``, a host read that ``torch.export``
    cannot trace.
    """
    if isinstance(spatial_shapes, Tensor):
        return [(int(h), int(w)) for h, w in spatial_shapes.tolist()]
    return [(h, w) for h, w in spatial_shapes]


def multi_scale_deformable_attention(
    value: Tensor,
    spatial_shapes: LevelSizes,
    sampling_locations: Tensor,
    attention_weights: Tensor,
) -> Tensor:
    """Weighted sum of bilinearly sampled values over levels and points (Deformable DETR eq. 3).

    Args:
        value: (B, S, heads, head_dim) with S = sum_l H_l * W_l, the levels' maps flattened
            row-major (y then x) and concatenated in level order.
        spatial_shapes: (H_l, W_l) of each level (:data:`LevelSizes`).
        sampling_locations: (B, Q, heads, L, P, 2), normalised (x, y) in [0, 1] per level.
        attention_weights: (B, Q, heads, L, P), normally summing to 1 over (L, P).

    Returns:
        (B, Q, heads * head_dim), head-major: channel ``h * head_dim + c`` is channel c of head h.

    Raises:
        ValueError: S differs from the sum of the levels' sizes.
    """
    batch, num_values, num_heads, head_dim = value.shape
    _, num_queries, _, num_levels, num_points, _ = sampling_locations.shape
    shapes = level_sizes(spatial_shapes)
    if sum(h * w for h, w in shapes) != num_values:
        raise ValueError(
            f"value has {num_values} positions but spatial_shapes {shapes} sum to "
            f"{sum(h * w for h, w in shapes)}"
        )
    # grid_sample wants [-1, 1]; with align_corners=False, -1 / 1 are the outer cell edges.
    grids = 2 * sampling_locations - 1
    # (B, Q, heads, L, P) -> (B*heads, 1, Q, L, P), broadcast over the channels.
    weights = attention_weights.transpose(1, 2).reshape(
        batch * num_heads, 1, num_queries, num_levels, num_points
    )
    out = None
    for level, (value_l, (height, width)) in enumerate(
        zip(value.split([h * w for h, w in shapes], dim=1), shapes, strict=True)
    ):
        # (B, H*W, heads, d) -> (B*heads, d, H, W): one map per batch item and head.
        maps = value_l.permute(0, 2, 3, 1).reshape(batch * num_heads, head_dim, height, width)
        # (B, Q, heads, P, 2) -> (B*heads, Q, P, 2): a Q x P "image" of sampling points.
        grid = grids[:, :, :, level].transpose(1, 2).flatten(0, 1)
        sampled = F.grid_sample(
            maps, grid, mode="bilinear", padding_mode="zeros", align_corners=False
        )  # (B*heads, d, Q, P)
        # Each level weighted and summed as soon as it is sampled: stacking the levels first
        # copied every sample once more (1.5x slower on CPU, benchmarks/mask2former.py).
        term = (sampled * weights[..., level, :]).sum(-1)  # (B*heads, d, Q)
        out = term if out is None else out + term
    return out.view(batch, num_heads * head_dim, num_queries).transpose(1, 2).contiguous()


class MSDeformAttn(nn.Module):
    """Multi-scale deformable attention (Deformable DETR eq. 3) with its projections.

    Per query: offsets (heads x levels x points x 2) and attention logits (heads x levels x points,
    softmax over levels x points) come from linear maps of the query; values are a linear map of
    the flattened multi-level input; the heads' outputs are concatenated and projected.

    Args:
        embed_dim: channels C of queries, inputs and output.
        num_heads: attention heads; must divide ``embed_dim``.
        num_levels: feature levels L.
        num_points: sampling points P per head and level.

    Initialisation (Deformable DETR, section A.2 and its reference code): zero offset and
    attention weight matrices, so at the start every head samples a fixed pattern with uniform
    weights; head h's offset bias points in direction 2 pi h / heads (scaled so that its larger
    coordinate is 1) and grows with the point index (1, 2, ..., P cells of each level); Xavier
    value and output projections with zero biases.
    """

    def __init__(
        self, embed_dim: int = 256, num_heads: int = 8, num_levels: int = 4, num_points: int = 4
    ) -> None:
        super().__init__()
        if embed_dim % num_heads != 0:
            raise ValueError(f"embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.num_levels = num_levels
        self.num_points = num_points
        self.sampling_offsets = nn.Linear(embed_dim, num_heads * num_levels * num_points * 2)
        self.attention_weights = nn.Linear(embed_dim, num_heads * num_levels * num_points)
        self.value_proj = nn.Linear(embed_dim, embed_dim)
        self.output_proj = nn.Linear(embed_dim, embed_dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Deformable DETR's initialisation (see the class docstring)."""
        angles = torch.arange(self.num_heads, dtype=torch.float32) * (2 * math.pi / self.num_heads)
        directions = torch.stack([angles.cos(), angles.sin()], dim=-1)  # (heads, 2) as (x, y)
        directions = directions / directions.abs().max(dim=-1, keepdim=True).values
        steps = torch.arange(1, self.num_points + 1, dtype=torch.float32)
        bias = directions[:, None, None, :] * steps[None, None, :, None]  # (heads, 1, P, 2)
        bias = bias.expand(self.num_heads, self.num_levels, self.num_points, 2)
        with torch.no_grad():
            nn.init.zeros_(self.sampling_offsets.weight)
            self.sampling_offsets.bias.copy_(bias.reshape(-1))
        nn.init.zeros_(self.attention_weights.weight)
        nn.init.zeros_(self.attention_weights.bias)
        for linear in (self.value_proj, self.output_proj):
            nn.init.xavier_uniform_(linear.weight)
            nn.init.zeros_(linear.bias)

    def forward(
        self,
        query: Tensor,
        reference_points: Tensor,
        value: Tensor,
        spatial_shapes: LevelSizes,
        padding_mask: Tensor | None = None,
    ) -> Tensor:
        """Attend from each query around its reference point on every level.

        Args:
            query: (B, Q, C), positional embedding already added if any.
            reference_points: (B, Q, L, 2), normalised (x, y) in [0, 1] on each level.
            value: (B, S, C), the L levels flattened row-major and concatenated,
                S = sum_l H_l * W_l.
            spatial_shapes: (H_l, W_l) of each level (:data:`LevelSizes`).
            padding_mask: (B, S) bool, True at padded positions, which then contribute zero.

        Returns:
            (B, Q, C).

        Offsets are in cells of each level: an offset (dx, dy) moves the sampling point by
        (dx / W_l, dy / H_l) in normalised coordinates.
        """
        batch, num_queries, _ = query.shape
        if reference_points.shape[-1] != 2:
            raise ValueError(
                f"reference_points must be (B, Q, L, 2) points, got {tuple(reference_points.shape)}"
            )
        shapes = level_sizes(spatial_shapes)
        if len(shapes) != self.num_levels:
            raise ValueError(
                f"built for {self.num_levels} levels, got spatial_shapes for {len(shapes)}"
            )
        values = self.value_proj(value)
        if padding_mask is not None:
            values = values.masked_fill(padding_mask[..., None], 0.0)
        head_dim = self.embed_dim // self.num_heads
        values = values.view(batch, value.shape[1], self.num_heads, head_dim)
        sample_shape = (batch, num_queries, self.num_heads, self.num_levels, self.num_points)
        offsets = self.sampling_offsets(query).view(*sample_shape, 2)
        weights = self.attention_weights(query).view(batch, num_queries, self.num_heads, -1)
        weights = weights.softmax(dim=-1).view(sample_shape)
        # Offsets are in cells: divide by (W_l, H_l) so that (x, y) offsets stay in step. Built
        # from the sizes, which torch.export records as ops on the symbolic sizes.
        cells = torch.tensor(
            [(w, h) for h, w in shapes], dtype=offsets.dtype, device=offsets.device
        )  # (L, 2)
        locations = (
            reference_points[:, :, None, :, None, :] + offsets / cells[None, None, None, :, None, :]
        )
        out = multi_scale_deformable_attention(values, shapes, locations, weights)
        return self.output_proj(out)
