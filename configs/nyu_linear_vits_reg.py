# DINOv2 lin.1 depth on NYU Depth v2 with a frozen ViT-S/14 + 4 registers: last layer + cls token,
# 256 bins over the dataset's 1e-3..10 m. lr 3e-4: DINOv3's NYU linear recipe.
_base_ = [
    "./_base_/models/depth_linear_vits_reg.py",
    "./_base_/datasets/nyu.py",
    "./_base_/schedules/schedule_depth_38k.py",
    "./_base_/depth_runtime.py",
]
model = dict(
    data_preprocessor=dict(size={{_base_.crop_size}}),
    decode_head=dict(min_depth={{_base_.min_depth}}, max_depth={{_base_.max_depth}}),
)
optim_wrapper = dict(optimizer=dict(lr=3e-4))
