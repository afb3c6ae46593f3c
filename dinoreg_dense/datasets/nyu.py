"""NYU Depth v2 in the layout of BTS and the Monocular-Depth-Estimation-Toolbox: split files of
``<rgb> <depth> <focal>`` lines, depth as 16-bit PNGs in millimetres (0 = no measurement)."""

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from dinoreg_dense.registry import DATASETS

from .base import BaseDenseDataset, check_pairs_exist
from .image_io import read_depth_png

NYU_SPLITS = {"train": "nyu_train.txt", "test": "nyu_test.txt"}
NYU_MAX_DEPTH = 10.0
"""Metres; the Kinect's range and the usual evaluation cap (Eigen et al.)."""
NYU_MIN_DEPTH = 1e-3
"""Metres; the usual evaluation floor."""
NYU_LAYOUT = """\
  <data_root>/                          (or <data_root>/nyu/)
    nyu_train.txt    lines '<rgb> <depth> <focal>', e.g.
                     'basement_0001a/rgb_00000.jpg basement_0001a/sync_depth_00000.png 518.8579'
    nyu_test.txt     e.g. 'bathroom/rgb_00045.jpg bathroom/sync_depth_00045.png 518.8579'
    basement_0001a/rgb_00000.jpg, sync_depth_00000.png ...   (depth: 16-bit PNG, millimetres,
    bathroom/rgb_00045.jpg, sync_depth_00045.png ...          0 = no measurement)"""


def find_nyu_root(data_root: str | Path, split_file: str) -> Path:
    """``data_root`` or ``data_root/nyu``, whichever holds ``split_file``.

    Raises:
        FileNotFoundError: ``data_root`` does not exist, or neither folder holds the split file;
            the message lists the split files that were found and the expected layout.
    """
    data_root = Path(data_root).expanduser()
    if not data_root.is_dir():
        resolved = "" if data_root.is_absolute() else f" (= {data_root.resolve()})"
        raise FileNotFoundError(
            f"dataset not found at '{data_root}'{resolved}. Expected this layout:\n{NYU_LAYOUT}\n"
            "See docs/datasets.md for where to download it. To try the code without it, write a "
            "small synthetic depth dataset in this layout with "
            "`python tools/make_toy_dataset.py OUT --layout nyu` "
            "(dinoreg_dense.datasets.make_toy_nyu)."
        )
    for root in (data_root, data_root / "nyu"):
        if (root / split_file).is_file():
            return root
    found = sorted(p.name for root in (data_root, data_root / "nyu") for p in root.glob("*.txt"))
    raise FileNotFoundError(
        f"split file '{data_root / split_file}' does not exist (split files found: {found}). "
        f"Expected this layout:\n{NYU_LAYOUT}"
    )


def read_split_file(
    path: Path, image_root: Path, depth_root: Path | None = None
) -> list[tuple[Path, Path | None]]:
    """(image, depth map) per line of a BTS-style split file (``<rgb> <depth> <focal>``).

    A leading ``/`` (as in BTS's and the toolbox's lists) is relative to the roots too; the focal
    length column is not needed and ignored.

    Args:
        path: the split file.
        image_root: the folder the image paths are relative to.
        depth_root: the folder the depth paths are relative to; ``image_root`` if None.

    Returns:
        One (image, depth) pair per non-empty line; depth is None where the line says ``None``
        (KITTI's Eigen test list has images without ground truth).

    Raises:
        ValueError: a line has fewer than two paths, or the file lists no sample; names the file.
    """
    depth_root = image_root if depth_root is None else depth_root
    pairs = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 2:
            raise ValueError(
                f"line {number} of split file '{path}' is '{line}'; expected "
                "'<rgb path> <depth path> <focal>'"
            )
        image, depth = fields[:2]
        depth_path = None if depth == "None" else depth_root / depth.lstrip("/")
        pairs.append((image_root / image.lstrip("/"), depth_path))
    if not pairs:
        raise ValueError(f"split file '{path}' is empty: the split has no images.")
    return pairs


@DATASETS.register_module()
class NYUDepthDataset(BaseDenseDataset):
    """NYU Depth v2 (BTS / Monocular-Depth-Estimation-Toolbox layout), depth in metres.

    Args:
        data_root: the folder with ``nyu_train.txt`` and ``nyu_test.txt`` (or its parent, holding
            it as ``nyu/``); paths in the split files are relative to it.
        split: ``"train"`` (``nyu_train.txt``, 24,231 images in BTS's list) or ``"test"``
            (``nyu_test.txt``, the 654 images of the official test split).
        pipeline: transform configs (see ``dinoreg_dense.datasets.build_pipeline``).
        test_mode: transform the image only; ``gt_depth_map`` keeps the size on disk.
        depth_scale: stored units per metre; 1000 for NYU's millimetres.
        max_depth: metres; the evaluation cap, given to the metric as ``metainfo['max_depth']``.
        min_depth: metres; the evaluation floor, ``metainfo['min_depth']``.

    Raises:
        ValueError: unknown ``split``, non-positive ``depth_scale``, malformed split file.
        FileNotFoundError: no dataset, split file, image or depth map where expected.
    """

    targets: ClassVar[tuple[str, ...]] = ("depth",)

    def __init__(
        self,
        data_root: str | Path,
        split: str = "train",
        pipeline: Sequence[dict] = (),
        test_mode: bool = False,
        depth_scale: float = 1000.0,
        max_depth: float = NYU_MAX_DEPTH,
        min_depth: float = NYU_MIN_DEPTH,
    ) -> None:
        if split not in NYU_SPLITS:
            raise ValueError(f"unknown NYU split '{split}'; choose one of {list(NYU_SPLITS)}")
        if depth_scale <= 0:
            raise ValueError(f"depth_scale must be positive (units per metre), got {depth_scale}")
        root = find_nyu_root(data_root, NYU_SPLITS[split])
        pairs = read_split_file(root / NYU_SPLITS[split], root)
        without_depth = [str(image) for image, depth in pairs if depth is None]
        if without_depth:
            raise ValueError(
                f"split file '{root / NYU_SPLITS[split]}' gives no depth map ('None') for "
                f"{len(without_depth)} images, e.g. '{without_depth[0]}'; every NYU image "
                "needs one"
            )
        check_pairs_exist(pairs)
        self.depth_scale = float(depth_scale)
        super().__init__(
            [dict(img_path=image, depth_map_path=depth) for image, depth in pairs],
            pipeline=pipeline,
            test_mode=test_mode,
            metainfo=dict(name="NYU Depth v2", min_depth=min_depth, max_depth=max_depth),
        )

    def load_annotations(self, record: dict[str, Any]) -> dict[str, np.ndarray]:
        """``depth`` (H, W) float32 metres of the record's depth PNG, 0 = no measurement."""
        return dict(depth=read_depth_png(record["depth_map_path"], self.depth_scale))
