# Linear probe on Cityscapes with ViT-S/14 + 4 registers (frozen); 512x1024 sliding windows.
_base_ = [
    "./_base_/models/linear_vits_reg.py",
    "./_base_/datasets/cityscapes.py",
    "./_base_/schedules/schedule_40k.py",
    "./_base_/default_runtime.py",
]
model = dict(
    data_preprocessor=dict(size={{_base_.crop_size}}),
    decode_head=dict(num_classes=19),
    test_cfg=dict(stride=(341, 683)),
)
