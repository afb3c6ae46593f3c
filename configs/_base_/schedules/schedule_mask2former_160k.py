# Mask2Former's ADE20K schedule: AdamW lr 1e-4, weight decay 0.05, poly decay (power 0.9) over
# 160k iterations of 16 images, gradients clipped to norm 0.01 over the whole model.
optim_wrapper = dict(
    type="OptimWrapper",
    optimizer=dict(type="AdamW", lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    clip_grad=dict(max_norm=0.01, norm_type=2),
    constructor="LayerDecayOptimWrapperConstructor",
    paramwise_cfg=dict(backbone_lr_mult=0.1, layer_decay_rate=1.0),
)
param_scheduler = [
    dict(type="PolyLR", power=0.9, eta_min=0.0, by_epoch=False, begin=0, end=160000),
]
train_cfg = dict(type="IterBasedTrainLoop", max_iters=160000, val_interval=16000)
val_cfg = dict(type="ValLoop")
test_cfg = dict(type="TestLoop")
auto_scale_lr = dict(enable=False, base_batch_size=16)
