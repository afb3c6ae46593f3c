"""Mask2Former as a dense head on register-ViT features.

Cheng, Misra, Schwing, Kirillov and Girdhar, "Masked-attention Mask Transformer for Universal
Image Segmentation" (CVPR 2022, arXiv 2112.01527); reference ``mask2former/modeling/
meta_arch/mask_former_head.py`` and ``maskformer_model.py``. The pieces, top-down:

1. neck: :class:`~dinoreg_dense.heads.SimpleFeaturePyramid` (ViTDet) turns the ViT's single-stride
   patch maps into four levels at 4, 2, 1 and 1/2 times the patch grid (strides 4..32 for patch
   16, 3.5..28 for patch 14), finest first;
2. pixel decoder: :class:`MSDeformAttnPixelDecoder`, multi-scale deformable attention over the
   three coarsest levels and an FPN step to the finest, giving the per-pixel mask embeddings at
   the finest level (``mask_features``);
3. transformer decoder: :class:`MaskedAttentionDecoder`, queries cross-attending to one level per
   layer under the previous layer's mask, with class and mask predictions after every layer;
4. training: :class:`~dinoreg_dense.losses.SetCriterion` (Hungarian matching, class CE with a
   no-object weight, point-sampled mask BCE + dice, deep supervision).

The same head serves semantic and instance segmentation: the targets follow what the samples
carry (``gt_instances`` or ``gt_sem_seg``), and the per-pixel output of :meth:`predict_by_feat` is
the semantic one; :class:`~dinoreg_dense.models.InstanceSegmentor` reads ``forward``'s raw output
instead.
"""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ...backbones import ViTFeatures
from ...registry import MODELS
from ...structures import IGNORE_INDEX, DenseDataSample
from ..base import BaseDenseHead, padded_input_size
from .inference import semantic_inference

DEFAULT_NECK = dict(
    type="SimpleFeaturePyramid", out_channels=256, scale_factors=(4.0, 2.0, 1.0, 0.5), in_index=-1
)
DEFAULT_PIXEL_DECODER = dict(
    type="MSDeformAttnPixelDecoder",
    conv_dim=256,
    mask_dim=256,
    num_encoder_layers=6,
    num_heads=8,
    num_points=4,
    dim_feedforward=1024,
    dropout=0.0,
    num_deform_levels=3,
)
DEFAULT_TRANSFORMER_DECODER = dict(
    type="MaskedAttentionDecoder",
    hidden_dim=256,
    num_queries=100,
    num_heads=8,
    dim_feedforward=2048,
    num_layers=9,
    pre_norm=False,
    enforce_input_projection=False,
)
DEFAULT_CRITERION = dict(
    class_weight=2.0,
    mask_weight=5.0,
    dice_weight=5.0,
    no_object_weight=0.1,
    num_points=12544,
    oversample_ratio=3.0,
    importance_sample_ratio=0.75,
    deep_supervision=True,
)
SCORE_FLOOR = 1e-12
"""Smallest marginal score whose log :meth:`Mask2FormerHead.predict_by_feat` returns."""


@MODELS.register_module()
class Mask2FormerHead(BaseDenseHead):
    """Mask2Former: pyramid neck -> pixel decoder -> masked-attention decoder.

    Args:
        in_channels: the backbone width D; ``None`` in a model config: derived from it.
        num_classes: K, the object / stuff classes (logits have K + 1, the last "no object").
        neck: config of the multi-scale neck (default ViTDet's pyramid on the last map, 256
            channels); its ``in_channels`` is ``in_channels``.
        pixel_decoder: config of the pixel decoder (``MSDeformAttnPixelDecoder``) without
            ``in_channels`` (the neck's channels); unset keys take Mask2Former's values (256
            channels, 6 layers).
        transformer_decoder: config of the ``MaskedAttentionDecoder`` without ``num_classes``,
            ``in_channels``, ``mask_dim`` and ``num_feature_levels`` (the pixel decoder's);
            unset keys take Mask2Former's values (100 queries, 9 layers).
        criterion: :class:`~dinoreg_dense.losses.SetCriterion` arguments except
            ``num_classes``; unset keys take Mask2Former's values (class 2, mask 5, dice 5,
            no-object 0.1, 12544 points). Without ``matcher``, the matcher uses the same three
            weights and number of points, as in the reference.
        ignore_index: label of ``gt_sem_seg`` pixels that belong to no target mask.

    Output of ``forward``: ``pred_logits`` (B, Q, K + 1), ``pred_masks`` (B, Q, H_0, W_0) mask
    logits at the neck's finest level (stride p / 4 for patch size p) and ``aux_outputs`` (one
    such dict per earlier decoder layer).
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        neck: dict | None = None,
        pixel_decoder: dict | None = None,
        transformer_decoder: dict | None = None,
        criterion: dict | None = None,
        ignore_index: int = IGNORE_INDEX,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.out_channels = num_classes
        self.ignore_index = ignore_index
        self.neck = MODELS.build(dict(DEFAULT_NECK, **(neck or {}), in_channels=in_channels))
        num_levels = len(self.neck.scale_factors)
        pixel_cfg = dict(DEFAULT_PIXEL_DECODER, **(pixel_decoder or {}))
        self.pixel_decoder = MODELS.build(
            dict(pixel_cfg, in_channels=[self.neck.out_channels] * num_levels)
        )
        self.transformer_decoder = MODELS.build(
            dict(
                DEFAULT_TRANSFORMER_DECODER,
                **(transformer_decoder or {}),
                num_classes=num_classes,
                in_channels=pixel_cfg["conv_dim"],
                mask_dim=pixel_cfg["mask_dim"],
                num_feature_levels=pixel_cfg["num_deform_levels"],
            )
        )
        loss_cfg = dict(DEFAULT_CRITERION, **(criterion or {}))
        loss_cfg.setdefault(
            "matcher",
            dict(
                type="HungarianMatcher",
                cost_class=loss_cfg["class_weight"],
                cost_mask=loss_cfg["mask_weight"],
                cost_dice=loss_cfg["dice_weight"],
                num_points=loss_cfg["num_points"],
            ),
        )
        self.criterion = MODELS.build(
            dict(type="SetCriterion", num_classes=num_classes, **loss_cfg)
        )

    def forward(self, features: ViTFeatures) -> dict:
        """Backbone features -> ``pred_logits``, ``pred_masks``, ``aux_outputs`` (see the class
        docstring)."""
        width = features.patch_maps[-1].shape[1]
        if width != self.in_channels:
            raise ValueError(
                f"Mask2FormerHead expects {self.in_channels}-channel backbone maps but gets "
                f"{width}; set model.decode_head.in_channels={width} or leave it unset"
            )
        mask_features, multi_scale_features = self.pixel_decoder(self.neck(features))
        return self.transformer_decoder(multi_scale_features, mask_features)

    def loss_by_feat(
        self, outputs: dict, features: ViTFeatures, data_samples: Sequence[DenseDataSample]
    ) -> dict[str, Tensor]:
        """The set criterion's losses against targets built from the samples.

        Each sample's targets come from ``gt_instances`` when it has them (``labels`` (N,),
        ``masks`` (N, H, W) bool), else from ``gt_sem_seg`` (one mask per class present, the
        ignore label excluded), at the batch's input size; they are padded with ``False`` to the
        backbone's padded input, the area the predicted masks cover. The criterion compares them
        with the stride-p/4 mask logits at sampled points, so neither side is resized.
        """
        size = padded_input_size(features)
        targets = [self.targets_of(sample, size) for sample in data_samples]
        return self.criterion(outputs, targets)

    def targets_of(self, sample: DenseDataSample, size: Sequence[int]) -> dict[str, Tensor]:
        """``labels`` (N,) int64 and ``masks`` (N, *size) bool of one training sample.

        Raises:
            ValueError: the sample has neither ``gt_instances`` nor ``gt_sem_seg``, or its
                targets are larger than ``size``.
        """
        if "gt_instances" in sample:
            labels = sample.gt_instances.labels.long()
            masks = sample.gt_instances.masks.bool()
        elif "gt_sem_seg" in sample:
            seg = sample.gt_sem_seg
            seg = seg[0] if seg.dim() == 3 else seg
            labels = seg.unique()
            labels = labels[labels != self.ignore_index].long()
            masks = seg[None] == labels[:, None, None]
        else:
            raise ValueError(
                "Mask2FormerHead trains on gt_instances (instance datasets) or gt_sem_seg "
                "(semantic datasets); the sample has neither"
            )
        height, width = masks.shape[-2:]
        if height > size[0] or width > size[1]:
            raise ValueError(
                f"targets of {height} x {width} are larger than the padded input {tuple(size)}"
            )
        pad = (0, size[1] - width, 0, size[0] - height)
        # F.pad has no bool kernel: pad as uint8 with 0 (False) and cast back.
        masks = F.pad(masks.to(torch.uint8), pad, value=0).bool()
        return dict(labels=labels, masks=masks)

    def mask_logits_at_input(self, mask_logits: Tensor, features: ViTFeatures) -> Tensor:
        """(B, Q, H_0, W_0) mask logits -> (B, Q, H_p, W_p) at the backbone's padded input,
        bilinearly (align_corners=False), as the reference upsamples to the padded image."""
        size = padded_input_size(features)
        return F.interpolate(mask_logits, size=size, mode="bilinear", align_corners=False)

    def predict_by_feat(
        self, outputs: dict, features: ViTFeatures, batch_img_metas: Sequence[dict]
    ) -> Tensor:
        """Log of the semantic scores (B, K, H, W) at the inputs' ``img_shape``.

        The scores are :func:`~.inference.semantic_inference` of the last layer's output, the
        masks upsampled to the padded input and cropped to ``img_shape``. Their log is returned
        (floored at :data:`SCORE_FLOOR`) so that the output is logits like every segmentation
        head's: ``Segmentor``'s softmax over it gives the scores normalised per pixel, which
        keeps the arg-max, and test-time views and sliding windows average logits as for the
        other heads.
        """
        height, width = batch_img_metas[0]["img_shape"][:2]
        masks = self.mask_logits_at_input(outputs["pred_masks"], features)[..., :height, :width]
        scores = semantic_inference(outputs["pred_logits"], masks)
        return scores.clamp(min=SCORE_FLOOR).log()
