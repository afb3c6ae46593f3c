"""InstanceSegmentor: Mask2Former's instance inference checked by hand on a crafted head output,
one training step on instance targets, and the test-time options it refuses."""

import pytest
import torch
from mmengine.structures import InstanceData

from dinoreg_dense.registry import MODELS
from dinoreg_dense.structures import DenseDataSample
from tests.heads.test_mask2former_head import tiny_mask2former_head


def build_instance_segmentor(backbone: dict, **test_cfg: object):
    return MODELS.build(
        dict(
            type="InstanceSegmentor",
            backbone=backbone,
            decode_head=tiny_mask2former_head(num_classes=3, num_queries=4),
            test_cfg=test_cfg or None,
        )
    )


def crafted_output(height: int, width: int) -> dict:
    """Three queries of a (K = 3)-class head at the padded input size: query 0 a confident
    class-2 square, query 1 torn between classes 0 and 1 on a rectangle, query 2 "no object"."""
    probs = torch.tensor(
        [[0.05, 0.05, 0.80, 0.10], [0.45, 0.35, 0.05, 0.15], [0.01, 0.01, 0.01, 0.97]]
    )
    masks = torch.full((3, height, width), -5.0)
    masks[0, 2:10, 4:12] = 2.0
    masks[1, 14:20, 0:30] = 0.5
    masks[2, :, :] = 1.0
    return dict(pred_logits=probs.log()[None], pred_masks=masks[None], aux_outputs=[])


def test_instances_by_hand(tiny_backbone_cfg, monkeypatch):
    model = build_instance_segmentor(tiny_backbone_cfg, top_k=3).eval()
    monkeypatch.setattr(model.decode_head, "forward", lambda features: crafted_output(28, 42))
    sample = DenseDataSample(metainfo=dict(img_shape=(28, 42), ori_shape=(28, 42)))
    with torch.no_grad():
        pred = model.predict(torch.randn(1, 3, 28, 42), [sample])[0].pred_instances
    # top 3 (query, class) pairs by class probability: (0, 2) 0.8, (1, 0) 0.45, (1, 1) 0.35
    assert pred.labels.tolist() == [2, 0, 1]
    sig = torch.sigmoid
    expected = torch.stack(
        [
            0.80 * sig(torch.tensor(2.0)),
            0.45 * sig(torch.tensor(0.5)),
            0.35 * sig(torch.tensor(0.5)),
        ]
    )
    torch.testing.assert_close(pred.scores, expected, atol=1e-5, rtol=1e-4)
    assert pred.masks.dtype == torch.bool and pred.masks.shape == (3, 28, 42)
    assert pred.masks[0].sum() == 64 and torch.equal(pred.masks[1], pred.masks[2])
    assert pred.bboxes.tolist() == [[4, 2, 12, 10], [0, 14, 30, 20], [0, 14, 30, 20]]


def test_instances_at_the_original_size(tiny_backbone_cfg, monkeypatch):
    model = build_instance_segmentor(tiny_backbone_cfg).eval()
    monkeypatch.setattr(model.decode_head, "forward", lambda features: crafted_output(28, 42))
    # the image was resized by 2 in the pipeline; the batch padding (rows 24+) is cropped first
    sample = DenseDataSample(metainfo=dict(img_shape=(24, 40), ori_shape=(48, 80)))
    inputs = torch.randn(1, 3, 28, 42)
    with torch.no_grad():
        pred = model.predict(inputs, [sample])[0].pred_instances
    assert len(pred) == 9  # top_k 100 > Q x K
    assert pred.masks.shape == (9, 48, 80)
    assert pred.bboxes[0].tolist() == [8, 4, 24, 20]  # the square, doubled


def test_trains_one_step_on_instance_targets(tiny_backbone_cfg):
    model = build_instance_segmentor(tiny_backbone_cfg).train()
    images, samples = [], []
    for height, width in ((30, 40), (28, 35)):
        images.append(torch.randint(0, 256, (3, height, width), dtype=torch.uint8))
        masks = torch.zeros(2, height, width, dtype=torch.bool)
        masks[0, :10, :10] = masks[1, 15:, 20:] = True
        samples.append(
            DenseDataSample(gt_instances=InstanceData(labels=torch.tensor([0, 2]), masks=masks))
        )
    data = model.data_preprocessor(dict(inputs=images, data_samples=samples), training=True)
    losses = model(**data, mode="loss")
    sum(losses.values()).backward()
    assert model.decode_head.transformer_decoder.class_embed.weight.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        out = model.test_step(dict(inputs=images, data_samples=None))
    assert out[0].pred_instances.masks.shape == (12, 30, 40)
    assert out[1].pred_instances.bboxes.shape == (12, 4)


@pytest.mark.parametrize(
    "test_cfg",
    [
        dict(mode="slide", crop_size=(28, 28), stride=(14, 14)),
        dict(flip=True),
        dict(scales=(1.0, 1.5)),
    ],
)
def test_refuses_per_pixel_test_time_views(tiny_backbone_cfg, test_cfg):
    with pytest.raises(ValueError, match="whole images at one scale"):
        build_instance_segmentor(tiny_backbone_cfg, **test_cfg)


def test_non_square_instances_land_where_the_head_put_them(tiny_backbone_cfg, monkeypatch):
    """A 48 x 80 input (padded by the backbone to 56 x 84, patch 14) of a 97 x 203 original:
    unequal, non-integer scales per axis, so a height / width swap anywhere shows."""
    model = build_instance_segmentor(tiny_backbone_cfg, top_k=1).eval()
    # mask logits at stride 4 of the padded input (14 x 21): +8 on rows 3:9, cols 5:15, i.e.
    # rows 12:36, cols 20:60 of the 48 x 80 input, whose borders bilinear upsampling keeps
    masks = torch.full((1, 2, 14, 21), -8.0)
    masks[0, 0, 3:9, 5:15] = 8.0
    probs = torch.tensor([[[0.02, 0.9, 0.03, 0.05], [0.01, 0.01, 0.01, 0.97]]])
    output = dict(pred_logits=probs.log(), pred_masks=masks, aux_outputs=[])
    monkeypatch.setattr(model.decode_head, "forward", lambda features: output)
    sample = DenseDataSample(metainfo=dict(img_shape=(48, 80), ori_shape=(97, 203)))
    with torch.no_grad():
        pred = model.predict(torch.randn(1, 3, 48, 80), [sample])[0].pred_instances
    assert pred.labels.tolist() == [1] and pred.masks.shape == (1, 97, 203)
    # rows 12:36 x 97/48 -> 24.25:72.75, cols 20:60 x 203/80 -> 50.75:152.25: the pixels whose
    # centres lie inside are rows 24..72 and cols 51..151
    expected = torch.zeros(97, 203, dtype=torch.bool)
    expected[24:73, 51:152] = True
    assert (pred.masks[0] ^ expected).sum() <= 2 * (49 + 101)  # at most the border may differ
    torch.testing.assert_close(pred.bboxes[0], torch.tensor([51.0, 24, 152, 73]), atol=1, rtol=0)
