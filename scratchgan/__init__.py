"""scratchgan: generative adversarial networks from scratch, with hand-written backward passes."""
import os as _os

# Installed, the top-level kernels/ folder is the subpackage scratchgan.kernels
# (pyproject.toml maps it). Run from a source checkout (tests, examples), it sits beside
# this package instead: let scratchgan.kernels resolve to it there too.
_checkout_kernels = _os.path.join(_os.path.dirname(__path__[0]), "kernels", "__init__.py")
if not _os.path.isdir(_os.path.join(__path__[0], "kernels")) and _os.path.isfile(_checkout_kernels):
    __path__.append(_os.path.dirname(_os.path.dirname(_checkout_kernels)))
from . import layers, losses, ops, optimizers
from .backend import BackendError, get_backend, set_backend
from .gradcheck import gradcheck
from .models import Sequential

__version__ = "0.1.0"

__all__ = [
    "BackendError",
    "Sequential",
    "get_backend",
    "gradcheck",
    "layers",
    "losses",
    "ops",
    "optimizers",
    "set_backend",
]
