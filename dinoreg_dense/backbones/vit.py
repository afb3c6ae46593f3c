"""The register Vision Transformer: the one place that knows the token layout."""

import dataclasses
import difflib
import inspect
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from torch import Tensor, nn

from ..arch import ViTArch, block_indices, resolve_arch
from ..checkpoint import PretrainedFile
from ..checkpoint.infer import describe_arch
from ..registry import MODELS
from .attention import AttentionMaps, Rope, TokenAttention
from .block import Block, make_norm
from .pos_embed import resample_pos_embed
from .rope import grid_rope

logger = logging.getLogger(__name__)


@dataclass
class ViTFeatures:
    """Multi-layer backbone outputs with the prefix tokens split off.

    Attributes:
        patch_maps: one (B, C, H / p, W / p) map per requested layer, registers dropped.
        cls_tokens: one (B, C) tensor per requested layer, or ``None`` without a cls token.
        register_tokens: one (B, R, C) tensor per requested layer (R may be 0).
        indices: absolute block index of each output.
        patch_size: p.
        padding: (bottom, right) pixels added to reach a multiple of p; crop them from
            predictions made at input resolution.
        attention: the last block's q / k / v / attention split by token type when asked for
            (patch q / k / v as (B, heads, h, w, head_dim), the cls and register rows over the
            patches; see :class:`TokenAttention`).
        num_prefix_tokens: cls + registers (leading tokens of ``attention.full``).
    """

    patch_maps: list[Tensor]
    cls_tokens: list[Tensor] | None
    register_tokens: list[Tensor]
    indices: list[int]
    patch_size: int
    padding: tuple[int, int]
    attention: TokenAttention | None = None
    num_prefix_tokens: int = 0


@MODELS.register_module()
class RegisterViT(nn.Module):
    """ViT with optional cls token and register tokens returning multi-layer 4D patch maps.

    Args:
        arch: preset name (see ``ARCHS``: ``vits14_reg4``, ``dino_vitb16`` ...), a
            :class:`ViTArch`, a dict of its fields, or ``None``: the checkpoint's own
            architecture (HF ``config.json``, our metadata, birder's header, else tensor shapes);
            ``None`` without a checkpoint is a ValueError.
        checkpoint: pretrained weights (official DINOv2 / DINO ``.pth``, HF folder, timm state
            dict, birder file, our safetensors), or a
            :class:`~dinoreg_dense.checkpoint.PretrainedFile` already read. A missing file is an
            error; ``None`` warns about random init.
        out_indices: blocks whose outputs ``forward`` returns; negative counts from the end; an
            int ``n`` means the last n blocks.
        norm_outputs: apply the final norm to every returned layer.
        frozen: eval mode and no gradients, whatever ``train()`` is called with.
        drop_path_rate: stochastic depth, increasing linearly to this value over the blocks.
        blocked_inference: the blocks' cache-blocked inference path: ``None`` (auto) on CPU
            tensors only, ``True`` on every device, ``False`` never (see
            :class:`~dinoreg_dense.backbones.block.Block`).
        **arch_overrides: any :class:`ViTArch` field, overriding the preset (e.g. ``depth=2``).
    """

    def __init__(
        self,
        arch: str | ViTArch | dict[str, Any] | None = "vits14_reg4",
        checkpoint: str | Path | PretrainedFile | None = None,
        out_indices: int | Sequence[int] = (-1,),
        norm_outputs: bool = True,
        frozen: bool = False,
        drop_path_rate: float = 0.0,
        blocked_inference: bool | None = None,
        **arch_overrides: Any,
    ) -> None:
        super().__init__()
        unknown = sorted(set(arch_overrides) - self.config_keys())
        if unknown:
            close = difflib.get_close_matches(unknown[0], sorted(self.config_keys()), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise TypeError(
                f"RegisterViT got unknown arguments {unknown}{hint}; valid: "
                f"{', '.join(sorted(self.config_keys()))}"
            )
        if arch is None and checkpoint is None:
            raise ValueError(
                "RegisterViT(arch=None) takes the architecture from the checkpoint, but no "
                "checkpoint was given: set model.backbone.checkpoint, or name a preset in "
                "model.backbone.arch (e.g. 'vits14_reg4', 'vits16_dinov3'; see ARCHS)"
            )
        if checkpoint is not None:
            if not isinstance(checkpoint, PretrainedFile):
                checkpoint = PretrainedFile(checkpoint)  # read once, before anything is built
            if arch is None:
                arch = checkpoint.arch
        self.arch = resolve_arch(arch, **arch_overrides)
        a = self.arch
        self.patch_size = a.patch_size
        self.embed_dim = a.embed_dim
        self.num_register_tokens = a.num_register_tokens
        self.num_prefix_tokens = a.num_prefix_tokens
        self.out_indices = block_indices(out_indices, self.arch.depth)
        self.norm_outputs = norm_outputs
        self.frozen = frozen

        self.patch_embed = nn.Conv2d(3, a.embed_dim, a.patch_size, stride=a.patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, a.embed_dim)) if a.class_token else None
        self.register_tokens = (
            nn.Parameter(torch.zeros(1, a.num_register_tokens, a.embed_dim))
            if a.num_register_tokens
            else None
        )
        self.pos_embed: nn.Parameter | None = None
        if a.pos_encoding == "learned":
            pos_rows = a.pos_embed_grid[0] * a.pos_embed_grid[1]
            pos_rows += int(a.class_token and a.pos_embed_includes_cls)
            self.pos_embed = nn.Parameter(torch.zeros(1, pos_rows, a.embed_dim))
        elif a.embed_dim // a.num_heads % 4:
            raise ValueError(
                f"RoPE needs a head dim divisible by 4; embed_dim {a.embed_dim} / num_heads "
                f"{a.num_heads} is not"
            )
        drop_rates = torch.linspace(0, drop_path_rate, a.depth).tolist()
        self.blocks = nn.ModuleList(
            Block(
                a.embed_dim,
                a.num_heads,
                mlp_ratio=a.mlp_ratio,
                qkv_bias=a.qkv_bias,
                proj_bias=a.proj_bias,
                ffn_bias=a.ffn_bias,
                ffn_layer=a.ffn_layer,
                layerscale_init=a.layerscale_init,
                norm_layer=a.norm_layer,
                norm_eps=a.norm_eps,
                key_bias=a.key_bias,
                drop_path=rate,
                blocked_inference=blocked_inference,
                ffn_hidden_dim=a.ffn_hidden_dim,
            )
            for rate in drop_rates
        )
        self.norm = make_norm(a.norm_layer, a.embed_dim, a.norm_eps)
        self._init_weights()

        if checkpoint is not None:
            self.load_pretrained(checkpoint)
        else:
            logger.warning(
                "RegisterViT (%s) has RANDOM weights: no checkpoint was given. Set "
                "model.backbone.checkpoint=<file or HF folder> to use pretrained weights.",
                self.describe(),
            )
        if frozen:
            self.requires_grad_(False)
            self.eval()

    @classmethod
    def config_keys(cls) -> set[str]:
        """Every argument the constructor takes: its own and each :class:`ViTArch` field."""
        own = set(inspect.signature(cls.__init__).parameters) - {"self", "arch_overrides"}
        return own | {f.name for f in dataclasses.fields(ViTArch)}

    # ------------------------------------------------------------------ set-up
    def _init_weights(self) -> None:
        if self.pos_embed is not None:
            nn.init.trunc_normal_(self.pos_embed, std=0.02)
        if self.cls_token is not None:
            nn.init.normal_(self.cls_token, std=1e-6)
        if self.register_tokens is not None:
            nn.init.normal_(self.register_tokens, std=1e-6)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def describe(self) -> str:
        """One line naming the architecture, e.g. ``'ViT-S/16 + 4 registers (embed 384, depth 12,
        6 heads, RoPE)'``."""
        return describe_arch(self.arch)

    def load_pretrained(self, checkpoint: str | Path | PretrainedFile) -> None:
        """Load any supported checkpoint into this model in place, strictly.

        Args:
            checkpoint: a file or HF folder (see the class docstring), or a
                :class:`~dinoreg_dense.checkpoint.PretrainedFile` already read (no second read).

        Raises:
            FileNotFoundError: the path does not exist.
            CheckpointError: unreadable or unrecognised file, or missing / unexpected /
                mis-shaped tensors; the message names the file, the format and the fix.
        """
        if not isinstance(checkpoint, PretrainedFile):
            checkpoint = PretrainedFile(checkpoint)
        state = checkpoint.state_dict_for(self.arch, self.state_dict())
        self.load_state_dict(state)
        print_log(
            f"RegisterViT: loaded {checkpoint.path} ({checkpoint.format_name}, {len(state)} "
            f"tensors) as {self.describe()}",
            logger="current",
        )

    def train(self, mode: bool = True) -> "RegisterViT":
        """Like ``nn.Module.train`` but a frozen backbone stays in eval mode."""
        return super().train(mode and not self.frozen)

    @property
    def num_layers(self) -> int:
        """Number of transformer blocks."""
        return self.arch.depth

    # ------------------------------------------------------------------ tokens
    def _embed(self, x: Tensor) -> tuple[Tensor, tuple[int, int], tuple[int, int], Rope | None]:
        """(B, 3, H, W) -> tokens (B, T, C), patch grid (h, w), padding (bottom, right), and the
        patches' RoPE (cos, sin), each (h * w, head_dim) float32, or ``None`` with a learned
        position table."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected images of shape (B, 3, H, W), got {tuple(x.shape)}")
        p = self.patch_size
        pad_h, pad_w = (-x.shape[-2]) % p, (-x.shape[-1]) % p
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))
        patches = self.patch_embed(x)
        grid = (patches.shape[-2], patches.shape[-1])
        patches = patches.flatten(2).transpose(1, 2)
        a = self.arch
        has_cls_row = self.pos_embed is not None and a.class_token and a.pos_embed_includes_cls
        if self.pos_embed is not None:
            patch_pos = resample_pos_embed(
                self.pos_embed[:, int(has_cls_row) :],
                a.pos_embed_grid,
                grid,
                antialias=a.interpolate_antialias,
                offset=a.interpolate_offset,
            )
            patches = patches + patch_pos.to(patches.dtype)
        b = x.shape[0]
        prefix = []
        if self.cls_token is not None:
            cls = self.cls_token + self.pos_embed[:, :1] if has_cls_row else self.cls_token
            prefix.append(cls.expand(b, -1, -1))
        if self.register_tokens is not None:
            regs = self.register_tokens.expand(b, -1, -1)
            prefix.insert(0 if a.registers_before_cls else len(prefix), regs)
        tokens = torch.cat([*prefix, patches], dim=1)
        return tokens, grid, (pad_h, pad_w), self._rope(grid, x.device)

    def _rope(self, grid: tuple[int, int], device: torch.device) -> Rope | None:
        """The patches' RoPE (cos, sin) for a patch grid, ``None`` with a learned table."""
        a = self.arch
        if a.pos_encoding != "rope":
            return None
        rescale = a.rope_rescale if self.training else None
        head_dim = a.embed_dim // a.num_heads
        return grid_rope(grid, head_dim, a.rope_base, device, a.rope_periods_dtype, rescale)

    def _prefix_positions(self) -> tuple[int | None, slice]:
        """Sequence index of the cls token (``None`` without one) and slice of the registers."""
        r = self.num_register_tokens
        has_cls = self.cls_token is not None
        if self.arch.registers_before_cls:
            return (r if has_cls else None), slice(0, r)
        return (0 if has_cls else None), slice(int(has_cls), int(has_cls) + r)

    def split_tokens(self, tokens: Tensor) -> tuple[Tensor | None, Tensor, Tensor]:
        """(B, T, C) -> cls (B, C) or None, registers (B, R, C), patches (B, N, C)."""
        cls_index, registers = self._prefix_positions()
        cls = tokens[:, cls_index] if cls_index is not None else None
        return cls, tokens[:, registers], tokens[:, self.num_prefix_tokens :]

    def split_attention(self, maps: AttentionMaps, grid: tuple[int, int]) -> TokenAttention:
        """Full-sequence attention internals -> :class:`TokenAttention`.

        Args:
            maps: q / k / v (B, heads, T, head_dim) and attention (B, heads, T, T) of one block,
                T = num_prefix_tokens + h * w.
            grid: the patch grid (h, w) of the input.
        """
        n = self.num_prefix_tokens
        cls_index, registers = self._prefix_positions()

        def patch_grid(t: Tensor) -> Tensor:
            return t[:, :, n:].unflatten(2, grid)

        to_patches = maps.attn[..., n:].unflatten(-1, grid)  # (B, heads, T, h, w)
        return TokenAttention(
            patch_queries=patch_grid(maps.q_content),
            patch_keys=patch_grid(maps.k_content),
            patch_values=patch_grid(maps.v),
            cls_attention=to_patches[:, :, cls_index] if cls_index is not None else None,
            register_attention=to_patches[:, :, registers].transpose(1, 2),
            full=maps,
        )

    # ------------------------------------------------------------------ forward
    def forward_intermediates(
        self,
        x: Tensor,
        out_indices: int | Sequence[int] | None = None,
        norm: bool | None = None,
        return_attention: bool = False,
    ) -> ViTFeatures:
        """Run the blocks and collect the requested layers as 4D patch maps.

        Args:
            x: (B, 3, H, W) normalised images; H and W are padded up to a multiple of p.
            out_indices: overrides the constructor's ``out_indices``.
            norm: overrides ``norm_outputs`` (apply the final norm to each output).
            return_attention: also return the last block's q / k / v / attention split by token
                type (:class:`TokenAttention`); then all blocks run even if the requested layers
                end earlier.

        A frozen backbone records no autograd graph (unless ``x`` itself requires gradients),
        so training a head on it costs what inference costs.
        """
        track = torch.is_grad_enabled() and (not self.frozen or x.requires_grad)
        with torch.set_grad_enabled(track):
            return self._forward_intermediates(x, out_indices, norm, return_attention)

    def _forward_intermediates(
        self,
        x: Tensor,
        out_indices: int | Sequence[int] | None,
        norm: bool | None,
        return_attention: bool,
    ) -> ViTFeatures:
        indices = (
            self.out_indices if out_indices is None else block_indices(out_indices, self.arch.depth)
        )
        norm = self.norm_outputs if norm is None else norm
        tokens, (gh, gw), padding, rope = self._embed(x)
        last = len(self.blocks) - 1 if return_attention else max(indices)
        wanted = set(indices)
        outputs: dict[int, Tensor] = {}
        maps = None
        for i, block in enumerate(self.blocks[: last + 1]):
            if return_attention and i == len(self.blocks) - 1:
                tokens, maps = block.forward_with_attention(tokens, rope)
            else:
                tokens = block(tokens, rope)
            if i in wanted:
                outputs[i] = self.norm(tokens) if norm else tokens
        patch_maps, cls_tokens, register_tokens = [], [], []
        for i in indices:
            cls, regs, patches = self.split_tokens(outputs[i])
            b, _, c = patches.shape
            patch_maps.append(patches.transpose(1, 2).reshape(b, c, gh, gw))
            cls_tokens.append(cls)
            register_tokens.append(regs)
        return ViTFeatures(
            patch_maps=patch_maps,
            cls_tokens=cls_tokens if self.cls_token is not None else None,
            register_tokens=register_tokens,
            indices=list(indices),
            patch_size=self.patch_size,
            padding=padding,
            attention=self.split_attention(maps, (gh, gw)) if maps is not None else None,
            num_prefix_tokens=self.num_prefix_tokens,
        )

    def forward(self, x: Tensor) -> ViTFeatures:
        """(B, 3, H, W) -> :class:`ViTFeatures` for the constructor's ``out_indices``."""
        return self.forward_intermediates(x)

    def forward_features(self, x: Tensor) -> dict[str, Tensor | None]:
        """DINOv2-style dict of the last layer: ``x_norm_clstoken`` (B, C) or None,
        ``x_norm_regtokens`` (B, R, C), ``x_norm_patchtokens`` (B, N, C), ``x_prenorm``
        (B, T, C)."""
        tokens, _, _, rope = self._embed(x)
        for block in self.blocks:
            tokens = block(tokens, rope)
        cls, regs, patches = self.split_tokens(self.norm(tokens))
        return {
            "x_norm_clstoken": cls,
            "x_norm_regtokens": regs,
            "x_norm_patchtokens": patches,
            "x_prenorm": tokens,
        }
