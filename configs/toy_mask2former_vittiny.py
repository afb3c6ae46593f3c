# Demo / test experiment: Mask2Former semantic segmentation (64 channels, 8 queries, 3 decoder
# layers) on a tiny trainable register ViT (patch 8, 4 blocks of width 96), on the synthetic toy
# ADE20K (4 classes); minutes on a CPU.
_base_ = [
    "./_base_/models/mask2former_vits_reg.py",
    "./_base_/datasets/toy_ade20k.py",
    "./_base_/schedules/schedule_toy.py",
    "./_base_/default_runtime.py",
]
model = dict(
    data_preprocessor=dict(size={{_base_.crop_size}}),
    backbone=dict(
        embed_dim=96,
        depth=4,
        num_heads=3,
        patch_size=8,
        pos_embed_grid=16,
        out_indices=(-1,),
        frozen=False,
    ),
    decode_head=dict(
        num_classes=4,
        neck=dict(out_channels=64, in_index=-1),
        pixel_decoder=dict(
            conv_dim=64, mask_dim=64, num_encoder_layers=2, num_heads=4, dim_feedforward=128
        ),
        transformer_decoder=dict(
            hidden_dim=64, num_queries=8, num_heads=4, dim_feedforward=128, num_layers=3
        ),
        criterion=dict(num_points=1024),
    ),
)
optim_wrapper = dict(optimizer=dict(lr=1e-3))
default_hooks = dict(logger=dict(interval=20), checkpoint=dict(interval=100, max_keep_ckpts=2))
