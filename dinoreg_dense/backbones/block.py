"""Pre-norm transformer block with optional LayerScale and stochastic depth.

Without autograd (``torch.no_grad`` / ``torch.inference_mode``) the block takes a cache-blocked
path: attention runs over groups of whole images and the FFN over chunks of token rows, each chunk
written in place into the block's own output. Every row goes through the same operations as in the
plain path; what changes is that no temporary grows with the batch. Batch-sized temporaries (the
FFN's 4x-wide hidden layer is 67 MB for ViT-S at 8 x 518^2) are slow on CPU twice over: they
stream through DRAM instead of cache, and allocations that large are fresh pages from the OS
(glibc serves them with mmap) that fault in again in every layer.

Under autocast, a layer called on several groups / chunks gets its weights cast once per block
call rather than once per call: inside ``torch.inference_mode`` autocast keeps no cast cache.

The gain was measured on CPU only (``benchmarks/backbone.py``), so by default
(``blocked_inference=None``) only CPU tensors take the blocked path; CUDA and every other device
run the plain whole-batch ops, whose large kernels are what GPUs are built for, unless
``blocked_inference=True`` asks for it.
"""

import torch
from torch import Tensor, nn
from torch.func import functional_call

from ..arch import FFNKind, NormKind, swiglu_hidden_dim
from .attention import Attention, AttentionMaps, Rope
from .ffn import Mlp, SwiGLUFFN

# Token rows per FFN chunk (measured on 2 cores: 512-2048 all beat whole-batch; 1024 is central).
FFN_CHUNK_ROWS = 1024
# Token rows per attention group: whole images are grouped up to this many rows (at least one).
ATTN_GROUP_ROWS = 2048


def make_norm(kind: NormKind, dim: int, eps: float) -> nn.Module:
    """LayerNorm (DINOv2, DINO) or RMSNorm (some I-JEPA register ViTs)."""
    if kind == "layernorm":
        return nn.LayerNorm(dim, eps=eps)
    if kind == "rmsnorm":
        return nn.RMSNorm(dim, eps=eps)
    raise ValueError(f"unknown norm_layer {kind!r}; expected 'layernorm' or 'rmsnorm'")


class LayerScale(nn.Module):
    """Per-channel learned scale; the parameter is called ``gamma`` as in DINOv2 checkpoints."""

    def __init__(self, dim: int, init_value: float) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), init_value))

    def forward(self, x: Tensor) -> Tensor:
        """x: (..., C) -> (..., C)."""
        return x * self.gamma


class DropPath(nn.Module):
    """Drops the whole residual branch per sample during training (stochastic depth)."""

    def __init__(self, prob: float) -> None:
        super().__init__()
        self.prob = prob

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, ...) -> (B, ...)."""
        if self.prob == 0.0 or not self.training:
            return x
        keep = 1.0 - self.prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep


def _residual_dtype(residual: Tensor, branch: Tensor, scale: nn.Module) -> torch.dtype:
    """dtype of ``residual + scale(branch)`` under type promotion."""
    dtype = torch.promote_types(residual.dtype, branch.dtype)
    if isinstance(scale, LayerScale):
        dtype = torch.promote_types(dtype, scale.gamma.dtype)
    return dtype


def _add_residual(residual: Tensor, branch: Tensor, scale: nn.Module, out: Tensor) -> None:
    """out = residual + scale(branch), with LayerScale's multiply fused into the add."""
    if isinstance(scale, LayerScale):
        torch.addcmul(residual, scale.gamma, branch, out=out)
    else:
        torch.add(residual, scale(branch), out=out)


def _cast_for_autocast(module: nn.Module, device_type: str) -> dict[str, Tensor] | None:
    """``module``'s floating-point parameters in the autocast dtype, or ``None`` outside autocast.

    Only for modules made of autocast's lower-precision ops (linear layers): a parameter of an
    op that autocast runs in float32 would lose precision.
    """
    if not torch.is_autocast_enabled(device_type):
        return None
    dtype = torch.get_autocast_dtype(device_type)
    params = dict(module.named_parameters())
    return {name: p.to(dtype) for name, p in params.items() if p.is_floating_point()}


def _call(
    module: nn.Module, params: dict[str, Tensor] | None, *args: Tensor | Rope | None
) -> Tensor:
    """``module(*args)``, with ``params`` standing in for its own parameters when given."""
    return module(*args) if params is None else functional_call(module, params, args)


class Block(nn.Module):
    """x + ls1(attn(norm1(x))), then x + ls2(mlp(norm2(x))).

    Args:
        blocked_inference: without autograd, compute the block group by group (see the module
            docstring): ``None`` (auto) for CPU tensors only, ``True`` on every device, ``False``
            never (the plain whole-batch ops). Never used while tracing, exporting or
            compiling. Also an attribute, to switch a built model.
        ffn_hidden_dim: the FFN's hidden width; ``None`` derives it from ``mlp_ratio``.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        proj_bias: bool = True,
        ffn_bias: bool = True,
        ffn_layer: FFNKind = "mlp",
        layerscale_init: float | None = None,
        norm_layer: NormKind = "layernorm",
        norm_eps: float = 1e-6,
        key_bias: bool = True,
        drop_path: float = 0.0,
        blocked_inference: bool | None = None,
        ffn_hidden_dim: int | None = None,
    ) -> None:
        super().__init__()
        self.blocked_inference = blocked_inference
        self.norm1 = make_norm(norm_layer, dim, norm_eps)
        self.attn = Attention(
            dim, num_heads, qkv_bias=qkv_bias, proj_bias=proj_bias, key_bias=key_bias
        )
        has_ls = layerscale_init is not None  # 0.0 is a valid (if odd) initial scale
        self.ls1 = LayerScale(dim, layerscale_init) if has_ls else nn.Identity()
        self.norm2 = make_norm(norm_layer, dim, norm_eps)
        if ffn_layer == "mlp":
            self.mlp: nn.Module = Mlp(dim, ffn_hidden_dim or int(dim * mlp_ratio), bias=ffn_bias)
        elif ffn_layer == "swiglu":
            hidden = ffn_hidden_dim or swiglu_hidden_dim(dim, mlp_ratio)
            self.mlp = SwiGLUFFN(dim, hidden, bias=ffn_bias)
        else:
            raise ValueError(f"unknown ffn_layer {ffn_layer!r}; expected 'mlp' or 'swiglu'")
        self.ls2 = LayerScale(dim, layerscale_init) if has_ls else nn.Identity()
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: Tensor, rope: Rope | None = None) -> Tensor:
        """x: (B, T, C) -> (B, T, C); ``rope``: the patches' RoPE (cos, sin), if any."""
        if self._blocked_path_applies(x):
            return self._forward_blocked(x, rope)
        x = x + self.drop_path(self.ls1(self.attn(self.norm1(x), rope)))
        return x + self.drop_path(self.ls2(self.mlp(self.norm2(x))))

    def forward_with_attention(
        self, x: Tensor, rope: Rope | None = None
    ) -> tuple[Tensor, AttentionMaps]:
        """Same as ``forward`` and also the attention layer's q / k / v / attention."""
        attn_out, maps = self.attn.forward_with_attention(self.norm1(x), rope)
        x = x + self.drop_path(self.ls1(attn_out))
        return x + self.drop_path(self.ls2(self.mlp(self.norm2(x)))), maps

    def _blocked_path_applies(self, x: Tensor) -> bool:
        # Without autograd nothing needs the intermediates; stochastic depth must stay exact.
        # Tracing / export / compile get the plain ops: the Python loops would bake the batch
        # size into the graph.
        drop_path_active = self.training and isinstance(self.drop_path, DropPath)
        enabled = self.blocked_inference
        if enabled is None:
            enabled = x.device.type == "cpu"  # the only device it was measured to help on
        return (
            enabled
            and not torch.is_grad_enabled()
            and not drop_path_active
            and x.shape[0] > 0
            and not torch.jit.is_tracing()
            and not torch.compiler.is_compiling()
        )

    def _forward_blocked(self, x: Tensor, rope: Rope | None) -> Tensor:
        """The plain forward computed group by group; never writes into ``x``."""
        b, t, c = x.shape
        groups = _even_slices(b, max(1, ATTN_GROUP_ROWS // t))
        chunks = _even_slices(b * t, FFN_CHUNK_ROWS)
        attn_params = _cast_for_autocast(self.attn, x.device.type) if len(groups) > 1 else None
        mlp_params = _cast_for_autocast(self.mlp, x.device.type) if len(chunks) > 1 else None
        first, *rest = groups
        branch = _call(self.attn, attn_params, self.norm1(x[first]), rope)
        out = torch.empty((b, t, c), dtype=_residual_dtype(x, branch, self.ls1), device=x.device)
        _add_residual(x[first], branch, self.ls1, out=out[first])
        for group in rest:
            branch = _call(self.attn, attn_params, self.norm1(x[group]), rope)
            _add_residual(x[group], branch, self.ls1, out=out[group])
        rows = out.view(b * t, c)
        for chunk in chunks:
            branch = _call(self.mlp, mlp_params, self.norm2(rows[chunk]))
            _add_residual(rows[chunk], branch, self.ls2, out=rows[chunk])
        return out


def _even_slices(length: int, max_size: int) -> list[slice]:
    """Split ``range(length)`` into the fewest near-equal slices of at most ``max_size``."""
    count = -(-length // max_size)
    bounds = [length * i // count for i in range(count + 1)]
    return [slice(lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]
