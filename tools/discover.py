"""Unsupervised object discovery (LOST or TokenCut) on VOC07 / VOC12 / COCO20k, scored by CorLoc.

    python tools/discover.py CONFIG [--checkpoint PATH] [--method lost|tokencut] [--out DIR]
        [--data-root DIR] [--vis N] [--cfg-options KEY=VALUE ...] [--threads N]

CONFIG is a discovery config (configs/voc07_lost_vits_reg.py ...; schema in docs/discovery.md).
--checkpoint replaces backbone.checkpoint; a real config without any checkpoint is refused. DIR
(default work_dirs/discovery/<config>_<method>) receives:
  predictions.json        per image: id, file, box [x0, y0, x1, y1] (pixels, end exclusive),
                          seed [row, col] patch, ground-truth boxes, best IoU, hit
  corloc.json             CorLoc in percent, hits, images, and the run's settings
  detections_coco.json    one box per image in COCO's result format (class-agnostic)
  ground_truth_coco.json  the ground truth in COCO format, for pycocotools' loadRes / COCOeval
  vis/<image>.png         with --vis N: the first N images (boxes and seed, mask, scores)
"""

import argparse
from pathlib import Path

import torch
from mmengine.config import DictAction

from dinoreg_dense.engine.discover import (
    CONFIG_KEYS,
    METHODS,
    DiscoverySettings,
    as_image,
    build_backbone,
    build_dataset,
    discover,
    score_corloc,
    write_outputs,
)
from dinoreg_dense.engine.launch import (
    add_threads_argument,
    apply_num_threads,
    backbone_options_are,
    load_config,
    run_tool,
)
from dinoreg_dense.visualization.discovery import save_discovery_picture


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("config")
    parser.add_argument("--checkpoint", help="backbone weights (any supported format)")
    parser.add_argument("--method", choices=sorted(METHODS), help="overrides discovery.method")
    parser.add_argument("--out", help="output folder")
    parser.add_argument("--data-root", help="overrides dataset.data_root")
    parser.add_argument("--vis", type=int, default=0, metavar="N", help="pictures of N images")
    parser.add_argument("--cfg-options", nargs="+", action=DictAction, help="key=value overrides")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_threads_argument(parser)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    apply_num_threads(args.threads)
    cfg = load_config(args.config, args.cfg_options, top_keys=CONFIG_KEYS)
    settings = DiscoverySettings.from_config(cfg, args.method)
    out_dir = Path(
        args.out or Path("work_dirs/discovery") / f"{Path(args.config).stem}_{settings.method}"
    )
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dataset = build_dataset(cfg, args.data_root)
    with backbone_options_are(
        "In discovery configs the backbone is the top-level 'backbone': model.backbone.arch is "
        "backbone.arch here (--cfg-options backbone.arch=None)."
    ):
        backbone = build_backbone(cfg, args.checkpoint).to(device)
    checkpoint = args.checkpoint or cfg.backbone.get("checkpoint")
    if checkpoint is None:
        print(
            "WARNING: the backbone has RANDOM weights (allow_random_weights=True): the boxes "
            "and CorLoc say nothing about any pretrained model."
        )
    print(
        f"{settings.method} on {len(dataset)} images, {backbone.describe()}, features "
        f"'{settings.features}', input '{settings.mode}', on {device}"
    )
    records, kept = discover(
        backbone, dataset, settings, keep=args.vis, device=device, progress=not args.no_progress
    )
    scores = score_corloc(records)
    run = dict(
        config=args.config,
        method=settings.method,
        features=settings.features,
        options=settings.options,
        input_mode=settings.mode,
        checkpoint=None if checkpoint is None else str(checkpoint),
        dataset=dataset.metainfo.get("name", type(dataset).__name__),
    )
    paths = write_outputs(out_dir, records, scores, run)
    for index, found in kept.items():
        record = records[index]
        save_discovery_picture(
            out_dir / "vis" / f"{Path(record['file']).stem}.png",
            as_image(dataset[index]),
            record["box"],
            tuple(record["seed"]),
            found.mask,
            found.scores,
            record["gt_boxes"],
            backbone.patch_size,
        )
    print(f"CorLoc {scores['corloc']:.2f} ({scores['hits']}/{scores['images']} images)")
    print(
        f"wrote {', '.join(str(p) for p in paths.values())}"
        + (f" and {len(kept)} pictures in {out_dir / 'vis'}" if kept else "")
    )


if __name__ == "__main__":
    run_tool(main)
