"""Base class of the semantic segmentation datasets: (image, label map) file pairs -> samples.

A subclass finds its file pairs in its on-disk layout and says how raw label values map to train
ids; :class:`BaseDenseDataset` decodes, checks, transforms and packs them::

    dict(inputs=uint8 tensor (3, H, W) RGB, data_samples=SegDataSample(gt_sem_seg=(H, W) int64))
"""

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from dinoreg_dense.structures import IGNORE_INDEX

from .base import BaseDenseDataset
from .image_io import read_label_map


class BaseSegDataset(BaseDenseDataset):
    """Semantic segmentation samples from (image, label map) file pairs.

    Training (``test_mode=False``): the pipeline transforms image and label map together.
    Testing: it transforms the image only and ``gt_sem_seg`` keeps the size on disk; the model
    resizes its prediction back to ``ori_shape``. Records are
    ``dict(img_path=..., seg_map_path=...)``.

    Args:
        pairs: (image path, label map path) per sample.
        classes: class names; train ids are their indices.
        palette: one [r, g, b] per class.
        pipeline: transform configs (see ``build_pipeline``).
        test_mode: transform the image only.
        reduce_zero_label: raw label 0 means "unlabelled" (becomes ``IGNORE_INDEX``) and label k
            becomes k - 1.
        name: dataset name for error messages.
    """

    targets: ClassVar[tuple[str, ...]] = ("mask",)

    def __init__(
        self,
        pairs: Sequence[tuple[Path, Path]],
        classes: Sequence[str],
        palette: Sequence[Sequence[int]],
        pipeline: Sequence[dict],
        test_mode: bool,
        reduce_zero_label: bool,
        name: str,
    ) -> None:
        if len(palette) != len(classes):
            raise ValueError(f"{len(classes)} classes but {len(palette)} palette colours")
        self.classes = tuple(classes)
        self.palette = [list(colour) for colour in palette]
        self.reduce_zero_label = reduce_zero_label
        self.name = name
        super().__init__(
            [dict(img_path=image, seg_map_path=label) for image, label in pairs],
            pipeline=pipeline,
            test_mode=test_mode,
            metainfo=dict(classes=self.classes, palette=self.palette),
        )

    @property
    def pairs(self) -> list[tuple[Path, Path]]:
        """(image path, label map path) per sample."""
        return [(record["img_path"], record["seg_map_path"]) for record in self.records]

    @property
    def num_classes(self) -> int:
        """Number of classes; train ids are in [0, num_classes), ``IGNORE_INDEX`` is ignored."""
        return len(self.classes)

    def load_annotations(self, record: dict[str, Any]) -> dict[str, np.ndarray]:
        """``dict(mask=(H, W) uint8 train ids)`` of the record's ``seg_map_path``."""
        return dict(mask=self.load_label(record["seg_map_path"]))

    def load_label(self, path: Path) -> np.ndarray:
        """Read a label map and convert raw values to train ids, checking their range.

        Args:
            path: label map file.

        Returns:
            (H, W) uint8 train ids in [0, num_classes) or ``IGNORE_INDEX``.

        Raises:
            ValueError: a value is neither a train id nor ``IGNORE_INDEX``; the message names
                the file.
        """
        raw = read_label_map(path)
        label = raw
        if self.reduce_zero_label:
            label = raw - np.uint8(1)
            # raw 0 is "unlabelled"; a raw ignore label stays ignored rather than shifting.
            label[(raw == 0) | (raw == IGNORE_INDEX)] = IGNORE_INDEX
        bad = (label >= self.num_classes) & (label != IGNORE_INDEX)
        if bad.any():
            convention = (
                f"raw 0 -> {IGNORE_INDEX} (ignore), k -> k - 1 (reduce-zero-label)"
                if self.reduce_zero_label
                else "values on disk are the train ids (no reduce-zero-label)"
            )
            raise ValueError(
                f"label map '{path}' has values outside [0, {self.num_classes}) and "
                f"{IGNORE_INDEX}: raw values {np.unique(raw[bad]).tolist()} (train ids "
                f"{np.unique(label[bad]).tolist()}). {self.name} maps {convention} and has "
                f"{self.num_classes} classes: check that these labels belong to this dataset, "
                "the number of classes (`classes`) and the reduce-zero-label convention."
            )
        return label
