"""DPTHead: shapes on every patch size, building inside Depther and Segmentor, one training step,
losses from a list, and the relative-disparity output the Depther leaves unclamped."""

import pytest
import torch

from dinoreg_dense.heads import DPTHead
from dinoreg_dense.registry import MODELS
from dinoreg_dense.structures import DenseDataSample, SegDataSample


def backbone_cfg(patch_size: int, **kwargs: object) -> dict:
    """A 4-block, 32-wide ViT with registers returning all four blocks."""
    return dict(
        type="RegisterViT",
        arch="vits14_reg4",
        embed_dim=32,
        depth=4,
        num_heads=2,
        pos_embed_grid=4,
        patch_size=patch_size,
        out_indices=(0, 1, 2, 3),
        **kwargs,
    )


def head_cfg(**kwargs: object) -> dict:
    return dict(type="DPTHead", in_channels=None, channels=16, **kwargs)


def build_depther(patch_size: int = 14, frozen: bool = True, **head: object):
    return MODELS.build(
        dict(
            type="Depther",
            backbone=backbone_cfg(patch_size, frozen=frozen),
            decode_head=head_cfg(**head),
        )
    )


@pytest.mark.parametrize("patch_size", [8, 14, 16])
@pytest.mark.parametrize("resize_to_grid", [False, True])
@pytest.mark.parametrize("height, width", [(3, 5), (4, 7)])  # in patches; odd and even grids
def test_output_shapes_follow_the_patch_size(patch_size, resize_to_grid, height, width):
    model = build_depther(patch_size, resize_to_grid=resize_to_grid, readout="project").eval()
    x = torch.randn(2, 3, height * patch_size, width * patch_size)
    with torch.no_grad():
        features = model.backbone(x)
        raw = model.decode_head(features)
        out = model.encode(x)
    if resize_to_grid:
        assert raw.shape == (2, 1, height * patch_size, width * patch_size)
    else:  # x2 from the deepest level (stride 2p, rounded up) at each fusion and the output
        assert raw.shape[-2:] == ((height + 1) // 2 * 32, (width + 1) // 2 * 32)
    assert out.shape == (2, 1, height * patch_size, width * patch_size)
    assert (out >= 0).all()


def test_levels_have_strides_p_over_4_to_2p():
    model = build_depther(16).eval()
    with torch.no_grad():
        levels = model.decode_head.reassemble(model.backbone(torch.randn(1, 3, 64, 96)))
    assert [tuple(level.shape) for level in levels] == [
        (1, 4, 16, 24),
        (1, 8, 8, 12),
        (1, 16, 4, 6),
        (1, 32, 2, 3),
    ]  # post-process channels D/8 .. D for D = 32


def test_default_post_process_channels_and_choices_are_checked():
    head = DPTHead(in_channels=64)
    assert head.post_process_channels == [8, 16, 32, 64]
    with pytest.raises(ValueError, match="readout"):
        DPTHead(in_channels=64, readout="concat")
    with pytest.raises(ValueError, match="four"):
        DPTHead(in_channels=64, in_index=(0, 1))


def test_readout_changes_the_output_only_when_used():
    x = torch.randn(1, 3, 56, 56)
    outputs = {}
    for readout in ("ignore", "add", "project"):
        torch.manual_seed(0)
        model = build_depther(readout=readout).eval()
        with torch.no_grad():
            outputs[readout] = model.encode(x)
    assert not torch.equal(outputs["ignore"], outputs["add"])
    assert not torch.equal(outputs["ignore"], outputs["project"])


def depth_batch(model, shapes):
    images = [torch.randint(0, 256, (3, h, w), dtype=torch.uint8) for h, w in shapes]
    samples = [DenseDataSample(gt_depth_map=torch.rand(h, w) * 5 + 0.5) for h, w in shapes]
    return model.data_preprocessor(dict(inputs=images, data_samples=samples), training=True)


def test_depther_trains_one_step_with_a_list_of_losses():
    losses = [
        dict(type="SigLoss", warm_up_iters=0),
        dict(type="GradientLoss", loss_weight=0.5),
    ]
    model = build_depther(loss_decode=losses, readout="project").train()
    optimizer = torch.optim.SGD(model.decode_head.parameters(), lr=0.1)
    data = depth_batch(model, [(42, 56), (28, 70)])
    result = model(**data, mode="loss")
    assert set(result) == {"loss_depth", "loss_grad"}
    assert all(value > 0 for value in result.values())
    before = model.decode_head.output_conv3.weight.clone()
    sum(result.values()).backward()
    assert model.decode_head.readout_projects[0][0].weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.backbone.parameters())
    optimizer.step()
    assert not torch.equal(before, model.decode_head.output_conv3.weight)


def test_same_loss_names_are_summed_with_their_weights():
    model = build_depther(
        loss_decode=[dict(type="SigLoss"), dict(type="SigLoss", loss_weight=0.5)]
    ).train()
    single = build_depther(loss_decode=dict(type="SigLoss")).train()
    single.load_state_dict(model.state_dict(), strict=False)
    data = depth_batch(model, [(42, 56)])
    both = model(**data, mode="loss")["loss_depth"]
    one = single(**data, mode="loss")["loss_depth"]
    torch.testing.assert_close(both, 1.5 * one)


def test_relative_disparity_is_not_clamped_nor_called_depth_but_metric_depth_is():
    image = torch.randint(0, 256, (3, 28, 42), dtype=torch.uint8)
    for kind, field, expected in (
        ("relative_disparity", "pred_disparity_map", 50.0),
        ("metric_depth", "pred_depth_map", 10.0),
    ):
        model = build_depther(output_kind=kind, max_depth=10.0).eval()
        model.decode_head.predict = lambda features, metas: torch.full((1, 1, 28, 42), 50.0)
        with torch.no_grad():
            out = model.test_step(dict(inputs=[image], data_samples=None))[0]
        assert out.get(field).max() == expected, kind
        assert set(out.keys()) & {"pred_depth_map", "pred_disparity_map"} == {field}


def test_metric_output_is_sigmoid_times_max_depth_and_dinov2_adds_min_depth():
    x = torch.randn(1, 3, 56, 56)
    for activation, low, high in (
        ("sigmoid_times_max_depth", 0.0, 20.0),
        ("relu_plus_min_depth", 0.25, float("inf")),
    ):
        model = build_depther(output_activation=activation, min_depth=0.25, max_depth=20.0)
        with torch.no_grad():
            out = model.eval().encode(x)
        assert low <= out.min() and out.max() <= high


def test_dpt_seg_head_trains_and_predicts_in_a_segmentor():
    model = MODELS.build(
        dict(
            type="Segmentor",
            backbone=backbone_cfg(14, frozen=True),
            decode_head=dict(type="DPTSegHead", in_channels=None, channels=16, num_classes=5),
        )
    )
    head = model.decode_head
    assert head.out_channels == 5 and head.output_kind == "logits"
    shapes = [(42, 56), (28, 70)]
    images = [torch.randint(0, 256, (3, h, w), dtype=torch.uint8) for h, w in shapes]
    samples = [
        SegDataSample(gt_sem_seg=torch.randint(0, 5, (h, w)), metainfo=dict(ori_shape=(h, w)))
        for h, w in shapes
    ]
    data = model.data_preprocessor(dict(inputs=images, data_samples=samples), training=True)
    losses = model.train()(**data, mode="loss")
    assert set(losses) == {"loss_ce"} and losses["loss_ce"] > 0
    losses["loss_ce"].backward()
    assert head.output_conv3.weight.grad.abs().sum() > 0
    with torch.no_grad():
        out = model.eval().test_step(dict(inputs=images, data_samples=samples))
    assert [tuple(s.pred_sem_seg.shape) for s in out] == shapes
