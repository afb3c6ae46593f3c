# KITTI Eigen split (BTS / toolbox layout: raw RGB under input/, annotated depth under gt_depth/),
# the toolbox's and DINOv2's recipe: every frame KB-cropped to 352x1216 when loaded (train and
# test), rotation of +-2.5 deg with p 0.5 (depth: nearest, 0 = invalid fill), flip, random
# 352x704 crop, gamma / brightness / colour on the image only. Test on the KB crop (flip in the
# model's test_cfg), Garg crop, depth up to 80 m.
dataset_type = "KITTIDepthDataset"
data_root = "data/kitti"
crop_size = (352, 704)  # the one home of the crop: experiments pass it to the model
min_depth, max_depth = 1e-3, 80.0  # metres: the dataset's range, read by the metric and head
train_pipeline = [
    dict(type="Rotate", limit=2.5, border_mode=0, fill=(124, 116, 104), fill_mask=0, p=0.5),
    dict(type="HorizontalFlip", p=0.5),
    dict(type="RandomCrop", height=crop_size[0], width=crop_size[1]),
    dict(
        type="GammaBrightnessColorAug",
        gamma_range=(0.9, 1.1),
        brightness_range=(0.9, 1.1),
        color_range=(0.9, 1.1),
        p=0.5,
    ),
]
test_pipeline = []
depth_range = dict(min_depth=min_depth, max_depth=max_depth)
train_dataloader = dict(
    batch_size=2,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type="InfiniteSampler", shuffle=True),
    collate_fn=dict(type="pseudo_collate"),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split="train",
        pipeline=train_pipeline,
        **depth_range,
    ),
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
        split="test",
        test_mode=True,
        pipeline=test_pipeline,
        **depth_range,
    ),
)
test_dataloader = val_dataloader
val_evaluator = dict(type="DepthMetric", crop="garg")  # the depth range comes from the dataset
test_evaluator = val_evaluator
