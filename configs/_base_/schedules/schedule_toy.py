# A few hundred iterations for demos and tests: same optimiser family as the 40k recipe.
optim_wrapper = dict(
    type="OptimWrapper",
    optimizer=dict(type="AdamW", lr=1e-3, betas=(0.9, 0.999), weight_decay=1e-4),
    constructor="LayerDecayOptimWrapperConstructor",
)
param_scheduler = [
    dict(type="LinearLR", start_factor=1e-3, by_epoch=False, begin=0, end=20),
    dict(type="PolyLR", power=1.0, eta_min=0.0, by_epoch=False, begin=20, end=300),
]
train_cfg = dict(type="IterBasedTrainLoop", max_iters=300, val_interval=100)
val_cfg = dict(type="ValLoop")
test_cfg = dict(type="TestLoop")
auto_scale_lr = dict(enable=False, base_batch_size=8)
