# ADE20K (SceneParsing, ADEChallengeData2016), 150 classes, label 0 ignored. DINOv2's recipe:
# resize to (2048, 512) x [0.5, 2.0], random 512 crop with no class over 75 %, flip,
# photometric distortion; test at (2048, 512) with sliding 512 windows (in the model config).
dataset_type = "ADE20KDataset"
data_root = "data/ade"
crop_size = (512, 512)  # the one home of the crop: experiments pass it to the model
train_pipeline = [
    dict(type="RandomResize", scale=(2048, 512), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type="RandomCropCatMax", height=crop_size[0], width=crop_size[1], cat_max_ratio=0.75),
    dict(type="HorizontalFlip", p=0.5),
    dict(type="PhotoMetricDistortion"),
]
test_pipeline = [dict(type="ResizeToScale", scale=(2048, 512), keep_ratio=True)]
train_dataloader = dict(
    batch_size=2,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type="InfiniteSampler", shuffle=True),
    collate_fn=dict(type="pseudo_collate"),
    dataset=dict(type=dataset_type, data_root=data_root, split="training", pipeline=train_pipeline),
)
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type="DefaultSampler", shuffle=False),
    collate_fn=dict(type="pseudo_collate"),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split="validation",
        test_mode=True,
        pipeline=test_pipeline,
    ),
)
test_dataloader = val_dataloader
val_evaluator = dict(type="IoUMetric", iou_metrics=["mIoU"])
test_evaluator = val_evaluator
