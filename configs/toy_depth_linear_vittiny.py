# Toy depth experiment: DINOv2's linear depth head on a tiny randomly initialised register ViT
# (patch 8, 4 blocks of width 96) and the synthetic NYU-layout scenes, for tests and demos.
_base_ = [
    "./_base_/models/depth_linear_vits_reg.py",
    "./_base_/datasets/toy_nyu.py",
    "./_base_/schedules/schedule_toy.py",
    "./_base_/default_runtime.py",
]
model = dict(
    data_preprocessor=dict(size={{_base_.crop_size}}),
    backbone=dict(embed_dim=96, depth=4, num_heads=3, patch_size=8, pos_embed_grid=16),
)
default_hooks = dict(logger=dict(interval=20), checkpoint=dict(interval=100, max_keep_ckpts=2))
optim_wrapper = dict(optimizer=dict(lr=3e-3))
