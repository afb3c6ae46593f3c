# Synthetic scenes in the NYU Depth v2 layout (tools/make_toy_dataset.py OUT --layout nyu):
# 96x128 images, depth 1-10 m as 16-bit millimetre PNGs.
dataset_type = "NYUDepthDataset"
data_root = "data/toy_nyu"
crop_size = (96, 128)
train_pipeline = [dict(type="HorizontalFlip", p=0.5)]
test_pipeline = []
train_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type="InfiniteSampler", shuffle=True),
    collate_fn=dict(type="pseudo_collate"),
    dataset=dict(type=dataset_type, data_root=data_root, split="train", pipeline=train_pipeline),
)
val_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type="DefaultSampler", shuffle=False),
    collate_fn=dict(type="pseudo_collate"),
    dataset=dict(
        type=dataset_type, data_root=data_root, split="test", test_mode=True, pipeline=test_pipeline
    ),
)
test_dataloader = val_dataloader
val_evaluator = dict(type="DepthMetric")  # the depth range comes from the dataset
test_evaluator = val_evaluator
