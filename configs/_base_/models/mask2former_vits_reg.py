# Mask2Former (Cheng et al., CVPR 2022) on a frozen ViT-S/14 with 4 registers, as DINOv2's
# Mask2Former evaluation keeps the backbone frozen. Blocks [2, 5, 8, 11] after the final norm feed
# ViTDet's simple feature pyramid, one block per level, shallow to fine (scales 4, 2, 1, 0.5 of
# the patch grid: strides 3.5 to 28 px for patch 14) -> multi-scale deformable-attention pixel
# decoder (6 layers, 256 channels) -> masked-attention decoder (9 layers, 100 queries). Losses:
# class 2 / mask 5 / dice 5, no-object 0.1, 12544 points, deep supervision. Semantic configs use
# this as is (Segmentor); instance configs set type="InstanceSegmentor" and num_classes.
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
        out_indices=(2, 5, 8, 11),
        norm_outputs=True,
        frozen=True,
    ),
    decode_head=dict(
        type="Mask2FormerHead",
        in_channels=None,  # the backbone's width
        num_classes=150,
        # Unset keys of these and the criterion take Mask2Former's values, Mask2FormerHead's
        # defaults (dinoreg_dense/heads/mask2former/head.py); the neck reads all four blocks.
        neck=dict(type="SimpleFeaturePyramid", in_index=(0, 1, 2, 3)),
        pixel_decoder=dict(type="MSDeformAttnPixelDecoder"),
        transformer_decoder=dict(type="MaskedAttentionDecoder"),
    ),
    test_cfg=dict(mode="whole"),
)
