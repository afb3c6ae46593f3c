# ADE20K at DINOv2's "+ms" resolution 640: resize to (2560, 640) x [0.5, 2.0], 640 crops.
_base_ = ["./ade20k.py"]
crop_size = (640, 640)
train_pipeline = [
    dict(type="RandomResize", scale=(2560, 640), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type="RandomCropCatMax", height=crop_size[0], width=crop_size[1], cat_max_ratio=0.75),
    dict(type="HorizontalFlip", p=0.5),
    dict(type="PhotoMetricDistortion"),
]
test_pipeline = [dict(type="ResizeToScale", scale=(2560, 640), keep_ratio=True)]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
