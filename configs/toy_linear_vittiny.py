# Demo / test experiment: linear head on a tiny randomly initialised register ViT (patch 8,
# 4 blocks of width 96), trained on the synthetic toy dataset in a few minutes on a CPU.
_base_ = [
    "./_base_/models/linear_vits_reg.py",
    "./_base_/datasets/toy_ade20k.py",
    "./_base_/schedules/schedule_toy.py",
    "./_base_/default_runtime.py",
]
model = dict(
    data_preprocessor=dict(size={{_base_.crop_size}}),
    backbone=dict(embed_dim=96, depth=4, num_heads=3, patch_size=8, pos_embed_grid=16),
    decode_head=dict(num_classes=4),
    test_cfg=dict(mode="whole"),
)
default_hooks = dict(logger=dict(interval=20), checkpoint=dict(interval=100, max_keep_ckpts=2))
