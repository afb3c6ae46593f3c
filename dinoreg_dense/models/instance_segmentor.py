"""Instance segmentation (and its detection view): a :class:`DenseModel` whose head predicts a set
of (class, mask) queries, as Mask2Former's does."""

from typing import Any, ClassVar

import torch.nn.functional as F
from mmengine.structures import InstanceData
from torch import Tensor

from ..heads.base import padded_input_size
from ..heads.mask2former.inference import instance_inference, top_query_classes
from ..registry import MODELS
from ..structures import DenseDataSample
from .base import DenseModel


@MODELS.register_module()
class InstanceSegmentor(DenseModel):
    """Backbone -> set-prediction head -> ``pred_instances`` per image at the original size.

    Takes :class:`DenseModel`'s arguments; the head's ``forward`` must return ``pred_logits``
    (B, Q, K + 1) and ``pred_masks`` (B, Q, h, w) mask logits covering the backbone's padded input
    (:class:`~dinoreg_dense.heads.Mask2FormerHead`). ``test_cfg`` also accepts ``top_k`` (default
    100, the reference's ``test_topk_per_image``): (query, class) pairs kept per image.

    Inference is Mask2Former's ``instance_inference``
    (:mod:`~dinoreg_dense.heads.mask2former.inference`): the ``top_k`` pairs of highest class
    probability ("no object" dropped); each pair's mask logits upsampled bilinearly to the padded
    input, cropped to ``img_shape`` and resized to ``ori_shape``; mask = sigmoid > 0.5; score =
    class probability x mean mask probability inside the mask; box = the mask's tight box. The
    boxes, scores and labels are also the detection output (COCO bbox AP).

    Only whole-image inference at one scale without flipping is supported: a set of instances
    has no per-pixel average across views or windows (instances would need merging, e.g. by
    NMS, which Mask2Former does not do), so ``test_cfg`` with ``mode='slide'``, ``flip=True``
    or other ``scales`` is refused when the model is built.
    """

    extra_test_cfg: ClassVar[dict[str, Any]] = dict(top_k=100)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cfg = self.test_cfg
        if cfg["mode"] != "whole" or cfg["flip"] or cfg["scales"] != (1.0,):
            raise ValueError(
                "InstanceSegmentor predicts whole images at one scale: set model.test_cfg to "
                "mode='whole', flip=False, scales=(1.0,) (got "
                f"mode={cfg['mode']!r}, flip={cfg['flip']}, scales={cfg['scales']})"
            )
        if not isinstance(cfg["top_k"], int) or cfg["top_k"] < 1:
            raise ValueError(f"model.test_cfg.top_k must be >= 1, got {cfg['top_k']!r}")

    @property
    def num_classes(self) -> int:
        """Classes the head predicts."""
        return self.decode_head.num_classes

    def predict(
        self, inputs: Tensor, data_samples: list[DenseDataSample] | None = None
    ) -> list[DenseDataSample]:
        """Instances of each image at its original size (``pred_instances``).

        As :meth:`DenseModel.predict`, each image is cropped to its own ``img_shape`` and images
        of one size run together, so a prediction does not depend on the batch.
        """
        if data_samples is None:
            data_samples = [DenseDataSample() for _ in range(inputs.shape[0])]
        groups: dict[tuple[int, int], list[int]] = {}
        for i, sample in enumerate(data_samples):
            shape = tuple(sample.metainfo.get("img_shape", inputs.shape[-2:]))
            groups.setdefault(shape, []).append(i)
        for (height, width), indices in groups.items():
            features = self.extract_feat(inputs[indices, :, :height, :width])
            outputs = self.decode_head(features)
            padded = padded_input_size(features)
            for j, i in enumerate(indices):
                sample = data_samples[i]
                ori_shape = tuple(sample.metainfo.get("ori_shape", (height, width)))
                sample.pred_instances = self.instances_of(
                    outputs["pred_logits"][j],
                    outputs["pred_masks"][j],
                    padded,
                    (height, width),
                    ori_shape,
                )
        return data_samples

    def instances_of(
        self,
        class_logits: Tensor,
        mask_logits: Tensor,
        padded_shape: tuple[int, int],
        img_shape: tuple[int, int],
        ori_shape: tuple[int, int],
    ) -> InstanceData:
        """One image's instances from its (Q, K + 1) class logits and (Q, h, w) mask logits.

        Only the selected queries' masks are resized (to ``padded_shape``, cropped to
        ``img_shape``, then to ``ori_shape``); resizing is per query, so this equals resizing all
        Q masks first, as the reference does.

        Returns:
            ``InstanceData`` with ``labels`` (k,), ``scores`` (k,), ``masks`` (k, H, W) bool and
            ``bboxes`` (k, 4) pixel ``x0, y0, x1, y1`` at ``ori_shape``, k = min(top_k, Q K).
        """
        class_scores, labels, queries = top_query_classes(class_logits, self.test_cfg["top_k"])
        masks = F.interpolate(
            mask_logits[queries][None], size=padded_shape, mode="bilinear", align_corners=False
        )[..., : img_shape[0], : img_shape[1]]
        if tuple(ori_shape) != tuple(img_shape):
            masks = F.interpolate(masks, size=ori_shape, mode="bilinear", align_corners=False)
        return InstanceData(**instance_inference(class_scores, labels, masks[0]))
