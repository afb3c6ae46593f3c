# DINOv3 linear evaluation on ADE20K with a frozen ViT-S/16 (cls + 4 registers, RoPE): the DINOv2
# recipe (512 crops, slide stride 341, 40k iterations, lr 1e-3) with DINOv3's weight decay 1e-3.
# Weights: model.backbone.checkpoint=<the HF folder facebook/dinov3-vits16-pretrain-lvd1689m or
# dinov3_vits16_pretrain_lvd1689m-08c60483.pth>. Model card: 47.0 mIoU (docs/model_zoo.md).
_base_ = [
    "./_base_/models/linear_vits_reg.py",
    "./_base_/datasets/ade20k.py",
    "./_base_/schedules/schedule_40k.py",
    "./_base_/default_runtime.py",
]
model = dict(data_preprocessor=dict(size={{_base_.crop_size}}), backbone=dict(arch="vits16_dinov3"))
optim_wrapper = dict(optimizer=dict(weight_decay=1e-3))
