# Synthetic shapes in the ADE20K layout (tools/make_toy_dataset.py): 4 classes, 128x128 images.
_base_ = ["./ade20k.py"]
data_root = "data/toy_ade20k"
classes = ("background", "disc", "square", "triangle")
train_pipeline = [
    dict(type="RandomResize", scale=(256, 128), ratio_range=(0.75, 1.5), keep_ratio=True),
    dict(type="RandomCropCatMax", height=128, width=128, cat_max_ratio=0.75),
    dict(type="HorizontalFlip", p=0.5),
]
test_pipeline = []
train_dataloader = dict(
    batch_size=8, dataset=dict(data_root=data_root, classes=classes, pipeline=train_pipeline)
)
val_dataloader = dict(
    batch_size=8, dataset=dict(data_root=data_root, classes=classes, pipeline=test_pipeline)
)
test_dataloader = val_dataloader
