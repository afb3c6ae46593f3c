"""dinoreg-dense: dense prediction heads on register Vision Transformers."""

__version__ = "0.1.0"
