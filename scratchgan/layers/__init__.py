"""Layers with Keras names, arguments and weight layouts (NHWC images).

Each layer's module docstring states its forward and backward formulas and shapes.
"""
from .activation import Activation, LeakyReLU, ReLU
from .base import Layer, LayerError
from .conv import Conv2D, Conv2DTranspose
from .dense import Dense
from .dropout import Dropout
from .normalization import BatchNormalization
from .pooling import MaxPooling2D, UpSampling2D
from .shape import Flatten, Reshape

__all__ = [
    "Activation",
    "BatchNormalization",
    "Conv2D",
    "Conv2DTranspose",
    "Dense",
    "Dropout",
    "Flatten",
    "LeakyReLU",
    "Layer",
    "LayerError",
    "MaxPooling2D",
    "ReLU",
    "Reshape",
    "UpSampling2D",
]
