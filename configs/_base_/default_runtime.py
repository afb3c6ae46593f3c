# Runtime shared by every experiment: our Runner (safe resume, atomic checkpoints, CPU DDP),
# iteration-based logging, a progress bar on stderr, checkpoints every 4k iterations.
default_scope = "dinoreg_dense"
runner_type = "DenseRunner"
env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method="fork", opencv_num_threads=0),
    dist_cfg=dict(backend="nccl"),
)
default_hooks = dict(
    timer=dict(type="IterTimerHook"),
    logger=dict(type="LoggerHook", interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type="ParamSchedulerHook"),
    checkpoint=dict(
        type="CheckpointHook", by_epoch=False, interval=4000, max_keep_ckpts=3, save_last=True
    ),
    sampler_seed=dict(type="DistSamplerSeedHook"),
    progress=dict(type="ProgressBarHook"),
)
log_processor = dict(by_epoch=False)
log_level = "INFO"
load_from = None
resume = False
randomness = dict(seed=0)
