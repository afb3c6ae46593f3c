"""Pretrained weights for :class:`~dinoreg_dense.backbones.RegisterViT`.

:class:`PretrainedFile` and ``read_arch`` accept official DINOv3 / DINOv2 / DINOv2-reg / DINO
``.pth`` files (plus training checkpoints with ``teacher`` / ``student`` / ``module.`` /
``backbone.``), Hugging Face model folders, timm ViT and DINOv3 state dicts, birder ViT ``.pt`` /
``.safetensors`` files and our own safetensors; the converters are pure functions of a state
dict. This package speaks state dicts and :class:`ViTArch` (defined here, in :mod:`.arch`) and
never imports the backbone, which loads :meth:`PretrainedFile.state_dict_for` into itself.
"""

from ..arch import ARCHS, ViTArch, resolve_arch
from .birder import arch_from_birder, convert_birder
from .errors import CheckpointError
from .huggingface import arch_from_hf_config, convert_hf
from .infer import infer_arch
from .loader import PretrainedFile, detect_format, read_arch
from .native import save_checkpoint
from .official import convert_official
from .timm_vit import convert_timm, fit_cls_pos_row

__all__ = [
    "ARCHS",
    "CheckpointError",
    "PretrainedFile",
    "ViTArch",
    "arch_from_birder",
    "arch_from_hf_config",
    "convert_birder",
    "convert_hf",
    "convert_official",
    "convert_timm",
    "detect_format",
    "fit_cls_pos_row",
    "infer_arch",
    "read_arch",
    "resolve_arch",
    "save_checkpoint",
]
