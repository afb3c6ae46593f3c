"""KITTI depth, Eigen split, in the layout of BTS / the Monocular-Depth-Estimation-Toolbox: raw
RGB frames under ``input/``, the KITTI depth benchmark's sparse annotated depth under
``gt_depth/``, split files of ``<rgb> <depth> <focal>`` lines (depth 16-bit PNG, metres x 256,
0 = no measurement)."""

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from mmengine.logging import MMLogger, print_log

from dinoreg_dense.registry import DATASETS

from .base import BaseDenseDataset, check_pairs_exist
from .image_io import read_depth_png
from .nyu import read_split_file

KITTI_SPLITS = {"train": "kitti_eigen_train.txt", "test": "kitti_eigen_test.txt"}
KITTI_IMAGE_DIR = "input"
KITTI_DEPTH_DIR = "gt_depth"
KITTI_MAX_DEPTH = 80.0
"""Metres; the usual evaluation cap (Eigen et al. 2014, Garg et al. 2016)."""
KITTI_MIN_DEPTH = 1e-3
"""Metres; the usual evaluation floor."""
KB_CROP_SIZE = (352, 1216)
"""(h, w) of the KITTI benchmark crop: the bottom rows, centred horizontally."""
KITTI_LAYOUT = """\
  <data_root>/                          (or <data_root>/kitti/)
    kitti_eigen_train.txt   lines '<rgb> <depth> <focal>', e.g. (one line)
                            '2011_09_26/2011_09_26_drive_0001_sync/image_02/data/0000000005.png
                             2011_09_26_drive_0001_sync/proj_depth/groundtruth/image_02/
                             0000000005.png 721.5377'
    kitti_eigen_test.txt    likewise; '<depth>' is 'None' for images without ground truth
    input/2011_09_26/2011_09_26_drive_0001_sync/image_02/data/*.png     (KITTI raw data, RGB)
    gt_depth/2011_09_26_drive_0001_sync/proj_depth/groundtruth/image_02/*.png
                            (KITTI depth benchmark annotations, train and val drives together:
                             16-bit PNG, metres x 256, 0 = no measurement)"""


def find_kitti_root(data_root: str | Path, split_file: str) -> Path:
    """``data_root`` or ``data_root/kitti``, whichever holds ``split_file``.

    Raises:
        FileNotFoundError: ``data_root`` does not exist, or neither folder holds the split file,
            or the dataset root lacks ``input/`` or ``gt_depth/``; the message shows the expected
            layout and how to write a toy dataset in it.
    """
    data_root = Path(data_root).expanduser()
    hint = (
        f"Expected this layout:\n{KITTI_LAYOUT}\nSee docs/datasets.md for where to download it "
        "and the split files. To try the code without it, write a small synthetic dataset in "
        "this layout with `python tools/make_toy_dataset.py OUT --layout kitti` "
        "(dinoreg_dense.datasets.make_toy_kitti)."
    )
    if not data_root.is_dir():
        resolved = "" if data_root.is_absolute() else f" (= {data_root.resolve()})"
        raise FileNotFoundError(f"dataset not found at '{data_root}'{resolved}. {hint}")
    for root in (data_root, data_root / "kitti"):
        if (root / split_file).is_file():
            folders = (KITTI_IMAGE_DIR, KITTI_DEPTH_DIR)
            missing = [f"'{root / name}/'" for name in folders if not (root / name).is_dir()]
            if missing:
                raise FileNotFoundError(
                    f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing: "
                    f"the KITTI dataset at '{root}' is incomplete. {hint}"
                )
            return root
    found = sorted(p.name for root in (data_root, data_root / "kitti") for p in root.glob("*.txt"))
    raise FileNotFoundError(
        f"split file '{data_root / split_file}' does not exist (split files found: {found}). {hint}"
    )


def kb_crop_window(height: int, width: int, size: tuple[int, int]) -> tuple[slice, slice]:
    """Rows and columns of the KITTI benchmark crop: the bottom ``size[0]`` rows, centred.

    As in BTS / AdaBins / the toolbox: ``top = H - h``, ``left = (W - w) // 2``.

    Args:
        height, width: the full frame (KITTI raw: about 375 x 1242).
        size: (h, w) of the crop, normally :data:`KB_CROP_SIZE`.

    Returns:
        (rows, cols) slices.
    """
    top, left = height - size[0], (width - size[1]) // 2
    return slice(top, top + size[0]), slice(left, left + size[1])


@DATASETS.register_module()
class KITTIDepthDataset(BaseDenseDataset):
    """KITTI Eigen split (BTS / toolbox layout), sparse lidar depth in metres.

    Images whose depth path is ``None`` in the split file (45 of the 697 lines of the Eigen test
    list have no annotated depth) are skipped, counted in :attr:`num_without_depth` and reported
    in the log, as the toolbox does: the Eigen test set evaluated everywhere is the other 652.

    With ``kb_crop_size`` (the default) every image and depth map is cropped to the KITTI
    benchmark window (bottom 352 rows, centre 1216 columns) when loaded, in training and testing:
    the toolbox trains and tests on that crop, and evaluates its Garg crop on the cropped map.
    The sample's ``ori_shape`` is then the crop.

    Args:
        data_root: the folder with the split files, ``input/`` and ``gt_depth/`` (or its parent,
            holding it as ``kitti/``).
        split: ``"train"`` (``kitti_eigen_train.txt``) or ``"test"`` (``kitti_eigen_test.txt``,
            697 lines of which 652 have ground truth).
        pipeline: transform configs (see ``dinoreg_dense.datasets.build_pipeline``).
        test_mode: transform the image only; ``gt_depth_map`` keeps its loaded size.
        depth_scale: stored units per metre; 256 for KITTI.
        kb_crop_size: (h, w) of the benchmark crop, or None to keep the full frames.
        max_depth: metres; the evaluation cap, given to the metric as ``metainfo['max_depth']``.
        min_depth: metres; the evaluation floor, ``metainfo['min_depth']``.

    Raises:
        ValueError: unknown ``split``, non-positive ``depth_scale``, malformed split file, a
            split without any depth map, or (when loading) an image smaller than the KB crop.
        FileNotFoundError: no dataset, split file, folder, image or depth map where expected.
    """

    targets: ClassVar[tuple[str, ...]] = ("depth",)

    def __init__(
        self,
        data_root: str | Path,
        split: str = "train",
        pipeline: Sequence[dict] = (),
        test_mode: bool = False,
        depth_scale: float = 256.0,
        kb_crop_size: tuple[int, int] | None = KB_CROP_SIZE,
        max_depth: float = KITTI_MAX_DEPTH,
        min_depth: float = KITTI_MIN_DEPTH,
    ) -> None:
        if split not in KITTI_SPLITS:
            raise ValueError(f"unknown KITTI split '{split}'; choose one of {list(KITTI_SPLITS)}")
        if depth_scale <= 0:
            raise ValueError(f"depth_scale must be positive (units per metre), got {depth_scale}")
        if kb_crop_size is not None and (len(kb_crop_size) != 2 or min(kb_crop_size) <= 0):
            raise ValueError(f"kb_crop_size must be (h, w) > 0 or None, got {kb_crop_size}")
        root = find_kitti_root(data_root, KITTI_SPLITS[split])
        split_file = root / KITTI_SPLITS[split]
        pairs = read_split_file(split_file, root / KITTI_IMAGE_DIR, root / KITTI_DEPTH_DIR)
        with_depth = [(image, depth) for image, depth in pairs if depth is not None]
        self.num_without_depth = len(pairs) - len(with_depth)
        if not with_depth:
            raise ValueError(
                f"split file '{split_file}' gives no depth map for any of its {len(pairs)} "
                "images (every depth path is 'None'): nothing to train or evaluate on"
            )
        if self.num_without_depth:
            print_log(
                f"{split_file}: {self.num_without_depth} of {len(pairs)} images have no ground "
                f"truth (depth 'None') and are skipped; {len(with_depth)} remain",
                MMLogger.get_current_instance(),
                level=logging.INFO,
            )
        check_pairs_exist(with_depth)
        self.depth_scale = float(depth_scale)
        self.kb_crop_size = None if kb_crop_size is None else tuple(kb_crop_size)
        super().__init__(
            [dict(img_path=image, depth_map_path=depth) for image, depth in with_depth],
            pipeline=pipeline,
            test_mode=test_mode,
            metainfo=dict(name="KITTI Eigen", min_depth=min_depth, max_depth=max_depth),
        )

    def load_annotations(self, record: dict[str, Any]) -> dict[str, np.ndarray]:
        """``depth`` (H, W) float32 metres of the record's depth PNG, 0 = no measurement."""
        return dict(depth=read_depth_png(record["depth_map_path"], self.depth_scale))

    def prepare_sample(
        self, record: dict[str, Any], image: np.ndarray, annotations: dict[str, np.ndarray]
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Crop image (H, W, 3) and depth (H, W) to the KB window (h, w), if ``kb_crop_size``.

        Raises:
            ValueError: the image is smaller than the crop; names it.
        """
        if self.kb_crop_size is None:
            return image, annotations
        height, width = image.shape[:2]
        if height < self.kb_crop_size[0] or width < self.kb_crop_size[1]:
            raise ValueError(
                f"image '{record['img_path']}' is {height}x{width}, smaller than the KITTI "
                f"benchmark crop {self.kb_crop_size[0]}x{self.kb_crop_size[1]}; KITTI raw frames "
                "are about 375x1242. For other data set kb_crop_size=None."
            )
        rows, cols = kb_crop_window(height, width, self.kb_crop_size)
        return image[rows, cols], dict(depth=annotations["depth"][rows, cols])
