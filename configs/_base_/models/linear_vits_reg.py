# DINOv2 linear probe on a frozen ViT-S/14 with 4 registers: last layer's patch tokens after the
# final norm -> BatchNorm -> 1x1 conv; training batches padded to the 512 crop, every input to a
# multiple of the patch size (14), labels with 255.
# Point model.backbone.checkpoint at pretrained weights (official .pth, HF folder, timm, ours).
model = dict(
    type="Segmentor",
    data_preprocessor=dict(
        type="SegDataPreProcessor",
        mean=(123.675, 116.28, 103.53),
        std=(58.395, 57.12, 57.375),
        size=(512, 512),
        size_divisor=14,
        seg_pad_val=255,
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
        in_channels=384,
        num_classes=150,
        in_index=(0,),
        use_bn=True,
        loss_decode=dict(type="CrossEntropyLoss", ignore_index=255),
    ),
    test_cfg=dict(mode="slide", crop_size=(512, 512), stride=(341, 341)),
)
