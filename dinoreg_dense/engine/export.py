"""ONNX export of a dense model: one normalised image batch in, one per-pixel output out.

What ``tools/export.py`` runs. The exported graph is the model's whole-image inference
(``DenseModel.encode`` and the task's post-processing) without any ``DenseDataSample``:

* input ``images``: (B, 3, H, W) float32, normalised as the model's preprocessor does
  (``(pixel - mean) / std`` on RGB 0-255; the values are stored in the file's metadata);
* output ``logits`` (:class:`~dinoreg_dense.models.Segmentor`): (B, num_classes, H, W) class
  logits at the input size (a Mask2Former head's: log semantic scores), argmax over dim 1 gives
  the classes; ``depth``
  (:class:`~dinoreg_dense.models.Depther`, metric head): (B, 1, H, W) metres clamped to the head's
  range; ``disparity`` (relative head): (B, 1, H, W) relative inverse depth, unclamped.

The input is padded on the right / bottom to a multiple of the patch size and the output cropped
back, as the backbone and head do in eager mode. Test-time flips, scales and sliding windows
(``model.test_cfg``) are not part of the graph. The exporter is ``torch.onnx.export(dynamo=True)``
(docs/export.md says why).
"""

import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.config import Config
from torch import Tensor, nn

from ..heads import DPTHead
from ..models import Depther, Segmentor
from ..models.base import DenseModel
from ..registry import MODELS
from .model_weights import build_model_with_weights

OPSET = 18
INPUT_NAME = "images"


class ExportError(ValueError):
    """A model or setting that cannot be exported; the message says what to change."""


class PixelOutputModel(nn.Module):
    """A task model's whole-image inference as a plain tensor function.

    Args:
        model: a :class:`Segmentor` or :class:`Depther` in eval mode.

    Raises:
        ExportError: any other task model (e.g. the instance segmentor's set of masks).
    """

    def __init__(self, model: DenseModel) -> None:
        super().__init__()
        if not isinstance(model, Segmentor | Depther):
            raise ExportError(
                f"{type(model).__name__} cannot be exported: only Segmentor (class logits, "
                "Mask2Former's semantic scores included) and Depther (depth or disparity) models "
                "have one per-pixel output; instance segmentation (InstanceSegmentor) keeps a "
                "top-k set of scored masks over queries and classes, whose size varies"
            )
        head = model.decode_head
        self.model = model
        self.patch_size: int = model.backbone.patch_size
        self.min_side = min_input_side(model)
        self.output_kind = getattr(head, "output_kind", "metric_depth")
        if isinstance(model, Segmentor):
            self.output_kind = "class_logits"
        self.depth_range = (getattr(head, "min_depth", 0.0), getattr(head, "max_depth", 0.0))
        self.output_name = {
            "class_logits": "logits",
            "metric_depth": "depth",
            "relative_disparity": "disparity",
        }[self.output_kind]
        self.eval()  # inference only: BatchNorm statistics, no dropout

    def forward(self, images: Tensor) -> Tensor:
        """(B, 3, H, W) normalised images -> (B, C, H, W): class logits, depth in metres
        (clamped to the head's range) or relative disparity (see the module docstring)."""
        height, width = images.shape[-2:]
        p = self.patch_size
        # Padded here to a whole patch grid (what the backbone does), written as a multiple of
        # p so that the exporter can prove the backbone's own padding is zero for every size.
        pad = ((width + p - 1) // p * p - width, (height + p - 1) // p * p - height)
        padded = F.pad(images, (0, pad[0], 0, pad[1]))
        # DenseModel.encode without its per-image list of metas, whose length would fix the
        # batch size in the graph; the heads read the first image's shape only.
        features = self.model.extract_feat(padded)
        meta = dict(img_shape=(height, width))
        output = self.model.decode_head.predict(features, [meta])
        if self.output_kind == "metric_depth":
            output = output.clamp(*self.depth_range)
        return output


def min_input_side(model: DenseModel) -> int:
    """Smallest input side (pixels) a dynamic export supports.

    A head with a multi-scale neck (Mask2Former's ``SimpleFeaturePyramid``) max-pools the patch
    grid by ``1 / min(scale_factors)``; ``torch.export`` treats a size of 1 as a special case
    (broadcasting), so the coarsest level needs at least 2 cells: a grid of ``1 / scale + 1``
    patches. DPT's stride-2 reassemble conv needs 3 patches for the same reason. Other heads take
    any side.
    """
    patch = model.backbone.patch_size
    if isinstance(model.decode_head, DPTHead):
        return 2 * patch + 1  # its stride-2 reassemble conv halves the grid: 3 patches -> 2
    scales = getattr(getattr(model.decode_head, "neck", None), "scale_factors", None)
    if not scales or min(scales) >= 1:
        return 1
    return round(1 / min(scales)) * patch + 1


def load_model(cfg: Config, checkpoint: str | Path | None) -> DenseModel:
    """The eval-mode model of ``cfg.model`` with the weights of ``checkpoint``, as
    ``tools/infer.py`` loads them (a run checkpoint, or released weights put into the config).

    Raises:
        ExportError: no checkpoint and the config does not set ``allow_random_weights = True``.
        FileNotFoundError, CheckpointError, ValueError: see :func:`build_model_with_weights`.
    """
    if checkpoint is None and not cfg.get("allow_random_weights", False):
        raise ExportError(
            "no CHECKPOINT: an export with random weights predicts nothing. Pass a run "
            "checkpoint from tools/train.py or released depth weights (docs/export.md); a toy "
            "config may set allow_random_weights = True"
        )
    if checkpoint is None:
        return MODELS.build(cfg.model).eval()
    return build_model_with_weights(cfg, checkpoint)[0].eval()


def prepare_output(path: str | Path) -> Path:
    """Create the folder of the ``.onnx`` file to write, before the (slow) export.

    Raises:
        ExportError: the folder cannot be created or written (the message names the path).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ExportError(
            f"cannot write {path}: its folder cannot be created ({err.strerror}: "
            f"{err.filename}); choose another --out"
        ) from None
    if not os.access(path.parent, os.W_OK):
        raise ExportError(
            f"cannot write {path}: {path.parent} is not writable; choose another --out"
        )
    return path


def default_shape(cfg: Config, patch_size: int) -> tuple[int, int]:
    """(H, W) of a fixed-shape export: the config's test window (``model.test_cfg.crop_size``),
    else its training crop (``model.data_preprocessor.size``), else the multiple of the patch
    size nearest 512 (518 for patch 14, 512 for patch 16)."""
    model = cfg.model
    for size in (
        model.get("test_cfg", {}).get("crop_size"),
        model.get("data_preprocessor", {}).get("size"),
    ):
        if size is not None:
            return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    side = round(512 / patch_size) * patch_size
    return side, side


@dataclass
class ExportedFile:
    """What :func:`export_onnx` wrote: the file, the opset and the named input / output shapes
    (an int per fixed axis, a name per dynamic one)."""

    path: Path
    opset: int
    input_name: str
    input_shape: tuple[int | str, ...]
    output_name: str
    output_shape: tuple[int | str, ...]


def export_onnx(
    module: PixelOutputModel,
    path: str | Path,
    shape: tuple[int, int],
    dynamic: bool,
    metadata: dict[str, Any] | None = None,
) -> ExportedFile:
    """Export ``module`` to ONNX with ``torch.onnx.export(dynamo=True)``.

    Args:
        module: the model to export, in eval mode.
        path: the ``.onnx`` file to write (its folder is created).
        shape: (H, W) of the example input; the fixed input size when not ``dynamic``.
        dynamic: batch, height and width dynamic (any size, not only multiples of the patch);
            otherwise the input is (1, 3, H, W).
        metadata: extra ``metadata_props`` (values written as JSON), e.g. mean and std.

    Raises:
        ExportError: the exporter failed; the message carries its reason.
    """
    _require("onnx", "onnxscript")
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Batch 2: the exporter fixes an axis whose example size is 1.
    example = torch.randn(2 if dynamic else 1, 3, *shape)
    dynamic_shapes = None
    if dynamic:
        axes = {0: "batch", 2: "height", 3: "width"}
        if min(shape) < module.min_side:
            raise ExportError(
                f"the example size {shape} is below the model's smallest side "
                f"{module.min_side}; pass a larger --shape"
            )
        # The model's smallest side as the axes' minimum: without it torch.export stops at the
        # guard that needs it and torch.onnx.export retries with its own fixes (for Mask2Former
        # sizes of 16 k only; caught below).
        minimum = {"batch": 1, "height": module.min_side, "width": module.min_side}
        dims = {i: torch.export.Dim(name, min=minimum[name]) for i, name in axes.items()}
        dynamic_shapes = {INPUT_NAME: dims}
    weight_bytes = sum(p.numel() * p.element_size() for p in module.parameters())
    try:
        with torch.no_grad():
            program = torch.onnx.export(
                module,
                (example,),
                str(path),
                dynamo=True,
                opset_version=OPSET,
                input_names=[INPUT_NAME],
                output_names=[module.output_name],
                dynamic_shapes=dynamic_shapes,
                external_data=weight_bytes > 1_800_000_000,  # protobuf's 2 GB limit
                verbose=False,
            )
    except Exception as err:  # the exporter raises many types; name the model and the cause
        raise ExportError(
            f"torch.onnx.export of {type(module.model).__name__} failed: {err}"
        ) from err
    restricted = _restricted_axes(program.exported_program) if dynamic else []
    if restricted:
        # torch.onnx.export retries with torch.export's suggested fixes when a guard on the
        # sizes fails (e.g. height = 16 * k); the file keeps the axis names but is wrong, or
        # fails, at every other size.
        path.unlink()
        raise ExportError(
            f"torch.onnx.export of {type(module.model).__name__} traced the input only for "
            f"sizes {restricted}: some size arithmetic of the model is not traceable for every "
            "size (a guard torch.export cannot prove); nothing was written"
        )
    proto = onnx.load(str(path), load_external_data=False)
    if dynamic:  # the exporter names the output axes by formulas equal to the input's sizes
        for index, name in axes.items():
            proto.graph.output[0].type.tensor_type.shape.dim[index].dim_param = name
    for key, value in {"output_kind": module.output_kind, **(metadata or {})}.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)
    onnx.save(proto, str(path))
    return ExportedFile(
        path,
        OPSET,
        INPUT_NAME,
        _dims(proto.graph.input[0]),
        module.output_name,
        _dims(proto.graph.output[0]),
    )


def _restricted_axes(program: torch.export.ExportedProgram) -> list[str]:
    """The traced input's sizes on the dynamic axes (0, 2, 3) that are not free symbols: a
    constant or a formula such as ``16*s1``, as the exporter's retry with suggested fixes
    leaves them."""
    name = program.graph_signature.user_inputs[0]
    node = next(node for node in program.graph.nodes if node.name == name)
    sizes = [node.meta["val"].shape[axis] for axis in (0, 2, 3)]
    return [
        str(size)
        for size in sizes
        if not (isinstance(size, torch.SymInt) and size.node.expr.is_Symbol)
    ]


def _require(*packages: str) -> None:
    """Raise :class:`ExportError` naming the install command when a package is missing."""
    missing = [name for name in packages if importlib.util.find_spec(name) is None]
    if missing:
        raise ExportError(
            f"ONNX export needs {', '.join(missing)}: pip install -e '.[export]' (pyproject.toml)"
        )


def _dims(value: Any) -> tuple[int | str, ...]:
    """An ONNX value's shape: ints for fixed axes, names for dynamic ones."""
    return tuple(d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim)


def onnxruntime_difference(
    path: str | Path,
    module: PixelOutputModel,
    shape: tuple[int, int],
    batch: int = 1,
    seed: int = 0,
) -> tuple[float, float]:
    """Run the exported file with onnxruntime (CPU) and ``module`` on one random normal input of
    (batch, 3, *shape); return (max |onnx - torch|, that divided by max |torch|)."""
    _require("onnxruntime")
    import onnxruntime

    images = torch.randn(batch, 3, *shape, generator=torch.Generator().manual_seed(seed))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    output = session.run(None, {INPUT_NAME: images.numpy()})[0]
    with torch.no_grad():
        expected = module(images).numpy()
    if output.shape != expected.shape:
        raise ExportError(f"{path}: onnxruntime gave {output.shape}, PyTorch {expected.shape}")
    diff = float(np.abs(output - expected).max())
    return diff, diff / max(float(np.abs(expected).max()), 1e-12)
