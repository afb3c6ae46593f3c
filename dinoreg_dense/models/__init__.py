"""Task models: backbone + head, with ``loss()`` and ``predict()``."""

from .base import TEST_CFG_DEFAULTS, DenseModel
from .config_check import check_options
from .data_preprocessor import DenseDataPreProcessor
from .depther import Depther
from .instance_segmentor import InstanceSegmentor
from .segmentor import Segmentor
from .sliding_window import slide_inference, window_origins

__all__ = [
    "DenseDataPreProcessor",
    "DenseModel",
    "Depther",
    "InstanceSegmentor",
    "Segmentor",
    "TEST_CFG_DEFAULTS",
    "check_options",
    "slide_inference",
    "window_origins",
]
