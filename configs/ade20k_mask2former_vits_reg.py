# Mask2Former semantic segmentation on ADE20K (512 crops) with a frozen ViT-S/14 + 4 registers;
# sliding 512 windows (stride 341) at test time, as DINOv2's evaluation. Reference: DINOv2 reports
# 60.2 mIoU with ViT-g/14 + ViT-Adapter + Mask2Former (not reproduced here).
_base_ = [
    "./_base_/models/mask2former_vits_reg.py",
    "./_base_/datasets/ade20k.py",
    "./_base_/schedules/schedule_mask2former_160k.py",
    "./_base_/default_runtime.py",
]
model = dict(
    data_preprocessor=dict(size={{_base_.crop_size}}),
    test_cfg=dict(mode="slide", stride=(341, 341)),
)
