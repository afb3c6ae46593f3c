# Demo / test experiment: a small Mask2Former (64 channels, 10 queries, 3 decoder layers) on a
# tiny trainable register ViT (patch 8, 4 blocks of width 96), on the synthetic toy COCO
# instances; minutes on a CPU.
_base_ = [
    "./_base_/models/mask2former_vittiny.py",
    "./_base_/datasets/toy_coco_instance.py",
    "./_base_/schedules/schedule_toy.py",
    "./_base_/default_runtime.py",
]
model = dict(
    type="InstanceSegmentor",
    data_preprocessor=dict(size={{_base_.crop_size}}),
    decode_head=dict(num_classes=3, transformer_decoder=dict(num_queries=10)),
    test_cfg=dict(top_k=10),
)
optim_wrapper = dict(optimizer=dict(lr=1e-3))
default_hooks = dict(logger=dict(interval=20), checkpoint=dict(interval=100, max_keep_ckpts=2))
