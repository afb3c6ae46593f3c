import runpy
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dinoreg_dense.datasets import TOY_CLASSES, ADE20KDataset, make_toy_ade20k

REPO = Path(__file__).resolve().parents[2]


def tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_exact_ade20k_layout(tmp_path):
    dataset_dir = make_toy_ade20k(tmp_path, num_train=3, num_val=2, image_size=(40, 56))
    assert dataset_dir == tmp_path / "ADEChallengeData2016"
    assert sorted(tree(dataset_dir)) == [
        "annotations/training/ADE_train_00000001.png",
        "annotations/training/ADE_train_00000002.png",
        "annotations/training/ADE_train_00000003.png",
        "annotations/validation/ADE_val_00000001.png",
        "annotations/validation/ADE_val_00000002.png",
        "images/training/ADE_train_00000001.jpg",
        "images/training/ADE_train_00000002.jpg",
        "images/training/ADE_train_00000003.jpg",
        "images/validation/ADE_val_00000001.jpg",
        "images/validation/ADE_val_00000002.jpg",
    ]
    with Image.open(dataset_dir / "images/training/ADE_train_00000001.jpg") as image:
        assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (56, 40))
    with Image.open(dataset_dir / "annotations/training/ADE_train_00000001.png") as label:
        assert (label.format, label.mode, label.size) == ("PNG", "L", (56, 40))


def test_labels_use_ade20k_conventions(tmp_path):
    dataset_dir = make_toy_ade20k(tmp_path, num_train=8, num_val=0, image_size=(48, 48))
    labels = np.stack(
        [np.asarray(Image.open(p)) for p in dataset_dir.glob("annotations/training/*.png")]
    )
    counts = np.bincount(labels.ravel(), minlength=256)
    # 0 = unlabelled band, 1 = background, 2..4 = shapes; nothing else.
    assert counts[5:].sum() == 0 and (counts[:5] > 0).all()
    assert counts[0] < 0.15 * labels.size  # the unlabelled band is thin


def test_deterministic_for_a_seed(tmp_path):
    first = tree(make_toy_ade20k(tmp_path / "a", num_train=3, num_val=2, image_size=(32, 32)))
    again = tree(make_toy_ade20k(tmp_path / "b", num_train=3, num_val=2, image_size=(32, 32)))
    other = tree(
        make_toy_ade20k(tmp_path / "c", num_train=3, num_val=2, image_size=(32, 32), seed=1)
    )
    more = tree(make_toy_ade20k(tmp_path / "d", num_train=5, num_val=2, image_size=(32, 32)))
    assert first == again
    assert all(first[name] != other[name] for name in first)
    # Validation images do not depend on the number of training images.
    assert all(first[name] == more[name] for name in first)


def test_ade20k_dataset_reads_it(tmp_path):
    make_toy_ade20k(tmp_path, num_train=4, num_val=2, image_size=(32, 48))
    dataset = ADE20KDataset(tmp_path, split="validation", classes=TOY_CLASSES, test_mode=True)
    assert len(dataset) == 2 and dataset.metainfo["classes"] == TOY_CLASSES
    gt = torch.cat([dataset[i]["data_samples"].gt_sem_seg.ravel() for i in range(2)])
    assert set(gt.unique().tolist()) <= {0, 1, 2, 3, 255} and 255 in gt


def class_colours(dataset_dir: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(N, 3) pixel colours and (N,) raw labels of all labelled pixels of a split."""
    colours, labels = [], []
    for label_path in sorted(dataset_dir.glob(f"annotations/{split}/*.png")):
        image_path = dataset_dir / "images" / split / f"{label_path.stem}.jpg"
        label = np.asarray(Image.open(label_path)).ravel()
        keep = label > 0
        colours.append(np.asarray(Image.open(image_path)).reshape(-1, 3)[keep])
        labels.append(label[keep])
    return np.concatenate(colours).astype(np.float32), np.concatenate(labels)


def test_classes_are_separable_by_colour(tmp_path):
    # A proxy for "learnable by a linear head": the nearest class-mean colour of a pixel.
    dataset_dir = make_toy_ade20k(tmp_path, num_train=16, num_val=8, image_size=(64, 64))
    train_colours, train_labels = class_colours(dataset_dir, "training")
    means = np.stack([train_colours[train_labels == k].mean(0) for k in range(1, 5)])
    val_colours, val_labels = class_colours(dataset_dir, "validation")
    distances = ((val_colours[:, None] - means[None]) ** 2).sum(-1)
    accuracy = (distances.argmin(1) + 1 == val_labels).mean()
    assert accuracy > 0.85


def test_command_line_tool(tmp_path, monkeypatch, capsys):
    argv = ["make_toy_dataset.py", str(tmp_path / "cli"), "--num-train", "2", "--num-val", "1"]
    monkeypatch.setattr(sys, "argv", argv + ["--size", "24", "32", "--seed", "5"])
    runpy.run_path(str(REPO / "tools" / "make_toy_dataset.py"), run_name="__main__")
    assert "ADEChallengeData2016" in capsys.readouterr().out
    written = tree(tmp_path / "cli" / "ADEChallengeData2016")
    assert len(written) == 6
    assert written == tree(make_toy_ade20k(tmp_path / "api", 2, 1, (24, 32), seed=5))
