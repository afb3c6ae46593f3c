# Linear probe on Pascal VOC 2012 with ViT-S/14 + 4 registers (frozen).
_base_ = [
    "./_base_/models/linear_vits_reg.py",
    "./_base_/datasets/voc2012.py",
    "./_base_/schedules/schedule_40k.py",
    "./_base_/default_runtime.py",
]
model = dict(data_preprocessor=dict(size={{_base_.crop_size}}), decode_head=dict(num_classes=21))
