"""Mask2FormerHead: built from a dict, output shapes, targets from both kinds of samples, the
semantic marginalisation, and one training step + prediction inside a Segmentor."""

import pytest
import torch
from mmengine.structures import InstanceData

from dinoreg_dense.heads.mask2former import semantic_inference
from dinoreg_dense.registry import MODELS
from dinoreg_dense.structures import DenseDataSample
from tests.models.test_segmentor import make_batch


def tiny_mask2former_head(num_classes: int = 5, num_queries: int = 6, num_layers: int = 3) -> dict:
    """A Mask2FormerHead config small enough for CPU tests (width 32, 64 points)."""
    return dict(
        type="Mask2FormerHead",
        num_classes=num_classes,
        neck=dict(out_channels=32),
        pixel_decoder=dict(
            conv_dim=32, mask_dim=32, num_encoder_layers=1, num_heads=2, dim_feedforward=64
        ),
        transformer_decoder=dict(
            hidden_dim=32,
            num_queries=num_queries,
            num_heads=2,
            dim_feedforward=64,
            num_layers=num_layers,
        ),
        criterion=dict(num_points=64),
    )


def build_segmentor(backbone: dict, **head: object):
    return MODELS.build(
        dict(
            type="Segmentor",
            backbone=backbone,
            decode_head=dict(tiny_mask2former_head(), **head),
            test_cfg=dict(mode="whole"),
        )
    )


def test_defaults_are_mask2formers(tiny_backbone_cfg):
    head = MODELS.build(dict(type="Mask2FormerHead", in_channels=32, num_classes=3))
    decoder = head.transformer_decoder
    assert decoder.query_feat.num_embeddings == 100 and len(decoder.layers) == 9
    assert len(head.pixel_decoder.encoder_layers) == 6
    criterion = head.criterion
    assert (criterion.class_weight, criterion.mask_weight, criterion.dice_weight) == (2, 5, 5)
    assert criterion.no_object_weight == 0.1 and criterion.num_points == 12544
    matcher = criterion.matcher
    assert (matcher.cost_class, matcher.cost_mask, matcher.cost_dice) == (2, 5, 5)
    assert matcher.num_points == 12544
    assert head.neck.scale_factors == [4.0, 2.0, 1.0, 0.5] and head.out_channels == 3


def test_forward_shapes_and_derived_width(tiny_backbone_cfg):
    model = build_segmentor(tiny_backbone_cfg)
    head = model.decode_head
    assert head.in_channels == 32  # derived from the backbone
    inputs = torch.randn(2, 3, 28, 42)  # patch 14: a 2 x 3 grid
    outputs = head(model.extract_feat(inputs))
    assert outputs["pred_logits"].shape == (2, 6, 6)  # K + 1 logits
    assert outputs["pred_masks"].shape == (2, 6, 8, 12)  # 4 x the patch grid
    assert len(outputs["aux_outputs"]) == 3
    assert all(a["pred_masks"].shape == (2, 6, 8, 12) for a in outputs["aux_outputs"])


def test_targets_from_semantic_labels_and_from_instances(tiny_backbone_cfg):
    head = build_segmentor(tiny_backbone_cfg).decode_head
    seg = torch.full((3, 4), 255)
    seg[0, :2] = 3
    seg[1:, 2:] = 1
    targets = head.targets_of(DenseDataSample(gt_sem_seg=seg), (5, 6))
    assert targets["labels"].tolist() == [1, 3]  # one mask per class present, 255 left out
    assert targets["masks"].shape == (2, 5, 6) and targets["masks"].dtype == torch.bool
    assert targets["masks"][0].sum() == 4 and targets["masks"][1].sum() == 2
    assert not targets["masks"][:, 3:].any() and not targets["masks"][:, :, 4:].any()

    masks = torch.zeros(2, 3, 4, dtype=torch.bool)
    masks[0, 0, 0] = masks[1, 2, 3] = True
    sample = DenseDataSample(gt_instances=InstanceData(labels=torch.tensor([4, 0]), masks=masks))
    sample.gt_sem_seg = seg  # instances take precedence
    targets = head.targets_of(sample, (5, 6))
    assert targets["labels"].tolist() == [4, 0]
    assert torch.equal(targets["masks"][:, :3, :4], masks) and targets["masks"].sum() == 2
    with pytest.raises(ValueError, match="larger than the padded input"):
        head.targets_of(sample, (2, 6))
    with pytest.raises(ValueError, match="neither"):
        head.targets_of(DenseDataSample(), (5, 6))


def test_predict_is_the_log_of_the_marginalisation_at_img_shape(tiny_backbone_cfg):
    model = build_segmentor(tiny_backbone_cfg).eval()
    head = model.decode_head
    inputs = torch.randn(1, 3, 28, 42)
    with torch.no_grad():
        features = model.extract_feat(inputs)
        outputs = head(features)
        logits = head.predict_by_feat(outputs, features, [dict(img_shape=(25, 40))])
    assert logits.shape == (1, 5, 25, 40)
    masks = torch.nn.functional.interpolate(
        outputs["pred_masks"], size=(28, 42), mode="bilinear", align_corners=False
    )[..., :25, :40]
    scores = torch.zeros(1, 5, 25, 40)
    for q in range(6):
        class_probs = outputs["pred_logits"][0, q].softmax(-1)[:5]
        scores += class_probs[None, :, None, None] * masks[:, q : q + 1].sigmoid()
    torch.testing.assert_close(logits.exp(), scores)
    torch.testing.assert_close(scores, semantic_inference(outputs["pred_logits"], masks))
    # Segmentor's softmax of the output: the scores normalised per pixel
    torch.testing.assert_close(logits.softmax(1), scores / scores.sum(1, keepdim=True))


def test_segmentor_trains_one_step_and_predicts(tiny_backbone_cfg):
    model = build_segmentor(tiny_backbone_cfg)
    model.train()
    data = model.data_preprocessor(make_batch([(40, 50), (36, 44)], 5), training=True)
    losses = model(**data, mode="loss")
    expected = {"loss_cls", "loss_mask", "loss_dice"}
    assert expected | {f"{k}_d{i}" for k in expected for i in range(3)} == set(losses)
    sum(losses.values()).backward()
    head = model.decode_head
    assert head.transformer_decoder.class_embed.weight.grad.abs().sum() > 0
    assert head.neck.lateral_convs[0][0].weight.grad.abs().sum() > 0
    model.eval()
    batch = make_batch([(40, 50)], 5, with_gt=False)
    batch["data_samples"][0].set_metainfo(dict(ori_shape=(60, 75)))
    with torch.no_grad():
        out = model.test_step(batch)
    assert out[0].pred_sem_seg.shape == (60, 75)
    assert out[0].pred_sem_seg.min() >= 0 and out[0].pred_sem_seg.max() < 5
