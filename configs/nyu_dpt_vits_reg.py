# DINOv2's DPT depth head on NYU Depth v2 with a frozen ViT-S/14 + 4 registers: blocks
# [2, 5, 8, 11] without the final norm, readout "project", 256 fusion channels, SigLoss (warm-up)
# + gradient loss 0.5; AdamW 1e-4, 38.4k iterations; test on 480x640 + flip, Eigen crop.
_base_ = [
    "./_base_/models/depth_dpt_vits_reg.py",
    "./_base_/datasets/nyu.py",
    "./_base_/schedules/schedule_depth_38k.py",
    "./_base_/depth_runtime.py",
]
model = dict(
    data_preprocessor=dict(size={{_base_.crop_size}}),
    decode_head=dict(min_depth={{_base_.min_depth}}, max_depth={{_base_.max_depth}}),
)
