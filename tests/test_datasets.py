"""Fashion-MNIST, CIFAR-10 (both distributions, archive and folder, the restricted
unpickler), folders of pictures, and the --data catalog: built here in the real formats."""
import io
import os
import pickle
import tarfile

import numpy as np
import pytest
from PIL import Image

from scratchgan.datasets import (CIFARFormatError, DataError, DownloadError, ImageFolderError, load_cifar10,
                                 load_dataset, load_fashion_mnist, load_image_folder, write_idx)
from scratchgan.datasets import cifar10 as cifar_module
from scratchgan.datasets.download import md5sum
from scratchgan.datasets.safe_pickle import restricted_loads


# --- CIFAR-10 ------------------------------------------------------------------------
def cifar_batch(rng, n):
    """n random images (N, 32, 32, 3) uint8 and labels, as CIFAR-10 holds them."""
    return rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n).astype(np.uint8)


def binary_bytes(images, labels):
    planes = images.transpose(0, 3, 1, 2).reshape(len(images), -1)  # R plane, G plane, B plane
    return np.concatenate([labels[:, None], planes], axis=1).tobytes()


def pickle_bytes(images, labels):
    """A python-distribution batch: protocol 2, bytes keys, as the published files."""
    batch = {b"batch_label": b"training batch 1 of 5", b"labels": labels.tolist(),
             b"data": images.transpose(0, 3, 1, 2).reshape(len(images), -1),
             b"filenames": [b"img_%d.png" % i for i in range(len(images))]}
    return pickle.dumps(batch, protocol=2)


def write_archive(path, folder, files):
    with tarfile.open(path, "w:gz") as tar:
        for name, raw in files.items():
            info = tarfile.TarInfo(f"{folder}/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))


@pytest.fixture
def cifar_parts(rng):
    """Five small train batches and a test batch (odd sizes), with what they hold."""
    train = [cifar_batch(rng, n) for n in (3, 5, 2, 4, 7)]
    return train, cifar_batch(rng, 6)


def expected(train):
    return np.concatenate([b[0] for b in train]), np.concatenate([b[1] for b in train])


@pytest.mark.parametrize("distribution", ["binary", "python"])
def test_cifar_archive_of_either_distribution(tmp_path, cifar_parts, distribution):
    train, test = cifar_parts
    encode, suffix, folder = ((binary_bytes, ".bin", "cifar-10-batches-bin") if distribution == "binary"
                              else (pickle_bytes, "", "cifar-10-batches-py"))
    files = {f"data_batch_{i + 1}{suffix}": encode(*b) for i, b in enumerate(train)}
    files[f"test_batch{suffix}"] = encode(*test)
    files["batches.meta.txt"] = b"airplane\n"
    archive = tmp_path / "cifar.tar.gz"
    write_archive(archive, folder, files)
    images, labels = load_cifar10(str(archive))
    want_images, want_labels = expected(train)
    np.testing.assert_array_equal(images, want_images)
    np.testing.assert_array_equal(labels, want_labels)
    test_images, test_labels = load_cifar10(str(archive), split="test")
    np.testing.assert_array_equal(test_images, test[0])
    # the extracted folder reads the same
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path / "x", filter="data")
    np.testing.assert_array_equal(load_cifar10(str(tmp_path / "x"))[0], want_images)


def test_cifar_classes_by_name_and_index(tmp_path, cifar_parts):
    train, _ = cifar_parts
    write_archive(tmp_path / "c.tar.gz", "cifar-10-batches-bin",
                  {f"data_batch_{i + 1}.bin": binary_bytes(*b) for i, b in enumerate(train)})
    want_images, want_labels = expected(train)
    frogs = load_dataset(f"{tmp_path / 'c.tar.gz'}", (32, 32, 3), ["frog"])
    np.testing.assert_array_equal(frogs.images, want_images[want_labels == 6])
    assert "frog" in frogs.description
    both = load_dataset(f"{tmp_path / 'c.tar.gz'}", (32, 32, 3), ["6", "Truck"])
    assert len(both.images) == np.isin(want_labels, [6, 9]).sum()
    with pytest.raises(DataError, match="unknown class 'toad'.*airplane, automobile"):
        load_dataset(f"{tmp_path / 'c.tar.gz'}", (32, 32, 3), ["toad"])


class Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_restricted_unpickler_refuses_code(tmp_path):
    crafted = pickle.dumps({b"data": Exploit(), b"labels": []}, protocol=2)
    with pytest.raises(pickle.UnpicklingError, match="refusing to load (posix|os|nt).system"):
        restricted_loads(crafted)
    # inside a data batch the same refusal is a format error naming the file
    write_archive(tmp_path / "evil.tar.gz", "cifar-10-batches-py", {"data_batch_1": crafted})
    with pytest.raises(CIFARFormatError, match="data_batch_1: not a readable CIFAR-10 pickle \\(refusing to load"):
        load_cifar10(str(tmp_path / "evil.tar.gz"))
    # other globals are refused too, not only os.system
    for payload in (pickle.dumps(print, protocol=2), pickle.dumps(np.load, protocol=2),
                    pickle.dumps(np.float64(1.5), protocol=2)):
        with pytest.raises(pickle.UnpicklingError, match="refusing to load"):
            restricted_loads(payload)


def test_restricted_unpickler_reads_what_cifar_holds(rng):
    images, labels = cifar_batch(rng, 3)
    batch = restricted_loads(pickle_bytes(images, labels))
    assert batch[b"labels"] == labels.tolist() and batch[b"data"].dtype == np.uint8


@pytest.mark.parametrize("raw, message", [
    (b"\x01" * 3074, "not a whole number of CIFAR-10 records"),
    (b"", "not a whole number"),
    (bytes([12]) + b"\x00" * 3072, "label 12 found"),
])
def test_bad_binary_batches(tmp_path, raw, message):
    (tmp_path / "data_batch_1.bin").write_bytes(raw)
    with pytest.raises(CIFARFormatError, match=message):
        load_cifar10(str(tmp_path))


def test_bad_pickle_batches(tmp_path):
    (tmp_path / "data_batch_1").write_bytes(pickle.dumps({b"data": np.zeros((2, 10), np.uint8)}, protocol=2))
    with pytest.raises(CIFARFormatError, match=r"shape \(2, 10\) refused: CIFAR-10 batches hold \(N, 3072\)"):
        load_cifar10(str(tmp_path))
    (tmp_path / "data_batch_1").write_bytes(b"garbage, not a pickle")
    with pytest.raises(CIFARFormatError, match="not a readable CIFAR-10 pickle"):
        load_cifar10(str(tmp_path))


class ArrayWithoutData:
    """Pickles as NumPy's _reconstruct call alone: an array whose data never comes."""

    def __init__(self, shape, dtype=b"B"):
        self.shape, self.dtype = shape, dtype

    def __reduce__(self):
        return (np.ndarray.__reduce__(np.zeros(1))[0], (np.ndarray, self.shape, self.dtype))


class ArrayWithState(ArrayWithoutData):
    """_reconstruct, then a BUILD with a state of our choosing."""

    def __init__(self, state):
        super().__init__((0,))
        self.state = state

    def __reduce__(self):
        return (*super().__reduce__(), self.state)


@pytest.mark.parametrize("array, message", [
    (ArrayWithoutData((20, 3072)), "an array without its data"),
    (ArrayWithState((1, (20, 3072), np.dtype(np.uint8), False, b"\x01" * 100)), "needs exactly 61,440 bytes of data, got 100"),
    (ArrayWithState((1, (2, 3072), np.dtype(np.uint8), False, "text")), "got str"),
    (ArrayWithState((1, (10**9, 3072), np.dtype(np.uint8), False, b"x")), r"shape \(1000000000, 3072\) refused"),
    (np.zeros((2, 3072), np.float64), "dtype 'f8' refused"),
])
def test_restricted_unpickler_never_hands_out_memory_the_file_did_not_fill(array, message):
    crafted = pickle.dumps({b"data": array, b"labels": [0] * 20}, protocol=2)
    with pytest.raises(pickle.UnpicklingError, match=message):
        restricted_loads(crafted)


def test_cifar_not_an_archive_and_empty_folder(tmp_path):
    (tmp_path / "x.tar.gz").write_bytes(b"not gzip")
    with pytest.raises(CIFARFormatError, match="not a readable tar archive"):
        load_cifar10(str(tmp_path / "x.tar.gz"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(CIFARFormatError, match="no CIFAR-10 train batches found"):
        load_cifar10(str(tmp_path / "empty"))


def test_cifar_download_checksummed(http_server, tmp_path, monkeypatch, cifar_parts):
    url, www = http_server
    train, _ = cifar_parts
    write_archive(www / "cifar-10-binary.tar.gz", "cifar-10-batches-bin",
                  {f"data_batch_{i + 1}.bin": binary_bytes(*b) for i, b in enumerate(train)})
    monkeypatch.setattr(cifar_module, "MIRRORS", [])
    monkeypatch.setenv("SCRATCHGAN_CIFAR10_MIRROR", url)
    monkeypatch.setenv("SCRATCHGAN_CACHE", str(tmp_path / "cache"))
    # the published checksum does not match our small archive: refused, nothing kept
    with pytest.raises(DownloadError, match="checksum mismatch"):
        load_cifar10()
    assert not any((tmp_path / "cache" / "cifar10").iterdir())
    monkeypatch.setitem(cifar_module.ARCHIVES, "cifar-10-binary.tar.gz", md5sum(www / "cifar-10-binary.tar.gz"))
    images, _ = load_cifar10()
    np.testing.assert_array_equal(images, expected(train)[0])
    assert (tmp_path / "cache" / "cifar10" / "cifar-10-binary.tar.gz").exists()


# --- Fashion-MNIST ---------------------------------------------------------------------
def test_fashion_mnist_from_the_system_folder(tmp_path, monkeypatch, rng):
    images = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", images)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.array([0, 7, 7, 9, 1], np.uint8))
    monkeypatch.setenv("SCRATCHGAN_FASHION_MNIST_DIR", str(tmp_path))
    got, labels = load_fashion_mnist()
    np.testing.assert_array_equal(got, images)
    sneakers = load_dataset("fashion-mnist", (28, 28, 1), ["sneaker"])
    np.testing.assert_array_equal(sneakers.images[..., 0], images[[1, 2]])


def test_fashion_mnist_download_when_not_installed(http_server, tmp_path, monkeypatch, rng):
    from scratchgan.datasets import fashion_mnist

    url, www = http_server
    write_idx(www / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (3, 28, 28), dtype=np.uint8))
    write_idx(www / "train-labels-idx1-ubyte.gz", np.array([1, 2, 3], np.uint8))
    monkeypatch.setenv("SCRATCHGAN_FASHION_MNIST_DIR", str(tmp_path / "not-installed"))
    monkeypatch.setenv("SCRATCHGAN_FASHION_MNIST_MIRROR", url)
    monkeypatch.setattr(fashion_mnist, "MIRRORS", [])
    monkeypatch.setenv("SCRATCHGAN_CACHE", str(tmp_path / "cache"))
    with pytest.raises(DownloadError, match="checksum mismatch"):  # the published MD5s
        load_fashion_mnist()
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        monkeypatch.setitem(fashion_mnist.FILES, name, md5sum(www / name))
    assert load_fashion_mnist()[0].shape == (3, 28, 28)


# --- folders of pictures ------------------------------------------------------------------
def test_image_folder_fits_pictures_to_the_model(tmp_path):
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    wide = np.zeros((40, 80, 3), np.uint8)
    wide[:, 20:60] = (255, 0, 0)  # a red centre square: what the centre crop keeps
    Image.fromarray(wide).save(tmp_path / "wide.png")
    Image.fromarray(np.full((50, 30), 200, np.uint8)).save(tmp_path / "sub" / "tall.JPG", quality=95)
    logo = np.zeros((20, 20, 4), np.uint8)  # fully transparent: laid on white
    Image.fromarray(logo, "RGBA").save(tmp_path / "sub" / "deeper" / "logo.png")
    (tmp_path / "notes.txt").write_text("not a picture")
    (tmp_path / "broken.jpeg").write_bytes(b"\xff\xd8 truncated")
    images, skipped = load_image_folder(tmp_path, (32, 32, 3))
    assert images.shape == (3, 32, 32, 3) and images.dtype == np.uint8
    assert [p.name for p, _ in skipped] == ["broken.jpeg"]
    by_name = dict(zip(["logo", "tall", "wide"], images))  # sorted paths: sub/deeper/logo, sub/tall, wide
    inner = by_name["wide"][2:-2, 2:-2]  # Lanczos rings a little at the border
    assert (inner[..., 0] > 250).all() and (inner[..., 1] < 5).all()
    assert (by_name["logo"] == 255).all()
    assert abs(int(by_name["tall"].mean()) - 200) <= 2
    grey, _ = load_image_folder(tmp_path, (28, 28, 1))
    assert grey.shape == (3, 28, 28, 1)
    dataset = load_dataset(str(tmp_path), (28, 28, 1))
    assert dataset.labels is None and "1 unreadable file skipped" in dataset.description


def test_image_folder_errors(tmp_path):
    with pytest.raises(ImageFolderError, match="no PNG or JPEG images found"):
        load_image_folder(tmp_path, (28, 28, 1))
    (tmp_path / "a.png").write_bytes(b"not a png")
    with pytest.raises(ImageFolderError, match="its one image file could not be read"):
        load_image_folder(tmp_path, (28, 28, 1))
    (tmp_path / "c.png").write_bytes(b"not a png either")
    with pytest.raises(ImageFolderError, match="none of the 2 image files could be read"):
        load_image_folder(tmp_path, (28, 28, 1))
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "b.png")
    with pytest.raises(DataError, match="a folder of pictures has no classes"):
        load_dataset(str(tmp_path), (28, 28, 1), ["3"])


def test_a_png_with_a_broken_chunk_is_skipped_not_a_crash(tmp_path):
    """Found by the long fuzz profile: one flipped byte in a PNG's chunk header makes Pillow
    raise SyntaxError ("broken PNG file") while loading, which no other check catches."""
    import io

    out = io.BytesIO()
    Image.fromarray(np.random.default_rng(6030).integers(0, 255, (7, 7, 3), dtype=np.uint8)).save(out, format="PNG")
    raw = bytearray(out.getvalue())
    raw[36] ^= 0xFF  # inside the first chunk after IHDR
    (tmp_path / "broken.png").write_bytes(bytes(raw))
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "good.png")
    images, skipped = load_image_folder(tmp_path, (28, 28, 1))
    assert images.shape == (1, 28, 28, 1)
    assert [p.name for p, _ in skipped] == ["broken.png"] and "broken PNG file" in skipped[0][1]


# --- the catalog ---------------------------------------------------------------------------
def test_catalog_checks_the_model_size_and_names_the_sources():
    with pytest.raises(DataError, match="holds 28x28x1 images but the model expects 32x32x3"):
        load_dataset("mnist", (32, 32, 3))
    with pytest.raises(FileNotFoundError, match="no such file or folder, and not one of mnist"):
        load_dataset("no/such/thing", (28, 28, 1))
    sevens = load_dataset("mnist:7", (28, 28, 1))
    assert (sevens.labels == 7).all() and len(sevens.images) == 1028


def test_cifar_frog_trains_from_the_command_line_on_an_archive(tmp_path, rng, capsys):
    from scratchgan.cli import main

    images, _ = cifar_batch(rng, 12)
    labels = np.array([6] * 8 + [1] * 4, np.uint8)
    write_archive(tmp_path / "cifar-10-binary.tar.gz", "cifar-10-batches-bin",
                  {"data_batch_1.bin": binary_bytes(images, labels)})
    run = tmp_path / "run"
    assert main(["train", "--model", "cifar_frog", "--data", str(tmp_path / "cifar-10-binary.tar.gz"),
                 "--class", "frog", "--iterations", "2", "--batch-size", "4", "--sample-interval", "1",
                 "--out", str(run), "--seed", "0"]) == 0
    out = capsys.readouterr().out
    assert "8 images: CIFAR-10 archive" in out and "class frog" in out
    assert (run / "samples" / "iter_000002.png").exists() and (run / "progress.gif").exists()
    with Image.open(run / "samples" / "iter_000002.png") as grid:
        assert grid.mode == "RGB"


def _png_claiming(width, height):
    """A PNG whose header claims width x height pixels (and holds no pixel data)."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IEND", b""))


def test_image_folder_decodes_only_png_and_jpeg_within_a_size_bound(tmp_path):
    from PIL import Image

    Image.new("L", (40, 30), 200).save(tmp_path / "good.png")
    (tmp_path / "eps.png").write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n")
    (tmp_path / "huge.png").write_bytes(_png_claiming(13370, 13370))
    images, skipped = load_image_folder(tmp_path, (28, 28, 1))
    assert images.shape == (1, 28, 28, 1)
    reasons = {p.name: why for p, why in skipped}
    assert "not a PNG or JPEG file" in reasons["eps.png"]
    assert "13370x13370 pixels is more than the 16,777,216" in reasons["huge.png"]


def test_sixteen_bit_greys_are_scaled_not_clipped(tmp_path):
    from PIL import Image

    values = np.array([[0, 16448, 32896], [49344, 65535, 257]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "deep.png")
    images, _ = load_image_folder(tmp_path, (2, 3, 1))
    np.testing.assert_array_equal(images[0, ..., 0], [[0, 64, 128], [192, 255, 1]])


def test_a_large_jpeg_is_decoded_reduced(tmp_path):
    from PIL import Image

    from scratchgan.datasets.image_folder import open_bounded

    Image.new("RGB", (6000, 4000), (10, 200, 30)).save(tmp_path / "big.jpg", quality=50)
    with open_bounded(tmp_path / "big.jpg", 32, 32) as image:
        assert image.size == (750, 500)  # decoded at 1/8 scale, still larger than 32x32
    images, skipped = load_image_folder(tmp_path, (32, 32, 3))
    assert not skipped and abs(int(images[0, 16, 16, 1]) - 200) < 8


def test_cifar_batches_larger_than_cifar_allows_are_refused_before_reading(tmp_path, monkeypatch):
    from scratchgan.datasets import cifar10

    monkeypatch.setattr(cifar10, "MAX_BATCH_BYTES", 4 * cifar10.RECORD)
    (tmp_path / "data_batch_1.bin").write_bytes(bytes(5 * cifar10.RECORD))
    with pytest.raises(CIFARFormatError, match="15,365 bytes is more than a CIFAR-10 batch holds"):
        load_cifar10(str(tmp_path))
    write_archive(tmp_path / "big.tar.gz", "cifar-10-batches-bin", {"data_batch_1.bin": bytes(5 * cifar10.RECORD)})
    with pytest.raises(CIFARFormatError, match="big.tar.gz:cifar-10-batches-bin/data_batch_1.bin: 15,365 bytes"):
        load_cifar10(str(tmp_path / "big.tar.gz"))


def test_an_npz_declaring_huge_members_is_refused_before_reading(tmp_path, monkeypatch):
    import zipfile

    from scratchgan import safe_io

    np.savez_compressed(tmp_path / "ok.npz", a=np.zeros(1000))  # small on disk, 8,128 bytes declared
    monkeypatch.setitem(safe_io.LIMITS, "weights", 1000)
    with pytest.raises(ValueError, match="its members declare 8,128 bytes in all, more than this kind of file"):
        safe_io.read_npz(tmp_path / "ok.npz", "weights")
    with zipfile.ZipFile(tmp_path / "ok.npz") as z:
        assert z.infolist()[0].file_size == 8128


def test_a_fifo_named_like_an_archive_is_refused_not_opened(tmp_path):
    os.mkfifo(tmp_path / "cifar-10-binary.tar.gz")
    with pytest.raises(ValueError, match="is a FIFO, not a regular file"):
        load_cifar10(str(tmp_path / "cifar-10-binary.tar.gz"))
