"""Dataset layouts (ADE20K, Pascal VOC, Cityscapes, NYU Depth v2, KITTI; VOC07 / VOC12 / COCO20k
boxes for object discovery; COCO instances; toy ADE20K, NYU, KITTI, VOC boxes, COCO20k and COCO
instances), their task-free base and albumentations pipelines.

Importing this package registers the datasets in ``DATASETS`` and our transforms in
``TRANSFORMS``; any albumentations transform is also usable by class name in a pipeline config.
"""

from dinoreg_dense.structures import IGNORE_INDEX

from .ade20k import ADE20K_CLASSES, ADE20KDataset
from .base import BaseDenseDataset
from .cityscapes import CITYSCAPES_CLASSES, CITYSCAPES_PALETTE, CityscapesDataset
from .coco20k import COCO20kDataset
from .coco_instances import COCOInstanceDataset
from .kitti import KITTIDepthDataset
from .nyu import NYUDepthDataset
from .palette import voc_colormap
from .photometric import GammaBrightnessColorAug, PhotoMetricDistortion
from .seg_base import BaseSegDataset
from .toy import TOY_CLASSES, make_toy_ade20k
from .toy_boxes import make_toy_coco20k, make_toy_voc_boxes
from .toy_depth import make_toy_kitti, make_toy_nyu
from .toy_instances import TOY_INSTANCE_CLASSES, make_toy_coco_instances
from .transforms import (
    RandomCropCatMax,
    RandomResize,
    ResizeToScale,
    build_pipeline,
    build_transform,
    rescaled_size,
    seed_pipeline,
)
from .voc import VOC_CLASSES, VOCDataset
from .voc_boxes import VOC_OBJECT_CLASSES, VOCBoxesDataset

__all__ = [
    "ADE20K_CLASSES",
    "ADE20KDataset",
    "BaseDenseDataset",
    "BaseSegDataset",
    "CITYSCAPES_CLASSES",
    "CITYSCAPES_PALETTE",
    "COCO20kDataset",
    "COCOInstanceDataset",
    "CityscapesDataset",
    "GammaBrightnessColorAug",
    "IGNORE_INDEX",
    "KITTIDepthDataset",
    "NYUDepthDataset",
    "PhotoMetricDistortion",
    "RandomCropCatMax",
    "RandomResize",
    "ResizeToScale",
    "TOY_CLASSES",
    "TOY_INSTANCE_CLASSES",
    "VOCBoxesDataset",
    "VOCDataset",
    "VOC_CLASSES",
    "VOC_OBJECT_CLASSES",
    "build_pipeline",
    "build_transform",
    "make_toy_ade20k",
    "make_toy_coco20k",
    "make_toy_coco_instances",
    "make_toy_kitti",
    "make_toy_nyu",
    "make_toy_voc_boxes",
    "rescaled_size",
    "seed_pipeline",
    "voc_colormap",
]
