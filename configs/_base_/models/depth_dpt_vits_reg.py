# DINOv2's DPT depth head on a frozen ViT-S/14 with 4 registers (dinov2 repo, hub/depthers.py):
# blocks [2, 5, 8, 11] (ViT-S/B; L: [4, 11, 17, 23], g: [9, 19, 29, 39]) without the final norm;
# readout "project" (cls joined to every patch, Linear 2D -> D, GELU), post-process channels
# [D/8, D/4, D/2, D] (derived from the backbone), 256 fusion channels, residual convs without
# bias, a 3x3 conv + ReLU before the output convs, output ReLU + min_depth in metres.
# Losses: SigLoss with DINOv2's 100-iteration warm-up + gradient loss at weight 0.5.
model = dict(
    type="Depther",
    data_preprocessor=dict(type="DenseDataPreProcessor", size=None),
    backbone=dict(
        type="RegisterViT",
        arch="vits14_reg4",
        checkpoint=None,
        out_indices=(2, 5, 8, 11),
        norm_outputs=False,
        frozen=True,
    ),
    decode_head=dict(
        type="DPTHead",
        in_channels=None,  # the backbone's width
        post_process_channels=None,  # [D/8, D/4, D/2, D]
        channels=256,
        in_index=(0, 1, 2, 3),
        readout="project",
        fusion_conv_bias=False,
        head_projection=True,
        output_activation="relu_plus_min_depth",
        min_depth=1e-3,
        max_depth=10.0,
        loss_decode=[
            dict(type="SigLoss", warm_up_iters=100),
            dict(type="GradientLoss", loss_weight=0.5),
        ],
    ),
    test_cfg=dict(mode="whole", flip=True),
)
