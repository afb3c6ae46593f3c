"""DINOv2's linear depth head and the depth model on the shared base."""

import torch
import torch.nn.functional as F

from dinoreg_dense.registry import MODELS
from dinoreg_dense.structures import DenseDataSample


def build_depther(backbone: dict, **head: object):
    return MODELS.build(
        dict(
            type="Depther",
            backbone=dict(backbone, frozen=True, out_indices=2),
            decode_head=dict(type="LinearDepthHead", in_channels=None, num_bins=8, **head),
        )
    )


def test_linear_depth_head_is_the_expected_depth_over_bins(tiny_backbone_cfg):
    model = build_depther(tiny_backbone_cfg, in_index=(0, 1), max_depth=10.0).eval()
    head = model.decode_head
    assert head.in_channels == 2 * 2 * 32  # two maps, each with the cls token joined
    x = torch.randn(1, 3, 28, 42)
    with torch.no_grad():
        features = model.backbone(x)
        got = head(features)
        maps = []
        for patch_map, cls in zip(features.patch_maps, features.cls_tokens, strict=True):
            up = F.interpolate(patch_map, scale_factor=4, mode="bilinear")
            maps.append(torch.cat([up, cls[:, :, None, None].expand_as(up)], dim=1))
        scores = F.relu(head.conv_depth(head.bn(torch.cat(maps, dim=1)))) + 0.1
        probs = scores / scores.sum(dim=1, keepdim=True)
        bins = torch.linspace(1e-3, 10.0, 8)
        expected = (probs * bins.view(1, -1, 1, 1)).sum(dim=1, keepdim=True)
    assert got.shape == (1, 1, 8, 12)  # patch grid 2 x 3, upsampled x4
    torch.testing.assert_close(got, expected)


def test_depther_predicts_clamped_depth_at_the_original_size(tiny_backbone_cfg):
    model = build_depther(tiny_backbone_cfg, min_depth=2.0, max_depth=3.0).eval()
    with torch.no_grad():
        model.decode_head.conv_depth.bias.fill_(0.0)
        model.decode_head.conv_depth.bias[-1] = 1e4  # all mass on the last bin: 3 m
    image = torch.randint(0, 256, (3, 30, 45), dtype=torch.uint8)
    sample = DenseDataSample(metainfo=dict(ori_shape=(60, 90)))
    with torch.no_grad():
        out = model.test_step(dict(inputs=[image], data_samples=[sample]))
    depth = out[0].pred_depth_map
    assert depth.shape == (60, 90)
    torch.testing.assert_close(depth, torch.full((60, 90), 3.0), rtol=1e-3, atol=1e-3)
    # any head's output is clamped to the configured range (not a hard-coded 80 m)
    model.decode_head.predict = lambda features, metas: torch.full((1, 1, 30, 45), 50.0)
    with torch.no_grad():
        out = model.test_step(dict(inputs=[image], data_samples=None))
    assert out[0].pred_depth_map.max() == 3.0


def test_depth_loss_trains_the_head_only(tiny_backbone_cfg):
    model = build_depther(tiny_backbone_cfg).train()
    images = [torch.randint(0, 256, (3, 28, 42), dtype=torch.uint8) for _ in range(2)]
    samples = [DenseDataSample(gt_depth_map=torch.full((28, 42), 4.0)) for _ in range(2)]
    samples[0].gt_depth_map[:, :10] = 0  # no measurement there
    data = model.data_preprocessor(dict(inputs=images, data_samples=samples), training=True)
    losses = model(**data, mode="loss")
    assert set(losses) == {"loss_depth"} and losses["loss_depth"] > 0
    losses["loss_depth"].backward()
    assert model.decode_head.conv_depth.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.backbone.parameters())
