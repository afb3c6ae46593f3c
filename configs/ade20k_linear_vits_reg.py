# DINOv2 linear evaluation on ADE20K with ViT-S/14 + 4 registers (frozen).
# Expected with official weights: ~47 mIoU region (see docs/model_zoo.md).
_base_ = [
    "./_base_/models/linear_vits_reg.py",
    "./_base_/datasets/ade20k.py",
    "./_base_/schedules/schedule_40k.py",
    "./_base_/default_runtime.py",
]
