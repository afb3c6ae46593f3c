"""COCOInstanceMetric against pycocotools run directly on the same json, and a value by hand.

The ground truth uses category ids 2 and 5 (labels 0 and 1), so a label written as a category id
scores nothing; its boxes do not start at the origin, so boxes written as ``x0, y0, x1, y1``
instead of ``x, y, w, h`` lose overlap.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.structures import InstanceData
from PIL import Image
from pycocotools import mask as mask_util
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from dinoreg_dense.datasets import COCOInstanceDataset
from dinoreg_dense.registry import METRICS
from dinoreg_dense.structures import DenseDataSample

HEIGHT, WIDTH = 40, 60
# (image id, category id, x0, y0, x1, y1) of rectangular objects; image 3 has none.
OBJECTS = [
    (1, 2, 5, 4, 15, 14),
    (1, 5, 30, 10, 50, 30),
    (2, 5, 8, 20, 20, 36),
    (2, 2, 40, 2, 48, 10),
]
CATEGORY_IDS = (2, 5)


def rect_mask(x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    mask = np.zeros((HEIGHT, WIDTH), bool)
    mask[y0:y1, x0:x1] = True
    return mask


def write_gt(root: Path) -> Path:
    """Three val2017 images (the third without objects) and their polygons; one crowd."""
    (root / "annotations").mkdir(parents=True)
    (root / "val2017").mkdir()
    for image_id in (1, 2, 3):
        pixels = np.full((HEIGHT, WIDTH, 3), 80 * image_id, np.uint8)
        Image.fromarray(pixels).save(root / "val2017" / f"{image_id:012d}.jpg")
    annotations = [
        dict(
            id=i + 1,
            image_id=image_id,
            category_id=category,
            segmentation=[[x0, y0, x1, y0, x1, y1, x0, y1]],
            bbox=[x0, y0, x1 - x0, y1 - y0],
            area=float((x1 - x0) * (y1 - y0)),
            iscrowd=0,
        )
        for i, (image_id, category, x0, y0, x1, y1) in enumerate(OBJECTS)
    ]
    crowd = mask_util.encode(np.asfortranarray(rect_mask(0, 30, 6, 40).astype(np.uint8)))
    annotations.append(
        dict(
            id=len(annotations) + 1,
            image_id=1,
            category_id=2,
            segmentation=dict(size=crowd["size"], counts=crowd["counts"].decode()),
            bbox=[0, 30, 6, 10],
            area=60.0,
            iscrowd=1,
        )
    )
    gt = dict(
        images=[
            dict(id=i, file_name=f"{i:012d}.jpg", height=HEIGHT, width=WIDTH) for i in (1, 2, 3)
        ],
        annotations=annotations,
        categories=[dict(id=c, name=f"c{c}") for c in CATEGORY_IDS],
    )
    path = root / "annotations" / "instances_val2017.json"
    path.write_text(json.dumps(gt))
    return path


@pytest.fixture
def gt_root(tmp_path: Path) -> Path:
    write_gt(tmp_path)
    return tmp_path


def prediction(image_id: int, rows: list[tuple[int, float, tuple[int, int, int, int]]]) -> dict:
    """``DenseDataSample.to_dict()`` of (label, score, box) predictions with rectangle masks."""
    instances = InstanceData()
    instances.labels = torch.tensor([label for label, _, _ in rows], dtype=torch.int64)
    instances.scores = torch.tensor([score for _, score, _ in rows], dtype=torch.float32)
    instances.bboxes = torch.tensor([box for _, _, box in rows], dtype=torch.float32).reshape(-1, 4)
    masks = [rect_mask(*box) for _, _, box in rows]
    instances.masks = torch.from_numpy(np.asarray(masks, bool).reshape(-1, HEIGHT, WIDTH))
    sample = DenseDataSample(metainfo=dict(image_id=image_id, ori_shape=(HEIGHT, WIDTH)))
    sample.pred_instances = instances
    return sample.to_dict()


def run_metric(metric_cfg: dict, dataset: COCOInstanceDataset, samples: list[dict]) -> dict:
    metric = METRICS.build(dict(type="COCOInstanceMetric", **metric_cfg))
    metric.dataset_meta = dataset.metainfo
    metric.process({}, samples)
    return metric.evaluate(len(samples))


def test_predictions_equal_to_ground_truth_score_one(gt_root):
    dataset = COCOInstanceDataset(gt_root, split="val", test_mode=True)
    samples = []
    for item in (dataset[i] for i in range(len(dataset))):
        gt = item["data_samples"].gt_instances
        sample = DenseDataSample(metainfo=item["data_samples"].metainfo)
        sample.pred_instances = InstanceData(
            labels=gt.labels, bboxes=gt.bboxes, masks=gt.masks, scores=torch.ones(len(gt))
        )
        samples.append(sample.to_dict())
    metrics = run_metric({}, dataset, samples)
    for iou_type in ("bbox", "segm"):
        for name in ("AP", "AP50", "AP75", "APs"):
            assert metrics[f"coco/{iou_type}_{name}"] == pytest.approx(1.0), name
        for name in ("APm", "APl"):  # every object is small (< 32^2 pixels)
            assert metrics[f"coco/{iou_type}_{name}"] == -1.0, name


def test_false_positive_gives_pycocotools_value_and_hand_value(gt_root, tmp_path):
    """Category 5 in image 1: its object (TP, 0.9), a false positive (0.8); image 2: its object
    (TP, 0.7). Category 2: both objects found (TP, 0.6 and 0.5), AP 1.

    Category 5's precision / recall after each detection: (1, 1/2), (1/2, 1/2), (2/3, 1); the
    interpolated precision is 1 at the 51 recall points 0, 0.01 ... 0.50 and 2/3 at the 50 above,
    so AP = (51 + 50 * 2/3) / 101 at every IoU threshold; the mean over both categories follows.
    """
    dataset = COCOInstanceDataset(gt_root, split="val", test_mode=True)
    samples = [
        prediction(
            1, [(1, 0.9, (30, 10, 50, 30)), (1, 0.8, (2, 22, 22, 38)), (0, 0.6, (5, 4, 15, 14))]
        ),
        prediction(2, [(1, 0.7, (8, 20, 20, 36)), (0, 0.5, (40, 2, 48, 10))]),
        prediction(3, []),
    ]
    prefix = tmp_path / "out" / "results"
    metrics = run_metric(dict(outfile_prefix=str(prefix)), dataset, samples)
    by_hand = ((51 + 50 * 2 / 3) / 101 + 1.0) / 2
    gt = COCO(str(gt_root / "annotations" / "instances_val2017.json"))
    for iou_type in ("bbox", "segm"):
        # pycocotools directly, on results written here without the metric's code
        results = []
        for sample in samples:
            pred = sample["pred_instances"]
            for label, score, box, mask in zip(
                pred["labels"], pred["scores"], pred["bboxes"], pred["masks"], strict=True
            ):
                x0, y0, x1, y1 = box.tolist()
                entry = dict(
                    image_id=sample["image_id"],
                    category_id=CATEGORY_IDS[int(label)],
                    score=float(score),
                    bbox=[x0, y0, x1 - x0, y1 - y0],
                )
                if iou_type == "segm":
                    rle = mask_util.encode(np.asfortranarray(mask.numpy().astype(np.uint8)))
                    entry["segmentation"] = dict(size=rle["size"], counts=rle["counts"].decode())
                results.append(entry)
        direct = COCOeval(gt, gt.loadRes(results), iou_type)
        direct.evaluate()
        direct.accumulate()
        direct.summarize()
        assert metrics[f"coco/{iou_type}_AP"] == pytest.approx(direct.stats[0], abs=1e-12)
        assert metrics[f"coco/{iou_type}_AP50"] == pytest.approx(direct.stats[1], abs=1e-12)
        assert metrics[f"coco/{iou_type}_AP"] == pytest.approx(by_hand, abs=1e-9)
        assert metrics[f"coco/{iou_type}_AP75"] == pytest.approx(by_hand, abs=1e-9)
        written = json.loads(Path(f"{prefix}.{iou_type}.json").read_text())
        assert len(written) == 5
        assert [d["category_id"] for d in written] == [5, 5, 2, 5, 2]
        assert written[0]["bbox"] == [30.0, 10.0, 20.0, 20.0]
    assert isinstance(written[0]["segmentation"]["counts"], str)


def test_ann_file_argument_and_missing_meta(gt_root):
    dataset = COCOInstanceDataset(gt_root, split="val", test_mode=True)
    meta = dict(dataset.metainfo)
    ann_file = meta.pop("ann_file")
    metric = METRICS.build(dict(type="COCOInstanceMetric", ann_file=ann_file, iou_types=["bbox"]))
    metric.dataset_meta = meta
    metric.process({}, [prediction(3, [(0, 0.5, (1, 1, 5, 5))])])
    metrics = metric.evaluate(1)
    assert set(metrics) == {f"coco/bbox_{n}" for n in ("AP", "AP50", "AP75", "APs", "APm", "APl")}
    assert metrics["coco/bbox_AP"] == -1.0  # image 3 alone has no ground truth
    metric = METRICS.build(dict(type="COCOInstanceMetric"))
    metric.dataset_meta = dict(classes=("a",))
    with pytest.raises(ValueError, match="category_ids"):
        metric.process({}, [prediction(1, [])])
    with pytest.raises(ValueError, match="iou_types"):
        METRICS.build(dict(type="COCOInstanceMetric", iou_types=["keypoints"]))
