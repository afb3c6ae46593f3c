"""Every experiment config builds, its model runs a forward/backward at a small size, and the depth
configs' datasets build on toy data in their layout. (Object-discovery configs have no model:
tests/configs/test_discovery_configs.py.)"""

from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.structures import InstanceData

from dinoreg_dense.datasets import build_pipeline, make_toy_kitti, make_toy_nyu
from dinoreg_dense.registry import DATASETS, METRICS, MODELS
from tests.models.test_segmentor import make_batch

ALL_CONFIGS = sorted(p for p in (Path(__file__).parents[2] / "configs").glob("*.py"))
DISCOVERY = [p for p in ALL_CONFIGS if "discovery" in Config.fromfile(p)]
CONFIGS = [p for p in ALL_CONFIGS if p not in DISCOVERY]
MASK2FORMER = [p for p in CONFIGS if Config.fromfile(p).model.decode_head.type == "Mask2FormerHead"]
SEGMENTATION = [
    p for p in CONFIGS if Config.fromfile(p).model.type == "Segmentor" and p not in MASK2FORMER
]
DEPTH = [
    p
    for p in CONFIGS
    if Config.fromfile(p).model.type == "Depther" and "train_dataloader" in Config.fromfile(p)
]
# Inference-only configs (released depth models): tested in tests/heads/test_dpt_configs.py.
INFERENCE = [p for p in CONFIGS if "train_dataloader" not in Config.fromfile(p)]
DEPTH_PIECES = [Path(__file__).parents[2] / "configs" / "_base_" / "datasets" / "kitti.py"]
TOY_LAYOUTS = {
    "NYUDepthDataset": (make_toy_nyu, (480, 640)),
    "KITTIDepthDataset": (make_toy_kitti, (375, 1242)),
}


def test_configs_exist():
    names = {p.stem for p in CONFIGS}
    assert {"ade20k_linear_vits_reg", "ade20k_ms_vits_reg", "voc2012_linear_vits_reg"} <= names
    assert len(SEGMENTATION) + len(MASK2FORMER) + len(DEPTH) + len(INFERENCE) == len(CONFIGS)
    assert DEPTH
    mask2former = {
        "ade20k_mask2former_vits_reg",
        "coco_instance_mask2former_vits_reg",
        "toy_instance_mask2former_vittiny",
        "toy_mask2former_vittiny",
    }
    assert mask2former <= {p.stem for p in MASK2FORMER}
    assert all("model" not in Config.fromfile(p) for p in DISCOVERY)
    depth = {
        "nyu_linear_vits_reg",
        "nyu_linear4_vits_reg",
        "nyu_linear4_finetune_vits_reg",
        "nyu_dpt_vits_reg",
        "kitti_dpt_vits_reg",
        "nyu_linear4_vits16_dinov3",
    }
    assert depth <= {p.stem for p in DEPTH}
    assert "ade20k_linear_vits16_dinov3" in {p.stem for p in SEGMENTATION}


def flatten(cfg: dict, prefix: str = "") -> dict[str, object]:
    """Nested config dicts -> {"a.b.c": value}; lists and tuples are values."""
    flat = {}
    for key, value in cfg.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = list(value) if isinstance(value, tuple) else value
    return flat


@pytest.mark.parametrize(
    "dinov3, dinov2, differences",
    [
        (
            "ade20k_linear_vits16_dinov3",
            "ade20k_linear_vits_reg",
            {"model.backbone.arch", "optim_wrapper.optimizer.weight_decay"},
        ),
        ("nyu_linear4_vits16_dinov3", "nyu_linear4_vits_reg", {"model.backbone.arch"}),
    ],
)
def test_dinov3_configs_differ_from_dinov2_only_in_dinov3s_recipe(dinov3, dinov2, differences):
    """DINOv3's evaluation recipes (model card / paper): ADE20K linear 512 crops, slide stride
    341, 40k iterations, lr 1e-3, weight decay 1e-3; NYU linear 256 bins over 1e-3..10 m, 416x544
    crops, 38.4k iterations, lr 3e-4. Everything else is inherited from the DINOv2 configs."""
    config_dir = Path(__file__).parents[2] / "configs"
    ours = flatten(Config.fromfile(config_dir / f"{dinov3}.py").to_dict())
    theirs = flatten(Config.fromfile(config_dir / f"{dinov2}.py").to_dict())
    assert ours.keys() == theirs.keys()
    assert {key for key in ours if ours[key] != theirs[key]} == differences
    assert ours["model.backbone.arch"] == "vits16_dinov3"
    assert ours["model.backbone.checkpoint"] is None  # given on the command line
    if dinov3.startswith("ade20k"):
        assert ours["crop_size"] == [512, 512] and ours["model.test_cfg.stride"] == [341, 341]
        assert ours["train_cfg.max_iters"] == 40000
        assert ours["optim_wrapper.optimizer.lr"] == ours["optim_wrapper.optimizer.weight_decay"]
        assert ours["optim_wrapper.optimizer.lr"] == 1e-3
    else:
        assert ours["crop_size"] == [416, 544] and ours["train_cfg.max_iters"] == 38400
        assert ours["optim_wrapper.optimizer.lr"] == 3e-4
        head = Config.fromfile(config_dir / f"{dinov3}.py").model.decode_head
        assert (head.min_depth, head.max_depth, head.num_bins) == (1e-3, 10.0, 256)


@pytest.mark.parametrize("path", SEGMENTATION, ids=lambda p: p.stem)
def test_config_builds_and_trains_one_step(path):
    cfg = Config.fromfile(path)
    model_cfg = cfg.model
    num_maps = len(model_cfg.decode_head.in_index)
    # shrink the backbone, keep everything else (arch family, registers, head, test_cfg)
    model_cfg.backbone.update(embed_dim=32, depth=4, num_heads=2)
    model_cfg.test_cfg.update(crop_size=(28, 42), stride=(14, 28), scales=(1.0,))
    model = MODELS.build(model_cfg)
    assert model.decode_head.in_channels == 32 * num_maps  # derived from the backbone
    # one home for the crop: the dataset's crop_size, passed to the model once
    crops = [t for t in cfg.train_dataloader.dataset.pipeline if t["type"] == "RandomCropCatMax"]
    assert [(t["height"], t["width"]) for t in crops] == [tuple(cfg.crop_size)]
    assert tuple(model_cfg.data_preprocessor.size) == tuple(cfg.crop_size)
    if model_cfg.test_cfg.get("mode") == "slide":  # windows of the training crop's size
        assert "crop_size" not in Config.fromfile(path).model.test_cfg

    model.train()
    num_classes = model.num_classes
    data = model.data_preprocessor(make_batch([(40, 50), (36, 44)], num_classes), training=True)
    losses = model(**data, mode="loss")
    sum(losses.values()).backward()
    assert model.decode_head.conv_seg.weight.grad.abs().sum() > 0

    model.eval()
    with torch.no_grad():
        out = model.test_step(make_batch([(40, 50)], num_classes, with_gt=False))
    assert out[0].pred_sem_seg.shape == (40, 50)

    for loader in ("train_dataloader", "val_dataloader"):
        build_pipeline(cfg[loader].dataset.pipeline)  # transform names and arguments are valid


@pytest.mark.parametrize("path", MASK2FORMER, ids=lambda p: p.stem)
def test_mask2former_config_builds_and_trains_one_step(path):
    cfg = Config.fromfile(path)
    model_cfg = cfg.model
    # shrink the backbone and the head's widths, keep the rest (levels, task, test_cfg)
    model_cfg.backbone.update(embed_dim=32, depth=12, num_heads=2)
    head = model_cfg.decode_head
    head.neck.update(out_channels=32)
    head.pixel_decoder.update(conv_dim=32, mask_dim=32, num_encoder_layers=1, num_heads=2)
    head.transformer_decoder.update(hidden_dim=32, num_queries=5, num_heads=2, num_layers=2)
    head.update(criterion=dict(num_points=64))  # merges; the ViT-S bases leave it to the head
    if model_cfg.test_cfg.get("mode") == "slide":
        model_cfg.test_cfg.update(crop_size=(28, 42), stride=(14, 28))
    model = MODELS.build(model_cfg).train()
    assert model.decode_head.in_channels == 32  # derived from the backbone
    assert tuple(model_cfg.data_preprocessor.size) == tuple(cfg.crop_size)
    num_classes = model.num_classes
    batch = make_batch([(40, 50), (36, 44)], num_classes)
    if model_cfg.type == "InstanceSegmentor":
        for sample in batch["data_samples"]:
            seg = sample.gt_sem_seg
            labels = seg.unique()[:3]
            sample.gt_instances = InstanceData(
                labels=labels, masks=seg[None] == labels[:, None, None]
            )
            del sample.gt_sem_seg
    data = model.data_preprocessor(batch, training=True)
    losses = model(**data, mode="loss")
    sum(losses.values()).backward()
    assert model.decode_head.transformer_decoder.class_embed.weight.grad.abs().sum() > 0

    model.eval()
    with torch.no_grad():
        out = model.test_step(make_batch([(40, 50)], num_classes, with_gt=False))
    if model_cfg.type == "InstanceSegmentor":
        top_k = min(model.test_cfg["top_k"], 5 * num_classes)
        assert out[0].pred_instances.masks.shape == (top_k, 40, 50)
        assert METRICS.build(cfg.val_evaluator).iou_types == ("bbox", "segm")
    else:
        assert out[0].pred_sem_seg.shape == (40, 50)
    for loader in ("train_dataloader", "val_dataloader"):
        build_pipeline(cfg[loader].dataset.pipeline)


@pytest.mark.parametrize("path", DEPTH, ids=lambda p: p.stem)
def test_depth_config_builds_and_trains_one_step(path):
    from dinoreg_dense.structures import DenseDataSample

    cfg = Config.fromfile(path)
    # 12 blocks: lin.4 reads blocks [2, 5, 8, 11] of a ViT-S / B
    cfg.model.backbone.update(embed_dim=32, depth=12, num_heads=2)
    model = MODELS.build(cfg.model).train()
    if cfg.model.decode_head.type == "LinearDepthHead":
        # derived head width: 32 per map, doubled by the cls token joined to every patch
        assert model.decode_head.in_channels == 64 * len(cfg.model.decode_head.in_index)
    else:
        assert model.decode_head.in_channels == 32
    images = [torch.randint(0, 256, (3, 40, 50), dtype=torch.uint8) for _ in range(2)]
    samples = [DenseDataSample(gt_depth_map=torch.full((40, 50), 3.0)) for _ in range(2)]
    data = model.data_preprocessor(dict(inputs=images, data_samples=samples), training=True)
    losses = model(**data, mode="loss")
    sum(losses.values()).backward()
    head_grads = [p.grad for p in model.decode_head.parameters() if p.requires_grad]
    assert all(g is not None for g in head_grads) and head_grads[-1].abs().sum() > 0
    model.eval()
    with torch.no_grad():
        out = model.test_step(dict(inputs=images[:1], data_samples=None))
    depth = out[0].pred_depth_map
    head = model.decode_head
    assert depth.shape == (40, 50)
    assert head.min_depth <= depth.min() <= depth.max() <= head.max_depth
    for loader in ("train_dataloader", "val_dataloader"):
        build_pipeline(cfg[loader].dataset.pipeline)


@pytest.fixture(scope="module")
def toy_roots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One toy dataset per depth layout, at the real datasets' frame size."""
    return {
        name: make(tmp_path_factory.mktemp(name), num_train=1, num_val=1, image_size=size)
        for name, (make, size) in TOY_LAYOUTS.items()
    }


@pytest.mark.parametrize("path", DEPTH + DEPTH_PIECES, ids=lambda p: p.stem)
def test_depth_datasets_build_on_toy_data_and_give_one_range(path, toy_roots):
    cfg = Config.fromfile(path)
    samples = {}
    for loader in ("train_dataloader", "val_dataloader"):
        dataset_cfg = cfg[loader].dataset
        dataset = DATASETS.build(dict(dataset_cfg, data_root=str(toy_roots[dataset_cfg.type])))
        torch.manual_seed(0)
        samples[loader] = dataset[0]["data_samples"]
    crops = [t for t in cfg.train_pipeline if t["type"] in ("RandomCrop", "RandomCropCatMax")]
    # one home for the crop: the piece's crop_size, passed to the model once
    assert [(t["height"], t["width"]) for t in crops] in ([tuple(cfg.crop_size)], [])
    if crops:
        assert samples["train_dataloader"].img_shape == tuple(cfg.crop_size)
    metric = METRICS.build(cfg.val_evaluator)
    metric.dataset_meta = dataset.metainfo
    gt_shape = tuple(samples["val_dataloader"].gt_depth_map.shape)
    if cfg.val_evaluator.get("crop") == "eigen":
        assert gt_shape == (480, 640)  # NYU is tested at full resolution
    if cfg.val_evaluator.get("crop") == "garg":
        assert gt_shape == (352, 1216) and metric.max_depth == 80.0  # KITTI: the KB crop
    if "model" in cfg:
        assert tuple(cfg.model.data_preprocessor.size) == tuple(cfg.crop_size)
        head = cfg.model.decode_head
        assert (head.min_depth, head.max_depth) == (metric.min_depth, metric.max_depth)


@pytest.mark.parametrize("path", DEPTH, ids=lambda p: p.stem)
def test_depth_optimizer_groups(path):
    cfg = Config.fromfile(path)
    cfg.model.backbone.update(embed_dim=32, depth=12, num_heads=2)
    model = MODELS.build(cfg.model)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    lr = cfg.optim_wrapper.optimizer.lr
    groups = {id(p): g for g in wrapper.optimizer.param_groups for p in g["params"]}
    head = next(model.decode_head.parameters())
    assert groups[id(head)]["lr"] == pytest.approx(lr)
    block = model.backbone.blocks[11].attn.qkv.weight
    if cfg.model.backbone.frozen:
        assert id(block) not in groups  # a frozen backbone is left out of the optimizer
        return
    mult = cfg.optim_wrapper.paramwise_cfg.backbone_lr_mult
    rate = cfg.optim_wrapper.paramwise_cfg.layer_decay_rate
    assert (mult, rate) == (0.1, 0.9)
    assert groups[id(block)]["lr"] == pytest.approx(lr * mult * rate)
    patch = model.backbone.patch_embed.weight
    assert groups[id(patch)]["lr"] == pytest.approx(lr * mult * rate**13)
