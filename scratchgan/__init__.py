"""scratchgan: generative adversarial networks from scratch, with hand-written backward passes.

The top-level ``kernels/`` folder of the source tree is installed as ``scratchgan.kernels``
(pyproject.toml maps it); work on a checkout with ``pip install -e .``.
"""
from . import layers, losses, ops, optimizers
from .backend import BackendError, get_backend, set_backend
from .conv_algo import get_conv_algo, set_conv_algo
from .gradcheck import gradcheck
from .models import Sequential

__version__ = "0.1.0"

__all__ = [
    "BackendError",
    "Sequential",
    "get_backend",
    "get_conv_algo",
    "gradcheck",
    "layers",
    "losses",
    "ops",
    "optimizers",
    "set_backend",
    "set_conv_algo",
]
