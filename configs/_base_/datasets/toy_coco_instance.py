# Synthetic shapes in COCO's instance layout (python tools/make_toy_dataset.py data/toy_coco
# --layout coco-instances): 3 classes (disc, square, triangle), 96x128 images, crowd regions.
_base_ = ["./coco_instance.py"]
data_root = "data/toy_coco"
crop_size = (96, 96)
train_pipeline = [
    dict(type="RandomResize", scale=(128, 96), ratio_range=(0.8, 1.25), keep_ratio=True),
    dict(type="RandomCropCatMax", height=crop_size[0], width=crop_size[1], cat_max_ratio=1.0),
    dict(type="HorizontalFlip", p=0.5),
]
test_pipeline = []
# Loading a small batch in the main process costs a few ms; worker processes would compete with
# the compute threads for the few cores that toy runs are meant for.
train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=train_pipeline),
)
val_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=test_pipeline),
)
test_dataloader = val_dataloader
