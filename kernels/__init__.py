"""Kernel sources of the fast backends (installed as ``scratchgan.kernels``).

numba/   CPU kernels, ``@njit(cache=True)``; ``KERNELS`` maps op names to them
cuda/    CUDA C sources for the CuPy backend, and launch.py, which runs them through CuPy
"""
