# A few hundred iterations for demos and tests, otherwise the 40k recipe's optimiser.
_base_ = ["./schedule_40k.py"]
param_scheduler = [
    dict(type="LinearLR", start_factor=1e-3, by_epoch=False, begin=0, end=20),
    dict(type="PolyLR", power=1.0, eta_min=0.0, by_epoch=False, begin=20, end=300),
]
train_cfg = dict(max_iters=300, val_interval=100)
auto_scale_lr = dict(base_batch_size=8)
