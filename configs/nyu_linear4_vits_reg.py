# DINOv2 lin.4 depth on NYU Depth v2 with a frozen ViT-S/14 + 4 registers: blocks [2, 5, 8, 11]
# without the final norm, each with its cls token; 256 bins over 1e-3..10 m; lr 3e-4 as lin.1.
_base_ = [
    "./_base_/models/depth_linear4_vits_reg.py",
    "./_base_/datasets/nyu.py",
    "./_base_/schedules/schedule_depth_38k.py",
    "./_base_/depth_runtime.py",
]
model = dict(
    data_preprocessor=dict(size={{_base_.crop_size}}),
    decode_head=dict(min_depth={{_base_.min_depth}}, max_depth={{_base_.max_depth}}),
)
optim_wrapper = dict(optimizer=dict(lr=3e-4))
