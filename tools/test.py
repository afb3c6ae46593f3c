"""Evaluate a trained checkpoint and optionally save predictions and overlays.

python tools/test.py CONFIG CHECKPOINT [--out DIR] [--show-dir DIR] [--work-dir DIR]
    [--cfg-options model.test_cfg.flip=True ...] [--launcher pytorch] [--threads N]

--out writes one prediction file per image (label / depth PNG, or instance json as tools/infer.py
writes it) and, for COCO AP, the COCO results files DIR/coco_results.{bbox,segm}.json.

CHECKPOINT is a run checkpoint from tools/train.py, or released depth weights: a DINOv2 depth
head .pth (with model.backbone.checkpoint set), a Hugging Face DPT / Depth Anything folder or a
Depth-Anything-V2 .pth (see docs/depth.md).
"""

import argparse
from pathlib import Path

from mmengine.dist import is_main_process

from dinoreg_dense.engine.launch import add_runner_arguments, run_tool, runner_config
from dinoreg_dense.engine.model_weights import resolve_checkpoint
from dinoreg_dense.registry import RUNNERS


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("config", help="config file")
    parser.add_argument(
        "checkpoint", help="run checkpoint from tools/train.py, or released depth weights"
    )
    parser.add_argument(
        "--out", help="folder for predicted label PNGs, instance json and COCO results json"
    )
    parser.add_argument("--show-dir", help="folder for image | prediction | gt overlays")
    add_runner_arguments(parser)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if not Path(args.checkpoint).exists():
        raise SystemExit(f"checkpoint {args.checkpoint} does not exist")
    cfg = runner_config(args)
    run_checkpoint = resolve_checkpoint(cfg, args.checkpoint)
    cfg.load_from = args.checkpoint if run_checkpoint is not None else None
    cfg.resume = False
    if args.out:
        evaluator = cfg.test_evaluator
        for metric in evaluator if isinstance(evaluator, list) else [evaluator]:
            if metric.get("type") == "COCOInstanceMetric":
                metric.outfile_prefix = str(Path(args.out) / "coco_results")
    if args.out or args.show_dir:
        cfg.custom_hooks = list(cfg.get("custom_hooks", [])) + [
            dict(type="PredictionWriterHook", out_dir=args.out, show_dir=args.show_dir)
        ]
    metrics = RUNNERS.build(cfg).test()
    if is_main_process():
        print({k: round(float(v), 2) for k, v in metrics.items()})


if __name__ == "__main__":
    run_tool(main)
