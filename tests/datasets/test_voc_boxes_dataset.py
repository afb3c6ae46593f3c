"""Pascal VOC boxes read from files in VOC's exact XML format: 1-based inclusive coordinates to
end-exclusive pixels, every object kept, clear errors; the toy generator's boxes are exact."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dinoreg_dense.datasets import VOC_OBJECT_CLASSES, make_toy_voc_boxes
from dinoreg_dense.datasets.toy_boxes import make_toy_boxes_sample
from dinoreg_dense.datasets.voc_boxes import AnnotationError, parse_voc_xml
from dinoreg_dense.registry import DATASETS

# A VOC2012 annotation as released: a person with <part> boxes (which are not objects), a
# difficult and a truncated object, decimal coordinates, and an object spanning the whole width.
VOC_XML = """<annotation>
	<folder>VOC2012</folder>
	<filename>2008_000008.jpg</filename>
	<source>
		<database>The VOC2008 Database</database>
		<annotation>PASCAL VOC2008</annotation>
		<image>flickr</image>
	</source>
	<size>
		<width>50</width>
		<height>40</height>
		<depth>3</depth>
	</size>
	<segmented>0</segmented>
	<object>
		<name>horse</name>
		<pose>Left</pose>
		<truncated>0</truncated>
		<occluded>1</occluded>
		<bndbox>
			<xmin>1</xmin>
			<ymin>5</ymin>
			<xmax>50</xmax>
			<ymax>40</ymax>
		</bndbox>
		<difficult>0</difficult>
	</object>
	<object>
		<name>person</name>
		<pose>Unspecified</pose>
		<truncated>1</truncated>
		<bndbox>
			<xmin>10.5</xmin>
			<ymin>2</ymin>
			<xmax>20</xmax>
			<ymax>30</ymax>
		</bndbox>
		<part>
			<name>head</name>
			<bndbox>
				<xmin>12</xmin>
				<ymin>3</ymin>
				<xmax>15</xmax>
				<ymax>6</ymax>
			</bndbox>
		</part>
		<difficult>0</difficult>
	</object>
	<object>
		<name>bottle</name>
		<pose>Unspecified</pose>
		<truncated>0</truncated>
		<difficult>1</difficult>
		<bndbox>
			<xmin>30</xmin>
			<ymin>30</ymin>
			<xmax>30</xmax>
			<ymax>31</ymax>
		</bndbox>
	</object>
</annotation>
"""
EXPECTED_BOXES = [[0, 4, 50, 40], [9.5, 1, 20, 30], [29, 29, 30, 31]]


def write_voc(root: Path, annotations: dict[str, str], size=(40, 50), year: int = 2012) -> Path:
    """A VOCdevkit/VOC<year> folder with a grey image per annotation, all listed in trainval."""
    voc = root / "VOCdevkit" / f"VOC{year}"
    for folder in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (voc / folder).mkdir(parents=True, exist_ok=True)
    for image_id, xml in annotations.items():
        Image.fromarray(np.full((*size, 3), 128, np.uint8)).save(
            voc / "JPEGImages" / f"{image_id}.jpg"
        )
        (voc / "Annotations" / f"{image_id}.xml").write_text(xml)
    (voc / "ImageSets" / "Main" / "trainval.txt").write_text("".join(f"{i}\n" for i in annotations))
    return voc


def test_parse_converts_one_based_inclusive_to_end_exclusive(tmp_path):
    path = tmp_path / "a.xml"
    path.write_text(VOC_XML)
    parsed = parse_voc_xml(path)
    assert parsed["size"] == (40, 50)
    np.testing.assert_array_equal(parsed["bboxes"], np.array(EXPECTED_BOXES, np.float32))
    assert parsed["names"] == ["horse", "person", "bottle"]  # the head <part> is no object
    assert parsed["difficult"].tolist() == [False, False, True]
    assert parsed["truncated"].tolist() == [False, True, False]


def test_dataset_keeps_every_box_including_difficult_and_truncated(tmp_path):
    write_voc(tmp_path, {"2008_000008": VOC_XML})
    dataset = DATASETS.build(dict(type="VOCBoxesDataset", data_root=str(tmp_path), year=2012))
    assert len(dataset) == 1 and dataset.image_sizes == [(40, 50)]
    item = dataset[0]
    assert item["inputs"].shape == (3, 40, 50)
    instances = item["data_samples"].gt_instances
    np.testing.assert_array_equal(instances.bboxes.numpy(), np.array(EXPECTED_BOXES, np.float32))
    names = [VOC_OBJECT_CLASSES[i] for i in instances.labels]
    assert names == ["horse", "person", "bottle"]
    assert item["data_samples"].metainfo["image_id"] == "2008_000008"
    assert dataset.metainfo["classes"] == VOC_OBJECT_CLASSES and len(VOC_OBJECT_CLASSES) == 20


def test_toy_boxes_are_the_tight_boxes_of_the_shapes(tmp_path):
    make_toy_voc_boxes(tmp_path, num_images=4, image_size=(48, 64), seed=3)
    dataset = DATASETS.build(dict(type="VOCBoxesDataset", data_root=str(tmp_path)))
    assert dataset.image_sizes == [(48, 64), (48, 64), (64, 48), (48, 64)]
    for index in range(4):
        rng = np.random.default_rng([3, index])
        image, boxes = make_toy_boxes_sample(rng, *dataset.image_sizes[index])
        item = dataset[index]
        assert item["inputs"].shape[1:] == image.shape[:2]
        np.testing.assert_array_equal(item["data_samples"].gt_instances.bboxes.numpy(), boxes)


@pytest.mark.parametrize(
    ("break_it", "match"),
    [
        (lambda voc: (voc / "Annotations" / "000002.xml").unlink(), "annotation .*000002.xml"),
        (lambda voc: (voc / "JPEGImages" / "000001.jpg").unlink(), "image .*000001.jpg"),
        (lambda voc: (voc / "ImageSets" / "Main" / "trainval.txt").unlink(), "trainval.txt"),
        (
            lambda voc: (
                [p.unlink() for p in (voc / "Annotations").iterdir()]
                and (voc / "Annotations").rmdir()
            ),
            "Annotations",
        ),
    ],
)
def test_missing_files_are_named(tmp_path, break_it, match):
    voc = make_toy_voc_boxes(tmp_path, num_images=2, image_size=(32, 32))
    break_it(voc)
    with pytest.raises(FileNotFoundError, match=match):
        DATASETS.build(dict(type="VOCBoxesDataset", data_root=str(tmp_path)))


@pytest.mark.parametrize(
    ("xml", "match"),
    [
        ("<annotation><size><width>5</width>", "000001.xml"),  # truncated file
        (VOC_XML.replace("<xmax>50</xmax>", "<xmax>fifty</xmax>"), "numeric xmin"),
        (VOC_XML.replace("<name>horse</name>", "<name>unicorn</name>"), "unicorn"),
        ('<!DOCTYPE a [<!ENTITY x "y">]>' + VOC_XML, "entities"),
        (VOC_XML.replace("<xmax>50</xmax>", "<xmax>51</xmax>"), "outside its 50x40"),
        (VOC_XML.replace("<xmin>30</xmin>", "<xmin>31</xmin>"), "empty"),
    ],
)
def test_bad_annotations_are_named(tmp_path, xml, match):
    write_voc(tmp_path, {"000001": xml})
    with pytest.raises(AnnotationError, match=match):
        DATASETS.build(dict(type="VOCBoxesDataset", data_root=str(tmp_path), year=2012))


def test_unknown_year(tmp_path):
    with pytest.raises(ValueError, match="2007, 2012"):
        DATASETS.build(dict(type="VOCBoxesDataset", data_root=str(tmp_path), year=2010))
