# DINOv2's DPT depth head on KITTI (Eigen split) with a frozen ViT-S/14 + 4 registers: as
# nyu_dpt_vits_reg.py, on KB-cropped 352x1216 frames, random 352x704 crops, depth up to 80 m,
# Garg crop in the metric.
_base_ = [
    "./_base_/models/depth_dpt_vits_reg.py",
    "./_base_/datasets/kitti.py",
    "./_base_/schedules/schedule_depth_38k.py",
    "./_base_/depth_runtime.py",
]
model = dict(
    data_preprocessor=dict(size={{_base_.crop_size}}),
    decode_head=dict(min_depth={{_base_.min_depth}}, max_depth={{_base_.max_depth}}),
)
