# Synthetic shapes in the ADE20K layout (tools/make_toy_dataset.py): 4 classes, 128x128 images.
dataset_type = "ADE20KDataset"
data_root = "data/toy_ade20k"
classes = ("background", "disc", "square", "triangle")
train_pipeline = [
    dict(type="RandomResize", scale=(256, 128), ratio_range=(0.75, 1.5), keep_ratio=True),
    dict(type="RandomCropCatMax", height=128, width=128, cat_max_ratio=0.75),
    dict(type="HorizontalFlip", p=0.5),
]
test_pipeline = []
train_dataloader = dict(
    batch_size=8,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type="InfiniteSampler", shuffle=True),
    collate_fn=dict(type="pseudo_collate"),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split="training",
        classes=classes,
        pipeline=train_pipeline,
    ),
)
val_dataloader = dict(
    batch_size=8,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type="DefaultSampler", shuffle=False),
    collate_fn=dict(type="pseudo_collate"),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split="validation",
        classes=classes,
        test_mode=True,
        pipeline=test_pipeline,
    ),
)
test_dataloader = val_dataloader
val_evaluator = dict(type="IoUMetric", iou_metrics=["mIoU"])
test_evaluator = val_evaluator
