# DINOv2's linear depth probe (lin.1) on a frozen ViT-S/14 with 4 registers: last layer's patch
# tokens after the final norm, upsampled x4, the cls token joined to every patch, BatchNorm and a
# 1x1 conv over 256 bins between min and max depth; SigLoss on depth in metres.
# Point model.backbone.checkpoint at pretrained weights (official .pth, HF folder, timm, ours).
model = dict(
    type="Depther",
    data_preprocessor=dict(type="DenseDataPreProcessor", size=None),
    backbone=dict(
        type="RegisterViT",
        arch="vits14_reg4",
        checkpoint=None,
        out_indices=(-1,),
        norm_outputs=True,
        frozen=True,
    ),
    decode_head=dict(
        type="LinearDepthHead",
        in_channels=None,  # the backbone's width x 2 (cls joined) x the number of maps
        in_index=(0,),
        min_depth=1e-3,
        max_depth=10.0,
        num_bins=256,
        loss_decode=dict(type="SigLoss"),
    ),
    test_cfg=dict(mode="whole", flip=True),
)
