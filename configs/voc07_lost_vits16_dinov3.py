# LOST on VOC07 trainval with DINOv3 ViT-S/16 (cls + 4 registers, RoPE; last-layer keys, prefix
# dropped), taken before RoPE (docs/discovery.md: DINOv3).
# Needs --checkpoint <the HF folder facebook/dinov3-vits16-pretrain-lvd1689m or
# dinov3_vits16_pretrain_lvd1689m-08c60483.pth>; --method tokencut for the DINOv3 paper's method.
_base_ = ["./_base_/datasets/voc07_boxes.py", "./_base_/discovery.py"]
backbone = dict(type="RegisterViT", arch="vits16_dinov3", checkpoint=None)
