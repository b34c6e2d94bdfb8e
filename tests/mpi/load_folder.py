"""Run by tests/test_distributed.py under mpiexec: load a folder of pictures with each rank
decoding its share, and (rank 0) save the gathered images, what was skipped, and how many
files each rank opened."""
import sys

import numpy as np

from scratchgan.datasets import image_folder
from scratchgan.distributed import world

folder, out = sys.argv[1], sys.argv[2]
opened = []
real_open = image_folder.open_bounded


def counting_open(path, height, width):
    opened.append(str(path))
    return real_open(path, height, width)


image_folder.open_bounded = counting_open
images, skipped = image_folder.load_image_folder(folder, (8, 8, 3), world().spread)
counts = world().allgather(len(opened))
if world().is_root:
    np.savez(out, images=images, skipped=np.array([str(p) for p, _ in skipped]), opened=np.array(counts))
