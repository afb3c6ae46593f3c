"""Object discovery over a dataset: backbone -> patch features -> LOST / TokenCut -> boxes, CorLoc.

What ``tools/discover.py`` runs. Input as in LOST (valeoai/LOST ``main_lost.py``): the image at its
stored size (no resize), ImageNet normalisation, then either padded with zeros (after
normalisation, as LOST does; the backbone pads) or cropped at the top left to a multiple of the
patch size. Images of one size are batched through the backbone (``inputs.batch_size``); the
discovery step runs per image.

A discovery config is not an MMEngine training config; it has four dicts::

    backbone = dict(type="RegisterViT", arch="vits14_reg4", checkpoint=None)   # MODELS.build
    dataset = dict(type="VOCBoxesDataset", data_root="data/VOCdevkit", year=2007)  # DATASETS
    discovery = dict(
        method="lost",            # or "tokencut"; --method overrides it
        features="k",             # last block's keys ("k"), queries ("q") or values ("v")
        lost=dict(k_patches=100, similarity_bias=0.0),   # keyword arguments of lost()
        tokencut=dict(tau=0.2, eps=1e-5),                # keyword arguments of tokencut()
    )
    inputs = dict(mode="pad", batch_size=1, num_workers=2)   # "pad" or "crop"

and optionally ``allow_random_weights = True`` (toy configs only): without it a backbone without
a checkpoint is refused, since discovery with random weights gives a meaningless CorLoc. These
five are :data:`CONFIG_KEYS`, the keys ``--cfg-options`` may override.
"""

import inspect
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from mmengine.config import Config
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from ..datasets.normalization import imagenet_normalise
from ..discovery import Discovery, discovery_features, lost, lost_batch, tokencut
from ..evaluation.corloc import CorLocMetric, best_iou
from ..registry import DATASETS, MODELS

METHODS: dict[str, Callable[..., Discovery]] = {"lost": lost, "tokencut": tokencut}
CONFIG_KEYS = ("backbone", "dataset", "discovery", "inputs", "allow_random_weights")
INPUT_MODES = ("pad", "crop")
FEATURES = ("k", "q", "v")


@dataclass
class DiscoverySettings:
    """The ``discovery`` and ``inputs`` sections of a config, checked.

    Attributes:
        method: ``"lost"`` or ``"tokencut"``.
        features: ``"k"``, ``"q"`` or ``"v"`` (see :func:`discovery_features`).
        options: keyword arguments of the method's function.
        mode: ``"pad"`` or ``"crop"``.
        batch_size: images of one size per backbone forward.
        num_workers: data-loader processes decoding images.
    """

    method: str
    features: str
    options: dict[str, Any]
    mode: str = "pad"
    batch_size: int = 1
    num_workers: int = 0

    @classmethod
    def from_config(cls, cfg: Config, method: str | None = None) -> "DiscoverySettings":
        """Read and check ``cfg.discovery`` / ``cfg.inputs``; ``method`` overrides the config's.

        Raises:
            ValueError: an unknown method, feature, input mode or method option (named), or a
                batch size below 1.
        """
        section = cfg.get("discovery", {})
        method = method or section.get("method", "lost")
        if method not in METHODS:
            raise ValueError(f"discovery.method={method!r}: choose from {sorted(METHODS)}")
        features = section.get("features", "k")
        if features not in FEATURES:
            raise ValueError(f"discovery.features={features!r}: choose from {list(FEATURES)}")
        options = dict(section.get(method, {}))
        accepted = set(inspect.signature(METHODS[method]).parameters) - {
            "features",
            "patch_size",
            "image_size",
        }
        unknown = sorted(set(options) - accepted)
        if unknown:
            raise ValueError(
                f"discovery.{method} has unknown options {unknown}; {method}() takes "
                f"{sorted(accepted)}"
            )
        inputs = cfg.get("inputs", {})
        mode = inputs.get("mode", "pad")
        if mode not in INPUT_MODES:
            raise ValueError(f"inputs.mode={mode!r}: choose from {list(INPUT_MODES)}")
        batch_size = int(inputs.get("batch_size", 1))
        if batch_size < 1:
            raise ValueError(f"inputs.batch_size={batch_size}: expected at least 1")
        return cls(method, features, options, mode, batch_size, int(inputs.get("num_workers", 0)))

    def run(
        self, features: Tensor, patch_size: int, image_size: tuple[int, int]
    ) -> list[Discovery]:
        """The method on a batch of (B, h, w, C) features of images of one ``image_size``: LOST
        as one batched similarity product (:func:`lost_batch`), TokenCut image by image."""
        if self.method == "lost":
            sizes = [image_size] * len(features)
            return lost_batch(features, patch_size, sizes, **self.options)
        method = partial(METHODS[self.method], **self.options)
        return [method(item, patch_size, image_size) for item in features]


def build_backbone(cfg: Config, checkpoint: str | None = None) -> torch.nn.Module:
    """The frozen backbone of ``cfg.backbone``, ``checkpoint`` replacing the config's.

    Raises:
        ValueError: no checkpoint anywhere and the config does not set
            ``allow_random_weights = True``.
    """
    backbone_cfg = dict(cfg.backbone)
    if checkpoint is not None:
        backbone_cfg["checkpoint"] = checkpoint
    if backbone_cfg.get("checkpoint") is None and not cfg.get("allow_random_weights", False):
        raise ValueError(
            "no checkpoint: object discovery with random weights finds nothing. Pass --checkpoint "
            "<file or HF folder> (e.g. dinov2_vits14_reg4_pretrain.pth; see docs/discovery.md) "
            "or set backbone.checkpoint in the config."
        )
    return MODELS.build({**backbone_cfg, "frozen": True})


def fit_to_patches(images: Tensor, patch_size: int, mode: str) -> Tensor:
    """Images the backbone may take: unchanged for ``"pad"`` (the backbone pads the bottom and
    right with zeros), cropped at the top left to a multiple of ``patch_size`` for ``"crop"``.

    Args:
        images: (B, 3, H, W).

    Raises:
        ValueError: ``"crop"`` of an image smaller than one patch.
    """
    if mode == "pad":
        return images
    height, width = images.shape[-2:]
    cropped = (height // patch_size * patch_size, width // patch_size * patch_size)
    if not all(cropped):
        raise ValueError(f"inputs.mode='crop': a {height}x{width} image has no whole patch")
    return images[..., : cropped[0], : cropped[1]]


def size_batches(sizes: Sequence[tuple[int, int]], batch_size: int) -> list[list[int]]:
    """Indices grouped by image size, at most ``batch_size`` per group, in dataset order of each
    size's first image (a size's later images join its open group)."""
    batches: list[list[int]] = []
    open_batch: dict[tuple[int, int], list[int]] = {}
    for index, size in enumerate(sizes):
        batch = open_batch.get(tuple(size))
        if batch is None or len(batch) == batch_size:
            batch = open_batch[tuple(size)] = []
            batches.append(batch)
        batch.append(index)
    return batches


class _Indexed(Dataset):
    """The dataset's items with their ``index`` added."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        return dict(self.dataset[index], index=index)


def _same_size_groups(items: list[dict]) -> Iterator[list[dict]]:
    """Split a loader batch into runs of equal image size (the stated sizes may be wrong)."""
    groups: dict[tuple[int, ...], list[dict]] = {}
    for item in items:
        groups.setdefault(tuple(item["inputs"].shape), []).append(item)
    yield from groups.values()


def discover(
    backbone: torch.nn.Module,
    dataset: Dataset,
    settings: DiscoverySettings,
    keep: int = 0,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> tuple[list[dict[str, Any]], dict[int, Discovery]]:
    """Run discovery on every image of a box dataset.

    Args:
        backbone: a :class:`~dinoreg_dense.backbones.RegisterViT` (frozen).
        dataset: items ``dict(inputs=uint8 (3, H, W), data_samples=DenseDataSample)`` with
            ``gt_instances.bboxes``; ``image_sizes`` (list of (H, W)), when it has one, lets
            images of one size share a batch.
        settings: method, features and input handling.
        keep: the :class:`Discovery` results (masks, score maps) of the first ``keep`` images
            are returned too, for pictures.
        device: where the backbone and the discovery step run.
        progress: draw a tqdm bar on stderr.

    Returns:
        (one record per image in dataset order: ``index``, ``image_id``, ``file``,
        ``image_size`` [H, W] of the image the box is clipped to, ``box`` [x0, y0, x1, y1]
        float pixels (end exclusive), ``seed`` [row, col] patch, ``gt_boxes``, ``best_iou``,
        ``hit`` (CorLoc); the kept Discovery results by index).
    """
    sizes = getattr(dataset, "image_sizes", None) or [(index, 0) for index in range(len(dataset))]
    loader = DataLoader(
        _Indexed(dataset),
        batch_sampler=size_batches(sizes, settings.batch_size),
        num_workers=settings.num_workers,
        collate_fn=list,
    )
    patch_size = backbone.patch_size
    records: dict[int, dict[str, Any]] = {}
    kept: dict[int, Discovery] = {}
    with tqdm(total=len(dataset), desc="discovery", disable=not progress) as bar:
        for items in loader:
            for group in _same_size_groups(items):
                images = torch.stack([item["inputs"] for item in group]).to(device)
                x = fit_to_patches(imagenet_normalise(images), patch_size, settings.mode)
                image_size = (int(x.shape[-2]), int(x.shape[-1]))
                with torch.inference_mode():
                    out = backbone.forward_intermediates(x, out_indices=[-1], return_attention=True)
                    features = discovery_features(out.attention, settings.features)
                    found = settings.run(features, patch_size, image_size)
                for item, result in zip(group, found, strict=True):
                    records[item["index"]] = _record(item, result, image_size)
                    if item["index"] < keep:
                        kept[item["index"]] = _to_cpu(result)
            bar.update(len(items))
    return [records[index] for index in range(len(dataset))], kept


def _record(item: dict, found: Discovery, image_size: tuple[int, int]) -> dict[str, Any]:
    sample = item["data_samples"]
    gt = sample.gt_instances.bboxes.float()
    box = found.box.detach().float().cpu()
    iou = best_iou(box, gt)
    return dict(
        index=item["index"],
        image_id=sample.metainfo.get("image_id", item["index"]),
        file=str(sample.metainfo["img_path"]),
        image_size=list(image_size),
        box=[round(float(v), 3) for v in box],
        seed=[int(v) for v in found.seed],
        gt_boxes=gt.tolist(),
        best_iou=round(iou, 6),
        hit=None,
    )


def _to_cpu(found: Discovery) -> Discovery:
    return Discovery(
        box=found.box.cpu(), mask=found.mask.cpu(), seed=found.seed, scores=found.scores.cpu()
    )


def score_corloc(records: list[dict[str, Any]]) -> dict[str, float]:
    """Fill each record's ``hit`` and return :class:`CorLocMetric`'s ``corloc`` (percent),
    ``hits`` and ``images``."""
    metric = CorLocMetric()
    for record in records:
        sample = dict(
            pred_instances=dict(bboxes=torch.tensor([record["box"]])),
            gt_instances=dict(bboxes=torch.tensor(record["gt_boxes"]).reshape(-1, 4)),
        )
        metric.process(None, [sample])
        record["hit"] = bool(metric.results[-1])
    return metric.evaluate(len(records))


def coco_image_id(record: dict[str, Any]) -> int:
    """The record's COCO image id: its own when an int (COCO), else index + 1 (VOC's ids are
    strings like ``2008_000002``)."""
    image_id = record["image_id"]
    return image_id if isinstance(image_id, int) else record["index"] + 1


def coco_files(records: list[dict[str, Any]]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Class-agnostic COCO ground truth (one category, ``object``) and detections.

    Returns:
        (ground truth json with ``images``, ``annotations``, ``categories``; detections list of
        ``image_id``, ``category_id`` 1, ``bbox`` [x, y, width, height], ``score`` 1.0: LOST and
        TokenCut give one unscored box per image). Load them with pycocotools'
        ``COCO(gt).loadRes(detections)``.
    """
    images, annotations, detections = [], [], []
    for record in records:
        image_id = coco_image_id(record)
        height, width = record["image_size"]
        images.append(dict(id=image_id, file_name=record["file"], width=width, height=height))
        for x0, y0, x1, y1 in record["gt_boxes"]:
            annotations.append(
                dict(
                    id=len(annotations) + 1,
                    image_id=image_id,
                    category_id=1,
                    bbox=[x0, y0, x1 - x0, y1 - y0],
                    area=(x1 - x0) * (y1 - y0),
                    iscrowd=0,
                )
            )
        x0, y0, x1, y1 = record["box"]
        detections.append(
            dict(image_id=image_id, category_id=1, bbox=[x0, y0, x1 - x0, y1 - y0], score=1.0)
        )
    categories = [dict(id=1, name="object", supercategory="object")]
    return dict(images=images, annotations=annotations, categories=categories), detections


def write_outputs(
    out_dir: str | Path, records: list[dict[str, Any]], scores: dict[str, float], run: dict
) -> dict[str, Path]:
    """Write ``predictions.json`` (``run`` + one record per image), ``corloc.json`` (``run`` +
    scores), ``detections_coco.json`` and ``ground_truth_coco.json`` (see :func:`coco_files`).

    Returns:
        The written files by name.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ground_truth, detections = coco_files(records)
    contents = {
        "predictions.json": dict(run, images=records),
        "corloc.json": dict(run, **scores),
        "detections_coco.json": detections,
        "ground_truth_coco.json": ground_truth,
    }
    paths = {}
    for name, content in contents.items():
        paths[name] = out_dir / name
        paths[name].write_text(json.dumps(content, indent=1))
    return paths


def build_dataset(cfg: Config, data_root: str | None = None) -> Dataset:
    """``cfg.dataset`` built from the registry, ``data_root`` replacing the config's."""
    dataset_cfg = dict(cfg.dataset)
    if data_root is not None:
        dataset_cfg["data_root"] = data_root
    return DATASETS.build(dataset_cfg)


def as_image(item: dict) -> np.ndarray:
    """(H, W, 3) uint8 RGB of a dataset item."""
    return item["inputs"].permute(1, 2, 0).numpy()
