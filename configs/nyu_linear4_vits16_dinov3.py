# DINOv3 lin.4 depth on NYU Depth v2, frozen ViT-S/16 (cls + 4 registers, RoPE): DINOv2's lin.4
# recipe, which DINOv3 keeps: 256 bins over 1e-3..10 m, 416x544 crops, 38.4k iterations, lr 3e-4.
# Weights: model.backbone.checkpoint=<the HF folder facebook/dinov3-vits16-pretrain-lvd1689m or
# dinov3_vits16_pretrain_lvd1689m-08c60483.pth>. Model card: RMSE 0.403 (docs/model_zoo.md).
_base_ = [
    "./_base_/models/depth_linear4_vits_reg.py",
    "./_base_/datasets/nyu.py",
    "./_base_/schedules/schedule_depth_38k.py",
    "./_base_/depth_runtime.py",
]
model = dict(
    data_preprocessor=dict(size={{_base_.crop_size}}),
    backbone=dict(arch="vits16_dinov3"),
    decode_head=dict(min_depth={{_base_.min_depth}}, max_depth={{_base_.max_depth}}),
)
optim_wrapper = dict(optimizer=dict(lr=3e-4))
