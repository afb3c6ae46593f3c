# DINOv2's NYU / KITTI depth schedule (official DPT config): AdamW lr 1e-4 wd 0.01, gradient
# clipping at norm 35, 12.8k-iteration linear warm-up from 1e-3 x lr, then cosine decay to ~0 at
# 38.4k iterations; evaluation every 800 iterations (best checkpoint: depth_runtime.py). Batch: 2
# per GPU in the config; 16 in total assumed (8 GPUs, as the segmentation recipe; the dump does
# not record the GPU count); with another total, run tools/train.py --auto-scale-lr.
optim_wrapper = dict(
    type="OptimWrapper",
    optimizer=dict(type="AdamW", lr=1e-4, betas=(0.9, 0.999), weight_decay=0.01),
    clip_grad=dict(max_norm=35, norm_type=2),
    constructor="LayerDecayOptimWrapperConstructor",
    paramwise_cfg=dict(backbone_lr_mult=1.0, layer_decay_rate=1.0),
)
param_scheduler = [
    dict(type="LinearLR", start_factor=1e-3, by_epoch=False, begin=0, end=12800),
    dict(type="CosineAnnealingLR", eta_min=0.0, by_epoch=False, begin=12800, end=38400),
]
train_cfg = dict(type="IterBasedTrainLoop", max_iters=38400, val_interval=800)
val_cfg = dict(type="ValLoop")
test_cfg = dict(type="TestLoop")
auto_scale_lr = dict(enable=False, base_batch_size=16)
