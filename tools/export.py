"""Export a segmentation or depth model to ONNX, and check it against PyTorch with onnxruntime.

    python tools/export.py CONFIG [CHECKPOINT] --format onnx [--dynamic] [--shape H W]
        [--out FILE] [--cfg-options key=value ...] [--threads N]

CHECKPOINT is a run checkpoint from tools/train.py, or released depth weights (as tools/infer.py
takes them). Without it the config must set ``allow_random_weights = True`` (toy configs for
tests). The file has one input ``images``: (B, 3, H, W) float32 RGB normalised as the config's
preprocessor does ((pixel - mean) / std, 0-255 units; both are in the file's metadata), and one
output at the input size: ``logits`` (B, classes, H, W) for segmentation, ``depth`` (B, 1, H, W)
in metres (clamped to the head's range) or ``disparity`` (B, 1, H, W) for relative depth heads.
--dynamic makes batch, height and width dynamic (any size); otherwise the input is
(1, 3, H, W) with H, W from --shape (default: the config's test window or training crop, else
the multiple of the patch size nearest 512). The file goes to --out, else next to CHECKPOINT
(``<checkpoint>.onnx``), else ``work_dirs/<config>/<config>.onnx``. Mask2Former exports its
semantic output (log scores); instance segmentation (InstanceSegmentor) is refused. See
docs/export.md.
"""

import argparse
from pathlib import Path

from mmengine.config import DictAction
from mmengine.registry import init_default_scope

from dinoreg_dense.engine.cfg_options import RUNNER_KEYS
from dinoreg_dense.engine.export import (
    PixelOutputModel,
    default_shape,
    export_onnx,
    load_model,
    onnxruntime_difference,
    prepare_output,
)
from dinoreg_dense.engine.launch import (
    add_threads_argument,
    apply_num_threads,
    load_config,
    run_tool,
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("config")
    parser.add_argument(
        "checkpoint",
        nargs="?",
        help="run checkpoint from tools/train.py, or released depth weights",
    )
    parser.add_argument("--format", choices=["onnx"], required=True, help="export format")
    parser.add_argument("--dynamic", action="store_true", help="dynamic batch, height and width")
    parser.add_argument("--shape", type=int, nargs=2, metavar=("H", "W"), help="input size")
    parser.add_argument("--out", help="output file (default: next to CHECKPOINT)")
    parser.add_argument("--cfg-options", nargs="+", action=DictAction, help="key=value overrides")
    add_threads_argument(parser)
    return parser.parse_args()


def output_path(args: argparse.Namespace) -> Path:
    """--out, else ``<checkpoint>.onnx`` beside it, else ``work_dirs/<config>/<config>.onnx``."""
    if args.out:
        return Path(args.out)
    if args.checkpoint:
        checkpoint = Path(args.checkpoint.rstrip("/"))
        return checkpoint.with_name(checkpoint.stem + ".onnx")
    stem = Path(args.config).stem
    return Path("work_dirs") / stem / f"{stem}.onnx"


def main() -> None:
    args = parse_args()
    apply_num_threads(args.threads)
    cfg = load_config(
        args.config, args.cfg_options, top_keys=RUNNER_KEYS | {"allow_random_weights"}
    )
    out = prepare_output(output_path(args))  # before the slow part: a bad --out fails now
    init_default_scope(cfg.get("default_scope", "dinoreg_dense"))
    model = load_model(cfg, args.checkpoint)
    module = PixelOutputModel(model)
    shape = tuple(args.shape) if args.shape else default_shape(cfg, module.patch_size)
    if any(side < 1 for side in shape):
        raise SystemExit(f"--shape {shape[0]} {shape[1]}: sides must be positive")
    test_cfg = model.test_cfg
    if test_cfg["mode"] != "whole" or test_cfg["flip"] or test_cfg["scales"] != (1.0,):
        print(
            "note: the export is one whole-image view; model.test_cfg's sliding windows, flip "
            "and scales are not part of the graph"
        )
    metadata = dict(
        mean=model.data_preprocessor.mean.flatten().tolist(),
        std=model.data_preprocessor.std.flatten().tolist(),
        patch_size=module.patch_size,
        config=args.config,
        checkpoint=args.checkpoint,
    )
    print(
        f"exporting {type(model).__name__} ({model.backbone.describe()}) at {shape[0]}x{shape[1]}"
        f"{', dynamic batch / height / width' if args.dynamic else ''} with torch.onnx (dynamo); "
        "this takes 10-60 s on a CPU (about a minute with a Mask2Former head)"
    )
    written = export_onnx(module, out, shape, args.dynamic, metadata)
    print(f"wrote {written.path} (ONNX opset {written.opset})")
    print(f"  input  {written.input_name}: {list(written.input_shape)} float32, normalised")
    print(f"  output {written.output_name}: {list(written.output_shape)} float32")
    diff, relative = onnxruntime_difference(written.path, module, shape)
    print(
        f"check: onnxruntime vs PyTorch on a random (1, 3, {shape[0]}, {shape[1]}) input: max abs "
        f"diff {diff:.3g} ({relative:.3g} of the largest output)"
    )


if __name__ == "__main__":
    run_tool(main)
