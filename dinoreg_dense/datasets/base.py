"""Base class of the semantic segmentation datasets: (image, label map) file pairs -> samples.

A subclass finds its file pairs in its on-disk layout and says how raw label values map to train
ids; this class decodes, checks, transforms and packs them into the item contract shared with the
models::

    dict(inputs=uint8 tensor (3, H, W) RGB, data_samples=SegDataSample(gt_sem_seg=(H, W) int64))
"""

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from dinoreg_dense.structures import SegDataSample

from .image_io import read_label_map, read_rgb_image
from .transforms import build_pipeline, seed_pipeline

IGNORE_INDEX = 255
HELP = (
    "See docs/datasets.md for where to download it and how to lay it out. To try the code without "
    "it, write a small synthetic dataset in the ADE20K layout with "
    "`python tools/make_toy_dataset.py OUT` (dinoreg_dense.datasets.toy.make_toy_ade20k)."
)


def find_dataset_root(
    data_root: str | Path, candidates: Sequence[str], required: Sequence[str], layout: str
) -> Path:
    """The first of ``data_root / candidate`` that contains all ``required`` entries.

    Args:
        data_root: the folder the user gave.
        candidates: relative paths to try, e.g. ``("ADEChallengeData2016", ".")``.
        required: relative paths that must exist below the dataset root.
        layout: the expected tree, quoted in the error.

    Returns:
        The dataset root.

    Raises:
        FileNotFoundError: no candidate matches; the message shows the expected layout.
    """
    data_root = Path(data_root).expanduser()
    for candidate in candidates:
        root = data_root / candidate
        if all((root / entry).is_dir() for entry in required):
            return root
    raise FileNotFoundError(
        f"dataset not found at '{data_root}'. Expected this layout:\n{layout}\n{HELP}"
    )


def check_pairs_exist(pairs: Sequence[tuple[Path, Path]], missing_label_hint: str = "") -> None:
    """Raise if any image or label map of ``pairs`` is missing, naming the first one.

    Args:
        pairs: (image path, label map path) per sample.
        missing_label_hint: appended to the error for missing label maps.

    Raises:
        FileNotFoundError: an image or its label map does not exist.
    """
    missing_images = [image for image, _ in pairs if not image.is_file()]
    if missing_images:
        raise FileNotFoundError(
            f"image '{missing_images[0]}' is missing ({len(missing_images)} of {len(pairs)} "
            "images of this split are missing). Is the dataset fully extracted?"
        )
    missing = [(image, label) for image, label in pairs if not label.is_file()]
    if missing:
        image, label = missing[0]
        raise FileNotFoundError(
            f"image '{image}' has no annotation: '{label}' does not exist ({len(missing)} of "
            f"{len(pairs)} images lack one). {missing_label_hint}".rstrip()
        )


class BaseSegDataset(Dataset):
    """Semantic segmentation samples from (image, label map) file pairs.

    Training (``test_mode=False``): the pipeline transforms image and label map together.
    Testing: it transforms the image only and ``gt_sem_seg`` keeps the size on disk; the model
    resizes its prediction back to ``ori_shape``.

    Args:
        pairs: (image path, label map path) per sample.
        classes: class names; train ids are their indices.
        palette: one [r, g, b] per class.
        pipeline: transform configs (see ``build_pipeline``).
        test_mode: transform the image only.
        reduce_zero_label: raw label 0 means "unlabelled" (becomes 255) and label k becomes k - 1.
        name: dataset name for error messages.
    """

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
        self.pairs = list(pairs)
        self.classes = tuple(classes)
        self.palette = [list(colour) for colour in palette]
        self.pipeline = build_pipeline(pipeline)
        self.test_mode = test_mode
        self.reduce_zero_label = reduce_zero_label
        self.name = name
        self._generator: torch.Generator | None = None
        self._generator_pid: int | None = None

    @property
    def metainfo(self) -> dict:
        """``dict(classes=tuple of names, palette=list of [r, g, b])``: Runner's dataset_meta."""
        return dict(classes=self.classes, palette=[list(colour) for colour in self.palette])

    @property
    def num_classes(self) -> int:
        """Number of classes; train ids are in [0, num_classes), 255 is ignored."""
        return len(self.classes)

    def __len__(self) -> int:
        return len(self.pairs)

    def load_label(self, path: Path) -> np.ndarray:
        """Read a label map and convert raw values to train ids, checking their range.

        Args:
            path: label map file.

        Returns:
            (H, W) uint8 train ids in [0, num_classes) or 255 (ignore).

        Raises:
            ValueError: a value is neither a train id nor 255; the message names the file.
        """
        raw = read_label_map(path)
        label = raw
        if self.reduce_zero_label:
            # uint8 arithmetic: 0 wraps to 255 (ignore); a raw 255 becomes 254 and is set back.
            label = raw - np.uint8(1)
            label[label == IGNORE_INDEX - 1] = IGNORE_INDEX
        bad = (label >= self.num_classes) & (label != IGNORE_INDEX)
        if bad.any():
            convention = (
                "raw 0 -> 255 (ignore), k -> k - 1 (reduce-zero-label)"
                if self.reduce_zero_label
                else "values on disk are the train ids (no reduce-zero-label)"
            )
            raise ValueError(
                f"label map '{path}' has values outside [0, {self.num_classes}) and 255: raw "
                f"values {np.unique(raw[bad]).tolist()} (train ids "
                f"{np.unique(label[bad]).tolist()}). {self.name} maps {convention} and has "
                f"{self.num_classes} classes: check that these labels belong to this dataset, "
                "the number of classes (`classes`) and the reduce-zero-label convention."
            )
        return label

    def __getitem__(self, index: int) -> dict:
        """Sample ``index`` after the pipeline.

        Returns:
            ``dict(inputs=uint8 tensor (3, H, W) RGB, data_samples=SegDataSample)`` with
            ``gt_sem_seg`` an int64 (H, W) tensor (255 = ignore; at the size on disk in test
            mode) and metainfo ``img_path``, ``seg_map_path``, ``ori_shape``, ``img_shape``,
            ``flip`` (a ``HorizontalFlip`` was applied).
        """
        img_path, seg_map_path = self.pairs[index]
        image = read_rgb_image(img_path)
        label = self.load_label(seg_map_path)
        if label.shape != image.shape[:2]:
            raise ValueError(
                f"image '{img_path}' is {image.shape[:2]} but its label map '{seg_map_path}' is "
                f"{label.shape} (h, w); they must have the same size."
            )
        ori_shape = (int(image.shape[0]), int(image.shape[1]))
        self._seed_pipeline_from_torch()
        if self.test_mode:
            out = self.pipeline(image=image)
        else:
            out = self.pipeline(image=image, mask=label)
            label = out["mask"]
        image = out["image"]
        sample = SegDataSample(
            metainfo=dict(
                img_path=str(img_path),
                seg_map_path=str(seg_map_path),
                ori_shape=ori_shape,
                img_shape=(int(image.shape[0]), int(image.shape[1])),
                flip=any(name == "HorizontalFlip" for name, _ in out["applied_transforms"]),
            )
        )
        sample.gt_sem_seg = torch.from_numpy(label.astype(np.int64))
        inputs = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
        return dict(inputs=inputs, data_samples=sample)

    def _seed_pipeline_from_torch(self) -> None:
        # albumentations keeps its own generators, which neither the DataLoader's per-worker torch
        # seeds nor MMEngine's `randomness.seed` reach: forked workers would all replay the same
        # augmentations. Each process (main or worker) instead gets a generator of this dataset's
        # own, seeded from torch's seed for that process, and every sample draws its seed from it.
        # Owning the generator keeps the augmentation stream independent of whatever else uses
        # torch's global generator (a validation pass in between), so a resumed run that replays
        # the skipped iterations sees exactly the crops of an uninterrupted one.
        if self._generator_pid != os.getpid():
            self._generator = torch.Generator().manual_seed(torch.initial_seed())
            self._generator_pid = os.getpid()
        seed = int(torch.randint(2**62, (), generator=self._generator).item())
        seed_pipeline(self.pipeline, seed)
