"""CorLoc against hand-computed cases: exact 0.5, touching boxes, several or no ground-truth boxes,
and the same score from one process as from two."""

import json
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.utils.data import DistributedSampler

from dinoreg_dense.evaluation import CorLocMetric, best_iou, corloc_hit
from dinoreg_dense.registry import METRICS


def sample(pred: list[list[float]], gt: list[list[float]]) -> dict:
    return dict(
        pred_instances=dict(bboxes=torch.tensor(pred, dtype=torch.float32).reshape(-1, 4)),
        gt_instances=dict(bboxes=torch.tensor(gt, dtype=torch.float32).reshape(-1, 4)),
    )


@pytest.mark.parametrize(
    ("pred", "gt", "hit"),
    [
        ([0, 0, 10, 10], [[0, 0, 10, 10]], True),  # identical: IoU 1
        ([0, 0, 2, 1], [[0, 0, 1, 1]], True),  # IoU 1 / 2 exactly: ">= 0.5" counts
        ([0, 0, 2, 1], [[0, 0, 0.99, 1]], False),  # 0.99 / 2 = 0.495
        ([0, 0, 10, 10], [[10, 0, 20, 10]], False),  # touching at x = 10: no shared pixel
        ([0, 0, 10, 10], [[0, 0, 10, 5]], True),  # inside, half the area: 50 / 100
        ([0, 0, 10, 10], [[5, 0, 15, 10]], False),  # half overlap: 50 / 150 = 1/3
        ([0, 0, 10, 10], [[50, 50, 60, 60], [0, 0, 9, 9]], True),  # any box: 81 / 100
        ([0, 0, 10, 10], [], False),  # no ground truth: a miss
    ],
)
def test_hits_by_hand(pred, gt, hit):
    assert (
        corloc_hit(torch.tensor(pred, dtype=torch.float32), torch.tensor(gt).reshape(-1, 4)) is hit
    )


def test_best_iou_by_hand():
    pred = torch.tensor([0.0, 0.0, 10.0, 10.0])
    assert best_iou(pred, torch.tensor([[5.0, 0.0, 15.0, 10.0], [0.0, 0.0, 10.0, 5.0]])) == 0.5
    assert best_iou(pred, torch.zeros(0, 4)) == 0.0


def test_only_the_first_predicted_box_counts_and_none_is_a_miss():
    gt = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    assert not corloc_hit(torch.tensor([[50.0, 50, 60, 60], [0, 0, 10, 10]]), gt)
    assert not corloc_hit(torch.zeros(0, 4), gt)


def test_metric_by_hand():
    metric = METRICS.build(dict(type="CorLocMetric"))
    metric.process(
        None,
        [
            sample([[0, 0, 2, 1]], [[0, 0, 1, 1]]),  # hit (exactly 0.5)
            sample([[0, 0, 10, 10]], [[10, 0, 20, 10]]),  # miss (touching)
            sample([[0, 0, 10, 10]], []),  # miss (no ground truth), still counted
            sample([[0, 0, 10, 10]], [[1, 1, 10, 10], [30, 30, 40, 40]]),  # hit (0.81)
        ],
    )
    assert metric.evaluate(4) == {"corloc": 50.0, "hits": 2, "images": 4}


def test_metric_drops_the_samples_a_sampler_repeated():
    metric = CorLocMetric()
    samples = [sample([[0, 0, 10, 10]], [[50, 50, 60, 60]])] * 2  # two misses
    samples.append(sample([[0, 0, 10, 10]], [[0, 0, 10, 10]]))  # a padding repeat: a hit
    metric.process(None, samples)
    assert metric.evaluate(2)["corloc"] == 0.0


def test_empty_dataset_is_an_error():
    with pytest.raises(ValueError, match="empty"):
        CorLocMetric().compute_metrics([])


NUM_IMAGES_DIST = 7


def distributed_samples() -> list[dict]:
    """7 images, hits at 0, 3 and 6 (the last one is what a 2-rank sampler repeats)."""
    return [
        sample([[0, 0, 10, 10]], [[0, 0, 10, 10]] if i % 3 == 0 else [[20, 20, 30, 30]])
        for i in range(NUM_IMAGES_DIST)
    ]


def _evaluate_shard(rank: int, world_size: int, work_dir: str) -> None:
    dist.init_process_group(
        "gloo", init_method=f"file://{work_dir}/init", rank=rank, world_size=world_size
    )
    try:
        samples = distributed_samples()
        sampler = DistributedSampler(samples, num_replicas=world_size, rank=rank, shuffle=False)
        metric = CorLocMetric(collect_dir=f"{work_dir}/collect")
        metric.process(None, [samples[i] for i in sampler])
        result = metric.evaluate(NUM_IMAGES_DIST)
        Path(work_dir, f"rank{rank}.json").write_text(json.dumps(result))
    finally:
        dist.destroy_process_group()


def test_two_process_evaluation_equals_one_process(tmp_path):
    mp.spawn(_evaluate_shard, args=(2, str(tmp_path)), nprocs=2, join=True)
    metric = CorLocMetric()
    metric.process(None, distributed_samples())
    expected = metric.evaluate(NUM_IMAGES_DIST)
    assert expected["hits"] == 3 and expected["corloc"] == pytest.approx(300 / 7)
    for rank in range(2):
        assert json.loads((tmp_path / f"rank{rank}.json").read_text()) == expected
