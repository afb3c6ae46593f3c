# Depth-Anything-V2 Small for inference: relative inverse depth (disparity, not metres) from
# the released checkpoint, whose backbone (pretrained.*) and head (depth_head.*) both load from
# one file. Download depth_anything_v2_vits.pth and set the path below (or an HF
# DepthAnythingForDepthEstimation folder).
_base_ = ["./_base_/models/depth_anything_v2_vits.py", "./_base_/default_runtime.py"]
checkpoint = "checkpoints/depth_anything_v2_vits.pth"
model = dict(
    backbone=dict(checkpoint=checkpoint),
    decode_head=dict(checkpoint=checkpoint),
)
