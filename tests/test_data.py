"""IDX files, the embedded MNIST, and the checksummed download against a local HTTP server."""
import gzip
import hashlib

import numpy as np
import pytest

from scratchgan.datasets import DownloadError, IDXFormatError, load_mnist, read_idx, write_idx
from scratchgan.datasets import mnist as mnist_module
from scratchgan.datasets.download import fetch, md5sum


@pytest.mark.parametrize("name", ["imgs-idx3-ubyte", "imgs-idx3-ubyte.gz"])
def test_idx_round_trip(tmp_path, rng, name):
    images = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    write_idx(tmp_path / name, images)
    np.testing.assert_array_equal(read_idx(tmp_path / name, expect_ndim=3), images)
    assert (tmp_path / name).read_bytes()[:2] == (b"\x1f\x8b" if name.endswith(".gz") else b"\x00\x00")


def test_embedded_mnist_is_the_real_test_set():
    images, labels = load_mnist()
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert labels[:8].tolist() == [7, 2, 1, 0, 4, 1, 4, 9]
    assert np.bincount(labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        assert md5sum(mnist_module.EMBEDDED_DIR / name) == mnist_module.FILES[name]


def _header(ndim, dims, code=0x08):
    return bytes([0, 0, code, ndim]) + b"".join(int(d).to_bytes(4, "big") for d in dims)


@pytest.mark.parametrize(
    "raw,message",
    [
        (b"\x00\x00", "too short for an IDX header"),
        (b"PK\x03\x04" + bytes(20), "magic number must start with two zero bytes"),
        (_header(3, (2, 2, 2), code=0x07) + bytes(8), "unknown IDX data type 0x07"),
        (_header(1, (4,)) + bytes(4), "IDX file has 1 dimensions, expected 3"),
        (_header(3, (2, 28, 28)) + bytes(100), r"header says shape \(2, 28, 28\) \(1568 bytes of data\)"),
        (_header(3, (2, 28)), "header announces 3 dimensions but the file ends"),
    ],
)
def test_bad_idx_files_are_named_and_explained(tmp_path, raw, message):
    path = tmp_path / "bad-idx"
    path.write_bytes(raw)
    with pytest.raises(IDXFormatError, match=message):
        read_idx(path, expect_ndim=3)


def test_broken_gzip(tmp_path):
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(_header(1, (4,)) + bytes(4))[:15])
    with pytest.raises(IDXFormatError, match="cannot be read as gzip"):
        read_idx(path)


def test_folder_of_idx_files(tmp_path, rng):
    write_idx(tmp_path / "train-images-idx3-ubyte", rng.integers(0, 256, (6, 28, 28), dtype=np.uint8))
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", rng.integers(0, 10, 6, dtype=np.uint8))
    images, labels = load_mnist(str(tmp_path))
    assert images.shape == (6, 28, 28) and labels.shape == (6,)


def test_folder_with_mismatched_counts(tmp_path, rng):
    write_idx(tmp_path / "train-images-idx3-ubyte", rng.integers(0, 256, (6, 28, 28), dtype=np.uint8))
    write_idx(tmp_path / "train-labels-idx1-ubyte", rng.integers(0, 10, 5, dtype=np.uint8))
    with pytest.raises(IDXFormatError, match="has 6 images but .* has 5 labels"):
        load_mnist(str(tmp_path))


def test_folder_without_the_files(tmp_path):
    (tmp_path / "readme.txt").write_text("hi")
    with pytest.raises(FileNotFoundError, match=r"expected train-images-idx3-ubyte .* found \['readme.txt'\]"):
        load_mnist(str(tmp_path))


def test_download_verifies_and_caches(http_server, tmp_path):
    url, www = http_server
    payload = b"some data" * 1000
    (www / "file.bin").write_bytes(payload)
    md5 = hashlib.md5(payload).hexdigest()
    cache = tmp_path / "cache"
    path = fetch("file.bin", md5, [url + "/missing-mirror", url], cache, timeout=5)
    assert path.read_bytes() == payload
    (www / "file.bin").unlink()  # a second call is served from the cache
    assert fetch("file.bin", md5, [url], cache, timeout=5) == path


def test_download_with_wrong_checksum_keeps_nothing(http_server, tmp_path):
    url, www = http_server
    (www / "file.bin").write_bytes(b"tampered")
    cache = tmp_path / "cache"
    with pytest.raises(DownloadError, match="checksum mismatch"):
        fetch("file.bin", "0" * 32, [url], cache, timeout=5)
    assert list(cache.iterdir()) == []


def test_download_without_network_says_so(tmp_path):
    with pytest.raises(DownloadError, match="no network, or no mirror had a good copy"):
        fetch("file.bin", "0" * 32, ["http://127.0.0.1:9"], tmp_path, timeout=2)


def test_full_mnist_download_through_a_mirror(http_server, tmp_path, monkeypatch, rng):
    """load_mnist('full') fetches the four-file layout from the mirrors, checksummed."""
    url, www = http_server
    write_idx(www / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (4, 28, 28), dtype=np.uint8))
    write_idx(www / "train-labels-idx1-ubyte.gz", rng.integers(0, 10, 4, dtype=np.uint8))
    files = {n: md5sum(www / n) for n in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz")}
    monkeypatch.setattr(mnist_module, "FILES", {**mnist_module.FILES, **files})
    monkeypatch.setattr(mnist_module, "MIRRORS", [])
    monkeypatch.setenv("SCRATCHGAN_MNIST_MIRROR", url)
    monkeypatch.setenv("SCRATCHGAN_CACHE", str(tmp_path / "cache"))
    images, labels = load_mnist("full")
    assert images.shape == (4, 28, 28) and (tmp_path / "cache" / "mnist" / "train-images-idx3-ubyte.gz").exists()
    # a mirror that serves more than the published size is cut off, and nothing is kept
    monkeypatch.setattr(mnist_module, "SIZES", {**mnist_module.SIZES, "train-images-idx3-ubyte.gz": 100})
    monkeypatch.setenv("SCRATCHGAN_CACHE", str(tmp_path / "cache2"))
    with pytest.raises(DownloadError, match="more than the expected 100"):
        load_mnist("full")
    assert not (tmp_path / "cache2" / "mnist" / "train-images-idx3-ubyte.gz").exists()


def test_a_gzip_bomb_is_refused_from_its_header(tmp_path):
    # 2 GB of zeros declared, about 2 MB on disk: refused before any of it is inflated
    path = tmp_path / "bomb-idx3-ubyte.gz"
    with gzip.open(path, "wb", compresslevel=9) as f:
        f.write(_header(3, (2_600_000, 28, 28)))
        zeros = bytes(1 << 20)
        for _ in range(64):
            f.write(zeros)
    assert path.stat().st_size < 1 << 20
    with pytest.raises(IDXFormatError, match=r"2,038,400,000 bytes of data, more than the 1,073,741,824"):
        read_idx(path, expect_ndim=3)
    small = tmp_path / "long-idx1-ubyte"
    small.write_bytes(_header(1, (4,)) + bytes(10))
    with pytest.raises(IDXFormatError, match=r"more than 4 bytes after the header"):
        read_idx(small)
    with pytest.raises(IDXFormatError, match="declares shape \\(4,\\): 4 bytes of data, more than the 3"):
        read_idx(small, max_bytes=3)


def test_only_regular_files_are_read(tmp_path):
    import os

    fifo = tmp_path / "fifo-idx3-ubyte"
    os.mkfifo(fifo)
    from scratchgan.errors import FileRefused

    with pytest.raises(FileRefused, match="is a FIFO, not a regular file"):
        read_idx(fifo)  # opening it would block forever
    with pytest.raises(FileRefused, match="is a directory, not a regular file"):
        read_idx(tmp_path)


def test_the_bomb_is_refused_under_a_memory_cap(tmp_path):
    """The same refusal in a process that cannot have more than 1.5 GB of address space,
    so that a regression fails with MemoryError instead of swapping the machine."""
    import subprocess
    import sys

    path = tmp_path / "bomb-idx3-ubyte.gz"
    with gzip.open(path, "wb") as f:
        f.write(_header(3, (1_500_000, 28, 28)))  # 1.2 GB declared: under the default ceiling
        f.write(bytes(1 << 20))
    code = ("import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (3 << 29, 3 << 29)); "
            "from scratchgan.datasets import read_idx, IDXFormatError\n"
            "try:\n    read_idx(sys.argv[1], max_bytes=1 << 28)\nexcept IDXFormatError as err:\n    print(err)")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "1,176,000,000 bytes of data, more than the 268,435,456" in out.stdout


def test_a_download_stops_at_its_size_and_its_time_limit_and_leaves_nothing(http_server, tmp_path, monkeypatch):
    from scratchgan.datasets import download

    url, www = http_server
    payload = bytes(3 << 20)  # 3 MB: three reads of the copy loop
    (www / "file.bin").write_bytes(payload)
    md5 = hashlib.md5(payload).hexdigest()
    cache = tmp_path / "cache"
    with pytest.raises(DownloadError, match="announces 3,145,728 bytes, more than the expected 1,000"):
        fetch("file.bin", md5, [url], cache, timeout=5, size=1000)
    with pytest.raises(DownloadError, match="gave up after 0 s in all"):
        fetch("file.bin", md5, [url], cache, timeout=5, max_seconds=0)
    monkeypatch.setattr(download, "MAX_BYTES", 1 << 20)
    with pytest.raises(DownloadError, match="announces .* more than the expected 1,048,576"):
        fetch("file.bin", md5, [url], cache, timeout=5)
    assert list(cache.iterdir()) == []  # no temporary file left behind

    class Flood:  # a server that announces nothing and never stops
        headers = {}

        def read(self, n):
            return bytes(n)

    with pytest.raises(download._MirrorRefused, match="sent more than the expected 2,097,152 bytes"):
        download._copy_bounded(Flood(), open(tmp_path / "sink", "wb"), 2 << 20, 60)
    assert fetch("file.bin", md5, [url], cache, timeout=5, size=len(payload)).read_bytes() == payload


def test_the_crafted_file_tests_pass_under_a_memory_cap():
    """Every crafted-file test again, in a process limited to 3 GiB of address space: a reader
    that regressed to trusting a declared size fails with MemoryError instead of swapping."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    tests = Path(__file__).parent
    selection = ("bomb or never_hands_out or only_png or larger_than or declaring_huge or stops_at_its_size "
                 "or only_regular or sixteen or large_jpeg")
    code = ("import resource, sys, pytest; resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30)); "
            "sys.exit(pytest.main(sys.argv[1:]))")
    out = subprocess.run([sys.executable, "-c", code, "-q", "-p", "no:cacheprovider", "-k", selection,
                          str(tests / "test_data.py"), str(tests / "test_datasets.py")],
                         capture_output=True, text=True, timeout=600, cwd=tests.parent,
                         env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert " passed" in out.stdout and "deselected" in out.stdout
