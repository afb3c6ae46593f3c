"""Every error names the offending path and says what to do about it."""

import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from dinoreg_dense.datasets import ADE20KDataset, CityscapesDataset, VOCDataset


def ade(root, *parts):
    return root.joinpath("ADEChallengeData2016", *parts)


@pytest.mark.parametrize(
    ("dataset_cls", "layout_word"),
    [
        (ADE20KDataset, "ADEChallengeData2016"),
        (VOCDataset, "VOCdevkit"),
        (CityscapesDataset, "leftImg8bit"),
    ],
)
def test_missing_dataset_folder(tmp_path, dataset_cls, layout_word):
    missing = tmp_path / "not_downloaded"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))) as error:
        dataset_cls(missing)
    message = str(error.value)
    assert layout_word in message
    assert "docs/datasets.md" in message
    assert "tools/make_toy_dataset.py" in message


@pytest.mark.parametrize(
    ("dataset_cls", "root_fixture", "dataset_dir", "removed", "kept", "layout_word"),
    [
        (ADE20KDataset, "ade20k_root", "ADEChallengeData2016", "annotations", "images", "ADE"),
        (
            VOCDataset,
            "voc_root",
            "VOCdevkit/VOC2012",
            "ImageSets/Segmentation",
            "JPEGImages",
            "VOCdevkit",
        ),
        (CityscapesDataset, "cityscapes_root", ".", "gtFine", "leftImg8bit", "leftImg8bit"),
    ],
)
def test_incomplete_dataset_names_the_missing_folder(
    request, dataset_cls, root_fixture, dataset_dir, removed, kept, layout_word
):
    data_root = request.getfixturevalue(root_fixture)
    root = data_root / dataset_dir
    shutil.rmtree(root / removed)
    with pytest.raises(FileNotFoundError) as error:
        dataset_cls(data_root)
    message = str(error.value)
    assert message.startswith(f"'{root / removed}' is missing (found {kept}/)"), message
    assert "dataset not found" not in message
    assert layout_word in message and "docs/datasets.md" in message


def test_unknown_split_lists_the_existing_ones(ade20k_root):
    with pytest.raises(FileNotFoundError, match=r"images/test.*'training', 'validation'"):
        ADE20KDataset(ade20k_root, split="test")


def test_empty_split(ade20k_root):
    for image in ade(ade20k_root, "images", "validation").glob("*.jpg"):
        image.unlink()
    with pytest.raises(FileNotFoundError, match=r"no images .*images/validation.*empty"):
        ADE20KDataset(ade20k_root, split="validation")


def test_empty_voc_list(voc_root):
    (voc_root / "VOCdevkit/VOC2012/ImageSets/Segmentation/val.txt").write_text("\n")
    with pytest.raises(ValueError, match=r"Segmentation/val.txt' is empty"):
        VOCDataset(voc_root, split="val")


def test_image_without_annotation(ade20k_root):
    label = ade(ade20k_root, "annotations", "training", "ADE_train_00000002.png")
    label.unlink()
    image = ade(ade20k_root, "images", "training", "ADE_train_00000002.jpg")
    with pytest.raises(FileNotFoundError, match=re.escape(f"image '{image}' has no annotation")):
        ADE20KDataset(ade20k_root)


def test_listed_voc_image_missing(voc_root):
    image = voc_root / "VOCdevkit/VOC2012/JPEGImages/2008_000003.jpg"
    image.unlink()
    with pytest.raises(FileNotFoundError, match=re.escape(str(image))):
        VOCDataset(voc_root, split="val")


def test_corrupt_image_is_named(ade20k_root):
    image = ade(ade20k_root, "images", "training", "ADE_train_00000001.jpg")
    image.write_bytes(b"not a jpeg")
    dataset = ADE20KDataset(ade20k_root)
    with pytest.raises(OSError, match=re.escape(f"cannot read image '{image}'")):
        dataset[0]


def test_truncated_image_is_named(ade20k_root):
    image = ade(ade20k_root, "images", "training", "ADE_train_00000002.jpg")
    image.write_bytes(image.read_bytes()[:400])
    with pytest.raises(OSError, match=re.escape(f"cannot read image '{image}'")):
        ADE20KDataset(ade20k_root)[1]


def test_corrupt_label_is_named(ade20k_root):
    label = ade(ade20k_root, "annotations", "training", "ADE_train_00000001.png")
    label.write_bytes(b"\x89PNG garbage")
    with pytest.raises(OSError, match=re.escape(f"cannot read label map '{label}'")):
        ADE20KDataset(ade20k_root)[0]


def test_colour_label_is_rejected(ade20k_root):
    label = ade(ade20k_root, "annotations", "training", "ADE_train_00000001.png")
    Image.new("RGB", (30, 20), (120, 120, 120)).save(label)
    with pytest.raises(ValueError, match=re.escape(f"'{label}' has PIL mode 'RGB'")):
        ADE20KDataset(ade20k_root)[0]


def test_label_values_outside_the_classes(ade20k_root):
    # Labels go up to 150 but only 2 classes are declared: raw 7 and 150 do not fit.
    label = ade(ade20k_root, "annotations", "training", "ADE_train_00000001.png")
    dataset = ADE20KDataset(ade20k_root, classes=("a", "b"))
    with pytest.raises(ValueError, match=re.escape(str(label))) as error:
        dataset[0]
    message = str(error.value)
    assert "raw values [7, 150] (train ids [6, 149])" in message
    assert "reduce-zero-label" in message and "[0, 2)" in message


def test_voc_label_value_above_20(voc_root):
    label = voc_root / "VOCdevkit/VOC2012/SegmentationClass/2008_000003.png"
    Image.fromarray(np.full((16, 16), 21, np.uint8)).save(label)
    with pytest.raises(ValueError, match=re.escape(f"'{label}' has values outside [0, 21)")):
        VOCDataset(voc_root, split="val")[0]


def test_image_and_label_sizes_must_match(ade20k_root):
    label = ade(ade20k_root, "annotations", "validation", "ADE_val_00000001.png")
    Image.fromarray(np.ones((5, 5), np.uint8)).save(label)
    with pytest.raises(ValueError, match=re.escape(f"its label map '{label}' is (5, 5)")):
        ADE20KDataset(ade20k_root, split="validation")[0]


def test_16_bit_label_with_8_bit_values_says_how_to_convert_it(ade20k_root):
    label = ade(ade20k_root, "annotations", "training", "ADE_train_00000001.png")
    values = np.asarray(Image.open(label))
    Image.fromarray(values.astype(np.uint16)).save(label)
    assert Image.open(label).mode == "I;16"
    dataset = ADE20KDataset(ade20k_root)
    with pytest.raises(ValueError, match=re.escape(f"'{label}' is a 16-bit image")) as error:
        dataset[0]
    message = str(error.value)
    assert "at most 150" in message and "RGB" not in message
    # The command in the message converts the file, after which it loads as before.
    command = message.split('python -c "', 1)[1].removesuffix('"')
    subprocess.run([sys.executable, "-c", command], check=True)
    assert Image.open(label).mode == "L"
    np.testing.assert_array_equal(np.asarray(Image.open(label)), values)
    assert dataset[0]["data_samples"].gt_sem_seg.shape == values.shape


def test_16_bit_label_with_more_than_255_classes(ade20k_root):
    label = ade(ade20k_root, "annotations", "training", "ADE_train_00000001.png")
    Image.fromarray(np.full((20, 30), 1000, np.uint16)).save(label)
    with pytest.raises(ValueError, match=re.escape(f"'{label}' is a 16-bit image")) as error:
        ADE20KDataset(ade20k_root)[0]
    assert "up to 1000: a dataset with more than 255 classes is not supported" in str(error.value)


def test_a_relative_data_root_is_shown_resolved(tmp_path, monkeypatch):
    from dinoreg_dense.datasets import ADE20KDataset

    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match=f"'nowhere' \\(= {tmp_path / 'nowhere'}\\)"):
        ADE20KDataset(data_root="nowhere")


def test_a_crop_larger_than_the_image_names_the_image_and_the_setting(ade20k_root):
    pipeline = [dict(type="RandomCrop", height=4096, width=4096)]
    dataset = ADE20KDataset(ade20k_root, pipeline=pipeline)
    image = ade(ade20k_root, "images", "training", "ADE_train_00000001.jpg")
    with pytest.raises(ValueError, match=re.escape(f"image '{image}'")) as error:
        dataset[0]
    assert "crop_size" in str(error.value)
