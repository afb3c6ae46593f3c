# Depth-Anything-V2 Small (depth_anything_v2/dpt.py; HF DepthAnythingForDepthEstimation): DINOv2
# ViT-S/14 without registers, blocks [2, 5, 8, 11] after the final norm, DPT with readout
# "ignore", post-process channels [48, 96, 192, 384], 64 fusion channels, fused maps resized to
# the next level and the output to the input grid. The relative models predict affine-invariant
# inverse depth (disparity), not metres: the Depther leaves it unclamped.
model = dict(
    type="Depther",
    data_preprocessor=dict(type="DenseDataPreProcessor", size=None),
    backbone=dict(
        type="RegisterViT",
        arch="vits14",
        checkpoint=None,
        out_indices=(2, 5, 8, 11),
        norm_outputs=True,
        frozen=True,
    ),
    decode_head=dict(
        type="DPTHead",
        in_channels=None,
        post_process_channels=[48, 96, 192, 384],
        channels=64,
        in_index=(0, 1, 2, 3),
        readout="ignore",
        resize_to_grid=True,
        output_activation="relu",
        output_kind="relative_disparity",
        checkpoint=None,
    ),
    test_cfg=dict(mode="whole"),
)
# Depth-Anything-V2's input: the short side resized to 518 px (bicubic), as its run.py does. It then
# rounds both sides to a multiple of 14 by resizing; here the backbone pads to the multiple
# instead, so the aspect ratio is kept exactly (tools/infer.py reads this when the config has no
# dataloaders).
test_pipeline = [dict(type="SmallestMaxSize", max_size=518, interpolation=2)]  # 2: cv2.INTER_CUBIC
