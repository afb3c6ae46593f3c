# A small Mask2Former (64 channels, 3 decoder layers, 1024 points) on a tiny trainable register ViT
# (patch 8, 4 blocks of width 96, last block only) for the toy experiments; minutes on a CPU.
# Experiments set num_classes and num_queries.
_base_ = ["./mask2former_vits_reg.py"]
model = dict(
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
        neck=dict(out_channels=64, in_index=-1),
        pixel_decoder=dict(
            conv_dim=64, mask_dim=64, num_encoder_layers=2, num_heads=4, dim_feedforward=128
        ),
        transformer_decoder=dict(hidden_dim=64, num_heads=4, dim_feedforward=128, num_layers=3),
        criterion=dict(num_points=1024),
    ),
)
