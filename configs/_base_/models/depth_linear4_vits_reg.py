# DINOv2's lin.4 depth probe on a frozen ViT-S/14 with 4 registers: blocks [2, 5, 8, 11] (ViT-S/B;
# L: [4, 11, 17, 23], g: [9, 19, 29, 39]) without the final norm, each upsampled x4 with its cls
# token joined to every patch, concatenated, BatchNorm and a 1x1 conv over 256 bins.
_base_ = ["./depth_linear_vits_reg.py"]
model = dict(
    backbone=dict(out_indices=(2, 5, 8, 11), norm_outputs=False),
    decode_head=dict(in_index=(0, 1, 2, 3)),
)
