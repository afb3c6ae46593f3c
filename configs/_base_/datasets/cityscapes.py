# Cityscapes fine annotations (gtFine *_labelTrainIds.png), 19 classes, 255 ignored.
# 2048x1024 images: resize to (2048, 1024) x [0.5, 2.0], 512x1024 crops.
_base_ = ["./ade20k.py"]
dataset_type = "CityscapesDataset"
data_root = "data/cityscapes"
crop_size = (512, 1024)
train_pipeline = [
    dict(type="RandomResize", scale=(2048, 1024), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type="RandomCropCatMax", height=crop_size[0], width=crop_size[1], cat_max_ratio=0.75),
    dict(type="HorizontalFlip", p=0.5),
    dict(type="PhotoMetricDistortion"),
]
test_pipeline = [dict(type="ResizeToScale", scale=(2048, 1024), keep_ratio=True)]
train_dataloader = dict(
    dataset=dict(type=dataset_type, data_root=data_root, split="train", pipeline=train_pipeline)
)
val_dataloader = dict(
    dataset=dict(type=dataset_type, data_root=data_root, split="val", pipeline=test_pipeline)
)
test_dataloader = val_dataloader
