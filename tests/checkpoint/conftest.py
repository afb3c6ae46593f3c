"""Shared pieces of the checkpoint tests: random non-trivial weights and feature comparison.

Reference models are real transformers / timm classes built with random weights (nothing is
downloaded). ``compare`` measures every output a checkpoint must reproduce: the normed last layer
(cls, registers, patches) and every block's raw output.
"""

import sys
from types import SimpleNamespace

import pytest
import torch
from torch import Tensor, nn

from dinoreg_dense.backbones import RegisterViT

# Input sizes of every parity check: a square one and a rectangular one (17 x 23 patches at
# p = 14); both differ from the 37 x 37 position grid of DINOv2, so resampling is exercised.
SIZES = ((224, 224), (238, 322))
TOLERANCE = 1e-4

# birder (the reference for birder files, in the dev extra) needs Python >= 3.11.
collect_ignore = ["test_parity_birder.py"] if sys.version_info < (3, 11) else []


def randomise_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Overwrite every parameter with seeded random values so no weight is at its trivial init:
    norm scales near 1, LayerScale gammas in [0.2, 1], biases and weights small, tokens and
    position embeddings large enough to matter."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            noise = torch.randn(param.shape, generator=generator)
            if name.endswith(("gamma", "lambda1")):
                param.copy_(0.2 + 0.8 * torch.rand(param.shape, generator=generator))
            elif "norm" in name and name.endswith("weight"):
                param.copy_(1.0 + 0.1 * noise)
            elif param.ndim == 3:  # cls / register / mask tokens and position embeddings
                param.copy_(0.5 * noise)
            else:
                param.copy_(0.05 * noise)
    return model.eval()


def images(height: int, width: int, batch: int = 1, seed: int = 1) -> Tensor:
    """(B, 3, H, W) standard-normal images."""
    return torch.randn(batch, 3, height, width, generator=torch.Generator().manual_seed(seed))


def pad_to_patches(x: Tensor, patch: int) -> Tensor:
    """Zero-pad bottom / right to a multiple of the patch size, as RegisterViT does; HF and timm
    drop the remainder instead, so references get the padded image."""
    pad_h, pad_w = (-x.shape[-2]) % patch, (-x.shape[-1]) % patch
    return torch.nn.functional.pad(x, (0, pad_w, 0, pad_h))


def compare(
    model: RegisterViT,
    x: Tensor,
    ref_blocks: list[Tensor],
    ref_last_normed: Tensor,
) -> float:
    """Largest absolute difference between ``model`` and a reference on ``x``.

    Args:
        ref_blocks: the reference's raw (pre-norm) output of every block, (B, T, C) each, tokens
            in DINOv2 order ``[cls, registers, patches]``.
        ref_last_normed: the reference's final-normed last layer (B, T, C).
    """
    depth = model.num_layers
    prefix = model.num_prefix_tokens
    with torch.no_grad():
        raw = model.forward_intermediates(x, out_indices=list(range(depth)), norm=False)
        last = raw.patch_maps[-1].flatten(2).transpose(1, 2)
        prefix_tokens = [raw.register_tokens[-1]]
        if raw.cls_tokens is not None:
            prefix_tokens.insert(0, raw.cls_tokens[-1][:, None])
        normed = model.norm(torch.cat([*prefix_tokens, last], dim=1))
    assert len(ref_blocks) == depth
    diffs = [_token_diff(raw, i, ref, prefix) for i, ref in enumerate(ref_blocks)]
    diffs.append(float((normed - ref_last_normed).abs().max()))
    return max(diffs)


def _token_diff(features, i: int, ref: Tensor, prefix: int) -> float:
    b, _, c = ref.shape
    h, w = features.patch_maps[i].shape[-2:]
    ref_map = ref[:, prefix:].transpose(1, 2).reshape(b, c, h, w)
    diffs = [(features.patch_maps[i] - ref_map).abs().max()]
    if features.cls_tokens is not None:
        diffs.append((features.cls_tokens[i] - ref[:, 0]).abs().max())
    if prefix > 1:
        diffs.append((features.register_tokens[i] - ref[:, 1:prefix]).abs().max())
    return max(float(d) for d in diffs)


@pytest.fixture(scope="session")
def kit() -> SimpleNamespace:
    """The helpers above, as a fixture so test modules need no imports from this file."""
    return SimpleNamespace(
        SIZES=SIZES,
        TOLERANCE=TOLERANCE,
        randomise_=randomise_,
        images=images,
        pad_to_patches=pad_to_patches,
        compare=compare,
    )
