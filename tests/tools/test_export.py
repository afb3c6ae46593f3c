"""tools/export.py: a dynamic ONNX export of the toy segmentation (learned position table, and
Mask2Former's semantic output) and depth (RoPE) models runs in onnxruntime at sizes it never saw,
including ones that are not multiples of the patch size, and gives what the eager model's
whole-image inference gives."""

import contextlib
import importlib.util
import io
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

from dinoreg_dense.engine.export import (
    ExportError,
    PixelOutputModel,
    default_shape,
    export_onnx,
    load_model,
    prepare_output,
)
from dinoreg_dense.engine.launch import load_config
from dinoreg_dense.registry import MODELS

from ..integration.conftest import REPO

SEG_CONFIG = REPO / "configs" / "toy_linear_vittiny.py"
DEPTH_CONFIG = REPO / "configs" / "toy_depth_linear_vittiny.py"
ROPE = {"model.backbone.arch": "vits16_dinov3"}
MASK2FORMER_CONFIG = REPO / "configs" / "toy_mask2former_vittiny.py"
# The toy Mask2Former cut to what the export has to get right for every size: the max-pooled
# (ceil-rounded) level, deformable attention over two levels, one FPN level, one masked
# attention (to the pooled level). One backbone block, 4 queries and one decoder layer keep
# the export near 20 s (26 s on 2 shared cores).
MASK2FORMER_TINY = {
    "model.backbone.depth": 1,
    "model.decode_head.neck.scale_factors": (2.0, 1.0, 0.5),
    "model.decode_head.pixel_decoder.num_deform_levels": 2,
    "model.decode_head.pixel_decoder.num_encoder_layers": 1,
    "model.decode_head.transformer_decoder.num_queries": 4,
    "model.decode_head.transformer_decoder.num_layers": 1,
}
DPT_CONFIG = REPO / "configs" / "nyu_dpt_vits_reg.py"
# DINOv2's DPT head (readout "project", four reassembled levels, fusion, upsampling to the
# input) on a 4-block 64-wide ViT-S/14-reg layout with the 37 x 37 table, at 128 px examples.
DPT_TINY = {
    "model.backbone.depth": 4,
    "model.backbone.embed_dim": 64,
    "model.backbone.num_heads": 4,
    "model.backbone.out_indices": (0, 1, 2, 3),
    "model.decode_head.channels": 32,
    "model.data_preprocessor.size": (128, 128),
}
# (B, H, W): the export's own example size (128, from the config's crop), then unseen sizes
# whose patch grids (patch 8, table 16 x 16) are larger and smaller than the table, and sides
# that are not multiples of the patch.
SIZES = [(1, 128, 128), (2, 150, 131), (1, 75, 53)]


def load_tool():
    spec = importlib.util.spec_from_file_location("export_tool", REPO / "tools" / "export.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


export_tool = load_tool()


@dataclass
class Exported:
    model: torch.nn.Module
    onnx_path: Path
    printed: str
    torch_errors: list[str]


def _spread_weights(model: torch.nn.Module) -> None:
    """Weights whose effects are far above rounding: an O(1) position table, unit-scale
    classifiers and non-trivial BatchNorm statistics (the toy init leaves logits near 0)."""
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name.endswith("pos_embed"):
                tensor.normal_()
            elif name.endswith(("conv_seg.weight", "conv_depth.weight")):
                tensor.normal_(std=tensor.shape[1] ** -0.5)
            elif name.endswith("running_mean"):
                tensor.normal_(std=0.1)
            elif name.endswith("running_var"):
                tensor.uniform_(0.5, 2.0)


def _export(folder: Path, config: Path, options: dict[str, str]) -> Exported:
    """A seeded run checkpoint of ``config`` exported with --dynamic next to the checkpoint."""
    torch.manual_seed(0)
    model = MODELS.build(load_config(str(config), options).model)
    _spread_weights(model)
    checkpoint = folder / "run.pth"
    torch.save(dict(state_dict=model.state_dict(), meta=dict(dataset_meta={})), checkpoint)
    cfg_options = [f"{key}={value}" for key, value in options.items()]
    argv = ["export.py", str(config), str(checkpoint), "--format", "onnx", "--dynamic"]
    argv += ["--cfg-options", *cfg_options] if cfg_options else []
    printed = io.StringIO()
    torch_errors = _Collect(level=logging.ERROR)  # torch.export's guard failures are logged
    logging.getLogger("torch").addHandler(torch_errors)
    try:
        with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(printed):
            patch.setattr(sys, "argv", argv)
            export_tool.main()
    finally:
        logging.getLogger("torch").removeHandler(torch_errors)
    messages = [record.getMessage() for record in torch_errors.records]
    return Exported(model.eval(), folder / "run.onnx", printed.getvalue(), messages)


class _Collect(logging.Handler):
    def __init__(self, level: int) -> None:
        super().__init__(level)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="module")
def segmentation(tmp_path_factory) -> Exported:
    """Toy segmentor: register ViT with an antialiased learned table, linear head."""
    return _export(tmp_path_factory.mktemp("seg"), SEG_CONFIG, {})


@pytest.fixture(scope="module")
def depth_rope(tmp_path_factory) -> Exported:
    """Toy depther (DINOv2 linear depth head) on a RoPE backbone (DINOv3 layout)."""
    return _export(tmp_path_factory.mktemp("depth"), DEPTH_CONFIG, ROPE)


@pytest.fixture(scope="module")
def mask2former(tmp_path_factory) -> Exported:
    """Toy Mask2Former segmentor (pyramid neck, deformable pixel decoder, masked attention)."""
    return _export(tmp_path_factory.mktemp("mask2former"), MASK2FORMER_CONFIG, MASK2FORMER_TINY)


@pytest.fixture(scope="module")
def dpt(tmp_path_factory) -> Exported:
    """DINOv2's DPT depth head on a small learned-table register ViT."""
    return _export(tmp_path_factory.mktemp("dpt"), DPT_CONFIG, DPT_TINY)


def _run_onnx(path: Path, images: torch.Tensor) -> np.ndarray:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"images": images.numpy()})[0]


@pytest.mark.parametrize("size", SIZES, ids=[f"{b}x{h}x{w}" for b, h, w in SIZES])
def test_segmentation_logits_match_eager_inference(segmentation, size) -> None:
    images = torch.randn(size[0], 3, *size[1:])
    with torch.no_grad():
        expected = segmentation.model.encode(images).numpy()  # whole-image eager path
    logits = _run_onnx(segmentation.onnx_path, images)
    assert logits.shape == (size[0], 4, *size[1:])
    assert np.abs(logits - expected).max() <= 1e-4
    assert np.abs(expected).max() > 0.5  # the weights give logits far above the tolerance


@pytest.mark.parametrize("size", SIZES, ids=[f"{b}x{h}x{w}" for b, h, w in SIZES])
def test_mask2former_semantic_scores_match_eager_inference(mask2former, size) -> None:
    """The log of the per-pixel class scores (Mask2FormerHead.predict_by_feat, what Segmentor
    predicts from); pooled grids of odd size (19 x 17 -> 10 x 9, 10 x 7 -> 5 x 4) included."""
    images = torch.randn(size[0], 3, *size[1:])
    with torch.no_grad():
        expected = mask2former.model.encode(images).numpy()
    logits = _run_onnx(mask2former.onnx_path, images)
    assert logits.shape == (size[0], 4, *size[1:])
    assert np.abs(logits - expected).max() <= 1e-4
    assert np.abs(np.exp(logits) - np.exp(expected)).max() <= 1e-4  # the scores themselves
    assert expected.std(axis=(2, 3)).min() > 0.05  # the scores vary over the image


# Each depth export and how much its toy depth must vary over the image (weights near the toy
# init keep DPT's output flatter than the linear head's bins).
DEPTH_EXPORTS = {"depth_rope": 1e-2, "dpt": 1e-3}


@pytest.mark.parametrize("size", SIZES, ids=[f"{b}x{h}x{w}" for b, h, w in SIZES])
@pytest.mark.parametrize("export", list(DEPTH_EXPORTS))
def test_depth_matches_eager_inference(export, size, request) -> None:
    """Linear depth head on a RoPE backbone, and DINOv2's DPT head on a learned table."""
    exported = request.getfixturevalue(export)
    images = torch.randn(size[0], 3, *size[1:])
    head = exported.model.decode_head
    with torch.no_grad():
        expected = exported.model.encode(images).clamp(head.min_depth, head.max_depth).numpy()
    depth = _run_onnx(exported.onnx_path, images)
    assert depth.shape == (size[0], 1, *size[1:])
    assert np.abs(depth - expected).max() <= 1e-4 * np.abs(expected).max()
    assert expected.std() > DEPTH_EXPORTS[export]  # the depth varies over the image


def test_dpt_export_traces_without_guard_failures(dpt) -> None:
    """The dynamic axes start at 2 patches + 1 for DPT (export.min_input_side): below that the
    stride-2 reassemble conv gives a 1-cell level, and torch.export logs a constraint violation
    and traces again."""
    assert not dpt.torch_errors, dpt.torch_errors[:1]


def test_tool_reports_the_file_axes_and_check(segmentation) -> None:
    printed = segmentation.printed
    assert f"wrote {segmentation.onnx_path} (ONNX opset 18)" in printed
    assert "images: ['batch', 3, 'height', 'width']" in printed
    assert "logits: ['batch', 4, 'height', 'width']" in printed
    diff = float(printed.split("max abs diff ")[1].split()[0])
    assert diff <= 1e-4


def test_file_records_normalisation_and_output_kind(depth_rope) -> None:
    meta = {p.key: json.loads(p.value) for p in onnx.load(str(depth_rope.onnx_path)).metadata_props}
    assert meta["output_kind"] == "metric_depth"
    assert meta["mean"] == pytest.approx([123.675, 116.28, 103.53])
    assert meta["std"] == pytest.approx([58.395, 57.12, 57.375])
    assert meta["patch_size"] == 8


def test_random_weights_are_refused_unless_the_config_allows_them(tmp_path) -> None:
    cfg = load_config(str(SEG_CONFIG))
    with pytest.raises(ExportError, match="allow_random_weights"):
        load_model(cfg, None)
    cfg.allow_random_weights = True
    assert not load_model(cfg, None).training


def test_instance_segmentation_is_refused_with_the_reason() -> None:
    cfg = load_config(str(REPO / "configs" / "toy_instance_mask2former_vittiny.py"))
    with pytest.raises(ExportError, match="InstanceSegmentor.*top-k"):
        PixelOutputModel(MODELS.build(cfg.model))


def test_mask2former_smallest_side_keeps_two_cells_on_the_pooled_level(tmp_path) -> None:
    """Patch 8, coarsest level at half the grid: 17 pixels = 3 patches = 2 pooled cells."""
    cfg = load_config(str(MASK2FORMER_CONFIG), MASK2FORMER_TINY)
    module = PixelOutputModel(MODELS.build(cfg.model))
    assert module.min_side == 17
    with pytest.raises(ExportError, match="smallest side 17"):
        export_onnx(module, tmp_path / "m.onnx", (16, 64), dynamic=True)
    assert PixelOutputModel(MODELS.build(load_config(str(SEG_CONFIG)).model)).min_side == 1


def test_default_shape_is_the_crop_else_near_512() -> None:
    cfg = load_config(str(SEG_CONFIG))
    assert default_shape(cfg, 8) == (128, 128)
    cfg.model.data_preprocessor.size = None
    assert default_shape(cfg, 14) == (518, 518)
    assert default_shape(cfg, 16) == (512, 512)


def test_metric_depth_is_clamped_to_the_head_range(monkeypatch) -> None:
    """As the Depther clamps its prediction (a linear-bins head never leaves the range; DPT
    heads do)."""
    cfg = load_config(str(DEPTH_CONFIG))
    cfg.allow_random_weights = True
    model = load_model(cfg, None)
    head = model.decode_head
    monkeypatch.setattr(head, "predict", lambda features, metas: torch.full((1, 1, 16, 24), 1e3))
    depth = PixelOutputModel(model)(torch.randn(1, 3, 16, 24))
    assert depth.max() == head.max_depth


def test_an_unwritable_out_is_refused_before_exporting(tmp_path) -> None:
    a_file = tmp_path / "photo.jpg"
    a_file.write_bytes(b"")
    with pytest.raises(ExportError, match=r"cannot write .*photo.jpg/model.onnx.*--out"):
        prepare_output(a_file / "model.onnx")
    assert prepare_output(tmp_path / "new" / "model.onnx").parent.is_dir()
