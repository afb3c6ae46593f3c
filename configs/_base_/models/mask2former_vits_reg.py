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
        neck=dict(
            type="SimpleFeaturePyramid",
            out_channels=256,
            scale_factors=(4.0, 2.0, 1.0, 0.5),
            in_index=(0, 1, 2, 3),
        ),
        pixel_decoder=dict(
            type="MSDeformAttnPixelDecoder",
            conv_dim=256,
            mask_dim=256,
            num_encoder_layers=6,
            num_heads=8,
            num_points=4,
            dim_feedforward=1024,
            dropout=0.0,
            num_deform_levels=3,
        ),
        transformer_decoder=dict(
            type="MaskedAttentionDecoder",
            hidden_dim=256,
            num_queries=100,
            num_heads=8,
            dim_feedforward=2048,
            num_layers=9,
            pre_norm=False,
            enforce_input_projection=False,
        ),
        criterion=dict(
            class_weight=2.0,
            mask_weight=5.0,
            dice_weight=5.0,
            no_object_weight=0.1,
            num_points=12544,
            oversample_ratio=3.0,
            importance_sample_ratio=0.75,
            deep_supervision=True,
        ),
    ),
    test_cfg=dict(mode="whole"),
)
