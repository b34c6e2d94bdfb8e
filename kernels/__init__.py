"""Kernel sources of the fast backends (installed as ``scratchgan.kernels``).

numba/   CPU kernels, ``@njit(cache=True)``, registered by ``scratchgan.kernels.numba.register()``
cuda/    CUDA C sources for the CuPy backend (issue 5)
"""
