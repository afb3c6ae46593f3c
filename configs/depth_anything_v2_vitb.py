# Depth-Anything-V2 Base for inference: relative inverse depth (disparity, not metres) from
# the released checkpoint, whose backbone (pretrained.*) and head (depth_head.*) both load from
# one file. Download depth_anything_v2_vitb.pth and set the path below (or an HF
# DepthAnythingForDepthEstimation folder).
_base_ = ["./_base_/models/depth_anything_v2_vits.py", "./_base_/default_runtime.py"]
checkpoint = "checkpoints/depth_anything_v2_vitb.pth"
model = dict(
    backbone=dict(arch="vitb14", out_indices=(2, 5, 8, 11), checkpoint=checkpoint),
    decode_head=dict(
        post_process_channels=[96, 192, 384, 768], channels=128, checkpoint=checkpoint
    ),
)
