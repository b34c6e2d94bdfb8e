"""The CuPy backend: the CUDA kernels of this folder, launched on CuPy arrays.

``KERNELS`` maps op names (those of scratchgan/ops) to launchers, which
``set_backend("cupy")`` registers under the backend name "cupy"; each has the NumPy
reference's signature and returns CuPy arrays. Ops not listed here run their reference
on CuPy arrays, which CuPy executes on the GPU: the GEMMs of dense layers and
convolutions (cuBLAS), the bias gradient's column sum, and batch norm in inference mode.

Each ``.cu`` file is compiled once per process by ``cupy.RawModule`` (NVRTC), for float
and double, and CuPy caches the binary on disk. Launches use a grid-stride loop: blocks of
THREADS threads, at most MAX_BLOCKS blocks, so one launch covers any size.

Convolutions run im2col -> cuBLAS GEMM -> col2im in batch chunks whose ``cols`` matrix
stays under CHUNK_BYTES: dcgan's last layer (a 7x7 conv over 28x28x128) would otherwise
need 20 GB of ``cols`` at batch 1024.

Dropout draws its uniforms on the GPU from a counter-based hash (splitmix64 of
seed + index), with the seed drawn from the layer's NumPy generator each call: nothing
crosses from the host but one integer, and a resumed run draws the same masks.

Scalars that change every step (Adam's step size, RMSprop's decayed learning rate,
dropout's seed) reach the kernels through one-element device buffers (step_scalar), not
as launch arguments, which a captured CUDA graph would freeze.
"""
from __future__ import annotations

import math

import cupy as cp
import numpy as np

from . import NVRTC_OPTIONS, define_value, name_expressions, source_path, struct_dtype

THREADS = 256
MAX_BLOCKS = 4096
REDUCE_THREADS = define_value("batchnorm", "REDUCE_THREADS")  # its per-channel reductions' block size
CHUNK_BYTES = 512 << 20

_TYPE_NAMES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}
_modules: dict[str, cp.RawModule] = {}
_functions: dict[tuple, object] = {}


def kernel(family: str, name: str, dtype):
    """The compiled kernel ``name<float>`` or ``name<double>`` of ``family``.cu (looked up once)."""
    dtype = np.dtype(dtype)
    fn = _functions.get((family, name, dtype))
    if fn is not None:
        return fn
    if dtype not in _TYPE_NAMES:
        raise TypeError(f"the CUDA kernels take float32 or float64 arrays, got {dtype}")
    module = _modules.get(family)
    if module is None:
        module = _modules[family] = cp.RawModule(
            code=source_path(family).read_text(), options=NVRTC_OPTIONS,
            name_expressions=name_expressions(family),
        )
    fn = _functions[(family, name, dtype)] = module.get_function(f"{name}<{_TYPE_NAMES[dtype]}>")
    return fn


def launch(fn, n: int, args) -> None:
    """Run a grid-stride kernel over n elements (nothing to do for n = 0)."""
    if n > 0:
        blocks = min(math.ceil(n / THREADS), MAX_BLOCKS)
        fn((blocks,), (THREADS,), args)


def _c(a):
    """The main input of a kernel, contiguous; its dtype picks the kernel (float or double)."""
    return cp.ascontiguousarray(a)


def _as(a, like):
    """A read-only input as a contiguous array of the kernel's dtype (``like``'s). CuPy passes raw
    pointers: a float64 array handed to the float kernel would be read as garbage floats, a
    float32 one to the double kernel read past its end."""
    return cp.ascontiguousarray(a, dtype=like.dtype)


def _in_place(a, like, what):
    """An array a kernel updates in place (a parameter, its optimizer state): it must already be
    contiguous and of the parameter's dtype and shape, since a cast copy would be updated instead."""
    if a.dtype != like.dtype or a.shape != like.shape or not a.flags.c_contiguous:
        raise TypeError(f"{what} is updated in place by the CUDA kernel, so it must be a contiguous "
                        f"{like.dtype} array of shape {like.shape}; got {'a non-contiguous ' if not a.flags.c_contiguous else ''}"
                        f"{a.dtype} array of shape {a.shape}")
    return a


def _require_statistics(x):
    """Batch statistics need at least one value in at least one channel."""
    if x.size == 0:
        raise ValueError(f"batch normalisation in training mode needs at least one value per channel, "
                         f"got an input of shape {tuple(x.shape)}")


def _i64(v):
    return np.int64(v)


def _i32(v):
    return np.int32(v)


def _struct(family, name, **fields):
    s = np.zeros(1, dtype=struct_dtype(family, name))
    for key, value in fields.items():
        s[key] = value
    return s


# --- activations --------------------------------------------------------------------
def leaky_relu_forward(x, slope):
    x = _c(x)
    y, mask = cp.empty_like(x), cp.empty(x.shape, dtype=cp.uint8)
    launch(kernel("activations", "leaky_relu_forward", x.dtype), x.size,
           (x, x.dtype.type(slope), _i64(x.size), y, mask))
    return y, mask.view(cp.bool_)


def leaky_relu_backward(dy, mask, slope):
    dy = _c(dy)
    mask = cp.ascontiguousarray(mask, dtype=cp.bool_).view(cp.uint8)
    dx = cp.empty_like(dy)
    launch(kernel("activations", "leaky_relu_backward", dy.dtype), dy.size,
           (dy, mask, dy.dtype.type(slope), _i64(dy.size), dx))
    return dx


def _elementwise_backward(name):
    def run(dy, y):
        dy = _c(dy)
        y = _as(y, dy)
        dx = cp.empty_like(dy)
        launch(kernel("activations", name, dy.dtype), dy.size, (dy, y, _i64(dy.size), dx))
        return dx

    run.__name__ = name
    return run


def _elementwise_forward(name):
    def run(x):
        x = _c(x)
        y = cp.empty_like(x)
        launch(kernel("activations", name, x.dtype), x.size, (x, _i64(x.size), y))
        return y

    run.__name__ = name
    return run


# --- batch normalisation ------------------------------------------------------------
def batchnorm_forward_train(x, gamma, beta, eps):
    x = _c(x)
    _require_statistics(x)
    c = x.shape[-1]
    m = x.size // c
    mean, var = cp.empty(c, x.dtype), cp.empty(c, x.dtype)
    kernel("batchnorm", "channel_moments", x.dtype)((c,), (REDUCE_THREADS,), (x, _i64(m), _i32(c), mean, var))
    inv_std = 1 / cp.sqrt(var + x.dtype.type(eps))
    y, xhat = cp.empty_like(x), cp.empty_like(x)
    launch(kernel("batchnorm", "batchnorm_apply", x.dtype), x.size,
           (x, _as(gamma, x), _as(beta, x), mean, inv_std, _i64(x.size), _i32(c), y, xhat))
    return y, xhat, inv_std, mean, var


def batchnorm_backward_train(dy, xhat, inv_std, gamma):
    dy = _c(dy)
    _require_statistics(dy)
    xhat = _as(xhat, dy)
    c = dy.shape[-1]
    m = dy.size // c
    dbeta, dgamma = cp.zeros(c, dy.dtype), cp.zeros(c, dy.dtype)
    kernel("batchnorm", "channel_grad_sums", dy.dtype)((c,), (REDUCE_THREADS,), (dy, xhat, _i64(m), _i32(c), dbeta, dgamma))
    dx = cp.empty_like(dy)
    launch(kernel("batchnorm", "batchnorm_backward_apply", dy.dtype), dy.size,
           (dy, xhat, _as(gamma, dy), _as(inv_std, dy), dbeta, dgamma, _i64(m), _i64(dy.size), _i32(c), dx))
    return dx, dgamma, dbeta


# --- convolution ---------------------------------------------------------------------
# ``g`` is the layer's Window record (scratchgan/ops/geometry.py): sizes, strides and
# paddings, computed once when the layer was built. conv.cu's Geometry and pooling.cu's
# Window structs carry the same numbers plus the batch and channel counts.
def _conv_struct(g, n, c):
    return _struct("conv", "Geometry", N=n, H=g.h, W=g.w, C=c, kh=g.kh, kw=g.kw, sh=g.sh, sw=g.sw,
                   top=g.top, left=g.left, Ho=g.ho, Wo=g.wo)


def _chunks(g, n, c, itemsize):
    """Batch ranges whose cols matrix (rows Ho*Wo per image, kh*kw*C columns) fits CHUNK_BYTES."""
    per_image = g.ho * g.wo * g.kh * g.kw * c * itemsize
    step = max(1, CHUNK_BYTES // max(per_image, 1))
    return [(n0, min(n0 + step, n)) for n0 in range(0, n, step)]


def _cols_buffer(g, chunks, c, dtype):
    """One (rows, kh*kw*C) workspace for the largest chunk, reused by every chunk of a call
    (one allocation per call, and never two chunks' workspaces alive at once)."""
    most = max(n1 - n0 for n0, n1 in chunks)
    return cp.empty((most * g.ho * g.wo, g.kh * g.kw * c), dtype=dtype)


def _im2col(x, g, n0, n1, cols):
    """The patches of images n0..n1 as rows of the first rows of ``cols``; returns that view."""
    c = x.shape[3]
    rows, width = (n1 - n0) * g.ho * g.wo, g.kh * g.kw * c
    part = cols[:rows]
    launch(kernel("conv", "im2col", x.dtype), rows * width, (x[n0:n1], _conv_struct(g, n1 - n0, c), part))
    return part


def conv2d_forward(x, kern, bias, g):
    x = _c(x)
    n, f = x.shape[0], kern.shape[3]
    k2 = _as(kern, x).reshape(-1, f)
    y = cp.empty((n, g.ho, g.wo, f), dtype=x.dtype)
    chunks = _chunks(g, n, x.shape[3], x.dtype.itemsize)
    cols = _cols_buffer(g, chunks, x.shape[3], x.dtype)
    for n0, n1 in chunks:
        cp.matmul(_im2col(x, g, n0, n1, cols), k2, out=y[n0:n1].reshape(-1, f))
    if bias is not None:
        y += _as(bias, y)
    return y


def conv2d_backward_data(dy, kern, g, *, bias=None):
    dy = _c(dy)
    n, c, f = dy.shape[0], kern.shape[2], kern.shape[3]
    k2t = _as(kern, dy).reshape(-1, f).T
    dx = cp.empty((n, g.h, g.w, c), dtype=dy.dtype)
    fold = kernel("conv", "col2im", dy.dtype)
    chunks = _chunks(g, n, c, dy.dtype.itemsize)
    dcols = _cols_buffer(g, chunks, c, dy.dtype)
    for n0, n1 in chunks:
        part = dcols[:(n1 - n0) * g.ho * g.wo]
        cp.matmul(dy[n0:n1].reshape(-1, f), k2t, out=part)
        launch(fold, (n1 - n0) * g.h * g.w * c, (part, _conv_struct(g, n1 - n0, c), dx[n0:n1]))
    if bias is not None:  # a transposed convolution's bias (not folded into col2im on the GPU)
        dx += _as(bias, dx)
    return dx


def conv2d_backward_weights(dy, x, g):
    x = _c(x)
    dy = _as(dy, x)
    n, c, f = x.shape[0], x.shape[3], dy.shape[3]
    dk = cp.zeros((g.kh * g.kw * c, f), dtype=x.dtype)
    chunks = _chunks(g, n, c, x.dtype.itemsize)
    cols = _cols_buffer(g, chunks, c, x.dtype)
    for n0, n1 in chunks:
        dk += _im2col(x, g, n0, n1, cols).T @ dy[n0:n1].reshape(-1, f)
    return dk.reshape(g.kh, g.kw, c, f)


# --- pooling and upsampling -----------------------------------------------------------
def _pool_struct(g, n, c):
    return _struct("pooling", "Window", N=n, H=g.h, W=g.w, C=c, ph=g.kh, pw=g.kw, sh=g.sh, sw=g.sw,
                   top=g.top, left=g.left, Ho=g.ho, Wo=g.wo)


def maxpool_forward(x, g):
    x = _c(x)
    n, c = x.shape[0], x.shape[3]
    y = cp.empty((n, g.ho, g.wo, c), dtype=x.dtype)
    argmax = cp.empty(y.shape, dtype=cp.int8)
    launch(kernel("pooling", "maxpool_forward", x.dtype), y.size, (x, _pool_struct(g, n, c), y, argmax))
    return y, argmax


def maxpool_backward(dy, argmax, g):
    dy = _c(dy)
    argmax = cp.ascontiguousarray(argmax, dtype=cp.int8)
    n, c = dy.shape[0], dy.shape[3]
    dx = cp.empty((n, g.h, g.w, c), dtype=dy.dtype)
    launch(kernel("pooling", "maxpool_backward", dy.dtype), dx.size, (dy, argmax, _pool_struct(g, n, c), dx))
    return dx


def upsample_nearest_forward(x, size):
    x = _c(x)
    n, h, w, c = x.shape
    y = cp.empty((n, h * size[0], w * size[1], c), dtype=x.dtype)
    launch(kernel("pooling", "upsample_nearest_forward", x.dtype), y.size,
           (x, *map(_i32, (n, h, w, c, *size)), y))
    return y


def upsample_nearest_backward(dy, size):
    dy = _c(dy)
    n, hs, ws, c = dy.shape
    h, w = hs // size[0], ws // size[1]
    dx = cp.empty((n, h, w, c), dtype=dy.dtype)
    launch(kernel("pooling", "upsample_nearest_backward", dy.dtype), dx.size,
           (dy, *map(_i32, (n, h, w, c, *size)), dx))
    return dx


# --- per-step scalars ------------------------------------------------------------------
#: one-element device buffers for the scalars that change every step, keyed by what they belong
#: to: Adam's step size and RMSprop's decayed rate by the optimizer state array they update;
#: dropout's seed by the input shape, like its draws buffer (_UNIFORMS), so two dropout layers
#: of one shape share it, which a captured graph would have to split
_SCALARS: dict = {}


def step_scalar(key, value, dtype):
    """A device buffer holding ``value`` for the kernel that reads it as ``scalar[0]``.

    The value is written by a fill queued on the stream (no host synchronisation), into a
    buffer that stays the same for ``key`` from step to step. A kernel launch's own scalar
    arguments would be frozen into a captured CUDA graph; a buffer's address is what a graph
    keeps, so the next step's values can be written into it before each replay."""
    buffer = _SCALARS.get(key)
    if buffer is None or buffer.dtype != np.dtype(dtype):
        if len(_SCALARS) >= 4096:  # keys of arrays long gone
            _SCALARS.clear()
        buffer = _SCALARS[key] = cp.empty(1, dtype=dtype)
    buffer.fill(value)
    return buffer


# --- dropout --------------------------------------------------------------------------
_uniform = cp.ElementwiseKernel(
    "raw uint64 seed", "float32 u",
    """
    unsigned long long z = seed[0] + (unsigned long long)i * 0x9E3779B97F4A7C15ULL;  // splitmix64
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    u = (float)(z >> 40) * (1.0f / 16777216.0f);                                    // 24 bits: [0, 1)
    """,
    "scratchgan_uniform",
)


def device_uniform(seed: int, shape, out=None):
    """U[0, 1) float32 of ``shape``, a pure function of (seed, index); into ``out`` if given.
    The seed reaches the kernel through a device buffer (step_scalar), one per shape."""
    u = cp.empty(shape, dtype=cp.float32) if out is None else out
    _uniform(step_scalar(("dropout seed", tuple(u.shape)), np.uint64(seed), np.uint64), u)
    return u


#: dropout's U[0, 1) draws, one buffer per shape, reused every step (the draws are dead
#: once the kernel has made the mask); at most a few shapes are kept
_UNIFORMS: dict = {}


def dropout_forward(x, rate, rng):
    x = _c(x)
    u = _UNIFORMS.get(x.shape)
    if u is None:
        if len(_UNIFORMS) >= 8:
            _UNIFORMS.clear()
        u = _UNIFORMS[x.shape] = cp.empty(x.shape, dtype=cp.float32)
    return dropout_with_uniforms(x, rate, device_uniform(int(rng.integers(0, 2**63)), x.shape, out=u))


def dropout_with_uniforms(x, rate, u):
    """The dropout kernel on given U[0, 1) draws ``u`` (float32, x's shape): keep where u >= rate."""
    x, u = _c(x), _c(u).astype(cp.float32, copy=False)
    scale = x.dtype.type(1.0 / (1.0 - rate))
    y, keep = cp.empty_like(x), cp.empty(x.shape, dtype=cp.uint8)
    launch(kernel("dropout", "dropout_forward", x.dtype), x.size, (x, u, np.float32(rate), scale, _i64(x.size), y, keep))
    return y, keep, scale


def dropout_backward(dy, keep, scale):
    dy = _c(dy)
    keep = cp.ascontiguousarray(keep, dtype=cp.uint8)
    dx = cp.empty_like(dy)
    launch(kernel("dropout", "dropout_backward", dy.dtype), dy.size, (dy, keep, dy.dtype.type(scale), _i64(dy.size), dx))
    return dx


# --- binary cross-entropy -------------------------------------------------------------
def bce_forward(p, t, eps=1e-7):
    p = _c(p)
    t = _as(t, p)
    term, pc = cp.empty_like(p), cp.empty_like(p)
    launch(kernel("losses", "bce_forward_terms", p.dtype), p.size, (p, t, p.dtype.type(eps), _i64(p.size), term, pc))
    return term.mean(), pc  # the loss stays on the GPU until someone reads it


def bce_backward(p, pc, t, eps=1e-7):
    p = _c(p)
    pc, t = _as(pc, p), _as(t, p)
    dp = cp.empty_like(p)
    launch(kernel("losses", "bce_backward", p.dtype), p.size, (p, pc, t, p.dtype.type(eps), _i64(p.size), dp))
    return dp


def bce_logits_forward(z, t):
    z = _c(z)
    t = _as(t, z)
    term, sig = cp.empty_like(z), cp.empty_like(z)
    launch(kernel("losses", "bce_logits_forward_terms", z.dtype), z.size, (z, t, _i64(z.size), term, sig))
    return term.mean(), sig


def bce_logits_backward(sig, t):
    sig = _c(sig)
    t = _as(t, sig)
    dz = cp.empty_like(sig)
    launch(kernel("losses", "bce_logits_backward", sig.dtype), sig.size, (sig, t, _i64(sig.size), dz))
    return dz


# --- optimizers (in place; parameters and their state are contiguous) ---------------------
def adam_update(param, grad, m, v, lr, beta1, beta2, eps, t):
    T = param.dtype.type
    _in_place(param, param, "the parameter")
    m, v = _in_place(m, param, "Adam's m"), _in_place(v, param, "Adam's v")
    alpha = lr * math.sqrt(1 - beta2**t) / (1 - beta1**t)  # changes every step: through a buffer
    launch(kernel("optim", "adam_update", param.dtype), param.size,
           (param, _as(grad, param), m, v, step_scalar(("adam step size", id(m)), alpha, param.dtype),
            T(beta1), T(beta2), T(eps), _i64(param.size)))


def sgd_update(param, grad, velocity, lr, momentum, nesterov):
    T = param.dtype.type
    _in_place(param, param, "the parameter")
    grad = _as(grad, param)
    if velocity is None:
        launch(kernel("optim", "sgd_update", param.dtype), param.size, (param, grad, T(lr), _i64(param.size)))
        return
    launch(kernel("optim", "sgd_momentum_update", param.dtype), param.size,
           (param, grad, _in_place(velocity, param, "SGD's velocity"), T(lr), T(momentum), _i32(bool(nesterov)), _i64(param.size)))


def rmsprop_update(param, grad, v, lr, rho, eps):
    T = param.dtype.type
    _in_place(param, param, "the parameter")
    v = _in_place(v, param, "RMSprop's v")
    launch(kernel("optim", "rmsprop_update", param.dtype), param.size,  # lr decays every step: a buffer
           (param, _as(grad, param), v, step_scalar(("rmsprop rate", id(v)), lr, param.dtype), T(rho), T(eps),
            _i64(param.size)))


KERNELS = {
    "leaky_relu_forward": leaky_relu_forward,
    "leaky_relu_backward": leaky_relu_backward,
    "tanh_forward": _elementwise_forward("tanh_forward"),
    "tanh_backward": _elementwise_backward("tanh_backward"),
    "sigmoid_forward": _elementwise_forward("sigmoid_forward"),
    "sigmoid_backward": _elementwise_backward("sigmoid_backward"),
    "batchnorm_forward_train": batchnorm_forward_train,
    "batchnorm_backward_train": batchnorm_backward_train,
    "conv2d_forward": conv2d_forward,
    "conv2d_backward_data": conv2d_backward_data,
    "conv2d_backward_weights": conv2d_backward_weights,
    "maxpool_forward": maxpool_forward,
    "maxpool_backward": maxpool_backward,
    "upsample_nearest_forward": upsample_nearest_forward,
    "upsample_nearest_backward": upsample_nearest_backward,
    "dropout_forward": dropout_forward,
    "dropout_backward": dropout_backward,
    "bce_forward": bce_forward,
    "bce_backward": bce_backward,
    "bce_logits_forward": bce_logits_forward,
    "bce_logits_backward": bce_logits_backward,
    "adam_update": adam_update,
    "sgd_update": sgd_update,
    "rmsprop_update": rmsprop_update,
}

#: ops whose NumPy reference runs on CuPy arrays instead, because CuPy already does it in
#: one library call: GEMMs (cuBLAS), the bias gradient's column sum (one reduction), and
#: batch norm's inference mode (a few element-wise kernels); and the Winograd passes, which
#: scratchgan.set_conv_algo never chooses on this backend (its layers run im2col here), so
#: they run only when called by hand, as array-module-generic NumPy/CuPy code
REFERENCE_ON_GPU = ("dense_forward", "dense_backward_data", "dense_backward_weights",
                    "bias_backward", "batchnorm_forward_infer", "batchnorm_backward_infer",
                    "winograd_conv2d_forward", "winograd_conv2d_backward_data", "winograd_conv2d_backward_weights")
