# COCO 2017 instances (118k train, 5k val images; 80 categories). Large-scale jitter as in ViTDet
# and Mask2Former's COCO recipe: resize so the long edge is 1024 x [0.1, 2.0], random 1024 crop
# (boxes recomputed from the cropped masks), flip; the data preprocessor pads each training batch
# to crop_size (its `size`). Test: long edge 1024. COCO box / mask AP from the val json.
dataset_type = "COCOInstanceDataset"
data_root = "data/coco"
crop_size = (1024, 1024)  # the one home of the crop: experiments pass it to the preprocessor
train_pipeline = [
    dict(type="RandomResize", scale=crop_size, ratio_range=(0.1, 2.0), keep_ratio=True),
    dict(type="RandomCropCatMax", height=crop_size[0], width=crop_size[1], cat_max_ratio=1.0),
    dict(type="HorizontalFlip", p=0.5),
]
test_pipeline = [dict(type="ResizeToScale", scale=crop_size, keep_ratio=True)]
train_dataloader = dict(
    batch_size=2,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type="InfiniteSampler", shuffle=True),
    collate_fn=dict(type="pseudo_collate"),
    dataset=dict(type=dataset_type, data_root=data_root, split="train", pipeline=train_pipeline),
)
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type="DefaultSampler", shuffle=False),
    collate_fn=dict(type="pseudo_collate"),
    dataset=dict(
        type=dataset_type, data_root=data_root, split="val", test_mode=True, pipeline=test_pipeline
    ),
)
test_dataloader = val_dataloader
val_evaluator = dict(type="COCOInstanceMetric", iou_types=["bbox", "segm"])
test_evaluator = val_evaluator
