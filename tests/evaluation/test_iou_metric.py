import json
import logging
import math
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from mmengine.evaluator import Evaluator
from mmengine.logging import MMLogger
from torch.utils.data import DistributedSampler

from dinoreg_dense.evaluation import IoUMetric, intersect_and_union, iou_from_histograms
from dinoreg_dense.registry import METRICS
from dinoreg_dense.structures import SegDataSample

CLASSES = ("a", "b", "c", "d")

# Two hand-made images, 255 = ignore. Class "d" (3) appears in neither prediction nor label.
GT_1 = torch.tensor([[0, 0, 1], [1, 2, 255]])
PRED_1 = torch.tensor([[0, 1, 1], [1, 2, 0]])
GT_2 = torch.tensor([[0, 0], [0, 255]])
PRED_2 = torch.tensor([[0, 2], [2, 1]])
# Counted over non-ignored pixels (the prediction under a 255 label does not count):
#   image 1 (5 pixels): class 0: label 2, pred 1, both 1 | class 1: label 2, pred 3, both 2
#                       class 2: label 1, pred 1, both 1
#   image 2 (3 pixels): class 0: label 3, pred 1, both 1 | class 2: label 0, pred 2, both 0
#   total:  class 0: I 2, P 2, L 5, U 5 -> IoU 2/5, Acc 2/5, Dice 4/7, Precision 1
#           class 1: I 2, P 3, L 2, U 3 -> IoU 2/3, Acc 1,   Dice 4/5, Precision 2/3
#           class 2: I 1, P 3, L 1, U 3 -> IoU 1/3, Acc 1,   Dice 1/2, Precision 1/3
#           class 3: all zero            -> NaN, left out of the means
#   aAcc = 5 correct / 8 labelled pixels.
EXPECTED = {
    "aAcc": 100 * 5 / 8,
    "mIoU": 100 * (2 / 5 + 2 / 3 + 1 / 3) / 3,
    "mAcc": 100 * (2 / 5 + 1 + 1) / 3,
}


def hand_samples() -> list[dict]:
    return [
        SegDataSample(pred_sem_seg=PRED_1, gt_sem_seg=GT_1).to_dict(),
        SegDataSample(pred_sem_seg=PRED_2, gt_sem_seg=GT_2).to_dict(),
    ]


def evaluate(metric: IoUMetric, samples: list[dict]) -> dict[str, float]:
    metric.dataset_meta = {"classes": CLASSES}
    metric.process({}, samples)
    return metric.evaluate(len(samples))


def test_intersect_and_union_by_hand():
    intersect, union, pred, label = intersect_and_union(PRED_1, GT_1, num_classes=4)
    assert intersect.tolist() == [1, 2, 1, 0]
    assert union.tolist() == [2, 3, 1, 0]
    assert pred.tolist() == [1, 3, 1, 0]
    assert label.tolist() == [2, 2, 1, 0]
    assert intersect.dtype == torch.int64


def test_metric_by_hand():
    assert evaluate(IoUMetric(), hand_samples()) == pytest.approx(EXPECTED)


def test_absent_class_is_nan_per_class_and_nan_to_num_counts_it():
    totals = torch.tensor([[2, 2, 1, 0], [5, 3, 3, 0], [2, 3, 3, 0], [5, 2, 1, 0]])
    scores = iou_from_histograms(*totals)
    assert torch.isnan(scores["IoU"][3]) and torch.isnan(scores["Acc"][3])
    assert scores["IoU"][:3].tolist() == pytest.approx([2 / 5, 2 / 3, 1 / 3])

    metrics = evaluate(IoUMetric(nan_to_num=0), hand_samples())
    assert metrics["mIoU"] == pytest.approx(100 * (2 / 5 + 2 / 3 + 1 / 3) / 4)
    assert metrics["mAcc"] == pytest.approx(100 * (2 / 5 + 1 + 1) / 4)


def test_dice_and_fscore_by_hand():
    metrics = evaluate(IoUMetric(iou_metrics=("mIoU", "mDice", "mFscore")), hand_samples())
    dice = [4 / 7, 4 / 5, 1 / 2]
    precision = [1, 2 / 3, 1 / 3]
    recall = [2 / 5, 1, 1]
    assert metrics["mDice"] == pytest.approx(100 * sum(dice) / 3)
    # With beta = 1 the F-score of each class equals its Dice coefficient.
    assert metrics["mFscore"] == pytest.approx(100 * sum(dice) / 3)
    assert metrics["mPrecision"] == pytest.approx(100 * sum(precision) / 3)
    assert metrics["mRecall"] == pytest.approx(100 * sum(recall) / 3)


def test_per_class_table_is_logged():
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    try:
        evaluate(IoUMetric(), hand_samples())
    finally:
        logger.removeHandler(handler)
    rows = [line.split("|") for line in records[-1].getMessage().splitlines()[1:]]
    table = {row[0].strip(): [cell.strip() for cell in row[1:]] for row in rows}
    assert table["Class"] == ["IoU", "Acc"]
    assert table["a"] == ["40.00", "40.00"]
    assert table["b"] == ["66.67", "100.00"]
    assert table["c"] == ["33.33", "100.00"]
    assert table["d"] == ["nan", "nan"]


def test_prediction_class_out_of_range_raises():
    pred = torch.tensor([[0, 4]])
    with pytest.raises(ValueError, match="prediction contains class indices in \\[0, 4\\]"):
        intersect_and_union(pred, torch.tensor([[0, 255]]), num_classes=4)


def test_label_class_out_of_range_raises_but_ignore_index_does_not():
    with pytest.raises(ValueError, match="label"):
        intersect_and_union(torch.tensor([[0, 1]]), torch.tensor([[0, 7]]), num_classes=4)
    intersect, *_ = intersect_and_union(
        torch.tensor([[0, 1]]), torch.tensor([[0, 7]]), num_classes=4, ignore_index=7
    )
    assert intersect.tolist() == [1, 0, 0, 0]


def test_shape_mismatch_and_missing_classes_raise():
    with pytest.raises(ValueError, match="shape"):
        intersect_and_union(torch.zeros(2, 3, dtype=torch.long), GT_2, num_classes=4)
    with pytest.raises(RuntimeError, match="dataset_meta"):
        IoUMetric().process({}, hand_samples())
    with pytest.raises(KeyError, match="mBogus"):
        IoUMetric(iou_metrics=("mBogus",))


def random_samples(seed: int, num_images: int, num_classes: int) -> list[dict]:
    """Random maps of varied sizes; the last class never occurs, some pixels are ignored."""
    generator = torch.Generator().manual_seed(seed)
    samples = []
    for i in range(num_images):
        shape = (17 + i, 23 + 2 * i)
        gt = torch.randint(0, num_classes - 1, shape, generator=generator)
        noise = torch.randint(0, num_classes - 1, shape, generator=generator)
        pred = torch.where(torch.rand(shape, generator=generator) < 0.4, noise, gt)
        gt[torch.rand(shape, generator=generator) < 0.1] = 255
        samples.append({"pred_sem_seg": pred, "gt_sem_seg": gt})
    return samples


@pytest.mark.parametrize("nan_to_num", [None, 0])
def test_matches_mmsegmentation(nan_to_num):
    # mmsegmentation is in the dev extra: a missing reference is a failure, not a skip.
    import mmseg.evaluation as mmseg_evaluation

    classes = [f"class{k}" for k in range(6)]
    samples = random_samples(seed=0, num_images=5, num_classes=len(classes))
    options = dict(iou_metrics=["mIoU", "mDice", "mFscore"], nan_to_num=nan_to_num)

    reference = mmseg_evaluation.IoUMetric(**options)
    reference.dataset_meta = {"classes": classes}
    reference.process(
        {},
        [
            {
                "pred_sem_seg": {"data": s["pred_sem_seg"][None]},
                "gt_sem_seg": {"data": s["gt_sem_seg"][None]},
            }
            for s in samples
        ],
    )
    for ours, theirs in zip(
        (torch.stack(intersect_and_union(s["pred_sem_seg"], s["gt_sem_seg"], 6)) for s in samples),
        reference.results,
        strict=True,
    ):
        assert torch.equal(ours, torch.stack(theirs).long())
    expected = reference.evaluate(len(samples))

    metric = IoUMetric(**options)
    metric.dataset_meta = {"classes": classes}
    metric.process({}, samples)
    result = metric.evaluate(len(samples))

    assert result.keys() == expected.keys()
    for name, value in expected.items():
        # mmsegmentation rounds its means to two decimals.
        assert result[name] == pytest.approx(float(value), abs=0.0051), name
    if nan_to_num is None:
        assert not any(math.isnan(v) for v in result.values())


def test_evaluator_with_registry_and_dataset_meta():
    metric = METRICS.build(dict(type="IoUMetric", prefix="val"))
    evaluator = Evaluator(metric)
    evaluator.dataset_meta = {"classes": CLASSES}
    evaluator.process(
        [
            SegDataSample(pred_sem_seg=PRED_1, gt_sem_seg=GT_1),
            SegDataSample(pred_sem_seg=PRED_2, gt_sem_seg=GT_2),
        ]
    )
    result = evaluator.evaluate(2)
    assert result == pytest.approx({f"val/{k}": v for k, v in EXPECTED.items()})
    # The Evaluator also builds the metric from a config dict of the dinoreg_dense scope.
    assert isinstance(Evaluator(dict(type="dinoreg_dense.IoUMetric")).metrics[0], IoUMetric)


NUM_CLASSES_DIST = 5
NUM_IMAGES_DIST = 7


def _evaluate_shard(rank: int, world_size: int, work_dir: str) -> None:
    """One rank: evaluate the images a DistributedSampler gives it (padded by repetition)."""
    dist.init_process_group(
        "gloo", init_method=f"file://{work_dir}/init", rank=rank, world_size=world_size
    )
    try:
        samples = random_samples(1, NUM_IMAGES_DIST, NUM_CLASSES_DIST)
        sampler = DistributedSampler(samples, num_replicas=world_size, rank=rank, shuffle=False)
        metric = IoUMetric(iou_metrics=("mIoU", "mDice"), collect_dir=f"{work_dir}/collect")
        metric.dataset_meta = {"classes": [str(k) for k in range(NUM_CLASSES_DIST)]}
        metric.process({}, [samples[i] for i in sampler])
        result = metric.evaluate(NUM_IMAGES_DIST)
        Path(work_dir, f"rank{rank}.json").write_text(json.dumps(result))
    finally:
        dist.destroy_process_group()


def test_two_process_evaluation_equals_one_process(tmp_path):
    mp.spawn(_evaluate_shard, args=(2, str(tmp_path)), nprocs=2, join=True)

    metric = IoUMetric(iou_metrics=("mIoU", "mDice"))
    metric.dataset_meta = {"classes": [str(k) for k in range(NUM_CLASSES_DIST)]}
    metric.process({}, random_samples(1, NUM_IMAGES_DIST, NUM_CLASSES_DIST))
    expected = metric.evaluate(NUM_IMAGES_DIST)
    for rank in range(2):
        assert json.loads((tmp_path / f"rank{rank}.json").read_text()) == expected


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_histograms_on_gpu_match_cpu():
    sample = random_samples(2, 1, 6)[0]
    on_cpu = intersect_and_union(sample["pred_sem_seg"], sample["gt_sem_seg"], 6)
    on_gpu = intersect_and_union(sample["pred_sem_seg"].cuda(), sample["gt_sem_seg"].cuda(), 6)
    assert all(g.is_cuda for g in on_gpu)
    for c, g in zip(on_cpu, on_gpu, strict=True):
        assert torch.equal(c, g.cpu())
