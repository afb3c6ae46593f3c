# Mask2Former instance segmentation on COCO (80 classes, large-scale jitter to 1024 crops) with a
# frozen ViT-S/14 + 4 registers; whole-image inference, top 100 (query, class) pairs per image;
# COCO bbox and segm AP. Mask2Former's COCO schedule: 50 epochs of 16 images (368,750 iterations).
_base_ = [
    "./_base_/models/mask2former_vits_reg.py",
    "./_base_/datasets/coco_instance.py",
    "./_base_/schedules/schedule_mask2former_160k.py",
    "./_base_/default_runtime.py",
]
model = dict(
    type="InstanceSegmentor",
    data_preprocessor=dict(size={{_base_.crop_size}}),
    decode_head=dict(num_classes=80),
    test_cfg=dict(top_k=100),
)
param_scheduler = [
    dict(type="PolyLR", power=0.9, eta_min=0.0, by_epoch=False, begin=0, end=368750),
]
train_cfg = dict(max_iters=368750, val_interval=36875)
