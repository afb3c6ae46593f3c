import logging
import math

import pytest
import torch
from mmengine.logging import MMLogger

from dinoreg_dense.evaluation import DEPTH_METRIC_NAMES, DepthMetric, depth_eval_mask
from dinoreg_dense.registry import METRICS
from dinoreg_dense.structures import DenseDataSample

# A 2x2 image: three valid pixels at gt 2 m, one without measurement (gt 0) under a wild
# prediction that must not count. Per valid pixel (p, g): (2, 2), (3, 2), (3.6, 2).
#   ratios max(p/g, g/p): 1, 1.5, 1.8 -> d1 (< 1.25) 1/3, d2 (< 1.5625) 2/3, d3 (< 1.953) 1
#   |p - g| / g: 0, 0.5, 0.8        -> abs_rel 1.3 / 3
#   (p - g)^2 / g: 0, 0.5, 1.28     -> sq_rel 1.78 / 3
#   (p - g)^2: 0, 1, 2.56           -> rmse sqrt(3.56 / 3)
#   e = ln p - ln g: 0, ln 1.5, ln 1.8
GT_2X2 = torch.tensor([[2.0, 2.0], [2.0, 0.0]])
PRED_2X2 = torch.tensor([[2.0, 3.0], [3.6, 100.0]])
LOG_ERRORS = [0.0, math.log(1.5), math.log(1.8)]
MEAN_E = sum(LOG_ERRORS) / 3
MEAN_E2 = sum(e * e for e in LOG_ERRORS) / 3
EXPECTED_2X2 = {
    "d1": 1 / 3,
    "d2": 2 / 3,
    "d3": 1.0,
    "abs_rel": 1.3 / 3,
    "sq_rel": 1.78 / 3,
    "rmse": math.sqrt(3.56 / 3),
    "rmse_log": math.sqrt(MEAN_E2),
    "log10": (math.log10(1.5) + math.log10(1.8)) / 3,
    "silog": math.sqrt(MEAN_E2 - MEAN_E**2) * 100,
    "num_skipped": 0,
}


def sample(pred: torch.Tensor, gt: torch.Tensor, img_path: str = "img.png") -> dict:
    return DenseDataSample(
        pred_depth_map=pred, gt_depth_map=gt, metainfo=dict(img_path=img_path)
    ).to_dict()


def evaluate(metric: DepthMetric, samples: list[dict]) -> dict[str, float]:
    metric.process({}, samples)
    return metric.evaluate(len(samples))


def test_scores_by_hand_on_2x2():
    metrics = evaluate(DepthMetric(min_depth=1e-3, max_depth=10), [sample(PRED_2X2, GT_2X2)])
    assert set(metrics) == {*DEPTH_METRIC_NAMES, "num_skipped"}
    assert metrics == pytest.approx(EXPECTED_2X2)


def test_scores_are_averaged_per_image_not_pooled_over_pixels():
    # Image A: one pixel, abs_rel 1 (p 2, g 1). Image B: three exact pixels, abs_rel 0.
    # Per image: (1 + 0) / 2 = 0.5; pooled over the 4 pixels it would be 1 / 4.
    image_a = sample(torch.tensor([[2.0]]), torch.tensor([[1.0]]))
    image_b = sample(torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([[1.0, 2.0, 3.0]]))
    metrics = evaluate(DepthMetric(max_depth=10), [image_a, image_b])
    assert metrics["abs_rel"] == pytest.approx(0.5)
    assert metrics["abs_rel"] != pytest.approx(0.25)
    # d1: image A has ratio 2 (0), image B all exact (1) -> 0.5 (pooled: 0.75).
    assert metrics["d1"] == pytest.approx(0.5)


def test_delta_thresholds_are_strict():
    # Ratios exactly 1.25 (5 / 4 and 4 / 5, exact in binary): not < 1.25, but < 1.25 ** 2.
    pred, gt = torch.tensor([[5.0, 4.0]]), torch.tensor([[4.0, 5.0]])
    metrics = evaluate(DepthMetric(max_depth=10), [sample(pred, gt)])
    assert (metrics["d1"], metrics["d2"], metrics["d3"]) == (0, 1, 1)


def test_ground_truth_outside_min_max_is_masked_and_predictions_clamped():
    # gt: 0.5 and 10 (== max_depth) and 12 are out for (1, 10); only gt 4 and 5 count.
    gt = torch.tensor([[0.5, 4.0, 5.0, 10.0, 12.0]])
    # 20 is clamped to max_depth 10 (abs_rel |10 - 4| / 4 = 1.5); 0 is clamped to 1
    # (abs_rel |1 - 5| / 5 = 0.8). Wrong values under masked gt must not count.
    pred = torch.tensor([[9.0, 20.0, 0.0, 1.0, 1.0]])
    metrics = evaluate(DepthMetric(min_depth=1.0, max_depth=10.0), [sample(pred, gt)])
    assert metrics["abs_rel"] == pytest.approx((1.5 + 0.8) / 2)
    assert metrics["rmse"] == pytest.approx(math.sqrt((36 + 16) / 2))


def test_eigen_crop_region():
    mask = depth_eval_mask(torch.ones(480, 640), 1e-3, 10, crop="eigen")
    assert mask.sum() == (471 - 45) * (601 - 41)
    assert mask[45, 41] and mask[470, 600]
    assert not mask[44, 41] and not mask[45, 40] and not mask[471, 600] and not mask[470, 601]


def test_garg_crop_region():
    # KITTI 375x1242: rows int(153.04)=153 .. int(371.96)=371,
    # cols int(44.65)=44 .. int(1197.35)=1197.
    mask = depth_eval_mask(torch.ones(375, 1242), 1e-3, 80, crop="garg")
    assert mask.sum() == (371 - 153) * (1197 - 44)
    assert mask[153, 44] and mask[370, 1196]
    assert not mask[152, 44] and not mask[153, 43] and not mask[371, 100] and not mask[200, 1197]


def test_crop_leaves_errors_outside_it_out_of_the_scores():
    gt = torch.ones(480, 640)
    pred = torch.full((480, 640), 2.0)
    pred[45:471, 41:601] = 1.0
    metrics = evaluate(DepthMetric(max_depth=10, crop="eigen"), [sample(pred, gt)])
    assert metrics["abs_rel"] == 0
    assert metrics["d1"] == 1


def test_eigen_crop_rejects_other_sizes():
    with pytest.raises(ValueError, match="480x640"):
        depth_eval_mask(torch.ones(240, 320), 1e-3, 10, crop="eigen")


def test_image_without_valid_pixels_is_skipped_and_logged():
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    # Valid depth only in row 0, which the Eigen crop removes.
    gt = torch.zeros(480, 640)
    gt[0] = 3.0
    try:
        metrics = evaluate(
            DepthMetric(max_depth=10, crop="eigen"),
            [
                sample(torch.ones(480, 640), gt, "empty.png"),
                sample(torch.full((480, 640), 2.0), torch.ones(480, 640), "full.png"),
            ],
        )
    finally:
        logger.removeHandler(handler)
    assert metrics["num_skipped"] == 1
    # Only full.png counts: every pixel off by a factor 2.
    assert metrics["abs_rel"] == pytest.approx(1.0)
    assert metrics["d1"] == 0
    warnings = [record for record in records if record.levelno == logging.WARNING]
    assert any("empty.png" in record.getMessage() for record in warnings)


def test_skip_counts_and_other_images_still_score():
    empty = sample(torch.ones(2, 2), torch.zeros(2, 2), "empty.png")
    metrics = evaluate(DepthMetric(max_depth=10), [empty, sample(PRED_2X2, GT_2X2)])
    assert metrics == pytest.approx({**EXPECTED_2X2, "num_skipped": 1})


def test_all_images_skipped_raises():
    with pytest.raises(ValueError, match="none of the 1 images"):
        evaluate(DepthMetric(max_depth=10), [sample(torch.ones(2, 2), torch.zeros(2, 2))])


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_prediction_raises_with_path(bad: float):
    # Even under a pixel without ground truth: the model is broken either way.
    pred = PRED_2X2.clone()
    pred[1, 1] = bad
    with pytest.raises(ValueError, match="bad.png.*NaN or inf"):
        DepthMetric(max_depth=10).process({}, [sample(pred, GT_2X2, "bad.png")])


def test_shape_mismatch_raises_with_path():
    with pytest.raises(ValueError, match="small.png.*shape"):
        DepthMetric().process({}, [sample(torch.ones(2, 3), torch.ones(2, 2), "small.png")])


def test_invalid_arguments():
    with pytest.raises(ValueError, match="min_depth < max_depth"):
        DepthMetric(min_depth=10, max_depth=1)
    with pytest.raises(ValueError, match="unknown crop"):
        DepthMetric(crop="nyu")


def test_builds_from_config():
    metric = METRICS.build(dict(type="DepthMetric", min_depth=1e-3, max_depth=80, crop="garg"))
    assert isinstance(metric, DepthMetric)
    assert (metric.min_depth, metric.max_depth, metric.crop) == (1e-3, 80, "garg")


def test_depth_range_comes_from_the_dataset_unless_given():
    from dinoreg_dense.evaluation import DepthMetric

    metric = DepthMetric()
    assert (metric.min_depth, metric.max_depth) == (1e-3, 10.0)
    metric.dataset_meta = dict(min_depth=0.5, max_depth=80.0)  # what the runner sets
    assert (metric.min_depth, metric.max_depth) == (0.5, 80.0)
    given = DepthMetric(max_depth=20.0)
    given.dataset_meta = dict(min_depth=0.5, max_depth=80.0)
    assert (given.min_depth, given.max_depth) == (0.5, 20.0)


def test_relative_disparity_is_refused_not_scored_as_metres():
    sample = DenseDataSample(gt_depth_map=torch.full((2, 2), 2.0))
    sample.pred_disparity_map = torch.full((2, 2), 0.5)
    sample.set_metainfo(dict(img_path="room.png"))
    with pytest.raises(ValueError, match=r"room.png: the model predicts relative disparity"):
        DepthMetric().process({}, [sample.to_dict()])
