"""Data sets: MNIST (embedded test set, full download, or your IDX files)."""
from .download import DownloadError, cache_dir, fetch
from .idx import IDXFormatError, read_idx, write_idx
from .mnist import load_mnist

__all__ = ["DownloadError", "IDXFormatError", "cache_dir", "fetch", "load_mnist", "read_idx", "write_idx"]
