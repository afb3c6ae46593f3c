import pytest
import torch

from dinoreg_dense.models import slide_inference, window_origins
from dinoreg_dense.registry import MODELS
from dinoreg_dense.structures import SegDataSample


def build_segmentor(backbone: dict, num_classes: int = 5, **test_cfg: object):
    return MODELS.build(
        dict(
            type="Segmentor",
            data_preprocessor=dict(type="DenseDataPreProcessor"),
            backbone=dict(backbone, frozen=True),
            decode_head=dict(type="LinearHead", in_channels=32, num_classes=num_classes),
            test_cfg=test_cfg or None,
        )
    )


def make_batch(shapes, num_classes=5, with_gt=True):
    inputs, samples = [], []
    for h, w in shapes:
        inputs.append(torch.randint(0, 256, (3, h, w), dtype=torch.uint8))
        sample = SegDataSample(metainfo=dict(ori_shape=(h, w), img_path=f"img_{h}x{w}.jpg"))
        if with_gt:
            sample.gt_sem_seg = torch.randint(0, num_classes, (h, w))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def test_preprocessor_pads_images_and_training_labels(tiny_backbone_cfg):
    model = build_segmentor(tiny_backbone_cfg)
    data = model.data_preprocessor(make_batch([(30, 40), (20, 50)]), training=True)
    assert data["inputs"].shape == (2, 3, 30, 50)  # the largest sides; the backbone pads to 14
    gt = data["data_samples"][1].gt_sem_seg
    assert gt.shape == (30, 50)
    assert (gt[20:] == 255).all() and (gt[:, 50:] == 255).all()
    assert data["data_samples"][1].img_shape == (20, 50)
    # padded image pixels are 0 after normalisation; real pixels are normalised
    assert (data["inputs"][1, :, 20:] == 0).all()
    mean = torch.tensor([123.675, 116.28, 103.53]).view(3, 1, 1)
    std = torch.tensor([58.395, 57.12, 57.375]).view(3, 1, 1)
    # `size` (the training crop) applies to training batches only
    model.data_preprocessor.size = (56, 70)
    assert model.data_preprocessor(make_batch([(30, 40)]), training=True)["inputs"].shape[-2:] == (
        56,
        70,
    )
    assert model.data_preprocessor(make_batch([(30, 40)]))["inputs"].shape[-2:] == (30, 40)
    model.data_preprocessor.size = None
    raw = make_batch([(14, 14)])
    expected = (raw["inputs"][0].float() - mean) / std
    got = model.data_preprocessor(raw)["inputs"][0]
    torch.testing.assert_close(got, expected)


def test_loss_backward_trains_only_the_head_when_frozen(tiny_backbone_cfg):
    model = build_segmentor(tiny_backbone_cfg)
    model.train()
    assert not model.backbone.training  # frozen backbone stays in eval mode
    data = model.data_preprocessor(make_batch([(28, 42), (28, 42)]), training=True)
    losses = model(**data, mode="loss")
    assert set(losses) == {"loss_ce"} and losses["loss_ce"].item() > 0
    losses["loss_ce"].backward()
    assert model.decode_head.conv_seg.weight.grad is not None
    assert all(p.grad is None for p in model.backbone.parameters())


@pytest.mark.parametrize("mode", ["whole", "slide"])
def test_predict_returns_maps_at_original_size(tiny_backbone_cfg, mode):
    model = build_segmentor(
        tiny_backbone_cfg, mode=mode, crop_size=(28, 28), stride=(14, 14), flip=True
    ).eval()
    batch = make_batch([(30, 45), (33, 20)])
    # pretend the pipeline resized the first image: gt and ori_shape stay at 60 x 90
    batch["data_samples"][0].set_metainfo(dict(ori_shape=(60, 90)))
    with torch.no_grad():
        out = model.test_step(batch)
    assert out[0].pred_sem_seg.shape == (60, 90)
    assert out[1].pred_sem_seg.shape == (33, 20)
    assert out[0].pred_sem_seg.dtype == torch.int64


def test_multiscale_flip_probabilities_are_normalised(tiny_backbone_cfg):
    model = build_segmentor(tiny_backbone_cfg, scales=(1.0, 1.5), flip=True).eval()
    x = torch.randn(1, 3, 28, 42)
    with torch.no_grad():
        probs = model.inference(x)
    assert probs.shape == (1, 5, 28, 42)
    torch.testing.assert_close(probs.sum(1), torch.ones(1, 28, 42))


def test_window_origins_cover_the_image_and_end_at_the_border():
    assert window_origins(512, 512, 341) == [0]
    assert window_origins(100, 512, 341) == [0]
    origins = window_origins(1000, 512, 341)
    assert origins == [0, 341, 488]
    covered = torch.zeros(1000, dtype=torch.bool)
    for o in origins:
        covered[o : o + 512] = True
    assert covered.all()


def test_slide_inference_of_a_pointwise_map_equals_the_whole_image():
    weight = torch.randn(4, 3, 1, 1)

    def encode(x):
        return torch.nn.functional.conv2d(x, weight)

    x = torch.randn(2, 3, 50, 70)
    out = slide_inference(encode, x, 4, crop_size=(32, 32), stride=(20, 20), batch_size=3)
    torch.testing.assert_close(out, encode(x), rtol=1e-5, atol=1e-5)


def test_slide_inference_averages_overlaps():
    def encode(x):  # each window predicts its own index, so overlaps show the average
        encode.calls += 1
        return torch.ones(x.shape[0], 1, *x.shape[-2:]) * torch.arange(x.shape[0]).view(-1, 1, 1, 1)

    encode.calls = 0
    out = slide_inference(encode, torch.zeros(1, 3, 10, 16), 1, (10, 10), (10, 6), batch_size=8)
    # windows at x=0 (value 0) and x=6 (value 1): columns 6..9 overlap -> 0.5
    assert out[0, 0, 0, :6].eq(0).all() and out[0, 0, 0, 10:].eq(1).all()
    assert out[0, 0, 0, 6:10].eq(0.5).all()
    assert encode.calls == 1


def test_slide_inference_accumulates_at_the_output_size():
    weight = torch.randn(4, 3, 1, 1)
    calls = []

    def encode(x):
        calls.append(x.shape[0])
        return torch.nn.functional.conv2d(x, weight)

    # one window covering the view: exactly F.interpolate of its output
    x = torch.randn(2, 3, 60, 90)
    out = slide_inference(encode, x, 4, (64, 96), (32, 32), output_size=(20, 30))
    expected = torch.nn.functional.interpolate(encode(x), size=(20, 30), mode="bilinear")
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)

    # overlapping windows over a smooth view: the average, sampled at the output pixels
    smooth = torch.nn.functional.interpolate(torch.randn(1, 3, 6, 9), size=(150, 225))
    calls.clear()
    out = slide_inference(encode, smooth, 4, (64, 64), (40, 40), batch_size=3, output_size=(50, 75))
    assert out.shape == (1, 4, 50, 75) and max(calls) <= 3
    expected = torch.nn.functional.interpolate(encode(smooth), size=(50, 75), mode="bilinear")
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4)
