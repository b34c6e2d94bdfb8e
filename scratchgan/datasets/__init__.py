"""Data sets: MNIST (embedded, full download, or IDX files), Fashion-MNIST, CIFAR-10,
and any folder of pictures; ``load_dataset`` picks one from a ``--data`` string."""
from .catalog import DataError, Dataset, load_dataset
from .cifar10 import CIFARFormatError, load_cifar10
from .download import DownloadError, cache_dir, fetch
from .fashion_mnist import load_fashion_mnist
from .idx import IDXFormatError, read_idx, write_idx
from .image_folder import ImageFolderError, load_image_folder
from .mnist import load_mnist

__all__ = ["CIFARFormatError", "DataError", "Dataset", "DownloadError", "IDXFormatError", "ImageFolderError",
           "cache_dir", "fetch", "load_cifar10", "load_dataset", "load_fashion_mnist", "load_image_folder",
           "load_mnist", "read_idx", "write_idx"]
