# The shared runtime, keeping the checkpoint with the lowest abs_rel (as DINOv2's depth configs do)
# besides a checkpoint every 1,600 iterations.
_base_ = ["./default_runtime.py"]
default_hooks = dict(checkpoint=dict(interval=1600, save_best="abs_rel", rule="less"))
