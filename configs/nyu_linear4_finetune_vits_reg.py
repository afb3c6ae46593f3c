# lin.4 depth on NYU, ViT-S/14 + 4 registers fine-tuned: head lr 3e-4, backbone 0.1 x that (DINOv2's
# depth configs' lr_mult), x 0.9 per block down from the top (patch embed: 0.9^13 x 3e-5 = 7.6e-6).
_base_ = [
    "./_base_/models/depth_linear4_vits_reg.py",
    "./_base_/datasets/nyu.py",
    "./_base_/schedules/schedule_depth_38k.py",
    "./_base_/depth_runtime.py",
]
model = dict(
    data_preprocessor=dict(size={{_base_.crop_size}}),
    backbone=dict(frozen=False),
    decode_head=dict(min_depth={{_base_.min_depth}}, max_depth={{_base_.max_depth}}),
)
optim_wrapper = dict(
    optimizer=dict(lr=3e-4), paramwise_cfg=dict(backbone_lr_mult=0.1, layer_decay_rate=0.9)
)
