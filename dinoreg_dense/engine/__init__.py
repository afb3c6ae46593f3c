"""Training machinery on top of MMEngine: runner, optimizer constructors, wrappers."""

from .atomic_backend import AtomicLocalBackend, install_atomic_backend
from .cpu_autocast import CPUAutocastOptimWrapper
from .layer_decay import LayerDecayOptimWrapperConstructor, vit_layer_id
from .prediction_writer import (
    PredictionWriterHook,
    depth_range_of,
    depth_to_millimetres,
    save_prediction,
)
from .progress import ProgressBarHook
from .run_checkpoint import (
    check_state_dict_shapes,
    load_run_checkpoint,
    portable_message_hub,
    restore_message_hub,
)
from .runner import DenseRunner

__all__ = [
    "AtomicLocalBackend",
    "CPUAutocastOptimWrapper",
    "DenseRunner",
    "LayerDecayOptimWrapperConstructor",
    "ProgressBarHook",
    "PredictionWriterHook",
    "check_state_dict_shapes",
    "depth_range_of",
    "depth_to_millimetres",
    "install_atomic_backend",
    "load_run_checkpoint",
    "portable_message_hub",
    "restore_message_hub",
    "save_prediction",
    "vit_layer_id",
]
