# DINOv2 "+ms" evaluation on ADE20K: last 4 layers of ViT-S/14-reg4, resolution 640,
# multi-scale + flip testing.
_base_ = [
    "./_base_/models/linear_vits_reg.py",
    "./_base_/datasets/ade20k_640.py",
    "./_base_/schedules/schedule_40k.py",
    "./_base_/default_runtime.py",
]
model = dict(
    data_preprocessor=dict(size={{_base_.crop_size}}),
    backbone=dict(out_indices=4),
    decode_head=dict(in_index=(0, 1, 2, 3)),
    test_cfg=dict(stride=(426, 426), scales=(1.0, 1.32, 1.73, 2.28, 3.0), flip=True),
)
