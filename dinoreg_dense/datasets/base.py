"""Task-free base of every dataset: per-sample records -> decode -> check -> transform -> pack.

A subclass lists its samples as records (``dict(img_path=..., <annotation>_path=...)``), declares
which targets its annotations provide and says how to load them; this class decodes the image,
checks the annotations against it, runs them through the albumentations pipeline as targets
aligned with the image, and packs the item contract shared with the models::

    dict(inputs=uint8 tensor (3, H, W) RGB, data_samples=DenseDataSample(gt_<field>=...))

Targets (keys of :meth:`BaseDenseDataset.load_annotations`' result, named as albumentations does):

- ``mask``: (H, W) uint8 class ids -> ``gt_sem_seg`` (H, W) int64;
- ``depth``: (H, W) float32 metres, :data:`INVALID_DEPTH` = no measurement -> ``gt_depth_map``
  (H, W) float32; resized with nearest neighbour like ``mask``, so no value is ever interpolated
  (in particular never across invalid pixels);
- ``bboxes`` (N, 4) float32 pixel ``x0, y0, x1, y1`` with ``labels`` (N,) int64 class ids, and
  optionally ``masks`` (N, H, W) uint8 or bool -> ``gt_instances`` (``InstanceData``). An instance
  whose box leaves the image (a crop) is dropped with its label and mask.
"""

import copy
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import albumentations as A
import numpy as np
import torch
from mmengine.structures import InstanceData
from torch.utils.data import Dataset

from dinoreg_dense.structures import DenseDataSample

from .image_io import read_rgb_image
from .transforms import build_pipeline, seed_pipeline

HELP = (
    "See docs/datasets.md for where to download it and how to lay it out. To try the code without "
    "it, write a small synthetic dataset in the ADE20K layout with "
    "`python tools/make_toy_dataset.py OUT` (dinoreg_dense.datasets.toy.make_toy_ade20k)."
)
TARGET_NAMES = {
    "mask": "label map",
    "depth": "depth map",
    "bboxes": "boxes",
    "masks": "instance masks",
}
"""Targets a dataset may declare, and how errors call them."""
INSTANCE_ID_FIELD = "instance_ids"
"""Label field carried with the boxes through the pipeline: which instances survived."""


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
        FileNotFoundError: no candidate matches; the message shows the expected layout, and when
            a candidate holds some of the ``required`` folders, names the ones it lacks.
    """
    data_root = Path(data_root).expanduser()
    incomplete = []
    for candidate in candidates:
        root = data_root / candidate
        found = [entry for entry in required if (root / entry).is_dir()]
        if len(found) == len(required):
            return root
        if found:
            incomplete.append((root, found))
    if incomplete:
        # the candidate closest to complete is the one the user most likely meant
        root, found = max(incomplete, key=lambda item: len(item[1]))
        missing = " and ".join(f"'{root / entry}'" for entry in required if entry not in found)
        verb = "is" if len(found) == len(required) - 1 else "are"
        raise FileNotFoundError(
            f"{missing} {verb} missing (found {', '.join(f'{entry}/' for entry in found)}): the "
            f"dataset at '{root}' is incomplete. Expected this layout:\n{layout}\n{HELP}"
        )
    raise FileNotFoundError(
        f"dataset not found at '{data_root}'{_absolute(data_root)}. Expected this layout:\n"
        f"{layout}\n{HELP}"
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


def annotation_files(record: dict[str, Any]) -> str:
    """The record's annotation paths (every ``*_path`` entry but ``img_path``), quoted."""
    return " / ".join(
        f"'{value}'" for key, value in record.items() if key.endswith("_path") and key != "img_path"
    )


class BaseDenseDataset(Dataset):
    """Samples of any dense task from per-sample records of files.

    Training (``test_mode=False``): the pipeline transforms the image and every target together
    (the same resize, crop and flip). Testing: it transforms the image only and the annotations
    keep their size on disk; the model resizes its prediction back to ``ori_shape``.

    Subclasses set :attr:`targets` and implement :meth:`load_annotations`; they may override
    :meth:`pack` to add fields.

    Args:
        records: one dict per sample with at least ``img_path``; every entry (paths as str) is
            copied into the sample's metainfo, e.g. ``seg_map_path``, ``depth_map_path``.
        pipeline: transform configs (see ``build_pipeline``).
        test_mode: transform the image only.
        metainfo: dataset-level information (e.g. ``classes``), Runner's ``dataset_meta``.

    Raises:
        ValueError: :attr:`targets` names an unknown target, or ``masks`` without ``bboxes``.
    """

    targets: ClassVar[tuple[str, ...]] = ()
    """Targets the annotations provide, among ``TARGET_NAMES``; ``bboxes`` implies ``labels``."""

    def __init__(
        self,
        records: Sequence[dict[str, Any]],
        pipeline: Sequence[dict],
        test_mode: bool,
        metainfo: dict | None = None,
    ) -> None:
        unknown = set(self.targets) - set(TARGET_NAMES)
        if unknown:
            raise ValueError(
                f"{type(self).__name__}.targets has unknown targets {sorted(unknown)}; "
                f"known: {list(TARGET_NAMES)}"
            )
        if "masks" in self.targets and "bboxes" not in self.targets:
            raise ValueError(
                f"{type(self).__name__}.targets has 'masks' without 'bboxes': instances are "
                "boxes with labels, and optionally masks"
            )
        self.records = [dict(record) for record in records]
        # In test mode the pipeline sees the image only, and albumentations refuses a bbox
        # processor without boxes.
        train = not test_mode
        self.pipeline = build_pipeline(
            pipeline,
            additional_targets={"depth": "mask"} if train and "depth" in self.targets else None,
            bbox_params=(
                A.BboxParams(format="pascal_voc", label_fields=[INSTANCE_ID_FIELD])
                if train and "bboxes" in self.targets
                else None
            ),
        )
        self.test_mode = test_mode
        self._metainfo = dict(metainfo or {})
        self._generator: torch.Generator | None = None
        self._generator_pid: int | None = None

    @property
    def metainfo(self) -> dict:
        """A copy of the dataset-level information: Runner's ``dataset_meta``."""
        return copy.deepcopy(self._metainfo)

    def __len__(self) -> int:
        return len(self.records)

    def load_annotations(self, record: dict[str, Any]) -> dict[str, np.ndarray]:
        """Decode and convert the annotations of one record (subclasses implement this).

        Args:
            record: one entry of ``records``.

        Returns:
            One array per declared target, as described in the module docstring (plus
            ``labels`` (N,) int64 with ``bboxes``), at the image's size on disk.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement load_annotations")

    def __getitem__(self, index: int) -> dict:
        """Sample ``index`` after the pipeline.

        Returns:
            ``pack``'s result: ``dict(inputs=uint8 tensor (3, H, W) RGB,
            data_samples=DenseDataSample)`` with the ground truth of every target and metainfo
            ``ori_shape``, ``img_shape``, ``flip`` (a ``HorizontalFlip`` was applied) and the
            record's entries.
        """
        record = self.records[index]
        image = read_rgb_image(record["img_path"])
        annotations = self.load_annotations(record)
        self.check_annotations(record, image.shape[:2], annotations)
        image, annotations = self.prepare_sample(record, image, annotations)
        ori_shape = (int(image.shape[0]), int(image.shape[1]))
        self._seed_pipeline_from_torch()
        try:
            if self.test_mode:
                out = self.pipeline(image=image)
            else:
                out = self.pipeline(image=image, **self._pipeline_targets(annotations))
        except Exception as err:  # albumentations' errors (ValueError, its own CropSizeError ...)
            # name neither the image nor the setting; the chained error keeps the original.
            raise ValueError(
                f"image '{record['img_path']}' ({image.shape[0]}x{image.shape[1]}) cannot pass "
                f"the {'test' if self.test_mode else 'train'} pipeline: {err}. A crop larger "
                "than the image needs smaller crops (the config's crop_size) or larger images."
            ) from err
        if not self.test_mode:
            annotations = self._transformed_targets(annotations, out)
        image = out["image"]
        metainfo = {
            key: str(value) if isinstance(value, Path) else value for key, value in record.items()
        }
        metainfo.update(
            ori_shape=ori_shape,
            img_shape=(int(image.shape[0]), int(image.shape[1])),
            flip=any(name == "HorizontalFlip" for name, _ in out["applied_transforms"]),
        )
        return self.pack(image, annotations, metainfo)

    def prepare_sample(
        self, record: dict[str, Any], image: np.ndarray, annotations: dict[str, np.ndarray]
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """A fixed, dataset-defined change of the checked image and annotations (default: none).

        Runs in both modes, after :meth:`check_annotations` and before the pipeline, so its
        output is the sample's ``ori_shape`` and the ground truth the metric sees, e.g. KITTI's
        benchmark crop of image and depth alike.

        Args:
            record: the sample's record.
            image: (H, W, 3) uint8 RGB as decoded.
            annotations: ``load_annotations``' result, checked against ``image``.

        Returns:
            (image, annotations), unchanged here.
        """
        return image, annotations

    def check_annotations(
        self, record: dict[str, Any], image_shape: tuple[int, int], annotations: dict
    ) -> None:
        """Raise if the annotations do not fit the image; the message names the files.

        Args:
            record: the sample's record.
            image_shape: (h, w) of the image on disk.
            annotations: ``load_annotations``' result.

        Raises:
            ValueError: a declared target is missing, a map or mask differs in size from the
                image, depth is negative or not finite, or boxes are malformed or leave the image.
        """
        files = annotation_files(record)
        expected = set(self.targets) | ({"labels"} if "bboxes" in self.targets else set())
        if set(annotations) != expected:
            raise ValueError(
                f"{type(self).__name__}.load_annotations returned {sorted(annotations)} for "
                f"{files}; its targets need exactly {sorted(expected)}"
            )
        height, width = image_shape
        for key in ("mask", "depth", "masks"):
            if key in annotations and annotations[key].shape[-2:] != (height, width):
                raise ValueError(
                    f"image '{record['img_path']}' is {(height, width)} but its "
                    f"{TARGET_NAMES[key]} {files} is {annotations[key].shape[-2:]} (h, w); "
                    "they must have the same size."
                )
        depth = annotations.get("depth")
        if depth is not None and not (np.isfinite(depth).all() and (depth >= 0).all()):
            raise ValueError(
                f"depth map {files} has negative or non-finite values: depth is in metres, "
                "with 0 marking pixels without a measurement."
            )
        if "bboxes" in annotations:
            self._check_instances(files, image_shape, annotations)

    def _check_instances(self, files: str, image_shape: tuple[int, int], annotations: dict) -> None:
        height, width = image_shape
        bboxes, labels = annotations["bboxes"], annotations["labels"]
        counts = {len(bboxes), len(labels), len(annotations.get("masks", labels))}
        if bboxes.ndim != 2 or bboxes.shape[1] != 4 or len(counts) != 1:
            raise ValueError(
                f"annotation {files}: boxes {bboxes.shape}, labels {labels.shape} and masks must "
                "describe the same N instances: bboxes (N, 4), labels (N,), masks (N, H, W)"
            )
        x0, y0, x1, y1 = bboxes.T
        bad = (x0 < 0) | (y0 < 0) | (x1 > width) | (y1 > height) | (x1 <= x0) | (y1 <= y0)
        if bad.any():
            raise ValueError(
                f"annotation {files} has boxes outside the {width}x{height} image or empty: "
                f"{bboxes[bad].tolist()}; boxes are pixel x0, y0, x1, y1 with x0 < x1 <= width "
                "and y0 < y1 <= height."
            )

    def _pipeline_targets(self, annotations: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        targets = {key: annotations[key] for key in ("mask", "depth") if key in annotations}
        if "bboxes" in annotations:
            targets["bboxes"] = annotations["bboxes"]
            targets[INSTANCE_ID_FIELD] = np.arange(len(annotations["labels"]))
            # albumentations cannot transform an empty stack of masks: none are passed then.
            if "masks" in annotations and len(annotations["masks"]):
                targets["masks"] = annotations["masks"]
        return targets

    def _transformed_targets(
        self, annotations: dict[str, np.ndarray], out: dict[str, Any]
    ) -> dict[str, np.ndarray]:
        result = {key: out[key] for key in ("mask", "depth") if key in annotations}
        if "bboxes" in annotations:
            keep = np.asarray(out[INSTANCE_ID_FIELD], dtype=np.int64)
            result["bboxes"] = np.asarray(out["bboxes"], dtype=np.float32).reshape(-1, 4)
            result["labels"] = annotations["labels"][keep]
            if "masks" in annotations:
                height, width = out["image"].shape[:2]
                masks = out.get("masks", np.zeros((0, height, width), np.uint8))
                result["masks"] = np.asarray(masks)[keep]
        return result

    def pack(self, image: np.ndarray, annotations: dict[str, np.ndarray], metainfo: dict) -> dict:
        """The item from the transformed image and annotations.

        Args:
            image: (H, W, 3) uint8 RGB.
            annotations: the targets after the pipeline (as loaded in test mode).
            metainfo: the sample's metainfo.

        Returns:
            ``dict(inputs=uint8 tensor (3, H, W), data_samples=DenseDataSample)`` with
            ``gt_sem_seg`` (H, W) int64 from ``mask``, ``gt_depth_map`` (H, W) float32 from
            ``depth`` and ``gt_instances`` (``labels`` (N,) int64, ``bboxes`` (N, 4) float32,
            ``masks`` (N, H, W) bool) from ``bboxes``, ``labels`` and ``masks``.
        """
        sample = DenseDataSample(metainfo=metainfo)
        if "mask" in annotations:
            sample.gt_sem_seg = torch.from_numpy(annotations["mask"].astype(np.int64))
        if "depth" in annotations:
            sample.gt_depth_map = torch.from_numpy(annotations["depth"].astype(np.float32))
        if "bboxes" in annotations:
            instances = InstanceData()
            instances.labels = torch.from_numpy(annotations["labels"].astype(np.int64))
            instances.bboxes = torch.from_numpy(annotations["bboxes"].astype(np.float32))
            if "masks" in annotations:
                instances.masks = torch.from_numpy(annotations["masks"].astype(bool))
            sample.gt_instances = instances
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


def _absolute(path: Path) -> str:
    """`` (= /abs/path)`` for a relative path, so a user sees where it was looked for."""
    return "" if path.is_absolute() else f" (= {path.resolve()})"
