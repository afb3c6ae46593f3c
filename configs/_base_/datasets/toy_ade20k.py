# Synthetic shapes in the ADE20K layout (tools/make_toy_dataset.py): 4 classes, 128x128 images.
_base_ = ["./ade20k.py"]
data_root = "data/toy_ade20k"
classes = ("background", "disc", "square", "triangle")
crop_size = (128, 128)
train_pipeline = [
    dict(type="RandomResize", scale=(256, 128), ratio_range=(0.75, 1.5), keep_ratio=True),
    dict(type="RandomCropCatMax", height=crop_size[0], width=crop_size[1], cat_max_ratio=0.75),
    dict(type="HorizontalFlip", p=0.5),
]
test_pipeline = []
# Loading a 128x128 batch in the main process costs a few ms; worker processes would compete
# with the compute threads for the few cores that toy runs are meant for.
train_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(data_root=data_root, classes=classes, pipeline=train_pipeline),
)
val_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(data_root=data_root, classes=classes, pipeline=test_pipeline),
)
test_dataloader = val_dataloader
