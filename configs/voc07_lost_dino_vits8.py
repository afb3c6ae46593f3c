# LOST on VOC07 trainval with DINO ViT-S/8 (no registers): LOST's paper reports 55.5 CorLoc.
# Needs --checkpoint dino_deitsmall8_pretrain.pth. Reference numbers: docs/discovery.md.
_base_ = ["./_base_/datasets/voc07_boxes.py", "./_base_/discovery.py"]
backbone = dict(type="RegisterViT", arch="dino_vits8", checkpoint=None)
