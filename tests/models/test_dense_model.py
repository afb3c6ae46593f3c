"""The task-free model base: padding, test-time views, batch independence, option checks, and
two tasks (depth, instances) registered here and trained through ``DenseModel`` alone."""

import pytest
import torch
import torch.nn.functional as F
from mmengine.optim import OptimWrapper
from mmengine.structures import InstanceData
from scipy.optimize import linear_sum_assignment
from torch import nn

from dinoreg_dense.heads import BaseDenseHead, padded_input_size, upsample_to_input
from dinoreg_dense.models import DenseModel
from dinoreg_dense.registry import MODELS
from dinoreg_dense.structures import DenseDataSample

from .test_segmentor import build_segmentor, make_batch


def _probabilities(model, images: list[torch.Tensor]) -> list[torch.Tensor]:
    batch = dict(
        inputs=images,
        data_samples=[DenseDataSample(metainfo=dict(ori_shape=i.shape[-2:])) for i in images],
    )
    with torch.no_grad():
        return [s.seg_logits for s in model.test_step(batch)]


def test_logits_follow_the_backbone_padding(tiny_backbone_cfg):
    # 30 x 45 is padded to 42 x 56 by the backbone (patch 14): the logits must be upsampled to
    # the padded size and cropped, not stretched over the image.
    model = build_segmentor(tiny_backbone_cfg).eval()
    x = torch.randn(2, 3, 30, 45)
    with torch.no_grad():
        got = model(x, mode="tensor")
        logits = model.decode_head(model.backbone(F.pad(x, (0, 11, 0, 12))))
    expected = F.interpolate(logits, size=(42, 56), mode="bilinear", align_corners=False)
    torch.testing.assert_close(got, expected[..., :30, :45])

    labels = torch.randint(0, 5, (2, 30, 45))
    samples = [DenseDataSample(gt_sem_seg=label) for label in labels]
    loss = model.loss(x, samples)["loss_ce"]
    torch.testing.assert_close(loss, F.cross_entropy(expected[..., :30, :45], labels))


@pytest.mark.parametrize("scales", [(1.0,), (1.0, 1.5)])
def test_flip_views_are_made_from_the_content_then_padded(tiny_backbone_cfg, scales):
    # With flip averaging, predicting the mirrored image must give the mirrored prediction.
    # Flipping the padded tensor would move the padding to the left and break this.
    model = build_segmentor(tiny_backbone_cfg, flip=True, scales=scales, return_logits=True)
    model.eval()
    image = torch.randint(0, 256, (3, 30, 45), dtype=torch.uint8)
    plain, mirrored = _probabilities(model, [image]), _probabilities(model, [image.flip(-1)])
    torch.testing.assert_close(mirrored[0], plain[0].flip(-1), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("mode", ["whole", "slide"])
def test_prediction_does_not_depend_on_the_rest_of_the_batch(tiny_backbone_cfg, mode):
    model = build_segmentor(
        tiny_backbone_cfg, mode=mode, crop_size=(42, 42), stride=(28, 28), return_logits=True
    ).eval()
    small = torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8)
    large = torch.randint(0, 256, (3, 128, 96), dtype=torch.uint8)
    alone = _probabilities(model, [small])[0]
    together = _probabilities(model, [small, large])
    torch.testing.assert_close(together[0], alone, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(together[1], _probabilities(model, [large])[0])


def test_test_cfg_is_checked_when_the_model_is_built(tiny_backbone_cfg):
    with pytest.raises(ValueError, match="unknown key 'filp'.*did you mean 'flip'"):
        build_segmentor(tiny_backbone_cfg, filp=True)
    with pytest.raises(ValueError, match="mode='slide' needs crop_size and stride"):
        build_segmentor(tiny_backbone_cfg, mode="slide", crop_size=(28, 28))
    with pytest.raises(ValueError, match="'whole' or 'slide'"):
        build_segmentor(tiny_backbone_cfg, mode="sliding")
    # values too: a stride beyond the window, zero sizes, an empty batch
    with pytest.raises(ValueError, match="larger than the window"):
        build_segmentor(tiny_backbone_cfg, mode="slide", crop_size=28, stride=42)
    with pytest.raises(ValueError, match="stride must be a positive int"):
        build_segmentor(tiny_backbone_cfg, mode="slide", crop_size=28, stride=(0, 0))
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        build_segmentor(tiny_backbone_cfg, batch_size=0)
    single = build_segmentor(tiny_backbone_cfg, mode="slide", crop_size=28, stride=14, scales=1.5)
    assert single.test_cfg["stride"] == (14, 14) and single.test_cfg["scales"] == (1.5,)
    # the window defaults to the training crop, the preprocessor's size
    model = MODELS.build(
        dict(
            type="Segmentor",
            data_preprocessor=dict(type="DenseDataPreProcessor", size=(56, 70)),
            backbone=dict(tiny_backbone_cfg, frozen=True),
            decode_head=dict(type="LinearHead", in_channels=32, num_classes=3),
            test_cfg=dict(mode="slide", stride=(28, 28)),
        )
    )
    assert model.test_cfg["crop_size"] == (56, 70)
    with pytest.raises(ValueError, match="unknown key 'crop'.*model.train_cfg"):
        MODELS.build(
            dict(
                type="Segmentor",
                backbone=tiny_backbone_cfg,
                decode_head=dict(type="LinearHead", in_channels=32, num_classes=3),
                train_cfg=dict(crop=1),
            )
        )


# ---------------------------------------------------------------- two more tasks, no Segmentor
class TinyDepthHead(BaseDenseHead):
    """1x1 conv to one channel, softplus; L1 loss on pixels with a measurement."""

    out_channels = 1

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 1, 1)

    def forward(self, features):
        return F.softplus(self.conv(features.patch_maps[-1]))

    def loss_by_feat(self, depth, features, data_samples):
        target = torch.stack([s.gt_depth_map for s in data_samples])[:, None]
        pred = upsample_to_input(depth, features, target.shape[-2:])
        valid = target > 0
        return {"loss_l1": (pred - target).abs()[valid].mean()}

    def predict_by_feat(self, depth, features, batch_img_metas):
        return upsample_to_input(depth, features, batch_img_metas[0]["img_shape"])


class TinyDepther(DenseModel):
    def add_prediction(self, output, sample):
        sample.pred_depth_map = output[0]


class TinyInstanceHead(BaseDenseHead):
    """Q learned queries; mask logits = query . patch feature; one class logit per query (+ no
    object); Hungarian matching on mask cost, as Mask2Former's matcher does per layer."""

    def __init__(self, in_channels: int, num_queries: int = 4, num_classes: int = 2) -> None:
        super().__init__()
        self.out_channels = num_queries
        self.queries = nn.Parameter(torch.randn(num_queries, in_channels))
        self.classifier = nn.Linear(in_channels, num_classes + 1)
        self.num_classes = num_classes

    def forward(self, features):
        patches = features.patch_maps[-1]
        masks = torch.einsum("qc,bchw->bqhw", self.queries, patches)
        return masks, self.classifier(self.queries).expand(patches.shape[0], -1, -1)

    def loss_by_feat(self, outputs, features, data_samples):
        masks, class_logits = outputs
        masks = F.interpolate(masks, size=padded_input_size(features), mode="bilinear")
        loss_mask, targets = masks.new_zeros(()), []
        for i, sample in enumerate(data_samples):
            gt = sample.gt_instances
            gt_masks = gt.masks.float()
            pred = masks[i, :, : gt_masks.shape[-2], : gt_masks.shape[-1]].flatten(1)
            cost = -(pred.sigmoid() @ gt_masks.flatten(1).T)  # (Q, N)
            rows, cols = linear_sum_assignment(cost.detach().numpy())
            loss_mask = loss_mask + F.binary_cross_entropy_with_logits(
                pred[rows], gt_masks.flatten(1)[cols]
            )
            target = torch.full((masks.shape[1],), self.num_classes)
            target[rows] = gt.labels[cols]
            targets.append(target)
        loss_cls = F.cross_entropy(class_logits.flatten(0, 1), torch.cat(targets))
        return {"loss_mask": loss_mask / len(data_samples), "loss_cls": loss_cls}

    def predict_by_feat(self, outputs, features, batch_img_metas):
        return upsample_to_input(outputs[0], features, batch_img_metas[0]["img_shape"])


class TinyInstanceModel(DenseModel):
    def add_prediction(self, output, sample):
        scores = self.decode_head.classifier(self.decode_head.queries).softmax(-1)[:, :-1]
        score, label = scores.max(-1)
        sample.pred_instances = InstanceData(masks=output > 0, labels=label, scores=score)


@pytest.fixture
def task_registry():
    names = ["TinyDepthHead", "TinyDepther", "TinyInstanceHead", "TinyInstanceModel"]
    for cls in (TinyDepthHead, TinyDepther, TinyInstanceHead, TinyInstanceModel):
        MODELS.register_module(module=cls, force=True)
    yield
    for name in names:
        MODELS.module_dict.pop(name)


def _train(model, batches, steps: int) -> list[float]:
    wrapper = OptimWrapper(torch.optim.Adam(model.parameters(), lr=0.05))
    model.train()
    losses = []
    for step in range(steps):
        log = model.train_step(batches[step % len(batches)], wrapper)
        losses.append(float(log["loss"].detach()))
    return losses


def test_a_depth_task_trains_and_predicts_through_the_base(task_registry, tiny_backbone_cfg):
    model = MODELS.build(
        dict(
            type="TinyDepther",
            data_preprocessor=dict(type="DenseDataPreProcessor", size=(28, 28)),
            backbone=dict(tiny_backbone_cfg, frozen=True),
            decode_head=dict(type="TinyDepthHead", in_channels=32),
            test_cfg=dict(flip=True),
        )
    )
    batches = []
    for shapes in ([(28, 35), (21, 28)], [(30, 30), (28, 28)]):
        images = [torch.randint(0, 256, (3, h, w), dtype=torch.uint8) for h, w in shapes]
        samples = [
            DenseDataSample(gt_depth_map=torch.full(image.shape[-2:], 2.0)) for image in images
        ]
        samples[0].gt_depth_map[:5] = 0  # no measurement there
        batches.append(dict(inputs=images, data_samples=samples))
    padded = model.data_preprocessor(batches[0], training=True)["data_samples"][1]
    assert padded.gt_depth_map.shape == (28, 35) and (padded.gt_depth_map[21:] == 0).all()
    losses = _train(model, batches, 30)
    assert losses[-1] < 0.5 * losses[0], losses
    model.eval()
    with torch.no_grad():
        out = model.test_step(dict(inputs=[batches[0]["inputs"][0]], data_samples=None))
    assert out[0].pred_depth_map.shape == (28, 35) and (out[0].pred_depth_map > 0).all()


def test_an_instance_task_trains_through_the_base(task_registry, tiny_backbone_cfg):
    model = MODELS.build(
        dict(
            type="TinyInstanceModel",
            backbone=dict(tiny_backbone_cfg, frozen=True),
            decode_head=dict(type="TinyInstanceHead", in_channels=32),
        )
    )
    batch = make_batch([(28, 42), (42, 28)], with_gt=False)
    for image, sample in zip(batch["inputs"], batch["data_samples"], strict=True):
        masks = torch.zeros(2, *image.shape[-2:], dtype=torch.bool)
        masks[0, :14, :14] = True
        masks[1, 14:, 14:] = True
        image[:, masks[0]] = 250  # bright square, class 0; dark square, class 1
        image[:, masks[1]] = 5
        boxes = torch.tensor([[0, 0, 14, 14], [14, 14, image.shape[-1], image.shape[-2]]])
        sample.gt_instances = InstanceData(
            masks=masks, labels=torch.tensor([0, 1]), bboxes=boxes.float()
        )
    padded = model.data_preprocessor(batch, training=True)["data_samples"][0].gt_instances
    assert padded.masks.shape == (2, 42, 42) and padded.masks.dtype == torch.bool
    assert not padded.masks[:, 28:].any()
    losses = _train(model, [batch], 25)
    assert losses[-1] < 0.7 * losses[0], losses
    model.eval()
    with torch.no_grad():
        out = model.test_step(dict(inputs=[batch["inputs"][0]], data_samples=None))
    assert out[0].pred_instances.masks.shape == (4, 28, 42)


def test_head_width_follows_a_checkpoints_architecture(tmp_path, tiny_backbone_cfg):
    from dinoreg_dense.checkpoint import save_checkpoint

    path = tmp_path / "wide.safetensors"
    save_checkpoint(MODELS.build(dict(tiny_backbone_cfg, embed_dim=48, num_heads=3)), path)
    for in_index, width in (((0,), 48), ((0, 1), 96)):
        model = MODELS.build(
            dict(
                type="Segmentor",
                backbone=dict(type="RegisterViT", arch=None, checkpoint=str(path), out_indices=2),
                decode_head=dict(
                    type="LinearHead", in_channels=None, in_index=in_index, num_classes=3
                ),
            )
        )
        assert model.decode_head.in_channels == width
        model.eval()(torch.randn(1, 3, 28, 28), mode="tensor")
