# DINOv2 linear evaluation on ADE20K with ViT-G/14 + 4 registers (frozen).
_base_ = [
    "./_base_/models/linear_vits_reg.py",
    "./_base_/datasets/ade20k.py",
    "./_base_/schedules/schedule_40k.py",
    "./_base_/default_runtime.py",
]
model = dict(data_preprocessor=dict(size={{_base_.crop_size}}), backbone=dict(arch="vitg14_reg4"))
