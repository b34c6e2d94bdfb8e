"""Conv2D and Conv2DTranspose, NHWC, Keras layouts and output sizes.

Conv2D: x (N, H, W, C), kernel (kh, kw, C, F), bias (F,), y (N, Ho, Wo, F)::

    z[n,p,q,f] = b[f] + sum_{i,j,c} xpad[n, p*sh+i, q*sw+j, c] * k[i,j,c,f];   y = act(z)
    dz = act'(z) * dy
    dx = col2im(dz @ k^T)  (cropped),   dk = im2col(x)^T @ dz,   db = sum dz

"same" pads like TensorFlow: Ho = ceil(H / sh), and an odd total padding puts the
extra row/column at the bottom/right. "valid": Ho = floor((H - kh) / sh) + 1.

Conv2DTranspose: x (N, H, W, C_in), kernel (kh, kw, F, C_in), y (N, Ho, Wo, F), the
adjoint of the Conv2D that maps (Ho, Wo, F) to (H, W, C_in) with the same kernel::

    z  = conv2d_backward_data(x, k) + b                     y = act(z)
    dx = conv2d_forward(dz, k),   dk = conv2d_backward_weights(x, dz) = im2col(dz)^T @ x,   db = sum dz

Ho = H * sh ("same") or H * sh + max(kh - sh, 0) ("valid"), as Keras computes it.

Each layer computes its :class:`~scratchgan.ops.geometry.Window` (sizes, strides,
paddings) once, when it is built, and hands it to every op call. Each of its three passes
runs im2col + GEMM (scratchgan/ops/conv.py) or, for stride-1 3x3 and 5x5 kernels, Winograd
(scratchgan/ops/winograd.py; stride-2 5x5 kernels on 2x2 blocks, scratchgan/ops/strided_winograd.py), as ``scratchgan.set_conv_algo`` decides (scratchgan/conv_algo.py).
Derivations: docs/derivations.md, "Conv2D", "Conv2DTranspose" and "Winograd convolution".
"""
from __future__ import annotations

from .. import ops
from ..conv_algo import ConvAlgorithms, winograd_op
from ..ops.geometry import check_padding, pair, transpose_window, window
from .base import LayerError
from .linear import LinearLayer


class _Conv(LinearLayer):
    input_ndim = 4

    def __init__(self, filters, kernel_size, strides=1, padding="valid", activation=None, use_bias=True, **kwargs):
        super().__init__(activation=activation, use_bias=use_bias, **kwargs)
        if int(filters) < 1:
            raise LayerError(f"{type(self).__name__}: filters must be a positive integer, got {filters!r}")
        self.filters = int(filters)
        self.kernel_size = pair(kernel_size, "kernel_size")
        self.strides = pair(strides, "strides")
        self.padding = check_padding(padding)
        self.window = None  # the Window of inputs of the built size, set by _build
        self.algorithms = None  # which algorithm each pass runs (ConvAlgorithms), set by _build

    def _window(self, input_shape):
        """The Window of inputs of ``input_shape`` (a ValueError if they are too small)."""
        raise NotImplementedError

    def _describe(self) -> str:
        """The layer's name and window, for notes: ``conv2d_1 (14x14->7x7 k5x5 s2x2 pad 1,2,1,2)``."""
        return f"{self.name} ({self.window})"

    def _build(self, input_shape):
        self.window = self._window(input_shape)
        self.algorithms = ConvAlgorithms(self._describe())
        super()._build(input_shape)

    def get_config(self):
        return {
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "padding": self.padding,
            "activation": self.activation,
            "use_bias": self.use_bias,
        }


class Conv2D(_Conv):
    """2-D convolution (cross-correlation, as in every DL library)."""

    def _kernel_shape(self, input_shape):
        return (*self.kernel_size, input_shape[-1], self.filters)

    def _window(self, input_shape):
        return window(input_shape[1:3], self.kernel_size, self.strides, self.padding)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.window.ho, self.window.wo, self.filters)

    # Each pass asks self.algorithms which algorithm runs it (a Winograd Tile, or None: im2col).
    def _linear_forward(self, x):
        k, b, g = self.params["kernel"], self.params.get("bias"), self.window
        tile = self.algorithms.tile("forward", g, x, k)
        return winograd_op("forward", g)(x, k, b, g, tile) if tile else ops.conv2d_forward(x, k, b, g)

    def _linear_backward_weights(self, dz, x):
        tile = self.algorithms.tile("backward_weights", self.window, dz, x)
        if tile:
            return winograd_op("backward_weights", self.window)(dz, x, self.window, tile)
        return ops.conv2d_backward_weights(dz, x, self.window)

    def _linear_backward_data(self, dz):
        k, g = self.params["kernel"], self.window
        tile = self.algorithms.tile("backward_data", g, dz, k)
        return winograd_op("backward_data", g)(dz, k, g, tile) if tile else ops.conv2d_backward_data(dz, k, g)


class Conv2DTranspose(_Conv):
    """Transposed 2-D convolution ("deconvolution"): Conv2D's adjoint."""

    _bias_axis = -2  # the kernel is (kh, kw, filters, C_in)

    def _kernel_shape(self, input_shape):
        return (*self.kernel_size, self.filters, input_shape[-1])

    def _window(self, input_shape):
        """The Window of the Conv2D this layer is the adjoint of: from our output back to our input."""
        return transpose_window(input_shape[1:3], self.kernel_size, self.strides, self.padding)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.window.h, self.window.w, self.filters)

    def _describe(self) -> str:
        return f"{self.name} (the adjoint of the convolution {self.window})"

    # The three passes are those of the Conv2D A that maps our output back to our input
    # (self.window is A's): y = A^T x is A's backward-data pass, so our backward-data pass
    # is A's forward, and our kernel gradient is A's with the roles of x and dy swapped.
    def _linear_forward(self, x):
        k, b, g = self.params["kernel"], self.params.get("bias"), self.window
        tile = self.algorithms.tile("backward_data", g, x, k)
        if tile:
            return winograd_op("backward_data", g)(x, k, g, tile, bias=b)
        return ops.conv2d_backward_data(x, k, g, bias=b)

    def _linear_backward_weights(self, dz, x):
        tile = self.algorithms.tile("backward_weights", self.window, x, dz)
        if tile:
            return winograd_op("backward_weights", self.window)(x, dz, self.window, tile)
        return ops.conv2d_backward_weights(x, dz, self.window)

    def _linear_backward_data(self, dz):
        k, g = self.params["kernel"], self.window
        tile = self.algorithms.tile("forward", g, dz, k)
        return winograd_op("forward", g)(dz, k, None, g, tile) if tile else ops.conv2d_forward(dz, k, None, g)
