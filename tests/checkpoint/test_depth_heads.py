"""Depth heads that exist as files load into our Depther with the outputs of their originals.

References are transformers' ``DPTForDepthEstimation`` (DINOv2 backbone) and
``DepthAnythingForDepthEstimation`` built with random weights and saved with
``save_pretrained``. Depth-Anything-V2's own ``.pth`` and DINOv2's released head files are
written in their exact key layouts (names from ``depth_anything_v2/dpt.py`` and
``dinov2/hub/depth/decode_heads.py``) from the same random tensors, so they must reproduce the
same model.
"""

import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from transformers import (
    DepthAnythingConfig,
    DepthAnythingForDepthEstimation,
    Dinov2Config,
    DPTConfig,
    DPTForDepthEstimation,
)

from dinoreg_dense.backbones import ViTFeatures
from dinoreg_dense.checkpoint import CheckpointError, read_arch
from dinoreg_dense.checkpoint.depth_heads import SUPPORTED_FORMATS, read_head_weights
from dinoreg_dense.registry import MODELS

PATCH = 14
SIZES = ((56, 56), (70, 98))  # 4 x 4 and 5 x 7 patches: an odd, non-square grid
BACKBONE = dict(hidden_size=64, num_hidden_layers=4, num_attention_heads=2, image_size=56)


def relative_error(ours: torch.Tensor, ref: torch.Tensor) -> float:
    """max |ours - ref| over the reference's depth range."""
    span = float(ref.max() - ref.min())
    assert span > 0, "degenerate reference output"
    return float((ours - ref).abs().max()) / span


def depther(backbone_checkpoint, head_checkpoint, backbone: dict | None = None, **head: object):
    """Depther with the backbone and head of the files; ``backbone`` / ``head`` override what
    :class:`HeadWeights` says."""
    weights = read_head_weights(head_checkpoint)
    return MODELS.build(
        dict(
            type="Depther",
            backbone=dict(
                type="RegisterViT",
                checkpoint=str(backbone_checkpoint),
                **{"arch": None, **weights.backbone, **(backbone or {})},
            ),
            decode_head=dict(
                type=weights.head_type,
                checkpoint=str(head_checkpoint),
                **{**weights.config, **head},
            ),
        )
    ).eval()


def worst_error(model, ref, kit, resize: bool, offset: float = 0.0) -> float:
    worst = 0.0
    for height, width in SIZES:
        x = kit.images(height, width)
        with torch.no_grad():
            expected = ref(pixel_values=x).predicted_depth[:, None] + offset
            if resize:  # DPT predicts at 16 / 14 of the input; both sides resize the same way
                expected = F.interpolate(
                    expected, size=(height, width), mode="bilinear", align_corners=False
                )
            got = model.encode(x)
        assert got.shape == expected.shape == (1, 1, height, width)
        worst = max(worst, relative_error(got, expected))
    return worst


# ---------------------------------------------------------------------- HF DPT
def hf_dpt(tmp_path_factory, kit, apply_layernorm: bool, **neck: object):
    backbone = Dinov2Config(
        **BACKBONE,
        out_indices=[1, 2, 3, 4],
        apply_layernorm=apply_layernorm,
        reshape_hidden_states=False,
    )
    config = DPTConfig(
        backbone_config=backbone,
        neck_hidden_sizes=[8, 16, 32, 64],
        fusion_hidden_size=256,  # HF's head projection is hard-wired to 256 channels
        readout_type="project",
        **neck,
    )
    ref = kit.randomise_(DPTForDepthEstimation(config), seed=3)
    folder = tmp_path_factory.mktemp("hf_dpt")
    ref.save_pretrained(folder)
    return ref, folder


@pytest.fixture(scope="module")
def dpt_dinov2_style(tmp_path_factory, kit):
    """The facebook/dpt-dinov2-* layout: projection before the output convs, no bias in the
    residual units."""
    return hf_dpt(
        tmp_path_factory,
        kit,
        apply_layernorm=False,
        add_projection=True,
        use_bias_in_fusion_residual=False,
    )


def test_hf_dpt_folder_matches_transformers(dpt_dinov2_style, kit):
    ref, folder = dpt_dinov2_style
    weights = read_head_weights(folder)
    assert weights.head_type == "DPTHead"
    assert weights.backbone == {"norm_outputs": False, "out_indices": [0, 1, 2, 3]}
    assert weights.config["head_projection"] and not weights.config["fusion_conv_bias"]
    model = depther(folder, folder)
    assert read_arch(folder).embed_dim == 64  # from the nested backbone_config
    error = worst_error(model, ref, kit, resize=True)
    print(f"parity HF DPTForDepthEstimation (DINOv2 backbone): {error:.2e} of the depth range")
    assert error <= 1e-4


def test_hf_dpt_with_batch_norm_and_layernorm_matches(tmp_path_factory, kit):
    ref, folder = hf_dpt(
        tmp_path_factory, kit, apply_layernorm=True, use_batch_norm_in_fusion_residual=True
    )
    with torch.no_grad():  # non-trivial running statistics
        for name, buffer in ref.named_buffers():
            if name.endswith("running_mean"):
                buffer.normal_(0, 0.1)
            elif name.endswith("running_var"):
                buffer.uniform_(0.5, 1.5)
    ref.save_pretrained(folder)
    model = depther(folder, folder)
    assert model.decode_head.use_batch_norm and model.backbone.norm_outputs
    error = worst_error(model, ref, kit, resize=True)
    print(f"parity HF DPT with BatchNorm fusion: {error:.2e}")
    assert error <= 1e-4


# ---------------------------------------------------------------------- Depth Anything
@pytest.fixture(scope="module")
def depth_anything(tmp_path_factory, kit):
    backbone = Dinov2Config(**BACKBONE, out_indices=[1, 2, 3, 4], reshape_hidden_states=False)
    config = DepthAnythingConfig(
        backbone_config=backbone,
        neck_hidden_sizes=[8, 16, 32, 64],
        fusion_hidden_size=16,
        reassemble_hidden_size=64,
        patch_size=PATCH,
    )
    ref = kit.randomise_(DepthAnythingForDepthEstimation(config), seed=5)
    with torch.no_grad():  # keep the output ReLU mostly open, so every pixel is compared
        ref.head.conv3.weight.mul_(20.0)
        ref.head.conv3.bias.fill_(0.5)
    folder = tmp_path_factory.mktemp("hf_depth_anything")
    ref.save_pretrained(folder)
    return ref, folder


def test_hf_depth_anything_folder_matches_transformers(depth_anything, kit):
    ref, folder = depth_anything
    weights = read_head_weights(folder)
    assert weights.config["output_kind"] == "relative_disparity"
    assert weights.config["readout"] == "ignore" and weights.config["resize_to_grid"]
    model = depther(folder, folder)
    error = worst_error(model, ref, kit, resize=False)
    print(f"parity HF DepthAnythingForDepthEstimation: {error:.2e} of the depth range")
    assert error <= 1e-4


def test_hf_depth_anything_metric_matches(tmp_path_factory, kit):
    backbone = Dinov2Config(**BACKBONE, out_indices=[1, 2, 3, 4], reshape_hidden_states=False)
    config = DepthAnythingConfig(
        backbone_config=backbone,
        neck_hidden_sizes=[8, 16, 32, 64],
        fusion_hidden_size=16,
        reassemble_hidden_size=64,
        depth_estimation_type="metric",
        max_depth=20,
    )
    ref = kit.randomise_(DepthAnythingForDepthEstimation(config), seed=6)
    folder = tmp_path_factory.mktemp("hf_depth_anything_metric")
    ref.save_pretrained(folder)
    model = depther(folder, folder)
    assert model.decode_head.max_depth == 20 and model.decode_head.output_kind == "metric_depth"
    assert worst_error(model, ref, kit, resize=False) <= 1e-4


# ---------------------------------------------------------------------- DA-V2 .pth
def to_official_backbone(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our backbone names -> official DINOv2 names (``patch_embed.proj``, a ``mask_token``)."""
    out = {k.replace("patch_embed.", "patch_embed.proj."): v for k, v in state.items()}
    out["mask_token"] = torch.zeros(1, state["cls_token"].shape[-1])
    return out


def to_depth_anything_v2(head: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our DPTHead names -> ``depth_head.*`` of depth_anything_v2/dpt.py, including the unused
    skip unit of ``refinenet4`` that the original builds."""
    out = {}
    for key, value in head.items():
        key = re.sub(r"^convs\.(\d)\.", lambda m: f"scratch.layer{int(m[1]) + 1}_rn.", key)
        key = re.sub(r"^fusion_blocks\.(\d)\.", lambda m: f"scratch.refinenet{4 - int(m[1])}.", key)
        key = key.replace(".project.", ".out_conv.").replace("residual_unit", "resConfUnit")
        key = re.sub(r"^output_conv1\.", "scratch.output_conv1.", key)
        key = re.sub(r"^output_conv2\.", "scratch.output_conv2.0.", key)
        key = re.sub(r"^output_conv3\.", "scratch.output_conv2.2.", key)
        out[f"depth_head.{key}"] = value
    unit = "depth_head.scratch.refinenet3.resConfUnit1."
    for key in [k for k in out if k.startswith(unit)]:
        out[key.replace("refinenet3", "refinenet4")] = torch.randn_like(out[key])
    return out


def test_depth_anything_v2_pth_reproduces_the_hf_model(depth_anything, kit, tmp_path):
    ref, folder = depth_anything
    reference = depther(folder, folder)
    state = {
        f"pretrained.{k}": v
        for k, v in to_official_backbone(reference.backbone.state_dict()).items()
    }
    head = {k: v for k, v in reference.decode_head.state_dict().items() if "loss" not in k}
    state.update(to_depth_anything_v2(head))
    pth = tmp_path / "depth_anything_v2_vits.pth"
    torch.save(state, pth)
    weights = read_head_weights(pth)
    assert weights.format == SUPPORTED_FORMATS[4]
    assert "output_activation" not in weights.config  # the file cannot tell relative / metric
    # The same interpolation as HF's DINOv2 (DA-V2's own uses DINOv2's offset 0.1).
    backbone = dict(arch=read_arch(folder), out_indices=(0, 1, 2, 3))
    model = depther(pth, pth, backbone, output_kind="relative_disparity")
    error = worst_error(model, ref, kit, resize=False)
    print(f"parity Depth-Anything-V2 .pth: {error:.2e} of the depth range")
    assert error <= 1e-4


# ---------------------------------------------------------------------- DINOv2's released heads
def to_dinov2_dpt(hf: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """HF DPT neck / head names -> ``decode_head.*`` of dinov2/hub/depth/decode_heads.py."""
    rules = [
        (
            r"neck\.reassemble_stage\.layers\.(\d)\.projection\.",
            r"reassemble_blocks.projects.\1.conv.",
        ),
        (r"neck\.reassemble_stage\.layers\.(\d)\.resize\.", r"reassemble_blocks.resize_layers.\1."),
        (r"neck\.reassemble_stage\.readout_projects\.", r"reassemble_blocks.readout_projects."),
        (r"neck\.convs\.(\d)\.", r"convs.\1.conv."),
        (r"neck\.fusion_stage\.layers\.(\d)\.projection\.", r"fusion_blocks.\1.project.conv."),
        (
            r"neck\.fusion_stage\.layers\.(\d)\.residual_layer(\d)\.convolution(\d)\.",
            r"fusion_blocks.\1.res_conv_unit\2.conv\3.conv.",
        ),
        (r"head\.projection\.", r"project.conv."),
        (r"head\.head\.", r"conv_depth.head."),
    ]
    out = {}
    for key, value in hf.items():
        if key.startswith("backbone.") or key.startswith(
            "neck.fusion_stage.layers.0.residual_layer1"
        ):
            continue
        for pattern, target in rules:
            key = re.sub("^" + pattern, target, key)
        out[f"decode_head.{key}"] = value
    return out


def test_dinov2_dpt_head_file_gives_hf_depth_plus_min_depth(dpt_dinov2_style, kit, tmp_path):
    ref, folder = dpt_dinov2_style
    hf = load_file(folder / "model.safetensors")
    head_file = tmp_path / "dinov2_vits14_nyu_dpt_head.pth"
    torch.save({"meta": {"epoch": 1}, "state_dict": to_dinov2_dpt(hf)}, head_file)
    weights = read_head_weights(head_file)
    assert weights.format == SUPPORTED_FORMATS[1]
    assert weights.config["output_activation"] == "relu_plus_min_depth"
    assert weights.backbone == {"norm_outputs": False}  # width 64 is no DINOv2 size
    model = depther(folder, head_file, dict(out_indices=(0, 1, 2, 3)))
    error = worst_error(model, ref, kit, resize=True, offset=1e-3)
    print(f"parity DINOv2 DPT head layout: {error:.2e} of the depth range")
    assert error <= 1e-4


@pytest.mark.parametrize("layers", [1, 4])
def test_dinov2_linear_head_files_load_into_linear_depth_head(tmp_path, layers):
    dim = 32
    conv = torch.randn(256, 2 * dim * layers, 1, 1), torch.randn(256)
    head_file = tmp_path / f"dinov2_vits14_nyu_linear{layers if layers == 4 else ''}_head.pth"
    state = {"decode_head.conv_depth.weight": conv[0], "decode_head.conv_depth.bias": conv[1]}
    torch.save({"state_dict": state}, head_file)
    weights = read_head_weights(head_file)
    assert weights.head_type == "LinearDepthHead"
    assert weights.config == dict(
        in_channels=2 * dim * layers, num_bins=256, use_bn=False, min_depth=1e-3, max_depth=80.0
    )
    in_index = -1 if layers == 1 else (0, 1, 2, 3)
    head = MODELS.build(
        dict(
            type="LinearDepthHead",
            in_channels=2 * dim * layers,
            in_index=in_index,
            use_bn=False,
            max_depth=80,
            checkpoint=str(head_file),
        )
    )
    # DINOv2's BNHead by hand: x4 bilinear, cls joined, no BatchNorm, 1x1 conv, ReLU + 0.1,
    # normalised, expected depth over 256 uniform bins in 1e-3..80 m.
    maps = [torch.randn(1, dim, 3, 4) for _ in range(4)]
    tokens = [torch.randn(1, dim) for _ in range(4)]
    features = ViTFeatures(maps, tokens, [torch.zeros(1, 0, dim)] * 4, [2, 5, 8, 11], 14, (0, 0))
    used = [maps[-1]] if layers == 1 else maps
    used_tokens = [tokens[-1]] if layers == 1 else tokens
    joined = []
    for x, cls in zip(used, used_tokens, strict=True):
        x = F.interpolate(x, scale_factor=4, mode="bilinear", align_corners=False)
        joined.append(torch.cat([x, cls[:, :, None, None].expand_as(x)], dim=1))
    scores = F.relu(F.conv2d(torch.cat(joined, dim=1), *conv)) + 0.1
    bins = torch.linspace(1e-3, 80.0, 256).view(1, -1, 1, 1)
    expected = (scores / scores.sum(dim=1, keepdim=True) * bins).sum(dim=1, keepdim=True)
    with torch.no_grad():
        torch.testing.assert_close(head.eval()(features), expected)
    with pytest.raises(CheckpointError, match=r"max_depth=80.0 \(config: 10"):
        MODELS.build(
            dict(
                type="LinearDepthHead",
                in_channels=2 * dim * layers,
                use_bn=False,
                checkpoint=str(head_file),
            )
        )


# ---------------------------------------------------------------------- refusals
def test_head_checkpoint_that_does_not_fit_names_the_file_and_the_fix(dpt_dinov2_style):
    _, folder = dpt_dinov2_style
    with pytest.raises(CheckpointError, match=r"model\.decode_head\..*channels=256"):
        MODELS.build(dict(type="DPTHead", in_channels=64, channels=128, checkpoint=str(folder)))
    with pytest.raises(CheckpointError, match="type='DPTHead'"):
        MODELS.build(dict(type="LinearDepthHead", in_channels=64, checkpoint=str(folder)))


def test_damaged_head_file_is_refused_not_loaded_partially(dpt_dinov2_style, tmp_path):
    _, folder = dpt_dinov2_style
    state = to_dinov2_dpt(load_file(folder / "model.safetensors"))
    del state["decode_head.convs.2.conv.weight"]
    torch.save({"state_dict": state}, tmp_path / "head.pth")
    config = read_head_weights(folder).config
    config.update(fusion_conv_bias=False, output_activation="relu_plus_min_depth")
    with pytest.raises(CheckpointError, match="missing from the file: convs.2.weight"):
        MODELS.build(dict(type="DPTHead", checkpoint=str(tmp_path / "head.pth"), **config))


def test_unknown_file_lists_the_supported_formats(tmp_path):
    torch.save({"model": {"fc.weight": torch.zeros(2, 2)}}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="other.pth.*Supported: DINOv2 linear"):
        read_head_weights(tmp_path / "other.pth")


def test_unknown_head_tensors_are_refused(tmp_path):
    state = {
        "depth_head.projects.0.weight": torch.zeros(8, 64, 1, 1),
        "depth_head.extra.w": torch.zeros(1),
    }
    torch.save(state, tmp_path / "da.pth")
    with pytest.raises(CheckpointError, match=r"da\.pth.*unknown head tensors \['extra\.w'\]"):
        read_head_weights(tmp_path / "da.pth")


def test_backbone_part_of_a_depth_file_loads_through_register_vit(depth_anything, kit):
    _, folder = depth_anything
    backbone = MODELS.build(dict(type="RegisterViT", arch=None, checkpoint=str(folder)))
    assert backbone.embed_dim == 64 and backbone.num_layers == 4
    assert Path(folder, "config.json").is_file()
