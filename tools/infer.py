"""Segment your own photos, or predict their depth, with a trained checkpoint.

    python tools/infer.py CONFIG CHECKPOINT INPUT [INPUT ...] [--out-dir DIR]
        [--cfg-options model.test_cfg.flip=True ...] [--threads N]

CHECKPOINT is a run checkpoint from tools/train.py, or released depth weights: a Depth-Anything-V2
.pth or Hugging Face DPT / Depth Anything folder (configs/depth_anything_v2_vit*.py), or a DINOv2
depth head .pth with model.backbone.checkpoint set (see docs/depth.md).

INPUT is an image file or a folder (searched recursively for .jpg/.jpeg/.png/.bmp/.webp). The
config's model decides what is written for each photo, in DIR:
  segmentation  ``<name>_pred.png``: class index per pixel (uint8); ``<name>_overlay.png``.
  depth         ``<name>_depth.png``: depth in millimetres (uint16 PNG, NYU's convention; 0 = no
                prediction; it holds at most 65.535 m, farther depths are stored as 65535), and
                ``<name>_depth_color.png``: the photo next to its coloured depth, key in metres.
  relative      ``<name>_disparity.png``: relative inverse depth of Depth-Anything-V2's relative
                models, stretched per image over 0..65535 (uint16; larger = nearer), and
                ``<name>_disparity_color.png``.
  instances     ``<name>_instances.json``: every kept instance, best first, with ``label``,
                ``class_name``, ``score``, ``bbox_xyxy`` (pixels, end exclusive) and ``mask``
                (COCO compressed RLE: ``pycocotools.mask.decode(mask)`` gives the (H, W) mask);
                ``<name>_instances.png``: the photo next to masks, boxes, names and scores of
                the instances scoring at least 0.3.
Outputs go in the photo's folder relative to its INPUT folder: ``photos/trip/cat.jpg`` ->
``DIR/trip/cat_*``. ``<name>`` is the stem (``cat``); photos whose outputs would share a name keep
their extension (``cat.jpg_*``, ``cat.png_*``), and ``_2``, ``_3``... is added while names still
clash (the same relative path under two INPUT folders). Photos are first turned upright by their
EXIF orientation, as a photo viewer shows them, so predictions and pictures are upright; datasets,
in contrast, use the stored pixels, which their label maps are aligned with. Unreadable files are
skipped with a warning; the exit status is non-zero only when no photo could be read. Files in DIR
ending in one of the suffixes above are outputs of earlier runs, not photos.
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from mmengine.config import DictAction
from mmengine.registry import init_default_scope
from tqdm import tqdm

from dinoreg_dense.datasets import build_pipeline
from dinoreg_dense.datasets.photos import (
    OUTPUT_SUFFIXES,
    UNREADABLE,
    list_photos,
    output_names,
    read_photo,
)
from dinoreg_dense.engine import depth_range_of, save_prediction
from dinoreg_dense.engine.launch import (
    add_threads_argument,
    apply_num_threads,
    load_config,
    run_tool,
)
from dinoreg_dense.engine.model_weights import build_model_with_weights
from dinoreg_dense.engine.prediction_writer import prediction_key
from dinoreg_dense.structures import DenseDataSample


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("config")
    parser.add_argument(
        "checkpoint", help="run checkpoint from tools/train.py, or released depth weights"
    )
    parser.add_argument(
        "inputs", nargs="+", help="image files or folders; photos are turned upright by EXIF"
    )
    parser.add_argument(
        "--out-dir", default="predictions", help="output folder (default: %(default)s)"
    )
    parser.add_argument("--cfg-options", nargs="+", action=DictAction, help="key=value overrides")
    add_threads_argument(parser)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    apply_num_threads(args.threads)
    cfg = load_config(args.config, args.cfg_options)
    init_default_scope(cfg.get("default_scope", "dinoreg_dense"))
    out_dir = Path(args.out_dir)
    try:
        photos = list_photos(args.inputs, out_dir)
    except FileNotFoundError as err:
        raise SystemExit(f"error: {err}") from None
    model, run_meta = build_model_with_weights(cfg, args.checkpoint)
    model.to("cuda" if torch.cuda.is_available() else "cpu").eval()
    meta = run_meta.get("dataset_meta") or {}
    # Inference-only configs (no dataloaders) give their resizing as test_pipeline.
    test_data = cfg.get("test_dataloader")
    pipeline = build_pipeline(test_data.dataset.pipeline if test_data else cfg.test_pipeline)
    names = output_names([relative for _, relative in photos])
    jobs = [(path, name) for (path, _), name in zip(photos, names, strict=True)]
    skipped = []
    for path, name in tqdm(jobs, desc="predicting", unit="img"):
        try:
            image = read_photo(path)
        except UNREADABLE as err:
            tqdm.write(f"warning: skipping '{path}': not a readable image ({err})", file=sys.stderr)
            skipped.append(path)
            continue
        resized = pipeline(image=image)["image"]
        sample = DenseDataSample(metainfo=dict(img_path=str(path), ori_shape=image.shape[:2]))
        tensor = torch.from_numpy(np.array(resized)).permute(2, 0, 1)
        with torch.inference_mode():
            pred = model.test_step(dict(inputs=[tensor], data_samples=[sample]))[0]
        target = out_dir / name
        raw, picture = OUTPUT_SUFFIXES[prediction_key(pred)]
        save_prediction(
            pred,
            target.with_name(target.name + raw),
            target.with_name(target.name + picture),
            image,
            dataset_meta=meta,
            depth_range=depth_range_of(model),
        )
    written = len(photos) - len(skipped)
    report = f"wrote {written} predictions and pictures to {out_dir}"
    if skipped:
        report += f"; skipped {len(skipped)} unreadable file(s) (see the warnings above)"
    if not written:
        raise SystemExit(
            f"no prediction: none of the {len(photos)} files could be read as an image"
        )
    print(report)


if __name__ == "__main__":
    run_tool(main)
