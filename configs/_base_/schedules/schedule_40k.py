# DINOv2 linear-probe schedule: AdamW lr 1e-3 wd 1e-4, 1,500-iteration linear warm-up, then
# poly (power 1) decay to 0 at 40k iterations. Batch: 16 images per iteration in total
# (e.g. 8 GPUs x 2); with another total batch size, run tools/train.py --auto-scale-lr.
optim_wrapper = dict(
    type="OptimWrapper",
    optimizer=dict(type="AdamW", lr=1e-3, betas=(0.9, 0.999), weight_decay=1e-4),
    constructor="LayerDecayOptimWrapperConstructor",
    paramwise_cfg=dict(backbone_lr_mult=1.0, layer_decay_rate=1.0),
)
param_scheduler = [
    dict(type="LinearLR", start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type="PolyLR", power=1.0, eta_min=0.0, by_epoch=False, begin=1500, end=40000),
]
train_cfg = dict(type="IterBasedTrainLoop", max_iters=40000, val_interval=4000)
val_cfg = dict(type="ValLoop")
test_cfg = dict(type="TestLoop")
auto_scale_lr = dict(enable=False, base_batch_size=16)
