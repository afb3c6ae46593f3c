import albumentations as A
import numpy as np
import pytest

from dinoreg_dense import datasets
from dinoreg_dense.datasets import (
    PhotoMetricDistortion,
    RandomCropCatMax,
    RandomResize,
    ResizeToScale,
    build_pipeline,
    rescaled_size,
    seed_pipeline,
)
from dinoreg_dense.structures import IGNORE_INDEX

LABELS = np.array([0, 3, 7, 255], np.uint8)


def random_pair(height: int, width: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Noise image and a blocky label map with values in LABELS."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    blocks = rng.choice(LABELS, size=(height // 4 + 1, width // 4 + 1))
    mask = blocks.repeat(4, 0).repeat(4, 1)[:height, :width]
    return image, mask


def test_pipeline_from_config_dicts_mixes_ours_and_albumentations():
    pipeline = build_pipeline(
        [
            dict(type="RandomResize", scale=(256, 64), ratio_range=(1.0, 2.0)),
            dict(type="RandomCropCatMax", height=48, width=40, cat_max_ratio=0.75),
            dict(type="HorizontalFlip", p=0.5),
            dict(type="OneOf", transforms=[dict(type="VerticalFlip", p=1.0), dict(type="Blur")]),
            dict(type="PhotoMetricDistortion"),
        ]
    )
    kinds = [type(t) for t in pipeline.transforms]
    assert kinds == [
        RandomResize,
        RandomCropCatMax,
        A.HorizontalFlip,
        A.OneOf,
        PhotoMetricDistortion,
    ]
    assert [type(t) for t in pipeline.transforms[3].transforms] == [A.VerticalFlip, A.Blur]
    image, mask = random_pair(70, 90)
    out = pipeline(image=image, mask=mask)
    assert out["image"].shape == (48, 40, 3) and out["image"].dtype == np.uint8
    assert out["mask"].shape == (48, 40)
    assert set(np.unique(out["mask"])) <= set(LABELS)


def test_unknown_transform_type():
    with pytest.raises(ValueError, match="unknown transform type 'NoSuchTransform'"):
        build_pipeline([dict(type="NoSuchTransform")])


@pytest.mark.parametrize(
    ("cfg", "word"),
    [
        (dict(type="HorizontalFlip", prob=0.5), "prob"),
        (dict(type="Blur", blur_lmit=3), "blur_lmit"),
        (dict(type="RandomRotate90", prob=0.5), "prob"),
        (dict(type="RandomResize"), "scale"),
    ],
)
@pytest.mark.filterwarnings("ignore:Argument")
def test_bad_arguments_name_the_transform(cfg, word):
    with pytest.raises(ValueError, match=f"cannot build transform '{cfg['type']}'.*{word}"):
        build_pipeline([cfg])


def test_seeded_pipelines_repeat():
    cfgs = [dict(type="RandomResize", scale=(128, 32)), dict(type="PhotoMetricDistortion")]
    image, mask = random_pair(40, 50)
    outputs = []
    for _ in range(2):
        pipeline = build_pipeline(cfgs)
        seed_pipeline(pipeline, 3)
        outputs.append([pipeline(image=image, mask=mask)["image"] for _ in range(3)])
    for first, second in zip(*outputs, strict=True):
        np.testing.assert_array_equal(first, second)


@pytest.mark.parametrize(
    ("size", "scale", "keep_ratio", "expected"),
    [
        ((512, 683), (2048, 512), True, (512, 683)),  # short edge already at 512
        ((1000, 500), (2048, 512), True, (1024, 512)),  # upscaled by 512 / 500
        ((100, 4000), (2048, 512), True, (51, 2048)),  # the long edge binds: 2048 / 4000
        ((375, 500), (1024, 256), True, (256, 341)),  # 341.33 rounds down
        ((30, 40), (300, 200), False, (200, 300)),  # exact (width, height)
    ],
)
def test_rescaled_size(size, scale, keep_ratio, expected):
    assert rescaled_size(*size, scale, keep_ratio) == expected


@pytest.mark.parametrize("shape", [(480, 640), (300, 1200), (700, 500)])
def test_random_resize_scale_rule(shape):
    transform = RandomResize(scale=(2048, 512), ratio_range=(0.5, 2.0))
    transform.set_random_seed(0)
    image = np.zeros((*shape, 3), np.uint8)
    ratios = []
    for _ in range(30):
        out = transform(image=image)["image"]
        long_limit, short_limit = transform.get_applied_params()["scale"]  # int(2048 r), int(512 r)
        ratio = long_limit / 2048
        ratios.append(ratio)
        assert 0.5 <= ratio <= 2.0 and int(512 * ratio) in (short_limit, short_limit + 1)
        long_edge, short_edge = max(out.shape[:2]), min(out.shape[:2])
        assert long_edge <= long_limit + 0.5 and short_edge <= short_limit + 0.5
        # One of the two limits is reached, and the aspect ratio is kept.
        assert long_edge >= long_limit - 1 or short_edge >= short_limit - 1
        assert abs(out.shape[0] / out.shape[1] - shape[0] / shape[1]) < 0.02
    assert min(ratios) < 0.7 and max(ratios) > 1.8


@pytest.mark.parametrize(
    "transform",
    [
        RandomResize(scale=(2048, 512), ratio_range=(0.5, 2.0)),
        ResizeToScale(scale=(40, 10)),  # downscale
        ResizeToScale(scale=(600, 300), keep_ratio=False),  # upscale, aspect changed
    ],
)
def test_masks_are_resized_with_nearest_neighbour(transform):
    _, mask = random_pair(60, 80, seed=1)
    image = np.repeat(mask[..., None], 3, axis=-1)  # the same values, as an image
    transform.set_random_seed(1)
    out = transform(image=image, mask=mask)
    assert out["mask"].shape == out["image"].shape[:2] != mask.shape
    assert set(np.unique(out["mask"])) <= set(LABELS)
    # The image, in contrast, is interpolated bilinearly: values between the labels appear.
    assert not set(np.unique(out["image"])) <= set(LABELS)


def test_albumentations_resizes_are_forced_to_nearest_for_masks():
    pipeline = build_pipeline([dict(type="Resize", height=97, width=131, mask_interpolation=1)])
    image, mask = random_pair(60, 80)
    assert set(np.unique(pipeline(image=image, mask=mask)["mask"])) <= set(LABELS)


def balanced_share(crop: np.ndarray) -> bool:
    counts = np.bincount(crop[crop != 255].ravel())
    counts = counts[counts > 0]
    return len(counts) > 1 and counts.max() / counts.sum() < 0.75


def test_cat_max_ratio_retries_towards_balanced_crops():
    # Left half class 0, right half class 1: a 20-px-wide crop is balanced only when it straddles
    # the border with >= 6 px of each side (9 of 81 offsets, 11%).
    mask = np.zeros((20, 100), np.uint8)
    mask[:, 50:] = 1
    image = np.zeros((20, 100, 3), np.uint8)
    shares = {}
    for ratio in (0.75, 1.0):
        crop = RandomCropCatMax(height=20, width=20, cat_max_ratio=ratio)
        crop.set_random_seed(0)
        outs = [crop(image=image, mask=mask)["mask"] for _ in range(300)]
        assert all(out.shape == (20, 20) for out in outs)
        shares[ratio] = np.mean([balanced_share(out) for out in outs])
    # Up to 10 tries: 1 - 0.89 ** 10 = 69% balanced, against 11% for one plain random crop.
    assert shares[0.75] > 0.55 and shares[1.0] < 0.2


def test_crop_of_a_single_class_or_small_image():
    crop = RandomCropCatMax(height=32, width=32)
    one_class = crop(image=np.zeros((50, 50, 3), np.uint8), mask=np.ones((50, 50), np.uint8))
    assert one_class["mask"].shape == (32, 32)  # gives up after 10 tries, still crops
    small = crop(image=np.zeros((20, 40, 3), np.uint8), mask=np.zeros((20, 40), np.uint8))
    assert small["image"].shape == (20, 32, 3) and small["mask"].shape == (20, 32)
    assert crop(image=np.zeros((40, 40, 3), np.uint8))["image"].shape == (32, 32, 3)


def test_crop_keeps_image_and_mask_aligned():
    image, mask = random_pair(64, 64, seed=2)
    image[..., 0] = mask  # the red channel carries the label
    crop = RandomCropCatMax(height=24, width=24)
    for _ in range(5):
        out = crop(image=image, mask=mask)
        np.testing.assert_array_equal(out["image"][..., 0], out["mask"])


def distort(image: np.ndarray, **params) -> np.ndarray:
    given = dict(brightness=None, contrast_first=True, contrast=None, saturation=None, hue=None)
    return PhotoMetricDistortion().apply(image, **(given | params))


def test_photometric_distortion_by_hand():
    image = np.array([[[10, 100, 250], [0, 128, 200]]], np.uint8)
    np.testing.assert_array_equal(
        distort(image, brightness=20.0), [[[30, 120, 255], [20, 148, 220]]]
    )
    np.testing.assert_array_equal(distort(image, contrast=1.5), [[[15, 150, 255], [0, 192, 255]]])
    # Saturation 0 gives grey; a hue shift of 90 (180 degrees) turns red into cyan.
    grey = distort(image, saturation=0.0)
    assert (grey.max(-1) - grey.min(-1) <= 1).all()
    red = np.array([[[255, 0, 0]]], np.uint8)
    np.testing.assert_array_equal(distort(red, hue=90), [[[0, 255, 255]]])
    # Brightness comes before contrast either way: (x + 20) * 0.5, truncated.
    for contrast_first in (True, False):
        out = distort(image, brightness=20.0, contrast=0.5, contrast_first=contrast_first)
        np.testing.assert_array_equal(out, [[[15, 60, 127], [10, 74, 110]]])
    # Contrast first clips (200, 100, 100) * 1.5 to (255, 150, 150) before saturation doubles;
    # contrast last scales the nearly pure red (200, 1, 1) left by saturation.
    pink = np.array([[[200, 100, 100]]], np.uint8)
    first = distort(pink, contrast=1.5, saturation=2.0, contrast_first=True)
    last = distort(pink, contrast=1.5, saturation=2.0, contrast_first=False)
    np.testing.assert_allclose(first[0, 0], [255, 45, 45], atol=2)
    np.testing.assert_allclose(last[0, 0], [255, 1, 1], atol=2)


def test_photometric_distortion_changes_colours_not_labels():
    pipeline = build_pipeline([dict(type="PhotoMetricDistortion")])
    image, mask = random_pair(32, 32)
    outs = [pipeline(image=image, mask=mask) for _ in range(8)]
    assert all(np.array_equal(out["mask"], mask) for out in outs)
    assert sum(not np.array_equal(out["image"], image) for out in outs) >= 6


def test_crop_ignores_the_one_ignore_index():
    assert datasets.IGNORE_INDEX is IGNORE_INDEX
    assert RandomCropCatMax(height=8, width=8).ignore_index == IGNORE_INDEX
