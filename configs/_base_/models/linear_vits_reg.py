# DINOv2 linear probe on a frozen ViT-S/14 with 4 registers: last layer's patch tokens after the
# final norm -> BatchNorm -> 1x1 conv. Training batches are padded to the crop (labels with the
# ignore label): experiments set data_preprocessor.size from the dataset's crop_size. The backbone
# pads every input to its patch grid itself. Sliding windows at test time take the crop's size
# unless test_cfg says otherwise.
# Point model.backbone.checkpoint at pretrained weights (official .pth, HF folder, timm, ours).
model = dict(
    type="Segmentor",
    data_preprocessor=dict(
        type="DenseDataPreProcessor",
        mean=(123.675, 116.28, 103.53),
        std=(58.395, 57.12, 57.375),
        size=None,
    ),
    backbone=dict(
        type="RegisterViT",
        arch="vits14_reg4",
        checkpoint=None,
        out_indices=(-1,),
        norm_outputs=True,
        frozen=True,
    ),
    decode_head=dict(
        type="LinearHead",
        in_channels=None,  # the backbone's width x the number of maps in in_index
        num_classes=150,
        in_index=(0,),
        use_bn=True,
    ),
    test_cfg=dict(mode="slide", stride=(341, 341)),
)
