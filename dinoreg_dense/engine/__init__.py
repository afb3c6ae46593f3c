"""Training machinery on top of MMEngine: runner, optimizer constructors, wrappers."""

from .atomic_backend import AtomicLocalBackend, install_atomic_backend
from .cpu_autocast import CPUAutocastOptimWrapper
from .layer_decay import LayerDecayOptimWrapperConstructor, vit_layer_id
from .run_checkpoint import check_state_dict_shapes, load_run_checkpoint
from .runner import DenseRunner

__all__ = [
    "AtomicLocalBackend",
    "CPUAutocastOptimWrapper",
    "DenseRunner",
    "LayerDecayOptimWrapperConstructor",
    "check_state_dict_shapes",
    "install_atomic_backend",
    "load_run_checkpoint",
    "vit_layer_id",
]
