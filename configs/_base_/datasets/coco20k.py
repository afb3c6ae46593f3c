# COCO20k: 19,817 COCO train2014 images listed by LOST, crowd boxes removed (docs/discovery.md).
dataset = dict(
    type="COCO20kDataset",
    data_root="data/coco",
    ann_file="annotations/instances_train2014.json",
    image_list="coco_20k_filenames.txt",
    img_dir="train2014",
)
