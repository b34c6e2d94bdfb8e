"""Named operations, each a NumPy reference behind a backend dispatcher.

Layers call these and nothing else for their arithmetic; a backend speeds a layer up
by registering kernels for these names (see registry.py). One module per op family.
"""
from . import registry
from .activations import (
    leaky_relu_backward,
    leaky_relu_forward,
    sigmoid_backward,
    sigmoid_forward,
    tanh_backward,
    tanh_forward,
)
from .batchnorm import (
    batchnorm_backward_infer,
    batchnorm_backward_train,
    batchnorm_forward_infer,
    batchnorm_forward_train,
)
from .conv import (
    bias_backward,
    conv2d_backward_data,
    conv2d_backward_weights,
    conv2d_forward,
)
from .dropout import dropout_backward, dropout_forward
from .linear import dense_backward_data, dense_backward_weights, dense_forward
from .losses import bce_backward, bce_forward, bce_logits_backward, bce_logits_forward
from .optim import adam_update, rmsprop_update, sgd_update
from .winograd import (
    winograd_conv2d_backward_data,
    winograd_conv2d_backward_weights,
    winograd_conv2d_forward,
)
from .strided_winograd import (
    strided_winograd_conv2d_backward_data,
    strided_winograd_conv2d_backward_weights,
    strided_winograd_conv2d_forward,
)
from .pooling import (
    maxpool_backward,
    maxpool_forward,
    upsample_nearest_backward,
    upsample_nearest_forward,
)

OPS = registry.OPS
