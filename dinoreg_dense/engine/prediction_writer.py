"""Hook writing test predictions as files (label / depth PNGs) and side-by-side pictures."""

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from mmengine.hooks import Hook
from mmengine.runner import Runner
from PIL import Image

from ..registry import HOOKS
from ..structures import DenseDataSample


@HOOKS.register_module()
class PredictionWriterHook(Hook):
    """After every test batch, save each image's prediction, for segmentation or depth.

    Args:
        out_dir: if set, ``<stem>.png`` holding the predicted class index per pixel (uint8, the
            dataset's own label convention is not re-applied), or the predicted depth in
            millimetres (uint16, 0 = none, as NYU stores depth).
        show_dir: if set, ``<stem>.png`` showing image | prediction | ground truth: class
            overlays with a legend, or coloured depth with a key in metres.
        alpha: overlay opacity (segmentation).
    """

    priority = "LOW"

    def __init__(
        self, out_dir: str | None = None, show_dir: str | None = None, alpha: float = 0.5
    ) -> None:
        self.out_dir = Path(out_dir) if out_dir else None
        self.show_dir = Path(show_dir) if show_dir else None
        self.alpha = alpha

    def after_test_iter(
        self,
        runner: Runner,
        batch_idx: int,
        data_batch: dict | None = None,
        outputs: Sequence[DenseDataSample] | None = None,
    ) -> None:
        """Write the files for every sample of the batch."""
        from ..visualization import save_comparison

        meta = runner.test_evaluator.dataset_meta or {}
        for sample in outputs or ():
            stem = Path(sample.metainfo.get("img_path", f"{batch_idx:06d}")).stem
            if "pred_depth_map" in sample:
                self._write_depth(runner, sample, stem)
                continue
            pred = sample.pred_sem_seg.cpu().numpy().astype(np.uint8)
            if self.out_dir is not None:
                self.out_dir.mkdir(parents=True, exist_ok=True)
                Image.fromarray(pred).save(self.out_dir / f"{stem}.png")
            if self.show_dir is not None:
                self.show_dir.mkdir(parents=True, exist_ok=True)
                image = np.asarray(Image.open(sample.metainfo["img_path"]).convert("RGB"))
                gt = sample.gt_sem_seg.cpu().numpy() if "gt_sem_seg" in sample else None
                save_comparison(
                    self.show_dir / f"{stem}.png",
                    image,
                    pred,
                    gt=gt,
                    palette=meta.get("palette"),
                    class_names=meta.get("classes"),
                    alpha=self.alpha,
                )

    def _write_depth(self, runner: Runner, sample: DenseDataSample, stem: str) -> None:
        from ..visualization import save_depth_comparison

        pred = sample.pred_depth_map.cpu().numpy()
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            millimetres = np.clip(np.round(pred * 1000), 0, np.iinfo(np.uint16).max)
            Image.fromarray(millimetres.astype(np.uint16)).save(self.out_dir / f"{stem}.png")
        if self.show_dir is not None:
            model = runner.model.module if hasattr(runner.model, "module") else runner.model
            head = model.decode_head
            image = np.asarray(Image.open(sample.metainfo["img_path"]).convert("RGB"))
            gt = sample.gt_depth_map.cpu().numpy() if "gt_depth_map" in sample else None
            save_depth_comparison(
                self.show_dir / f"{stem}.png", image, pred, head.min_depth, head.max_depth, gt=gt
            )
