"""Child registries of MMEngine's root registries.

Modules register themselves on import; ``locations`` tells each registry which packages to import
before building, so ``MODELS.build(dict(type='RegisterViT', ...))`` works without the caller
importing the backbone module first.
"""

from mmengine.registry import DATA_SAMPLERS as MMENGINE_DATA_SAMPLERS
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import LOOPS as MMENGINE_LOOPS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS as MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import OPTIMIZERS as MMENGINE_OPTIMIZERS
from mmengine.registry import PARAM_SCHEDULERS as MMENGINE_PARAM_SCHEDULERS
from mmengine.registry import RUNNERS as MMENGINE_RUNNERS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import VISBACKENDS as MMENGINE_VISBACKENDS
from mmengine.registry import VISUALIZERS as MMENGINE_VISUALIZERS
from mmengine.registry import Registry

MODELS = Registry(
    "model",
    parent=MMENGINE_MODELS,
    locations=[
        "dinoreg_dense.backbones",
        "dinoreg_dense.heads",
        "dinoreg_dense.models",
        "dinoreg_dense.losses",
    ],
)
DATASETS = Registry("dataset", parent=MMENGINE_DATASETS, locations=["dinoreg_dense.datasets"])
TRANSFORMS = Registry("transform", parent=MMENGINE_TRANSFORMS, locations=["dinoreg_dense.datasets"])
DATA_SAMPLERS = Registry(
    "data sampler", parent=MMENGINE_DATA_SAMPLERS, locations=["dinoreg_dense.datasets"]
)
METRICS = Registry("metric", parent=MMENGINE_METRICS, locations=["dinoreg_dense.evaluation"])
HOOKS = Registry("hook", parent=MMENGINE_HOOKS, locations=["dinoreg_dense.engine"])
OPTIM_WRAPPER_CONSTRUCTORS = Registry(
    "optimizer wrapper constructor",
    parent=MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS,
    locations=["dinoreg_dense.engine"],
)
PARAM_SCHEDULERS = Registry(
    "parameter scheduler", parent=MMENGINE_PARAM_SCHEDULERS, locations=["dinoreg_dense.engine"]
)
VISUALIZERS = Registry(
    "visualizer", parent=MMENGINE_VISUALIZERS, locations=["dinoreg_dense.visualization"]
)
VISBACKENDS = Registry(
    "vis_backend", parent=MMENGINE_VISBACKENDS, locations=["dinoreg_dense.visualization"]
)
OPTIM_WRAPPERS = Registry(
    "optim_wrapper", parent=MMENGINE_OPTIM_WRAPPERS, locations=["dinoreg_dense.engine"]
)
RUNNERS = Registry("runner", parent=MMENGINE_RUNNERS, locations=["dinoreg_dense.engine"])
# Empty children: they let MMEngine resolve loops and optimizers inside our scope without
# warning that the scope has no such registry.
LOOPS = Registry("loop", parent=MMENGINE_LOOPS, locations=["dinoreg_dense.engine"])
OPTIMIZERS = Registry("optimizer", parent=MMENGINE_OPTIMIZERS, locations=["dinoreg_dense.engine"])
