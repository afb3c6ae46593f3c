"""The DPT configs: DINOv2's DPT recipe piece trains a step; the Depth-Anything-V2 inference
configs have the per-size settings of the released files and load a file of that layout."""

import re
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

from dinoreg_dense.checkpoint import ARCHS
from dinoreg_dense.checkpoint.depth_heads import read_head_weights
from dinoreg_dense.registry import MODELS
from dinoreg_dense.structures import DenseDataSample

CONFIGS = Path(__file__).parents[2] / "configs"
DEPTH_ANYTHING = sorted(CONFIGS.glob("depth_anything_v2_vit*.py"))
# depth_anything_v2/dpt.py: features, out_channels, intermediate layers per encoder.
RELEASED = {
    "vits": (64, [48, 96, 192, 384], [2, 5, 8, 11], 384),
    "vitb": (128, [96, 192, 384, 768], [2, 5, 8, 11], 768),
    "vitl": (256, [256, 512, 1024, 1024], [4, 11, 17, 23], 1024),
}


def test_dinov2_dpt_recipe_piece_builds_and_trains_one_step():
    cfg = Config.fromfile(CONFIGS / "_base_" / "models" / "depth_dpt_vits_reg.py")
    cfg.model.backbone.update(embed_dim=32, depth=12, num_heads=2)
    model = MODELS.build(cfg.model).train()
    head = model.decode_head
    assert head.post_process_channels == [4, 8, 16, 32] and head.readout == "project"
    images = [torch.randint(0, 256, (3, 42, 56), dtype=torch.uint8) for _ in range(2)]
    samples = [DenseDataSample(gt_depth_map=torch.rand(42, 56) * 5 + 1) for _ in range(2)]
    data = model.data_preprocessor(dict(inputs=images, data_samples=samples), training=True)
    losses = model(**data, mode="loss")
    assert set(losses) == {"loss_depth", "loss_grad"}
    sum(losses.values()).backward()
    assert head.output_conv3.weight.grad.abs().sum() > 0


def test_depth_anything_configs_exist_for_every_released_size():
    assert {p.stem for p in DEPTH_ANYTHING} == {f"depth_anything_v2_{s}" for s in RELEASED}


@pytest.mark.parametrize("path", DEPTH_ANYTHING, ids=lambda p: p.stem)
def test_depth_anything_config_matches_the_released_model(path):
    cfg = Config.fromfile(path)
    size = path.stem.removeprefix("depth_anything_v2_")
    channels, post_process, layers, width = RELEASED[size]
    backbone, head = cfg.model.backbone, cfg.model.decode_head
    assert backbone.checkpoint == head.checkpoint == cfg.checkpoint
    assert Path(cfg.checkpoint).name == f"depth_anything_v2_{size}.pth"
    assert list(backbone.out_indices) == layers and backbone.norm_outputs
    assert (head.channels, list(head.post_process_channels)) == (channels, post_process)
    assert head.output_kind == "relative_disparity" and head.resize_to_grid
    arch = ARCHS[backbone.arch]
    assert (arch.embed_dim, arch.num_register_tokens, arch.interpolate_offset) == (width, 0, 0.1)
    backbone.update(checkpoint=None, embed_dim=32, num_heads=2)
    head.update(checkpoint=None)
    model = MODELS.build(cfg.model).eval()
    with torch.no_grad():
        out = model.encode(torch.randn(1, 3, 56, 70))
    assert out.shape == (1, 1, 56, 70) and (out >= 0).all()


def to_released_names(model) -> dict[str, torch.Tensor]:
    """A Depther's tensors under Depth-Anything-V2's names: ``pretrained.*`` in official DINOv2
    names and ``depth_head.*`` as depth_anything_v2/dpt.py builds them."""
    state = {}
    for key, value in model.backbone.state_dict().items():
        state["pretrained." + key.replace("patch_embed.", "patch_embed.proj.")] = value
    state["pretrained.mask_token"] = torch.zeros(1, model.backbone.embed_dim)
    for key, value in model.decode_head.state_dict().items():
        if key.startswith("loss_decode."):
            continue
        key = re.sub(r"^convs\.(\d)\.", lambda m: f"scratch.layer{int(m[1]) + 1}_rn.", key)
        key = re.sub(r"^fusion_blocks\.(\d)\.", lambda m: f"scratch.refinenet{4 - int(m[1])}.", key)
        key = key.replace(".project.", ".out_conv.").replace("residual_unit", "resConfUnit")
        key = re.sub(r"^output_conv1\.", "scratch.output_conv1.", key)
        key = re.sub(r"^output_conv2\.", "scratch.output_conv2.0.", key)
        key = re.sub(r"^output_conv3\.", "scratch.output_conv2.2.", key)
        state["depth_head." + key] = value
    return state


def test_vits_config_loads_a_file_of_the_released_layout(tmp_path):
    cfg = Config.fromfile(CONFIGS / "depth_anything_v2_vits.py")
    cfg.model.backbone.checkpoint = cfg.model.decode_head.checkpoint = None
    source = MODELS.build(cfg.model).eval()
    assert source.backbone.pos_embed.shape == (1, 1370, 384)  # 37 x 37 + cls, as released
    path = tmp_path / "depth_anything_v2_vits.pth"
    torch.save(to_released_names(source), path)
    weights = read_head_weights(path)
    assert weights.backbone == {"norm_outputs": True, "out_indices": [2, 5, 8, 11]}
    cfg.model.backbone.checkpoint = cfg.model.decode_head.checkpoint = str(path)
    loaded = MODELS.build(cfg.model).eval()
    x = torch.randn(1, 3, 70, 98)
    with torch.no_grad():
        torch.testing.assert_close(loaded.encode(x), source.encode(x))
