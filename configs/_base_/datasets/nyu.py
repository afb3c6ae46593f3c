# NYU Depth v2 (BTS / toolbox split files, 24,231 train and 654 test images), DINOv2's recipe:
# NYU crop (rows 45:472, cols 43:608: drops the border without Kinect depth), rotation of
# +-2.5 deg with p 0.5 (depth: nearest, 0 = invalid fill; image: bilinear, mean-colour fill that
# normalises to 0 like the preprocessor's padding), flip, random 416x544 crop, gamma / brightness /
# colour on the image only. Test at the full 480x640 (flip in the model's test_cfg), Eigen crop.
dataset_type = "NYUDepthDataset"
data_root = "data/nyu"
crop_size = (416, 544)  # the one home of the crop: experiments pass it to the model
min_depth, max_depth = 1e-3, 10.0  # metres: the dataset's range, read by the metric and head
train_pipeline = [
    dict(type="Crop", x_min=43, y_min=45, x_max=608, y_max=472),
    dict(type="Rotate", limit=2.5, border_mode=0, fill=(124, 116, 104), fill_mask=0, p=0.5),
    dict(type="HorizontalFlip", p=0.5),
    dict(type="RandomCrop", height=crop_size[0], width=crop_size[1]),
    dict(
        type="GammaBrightnessColorAug",
        gamma_range=(0.9, 1.1),
        brightness_range=(0.75, 1.25),
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
val_evaluator = dict(type="DepthMetric", crop="eigen")  # the depth range comes from the dataset
test_evaluator = val_evaluator
