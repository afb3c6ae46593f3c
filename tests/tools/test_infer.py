"""tools/infer.py on a folder of user photos: no output lost, unreadable files skipped, EXIF
orientation applied; depth models write 16-bit millimetre PNGs and coloured pictures."""

import importlib.util
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from dinoreg_dense.checkpoint import CheckpointError
from dinoreg_dense.datasets import photos
from dinoreg_dense.engine.launch import load_config
from dinoreg_dense.registry import MODELS
from dinoreg_dense.structures import DenseDataSample

from ..integration.conftest import REPO, write_config

EXIF_ORIENTATION = 0x0112
ROTATE_90_CW = 6
"""EXIF orientation: the stored pixels are shown turned 90 degrees clockwise."""


def load_tool():
    spec = importlib.util.spec_from_file_location("infer_tool", REPO / "tools" / "infer.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


infer = load_tool()


def save_photo(path: Path, size: tuple[int, int], seed: int = 0, **save_args) -> None:
    """Random RGB photo of ``size`` = (width, height)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, **save_args)


@pytest.fixture(scope="module")
def config_and_checkpoint(tmp_path_factory) -> tuple[str, str]:
    """The tiny toy experiment's config and a run checkpoint of its (untrained) model."""
    folder = tmp_path_factory.mktemp("model")
    config = write_config(folder, folder, iters=1, val_interval=1, ckpt_interval=1)
    model = MODELS.build(load_config(str(config)).model)
    palette = [[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]]
    meta = dict(dataset_meta=dict(classes=("bg", "disc", "square", "triangle"), palette=palette))
    checkpoint = folder / "run.pth"
    torch.save(dict(state_dict=model.state_dict(), meta=meta), checkpoint)
    return str(config), str(checkpoint)


@pytest.fixture(scope="module")
def depth_config_and_checkpoint(tmp_path_factory) -> tuple[str, str]:
    """The toy depth config and a run checkpoint of its (untrained, seeded) model."""
    config = str(REPO / "configs" / "toy_depth_linear_vittiny.py")
    torch.manual_seed(0)
    model = MODELS.build(load_config(config).model)
    checkpoint = tmp_path_factory.mktemp("depth_model") / "run.pth"
    torch.save(dict(state_dict=model.state_dict(), meta=dict(dataset_meta={})), checkpoint)
    return config, str(checkpoint)


def run_infer(monkeypatch, config_and_checkpoint, *args: str) -> None:
    monkeypatch.setattr(sys, "argv", ["infer.py", *config_and_checkpoint, *args])
    infer.main()


def test_photos_sharing_a_stem_all_get_outputs_in_their_folders(
    tmp_path, monkeypatch, capsys, config_and_checkpoint
):
    photos = tmp_path / "photos"
    for index, relative in enumerate(["cat.jpg", "sub/cat.jpg", "other/cat.png", "other/cat.jpg"]):
        save_photo(photos / relative, (24, 16), seed=index)
    (photos / "notes" / "broken.jpg").parent.mkdir()
    (photos / "notes" / "broken.jpg").write_text("not an image")
    out = tmp_path / "out"

    run_infer(monkeypatch, config_and_checkpoint, str(photos), "--out-dir", str(out))

    written = sorted(str(p.relative_to(out)) for p in out.rglob("*_pred.png"))
    assert written == [
        "cat_pred.png",
        "other/cat.jpg_pred.png",
        "other/cat.png_pred.png",
        "sub/cat_pred.png",
    ]
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*_overlay.png")) == [
        name.replace("_pred", "_overlay") for name in written
    ]
    printed = capsys.readouterr()
    assert f"wrote 4 predictions and pictures to {out}" in printed.out
    assert "skipped 1 unreadable file" in printed.out
    assert f"skipping '{photos / 'notes' / 'broken.jpg'}'" in printed.err
    assert "dataset archive" not in printed.err


def test_output_names_never_clash():
    relative = ["cat.jpg", "cat.jpg", "cat.png", "Cat.JPG", "cat.jpg_2.png", "dog.jpg", "a/dog.jpg"]
    names = [str(name) for name in photos.output_names([Path(p) for p in relative])]
    assert names[-2:] == ["dog", "a/dog"]  # unique stems keep the simple names
    assert len({name.casefold() for name in names}) == len(names)


def test_each_photo_file_is_listed_once_and_folders_never(tmp_path):
    save_photo(tmp_path / "in" / "cat.jpg", (8, 8))
    (tmp_path / "in" / "album.jpg").mkdir()
    listed = photos.list_photos(
        [str(tmp_path / "in"), str(tmp_path / "in" / "cat.jpg")], tmp_path / "out"
    )
    assert listed == [(tmp_path / "in" / "cat.jpg", Path("cat.jpg"))]


@pytest.mark.parametrize("out_dir", ["predictions", "."])
def test_earlier_outputs_inside_an_input_folder_are_not_inputs(tmp_path, out_dir):
    save_photo(tmp_path / "cat.jpg", (8, 8))
    save_photo(tmp_path / "dog_pred.png", (8, 8))  # a photo, as it is not in the output folder
    save_photo(tmp_path / out_dir / "cat_overlay.png", (8, 8))
    save_photo(tmp_path / out_dir / "sub" / "cat_pred.png", (8, 8))
    save_photo(tmp_path / out_dir / "cat_depth.png", (8, 8))
    save_photo(tmp_path / out_dir / "sub" / "cat_depth_color.png", (8, 8))
    save_photo(tmp_path / out_dir / "cat_instances.png", (8, 8))
    listed = photos.list_photos([str(tmp_path)], tmp_path / out_dir)
    expected = ["cat.jpg"] + (["dog_pred.png"] if out_dir != "." else [])
    assert sorted(str(relative) for _, relative in listed) == expected


def test_nothing_readable_fails(tmp_path, monkeypatch, config_and_checkpoint):
    (tmp_path / "a.jpg").write_bytes(b"")
    (tmp_path / "b.png").write_text("text")
    with pytest.raises(SystemExit, match="none of the 2 files could be read"):
        run_infer(monkeypatch, config_and_checkpoint, str(tmp_path), "--out-dir", str(tmp_path))


def test_backbone_weights_instead_of_a_run_checkpoint_are_refused_with_the_fix(
    tmp_path, monkeypatch, config_and_checkpoint
):
    config, _ = config_and_checkpoint
    backbone = MODELS.build(load_config(config).model).backbone
    weights = tmp_path / "dinov2_backbone.pth"
    torch.save(backbone.state_dict(), weights)  # what a user downloads: a bare state dict
    save_photo(tmp_path / "cat.jpg", (8, 8))
    with pytest.raises(CheckpointError, match="backbone weights go in model.backbone.checkpoint"):
        run_infer(monkeypatch, (config, str(weights)), str(tmp_path / "cat.jpg"))


def test_exif_orientation_is_applied_to_predictions_and_overlays(
    tmp_path, monkeypatch, config_and_checkpoint
):
    photo = tmp_path / "phone.jpg"
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = ROTATE_90_CW
    save_photo(photo, (48, 32), exif=exif, quality=95)
    with Image.open(photo) as stored:
        assert stored.size == (48, 32)
        upright = np.asarray(ImageOps.exif_transpose(stored).convert("RGB"))
    assert upright.shape == (48, 32, 3)

    run_infer(monkeypatch, config_and_checkpoint, str(photo), "--out-dir", str(tmp_path / "out"))

    with Image.open(tmp_path / "out" / "phone_pred.png") as pred:
        assert pred.size == (32, 48)  # (width, height) as the photo is shown, not as stored
    with Image.open(tmp_path / "out" / "phone_overlay.png") as overlay:
        picture = np.asarray(overlay.convert("RGB"))
    assert picture.shape[1] == 2 * 32
    # the first panel is the upright photo, pixel for pixel
    assert any(
        np.array_equal(picture[top : top + 48, :32], upright)
        for top in range(picture.shape[0] - 48 + 1)
    )


def test_depth_configs_write_millimetre_pngs_equal_to_the_models_depth(
    tmp_path, monkeypatch, capsys, depth_config_and_checkpoint
):
    sizes = {"wide.jpg": (70, 38), "tall.png": (30, 52)}  # (width, height), not the crop size
    for index, (name, size) in enumerate(sizes.items()):
        save_photo(tmp_path / "photos" / name, size, seed=index)
    out = tmp_path / "photos" / "out"  # inside the input folder: outputs must not be re-read

    for _ in range(2):
        run_infer(
            monkeypatch,
            depth_config_and_checkpoint,
            str(tmp_path / "photos"),
            "--out-dir",
            str(out),
        )
        assert "wrote 2 predictions and pictures" in capsys.readouterr().out

    config, checkpoint = depth_config_and_checkpoint
    model = MODELS.build(load_config(config).model)
    model.load_state_dict(torch.load(checkpoint)["state_dict"])
    model.eval()
    assert sorted(p.name for p in out.iterdir()) == [
        "tall_depth.png",
        "tall_depth_color.png",
        "wide_depth.png",
        "wide_depth_color.png",
    ]
    for name, (width, height) in sizes.items():
        stem = Path(name).stem
        with Image.open(out / f"{stem}_depth.png") as png:
            assert png.mode.startswith("I;16") and png.size == (width, height)
            millimetres = np.asarray(png).astype(np.int64)
        image = np.array(Image.open(tmp_path / "photos" / name).convert("RGB"))
        sample = DenseDataSample(metainfo=dict(ori_shape=(height, width)))
        batch = dict(inputs=[torch.from_numpy(image).permute(2, 0, 1)], data_samples=[sample])
        with torch.inference_mode():
            depth = model.test_step(batch)[0].pred_depth_map.numpy()
        expected = np.round(depth.astype(np.float64) * 1000)
        assert np.array_equal(millimetres, expected)
        assert millimetres.max() > 255 and np.unique(millimetres).size > 10  # 16 bits, a map
        with Image.open(out / f"{stem}_depth_color.png") as picture:
            picture.load()
            assert picture.format == "PNG" and picture.mode in ("RGB", "RGBA")
            assert picture.width >= 2 * width and picture.height > height  # photo | depth, key


def test_released_depth_anything_file_gives_relative_disparity_pictures(tmp_path, monkeypatch):
    from tests.engine.test_model_weights import small_depth_anything_cfg
    from tests.heads.test_dpt_configs import to_released_names

    cfg = small_depth_anything_cfg()
    torch.manual_seed(0)
    source = MODELS.build(cfg.model).eval()
    weights = tmp_path / "depth_anything_v2_vits.pth"
    torch.save(to_released_names(source), weights)
    save_photo(tmp_path / "photos" / "room.jpg", (60, 40))
    out = tmp_path / "out"
    run_infer(
        monkeypatch,
        (str(REPO / "configs" / "depth_anything_v2_vits.py"), str(weights)),
        str(tmp_path / "photos"),
        "--out-dir",
        str(out),
        "--cfg-options",
        "model.backbone.depth=4",
        "model.backbone.out_indices=[0,1,2,3]",
    )
    assert sorted(p.name for p in out.iterdir()) == [
        "room_disparity.png",
        "room_disparity_color.png",
    ]
    with Image.open(out / "room_disparity.png") as png:
        assert png.mode == "I;16" and png.size == (60, 40)
        stored = np.asarray(png).astype(np.int64)
    # The model's own prediction at the config's input size (short side 518), stretched per image.
    photo = photos.read_photo(tmp_path / "photos" / "room.jpg")
    resized = cv2.resize(photo, (777, 518), interpolation=cv2.INTER_CUBIC)
    sample = DenseDataSample(metainfo=dict(ori_shape=photo.shape[:2]))
    batch = dict(inputs=[torch.from_numpy(resized.copy()).permute(2, 0, 1)], data_samples=[sample])
    with torch.no_grad():
        disparity = source.test_step(batch)[0].pred_disparity_map.numpy().astype(np.float64)
    expected = (disparity - disparity.min()) / (disparity.max() - disparity.min()) * 65535
    assert stored.min() == 0 and stored.max() == 65535
    assert np.abs(stored - expected).max() <= 0.5 + 1e-3 * 65535


@pytest.fixture(scope="module")
def instance_config_and_checkpoint(tmp_path_factory) -> tuple[str, str]:
    """The toy instance config and a run checkpoint of its (untrained, seeded) model."""
    config = str(REPO / "configs" / "toy_instance_mask2former_vittiny.py")
    torch.manual_seed(0)
    model = MODELS.build(load_config(config).model)
    meta = dict(dataset_meta=dict(classes=("disc", "square", "triangle")))
    checkpoint = tmp_path_factory.mktemp("instance_model") / "run.pth"
    torch.save(dict(state_dict=model.state_dict(), meta=meta), checkpoint)
    return config, str(checkpoint)


def test_instance_configs_write_json_and_pictures_at_each_photos_size(
    tmp_path, monkeypatch, instance_config_and_checkpoint
):
    from pycocotools import mask as mask_util

    save_photo(tmp_path / "wide.jpg", (70, 50), seed=1)
    save_photo(tmp_path / "tall.png", (41, 83), seed=2)  # odd sides, portrait
    out = tmp_path / "out"
    run_infer(monkeypatch, instance_config_and_checkpoint, str(tmp_path), "--out-dir", str(out))

    # the outputs, inside the input folder, are not photos on a second run
    assert [p.name for _, p in photos.list_photos([str(tmp_path)], out)] == ["tall.png", "wide.jpg"]
    model = MODELS.build(load_config(instance_config_and_checkpoint[0]).model)
    top_k = model.test_cfg["top_k"]
    for name, (width, height) in (("wide", (70, 50)), ("tall", (41, 83))):
        record = json.loads((out / f"{name}_instances.json").read_text())
        assert (record["height"], record["width"]) == (height, width)
        instances = record["instances"]
        assert len(instances) == top_k
        scores = [instance["score"] for instance in instances]
        assert scores == sorted(scores, reverse=True)
        for instance in instances:
            assert instance["class_name"] == ("disc", "square", "triangle")[instance["label"]]
            mask = mask_util.decode(instance["mask"])
            assert mask.shape == (height, width)
            x0, y0, x1, y1 = instance["bbox_xyxy"]
            assert 0 <= x0 <= x1 <= width and 0 <= y0 <= y1 <= height
            assert mask.sum() == mask[int(y0) : int(y1), int(x0) : int(x1)].sum()
        picture_width, picture_height = Image.open(out / f"{name}_instances.png").size
        assert picture_width == 2 * width and picture_height > height
