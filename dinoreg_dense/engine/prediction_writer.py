"""Hook writing test predictions as label PNGs and as side-by-side overlays."""

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from mmengine.hooks import Hook
from mmengine.runner import Runner
from PIL import Image

from ..registry import HOOKS
from ..structures import SegDataSample


@HOOKS.register_module()
class SegPredictionWriterHook(Hook):
    """After every test batch, save each image's prediction.

    Args:
        out_dir: if set, ``<stem>.png`` holding the predicted class index per pixel (uint8, the
            dataset's own label convention is not re-applied).
        show_dir: if set, ``<stem>.png`` showing image | prediction | ground truth overlays.
        alpha: overlay opacity.
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
        outputs: Sequence[SegDataSample] | None = None,
    ) -> None:
        """Write the files for every sample of the batch."""
        from ..visualization import save_comparison

        meta = runner.test_evaluator.dataset_meta or {}
        for sample in outputs or ():
            stem = Path(sample.metainfo.get("img_path", f"{batch_idx:06d}")).stem
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
