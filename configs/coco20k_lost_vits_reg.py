# LOST on COCO20k with DINOv2 ViT-S/14 + 4 registers (last-layer keys, registers dropped).
# Needs --checkpoint dinov2_vits14_reg4_pretrain.pth. Reference numbers: docs/discovery.md.
_base_ = ["./_base_/datasets/coco20k.py", "./_base_/discovery.py"]
backbone = dict(type="RegisterViT", arch="vits14_reg4", checkpoint=None)
