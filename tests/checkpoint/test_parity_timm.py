"""timm state dicts load into RegisterViT with outputs equal to timm's own models.

timm resamples position embeddings with antialias and offset 0 for every model; with
``arch=None`` the architecture inferred from a timm file uses that rule, so the DINOv2 models
match timm without overrides. A DINO ViT's keys are the same as the official DINO v1 ``.pth``
(whose rule, offset 0.1, is assumed), so that one passes timm's rule explicitly.
"""

import pytest
import timm
import torch

from dinoreg_dense.checkpoint import detect_format, read_arch
from dinoreg_dense.registry import MODELS

DEPTH = 4


def max_diff_to_timm(model, ref, kit, sizes=None) -> float:
    """Worst difference over the parity sizes; the reference sees the zero-padded image."""
    worst = 0.0
    for height, width in sizes or kit.SIZES:
        x = kit.images(height, width)
        x_ref = kit.pad_to_patches(x, model.patch_size)
        with torch.no_grad():
            with_prefix = ref.forward_intermediates(
                x_ref,
                indices=DEPTH,
                output_fmt="NLC",
                intermediates_only=True,
                return_prefix_tokens=True,
            )
            blocks = [torch.cat([prefix, patches], dim=1) for patches, prefix in with_prefix]
            normed = ref.norm(blocks[-1])  # what timm's forward_features returns
        worst = max(worst, kit.compare(model, x, blocks, normed))
    return worst


def timm_checkpoint(tmp_path, kit, name: str, seed: int):
    ref = timm.create_model(
        name, pretrained=False, dynamic_img_size=True, depth=DEPTH, num_classes=0
    )
    kit.randomise_(ref, seed=seed)
    path = tmp_path / f"{name}.pth"
    torch.save(ref.state_dict(), path)
    return ref, path


@pytest.fixture(scope="module")
def timm_registers(tmp_path_factory, kit):
    return timm_checkpoint(
        tmp_path_factory.mktemp("timm"), kit, "vit_small_patch14_reg4_dinov2", seed=14
    )


def check_inferred_arch_matches_timm(ref, path, kit, registers: int) -> float:
    assert detect_format(path) == "timm VisionTransformer"
    arch = read_arch(path)
    assert arch.num_register_tokens == registers and arch.depth == DEPTH
    assert arch.pos_embed_grid == (37, 37) and arch.num_heads == 6
    assert (arch.interpolate_antialias, arch.interpolate_offset) == (True, 0.0)
    model = MODELS.build(dict(type="RegisterViT", arch=None, checkpoint=str(path)))
    return max_diff_to_timm(model, ref, kit)


def test_timm_dinov2_with_registers_matches_with_inferred_arch(timm_registers, kit):
    diff = check_inferred_arch_matches_timm(*timm_registers, kit, registers=4)
    print(f"parity timm vit_small_patch14_reg4_dinov2: {diff:.2e}")
    assert diff <= kit.TOLERANCE


def test_timm_dinov2_matches_with_inferred_arch(tmp_path, kit):
    ref, path = timm_checkpoint(tmp_path, kit, "vit_small_patch14_dinov2", seed=10)
    diff = check_inferred_arch_matches_timm(ref, path, kit, registers=0)
    print(f"parity timm vit_small_patch14_dinov2: {diff:.2e}")
    assert diff <= kit.TOLERANCE


def test_timm_registers_load_into_preset_with_cls_position_row(timm_registers, kit):
    # timm keeps no cls position row (no_embed_class); the preset has one: a zero row is added.
    ref, path = timm_registers
    model = MODELS.build(
        dict(type="RegisterViT", arch="vits14_reg4", depth=DEPTH, checkpoint=str(path))
    )
    assert model.pos_embed.shape[1] == 1 + 37 * 37
    assert torch.equal(model.pos_embed[0, 0], torch.zeros(384))
    assert max_diff_to_timm(model, ref, kit, sizes=[(238, 322)]) <= kit.TOLERANCE


def test_timm_dino_vit_small_patch8(tmp_path, kit):
    ref, path = timm_checkpoint(tmp_path, kit, "vit_small_patch8_224", seed=30)
    model = MODELS.build(
        dict(
            type="RegisterViT",
            arch="dino_vits8",
            depth=DEPTH,
            interpolate_antialias=True,
            interpolate_offset=0.0,
            checkpoint=str(path),
        )
    )
    diff = max_diff_to_timm(model, ref, kit)
    print(f"parity timm vit_small_patch8_224 (DINO): {diff:.2e}")
    assert diff <= kit.TOLERANCE
