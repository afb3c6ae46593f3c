# Demo / test: LOST on the toy VOC-layout boxes with a tiny randomly initialised register ViT
# (patch 8, 2 blocks of width 64). Random weights are allowed here only; the CorLoc means nothing.
_base_ = ["./_base_/datasets/toy_voc_boxes.py", "./_base_/discovery.py"]
backbone = dict(
    type="RegisterViT",
    arch="vits14_reg4",
    checkpoint=None,
    embed_dim=64,
    depth=2,
    num_heads=2,
    patch_size=8,
    pos_embed_grid=16,
)
allow_random_weights = True
inputs = dict(num_workers=0)
