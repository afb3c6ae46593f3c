# Depth-Anything-V2 Large for inference: relative inverse depth (disparity, not metres) from
# the released checkpoint, whose backbone (pretrained.*) and head (depth_head.*) both load from
# one file. Download depth_anything_v2_vitl.pth and set the path below (or an HF
# DepthAnythingForDepthEstimation folder).
_base_ = ["./_base_/models/depth_anything_v2_vits.py", "./_base_/default_runtime.py"]
checkpoint = "checkpoints/depth_anything_v2_vitl.pth"
model = dict(
    backbone=dict(arch="vitl14", out_indices=(4, 11, 17, 23), checkpoint=checkpoint),
    decode_head=dict(
        post_process_channels=[256, 512, 1024, 1024], channels=256, checkpoint=checkpoint
    ),
)
