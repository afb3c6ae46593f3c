"""Segment arbitrary images with a trained checkpoint.

    python tools/infer.py CONFIG CHECKPOINT INPUT [INPUT ...] [--out-dir DIR]
        [--cfg-options model.test_cfg.flip=True ...]

INPUT is an image file or a folder (searched recursively for .jpg/.jpeg/.png). For each image
it writes ``<stem>_pred.png`` (class index per pixel) and ``<stem>_overlay.png``.
"""

import argparse
from pathlib import Path

import numpy as np
import torch
from mmengine.config import DictAction
from mmengine.registry import init_default_scope
from PIL import Image
from tqdm import tqdm

from dinoreg_dense.datasets import build_pipeline
from dinoreg_dense.datasets.image_io import read_rgb_image
from dinoreg_dense.engine import check_state_dict_shapes, load_run_checkpoint
from dinoreg_dense.engine.launch import load_config
from dinoreg_dense.registry import MODELS
from dinoreg_dense.structures import SegDataSample
from dinoreg_dense.visualization import save_comparison

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("config")
    parser.add_argument("checkpoint", help="checkpoint written by tools/train.py")
    parser.add_argument("inputs", nargs="+", help="image files or folders")
    parser.add_argument("--out-dir", default="predictions")
    parser.add_argument("--cfg-options", nargs="+", action=DictAction, help="key=value overrides")
    return parser.parse_args()


def list_images(inputs: list[str]) -> list[Path]:
    """Image files named directly or found under folders, sorted; missing paths are errors."""
    images: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            images += sorted(p for p in item.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        elif item.is_file():
            images.append(item)
        else:
            raise SystemExit(f"input {item} does not exist")
    if not images:
        raise SystemExit(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found in {inputs}")
    return images


def main() -> None:
    args = parse_args()
    cfg = load_config(args.config, args.cfg_options)
    init_default_scope(cfg.get("default_scope", "dinoreg_dense"))
    images = list_images(args.inputs)
    checkpoint = load_run_checkpoint(args.checkpoint)
    model = MODELS.build(cfg.model)
    check_state_dict_shapes(model, checkpoint["state_dict"], args.checkpoint)
    model.load_state_dict(checkpoint["state_dict"])
    model.to("cuda" if torch.cuda.is_available() else "cpu").eval()
    meta = checkpoint.get("meta", {}).get("dataset_meta") or {}
    pipeline = build_pipeline(cfg.test_dataloader.dataset.pipeline)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for path in tqdm(images, desc="segmenting", unit="img"):
        image = read_rgb_image(path)
        resized = pipeline(image=image)["image"]
        sample = SegDataSample(metainfo=dict(img_path=str(path), ori_shape=image.shape[:2]))
        tensor = torch.from_numpy(np.array(resized)).permute(2, 0, 1)
        batch = dict(inputs=[tensor], data_samples=[sample])
        with torch.inference_mode():
            pred = model.test_step(batch)[0].pred_sem_seg.numpy().astype(np.uint8)
        Image.fromarray(pred).save(out_dir / f"{path.stem}_pred.png")
        save_comparison(
            out_dir / f"{path.stem}_overlay.png",
            image,
            pred,
            palette=meta.get("palette"),
            class_names=meta.get("classes"),
        )
    print(f"wrote {len(images)} predictions and overlays to {out_dir}")


if __name__ == "__main__":
    main()
