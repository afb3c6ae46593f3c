"""Task models: backbone + head, with ``loss()`` and ``predict()``."""

from .base import DenseModel
from .data_preprocessor import SegDataPreProcessor
from .segmentor import Segmentor
from .sliding_window import slide_inference, window_origins

__all__ = ["DenseModel", "SegDataPreProcessor", "Segmentor", "slide_inference", "window_origins"]
