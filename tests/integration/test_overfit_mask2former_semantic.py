"""A small Mask2Former from the toy semantic config overfits four toy ADE20K-layout images: mIoU
(IoUMetric) rises from ~1 to ~90 in 25 steps (~30 s on 2 CPU cores), through Segmentor's class
x mask marginalisation."""

import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.optim import OptimWrapper

from dinoreg_dense.datasets import make_toy_ade20k
from dinoreg_dense.registry import DATASETS, METRICS, MODELS

from .conftest import REPO


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
    model_cfg.backbone.update(embed_dim=64, depth=2, num_heads=2, pos_embed_grid=8)
    head = model_cfg.decode_head
    head.neck.update(out_channels=32)
    head.pixel_decoder.update(conv_dim=32, mask_dim=32, num_encoder_layers=1, dim_feedforward=64)
    head.transformer_decoder.update(hidden_dim=32, num_queries=8, dim_feedforward=64)
    head.criterion.update(num_points=512)
    torch.manual_seed(0)
    model = MODELS.build(model_cfg)
    metric = METRICS.build(dict(type="IoUMetric"))
    metric.dataset_meta = dataset.metainfo

    before = miou(model, items, metric)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0, foreach=True)
    wrapper = OptimWrapper(optimizer)
    model.train()
    for _ in range(25):
        model.train_step(pseudo_collate(items), wrapper)
    after = miou(model, items, metric)
    assert after > max(50.0, before + 30.0), (before, after)
