"""Every object-discovery config reads as the documented schema, builds its backbone (shrunk) and
its dataset on toy data in the dataset's layout, and discovers a box on one image; the real
configs refuse to run without a checkpoint."""

from pathlib import Path

import pytest
from mmengine.config import Config

from dinoreg_dense.datasets import make_toy_coco20k, make_toy_voc_boxes
from dinoreg_dense.engine.discover import (
    DiscoverySettings,
    build_backbone,
    build_dataset,
    discover,
)

CONFIG_DIR = Path(__file__).parents[2] / "configs"
DISCOVERY = sorted(p for p in CONFIG_DIR.glob("*.py") if "discovery" in Config.fromfile(p))
REQUIRED = {
    "voc07_lost_vits_reg",
    "voc12_lost_vits_reg",
    "coco20k_lost_vits_reg",
    "voc07_lost_dino_vits8",
    "voc07_tokencut_vits_reg",
    "toy_discovery_vittiny",
    "voc07_lost_vits16_dinov3",
}


def test_discovery_configs_exist():
    assert {p.stem for p in DISCOVERY} >= REQUIRED


@pytest.fixture(scope="module")
def toy_roots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    roots = {}
    for year in (2007, 2012):
        roots[f"VOC{year}"] = tmp_path_factory.mktemp(f"voc{year}")
        make_toy_voc_boxes(roots[f"VOC{year}"], num_images=2, image_size=(40, 56), year=year)
    roots["COCO20k"] = make_toy_coco20k(
        tmp_path_factory.mktemp("coco"), num_images=2, image_size=(40, 56)
    )
    return roots


def toy_root(cfg: Config, roots: dict[str, Path]) -> Path:
    if cfg.dataset.type == "COCO20kDataset":
        return roots["COCO20k"]
    return roots[f"VOC{cfg.dataset.year}"]


@pytest.mark.parametrize("path", DISCOVERY, ids=lambda p: p.stem)
def test_config_builds_on_toy_data_and_discovers(path, toy_roots):
    cfg = Config.fromfile(path)
    settings = DiscoverySettings.from_config(cfg)
    assert settings.mode == "pad" and settings.features == "k"
    assert cfg.backbone.get("checkpoint") is None  # given on the command line
    dataset = build_dataset(cfg, str(toy_root(cfg, toy_roots)))
    assert len(dataset) >= 1
    cfg.backbone.update(embed_dim=32, depth=2, num_heads=2)  # the arch's patch size and registers
    cfg.allow_random_weights = True
    backbone = build_backbone(cfg)
    records, _ = discover(backbone, dataset, settings, progress=False)
    for record in records:
        x0, y0, x1, y1 = record["box"]
        height, width = record["image_size"]
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height


@pytest.mark.parametrize(
    "path", [p for p in DISCOVERY if not p.stem.startswith("toy")], ids=lambda p: p.stem
)
def test_real_configs_refuse_random_weights(path):
    with pytest.raises(ValueError, match="--checkpoint"):
        build_backbone(Config.fromfile(path))


def test_the_dinov3_config_differs_from_dinov2s_only_in_the_backbone():
    dinov3 = Config.fromfile(CONFIG_DIR / "voc07_lost_vits16_dinov3.py").to_dict()
    dinov2 = Config.fromfile(CONFIG_DIR / "voc07_lost_vits_reg.py").to_dict()
    assert dinov3.pop("backbone") == dict(dinov2.pop("backbone"), arch="vits16_dinov3")
    assert dinov3 == dinov2


def test_method_switch_and_bad_options():
    cfg = Config.fromfile(CONFIG_DIR / "voc07_lost_vits_reg.py")
    assert DiscoverySettings.from_config(cfg, "tokencut").options == dict(tau=0.2, eps=1e-5)
    cfg.discovery.lost.k_patch = 5
    with pytest.raises(ValueError, match="k_patch"):
        DiscoverySettings.from_config(cfg)
    cfg = Config.fromfile(CONFIG_DIR / "voc07_lost_vits_reg.py")
    cfg.inputs.mode = "resize"
    with pytest.raises(ValueError, match="inputs.mode"):
        DiscoverySettings.from_config(cfg)
