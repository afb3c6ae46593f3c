"""A small Mask2Former from the toy semantic config overfits four toy ADE20K-layout images: mIoU
(IoUMetric) rises from ~1 to ~90 in 25 steps (~30 s on 2 CPU cores), through Segmentor's class
x mask marginalisation."""

import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate

from dinoreg_dense.datasets import make_toy_ade20k
from dinoreg_dense.registry import DATASETS, METRICS, MODELS

from .conftest import REPO, shrink_mask2former, train_steps


def miou(model, items, metric) -> float:
    model.eval()
    with torch.no_grad():
        outputs = model.test_step(pseudo_collate(items))
    metric.process(None, [output.to_dict() for output in outputs])
    return metric.evaluate(len(items))["mIoU"]


def test_a_small_semantic_mask2former_overfits_four_toy_images(tmp_path):
    root = make_toy_ade20k(tmp_path / "toy", num_train=4, num_val=1, image_size=(64, 64))
    cfg = Config.fromfile(REPO / "configs" / "toy_mask2former_vittiny.py")
    dataset = DATASETS.build(dict(cfg.train_dataloader.dataset, data_root=str(root), pipeline=[]))
    items = [dataset[i] for i in range(len(dataset))]
    model_cfg = cfg.model
    model_cfg.data_preprocessor.size = (64, 64)
    shrink_mask2former(model_cfg)
    torch.manual_seed(0)
    model = MODELS.build(model_cfg)
    metric = METRICS.build(dict(type="IoUMetric"))
    metric.dataset_meta = dataset.metainfo

    before = miou(model, items, metric)
    train_steps(model, items, 25)
    after = miou(model, items, metric)
    assert after > max(50.0, before + 30.0), (before, after)
