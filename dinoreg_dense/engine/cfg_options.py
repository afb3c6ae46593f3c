"""``--cfg-options`` keys checked against what reads them, so a typo is an error, not a no-op."""

import difflib
import inspect
from collections.abc import Iterable, Mapping
from typing import Any

from mmengine.config import Config
from mmengine.runner import Runner
from torch.utils.data import DataLoader

from .. import registry

# Top-level keys that Runner.from_cfg or our tools read; everything else in a config file is a
# variable used while the file was parsed (data_root, crop_size, train_pipeline ...).
RUNNER_KEYS = frozenset(inspect.signature(Runner.__init__).parameters) - {"self", "cfg"} | {
    "runner_type",
    "sync_bn",
    "find_unused_parameters",
    "model_wrapper_cfg",
    "compile",
}
_REGISTRIES = (
    registry.MODELS,
    registry.DATASETS,
    registry.DATA_SAMPLERS,
    registry.OPTIM_WRAPPERS,
    registry.OPTIMIZERS,
    registry.OPTIM_WRAPPER_CONSTRUCTORS,
    registry.PARAM_SCHEDULERS,
    registry.LOOPS,
    registry.HOOKS,
    registry.METRICS,
    registry.VISUALIZERS,
    registry.VISBACKENDS,
)
_DATALOADERS = ("train_dataloader", "val_dataloader", "test_dataloader")


def check_cfg_options(
    cfg: Config,
    options: Mapping[str, Any],
    file_keys: Iterable[str],
    top_keys: Iterable[str] = RUNNER_KEYS,
) -> None:
    """Refuse ``--cfg-options`` keys that nothing reads.

    A key's first part must be one the tool reads: ``top_keys``, by default the runner's
    (``model``, ``optim_wrapper``, ``train_cfg`` ...). Below it, wherever the path passes a dict
    with a ``type``, the next part must be an argument of that class (the optimizer's ``lr``, the
    loop's ``max_iters``); the dataloaders' keys must be ``DataLoader`` arguments. Classes that
    take ``**kwargs`` check their own arguments when built, unless they list them in a
    ``config_keys()`` classmethod.

    Args:
        cfg: the config after the overrides were merged.
        options: the overrides, dotted key -> value.
        file_keys: the top-level keys of the config file itself.
        top_keys: the top-level keys the tool reads (object discovery:
            :data:`~dinoreg_dense.engine.discover.CONFIG_KEYS`).

    Raises:
        ValueError: the first unknown key, with the nearest valid one and the valid set.
    """
    top_keys = set(top_keys)
    for key in options:
        parts = key.split(".")
        top = parts[0]
        if top not in top_keys:
            if top == "data_root":
                raise ValueError(
                    f"--cfg-options {key}: data_root is a variable of the config file, used "
                    "while the file was read, so overriding it changes nothing; use "
                    "--data-root instead"
                )
            if top in set(file_keys):
                raise ValueError(
                    f"--cfg-options {key}: '{top}' is a variable of the config file, used while "
                    "the file was read, so overriding it changes nothing; override the fields "
                    f"that use it (e.g. train_dataloader.dataset.pipeline for a pipeline)"
                )
            _unknown(key, top, top_keys, "the config's top level")
        node: Any = cfg[top]
        for depth, part in enumerate(parts[1:], start=1):
            path = ".".join(parts[:depth])
            valid = _valid_arguments(path, node)
            if valid is not None and part not in valid:
                _unknown(key, part, valid, f"{path} ({_describe(path, node)})")
            if not isinstance(node, Mapping) or part not in node:
                break
            node = node[part]


def _valid_arguments(path: str, node: Any) -> set[str] | None:
    """Arguments that ``node`` (the value at ``path``) accepts, or None when unknown."""
    if path in _DATALOADERS:
        return set(inspect.signature(DataLoader.__init__).parameters) - {"self"}
    if not isinstance(node, Mapping) or not isinstance(node.get("type"), str):
        return None
    cls = _resolve(node["type"])
    if cls is None:
        return None
    # the optimizer wrapper's config also carries what its constructor reads
    extra = {"constructor", "paramwise_cfg"} if path == "optim_wrapper" else set()
    if hasattr(cls, "config_keys"):  # takes **kwargs but knows which
        return set(cls.config_keys()) | {"type", "_scope_"}
    params = inspect.signature(cls).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return None
    return set(params) | {"type", "_scope_"} | extra


def _resolve(name: str) -> Any:
    for reg in _REGISTRIES:
        cls = reg.get(name)
        if cls is not None:
            return cls
    return None


def _describe(path: str, node: Any) -> str:
    return "DataLoader" if path in _DATALOADERS else str(node["type"])


def _unknown(key: str, part: str, valid: Iterable[str], where: str) -> None:
    valid = sorted(v for v in valid if not v.startswith("_"))
    close = difflib.get_close_matches(part, valid, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    raise ValueError(
        f"--cfg-options {key}: '{part}' is not a key of {where}{hint}; valid: {', '.join(valid)}"
    )
