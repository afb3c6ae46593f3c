"""A small Mask2Former from the toy instance config overfits four toy COCO images: segm AP by
COCOInstanceMetric (pycocotools) rises from ~0 to near 1 in 150 steps (~25 s on 2 CPU cores)."""

import contextlib
import io

import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate

from dinoreg_dense.datasets.toy_instances import make_toy_coco_instances
from dinoreg_dense.registry import DATASETS, METRICS, MODELS

from .conftest import REPO, shrink_mask2former, train_steps


def segm_ap(model, items, metric) -> float:
    model.eval()
    with torch.no_grad():
        outputs = model.test_step(pseudo_collate(items))
    metric.process(None, [output.to_dict() for output in outputs])
    with contextlib.redirect_stdout(io.StringIO()):  # COCOeval's printed summary
        return metric.evaluate(len(items))["coco/segm_AP"]


def test_a_small_mask2former_overfits_four_toy_images(tmp_path):
    root = make_toy_coco_instances(tmp_path / "toy", num_train=4, num_val=0, image_size=(64, 64))
    cfg = Config.fromfile(REPO / "configs" / "toy_instance_mask2former_vittiny.py")
    dataset = DATASETS.build(dict(cfg.train_dataloader.dataset, data_root=str(root), pipeline=[]))
    items = [dataset[i] for i in range(len(dataset))]
    assert len(items) == 3  # the fourth image holds only a crowd
    model_cfg = cfg.model
    shrink_mask2former(model_cfg)
    model = MODELS.build(model_cfg)
    metric = METRICS.build(dict(type="COCOInstanceMetric", iou_types=["segm"]))
    metric.dataset_meta = dataset.metainfo

    before = segm_ap(model, items, metric)
    train_steps(model, items, 150)
    after = segm_ap(model, items, metric)
    assert before < 0.1 and after > max(0.5, before + 0.45), (before, after)
