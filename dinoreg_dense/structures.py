"""Per-sample containers passed between datasets, models and metrics, for every dense task.

One sample type carries whichever fields its task uses; a field that a task does not use is
simply absent. Per-pixel ground-truth fields are batched by the data preprocessor, which pads
each with its own value from :data:`PIXEL_FIELD_PAD_VALUES`.
"""

from mmengine.structures import BaseDataElement

IGNORE_INDEX = 255
"""Class label of pixels excluded from losses and metrics (unlabelled, padding, void). The one
definition used by datasets, the preprocessor, losses and the metric."""

INVALID_DEPTH = 0.0
"""Depth value of pixels without a measurement (and of padding); metres elsewhere."""

PIXEL_FIELD_PAD_VALUES: dict[str, float] = {
    "gt_sem_seg": IGNORE_INDEX,
    "gt_depth_map": INVALID_DEPTH,
}
"""Per-pixel (H, W) ground-truth fields and the value that fills their padding."""


class DenseDataSample(BaseDataElement):
    """One image's annotations and predictions, for any dense task.

    Data fields (set when the task has them):
        gt_sem_seg: (H, W) int64 class indices, :data:`IGNORE_INDEX` = ignore.
        pred_sem_seg: (H, W) int64 predicted classes at the original image size.
        seg_logits: (num_classes, H, W) float class probabilities at the original image size.
        gt_depth_map: (H, W) float32 depth in metres, :data:`INVALID_DEPTH` (0) = no measurement.
        pred_depth_map: (H, W) float32 predicted depth in metres at the original image size.
        pred_disparity_map: (H, W) float32 relative inverse depth (larger = nearer, meaningful
            up to scale and shift) of a relative model (Depth-Anything-V2's), at the original
            image size; such a model sets this instead of ``pred_depth_map``.
        gt_instances: :class:`mmengine.structures.InstanceData` with ``labels`` (N,) int64,
            ``masks`` (N, H, W) bool and ``bboxes`` (N, 4) float32 pixel ``x0, y0, x1, y1``.
        pred_instances: the same plus ``scores`` (N,) float32, at the original image size.

    Metainfo: ``img_path``, ``seg_map_path`` / ``depth_map_path`` / ``ann_path``, ``ori_shape``
    (h, w) of the image on disk, ``img_shape`` (h, w) after the pipeline, ``pad_shape`` (h, w)
    after batching, ``flip`` (the pipeline flipped the sample horizontally).
    """


SegDataSample = DenseDataSample
"""The segmentation view of :class:`DenseDataSample` (same class; kept for readable signatures)."""
