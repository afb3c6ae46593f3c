"""Per-sample containers passed between datasets, models and metrics."""

from mmengine.structures import BaseDataElement


class SegDataSample(BaseDataElement):
    """One image's segmentation annotations and predictions.

    Data fields (tensors, set when available):
        gt_sem_seg: (H, W) int64 class indices, 255 = ignore.
        pred_sem_seg: (H, W) int64 predicted classes at the original image size.
        seg_logits: (num_classes, H, W) float logits at the original image size.

    Metainfo: ``img_path``, ``seg_map_path``, ``ori_shape`` (h, w) of the image on disk,
    ``img_shape`` (h, w) after the pipeline, ``pad_shape`` (h, w) after batching.
    """
