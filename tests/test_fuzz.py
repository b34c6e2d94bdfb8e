"""The trust boundary, fuzzed: crafted files through the real commands, under a memory cap.

Hypothesis mutates valid inputs (checkpoints: shapes, dtypes, values, JSON fields, .npy
headers, members; config.json; IDX headers; CIFAR-10 archives and pickles; pictures)
and runs the real command on each in a child process (tests/fuzz_server.py) with its
address space capped and a timeout. Every run must end in one of two ways:

* success (exit status 0), or
* a refusal: exit status 2 and one line ``scratchgan CMD: error: ...`` on stderr,

never a traceback, a signal (a crash), or a hang; nothing outside the run directory is
changed, and a refused new run leaves no run directory behind.

The CI profile runs a few dozen examples per target; the long one runs hundreds:
``python3 -m pytest tests/test_fuzz.py --hypothesis-profile=long`` (or
``SCRATCHGAN_FUZZ=long``).
"""
import bz2
import gzip
import io
import json
import lzma
import os
import pickle
import re
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
ADDRESS_SPACE = 4 << 30  # Numba and LLVM reserve about 1.5 GiB of address space on their own
ENV = {"SCRATCHGAN_MEMORY_BUDGET": "1G"}
REFUSAL = re.compile(r"^scratchgan \w+: error: \S")
# lines a run may print on stderr besides its refusal
NOISE = re.compile(r"^(scratchgan: compiling|skipped |removed |warning: )")

settings.register_profile("ci", max_examples=25, deadline=None, derandomize=True, database=None,
                          suppress_health_check=list(HealthCheck))
settings.register_profile("long", max_examples=400, deadline=None, database=None,
                          suppress_health_check=list(HealthCheck))
if os.environ.get("SCRATCHGAN_FUZZ") == "long":
    settings.load_profile("long")
elif getattr(settings, "_current_profile", "default") == "default":  # --hypothesis-profile not given
    settings.load_profile("ci")


class Server:
    """The fork server: one request, one answer."""

    def __init__(self):
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "fuzz_server.py")], cwd=ROOT, env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def run(self, argv, cwd, timeout=60):
        request = {"argv": argv, "cwd": str(cwd), "timeout": timeout, "address_space": ADDRESS_SPACE, "env": ENV}
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def server():
    s = Server()
    yield s
    s.close()


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    """A small finished mlp run (2 iterations, sampled at each) that mutations start from."""
    from scratchgan.cli import main

    folder = tmp_path_factory.mktemp("base")
    assert main(["--backend", "numpy", "train", "--iterations", "2", "--batch-size", "4", "--sample-interval", "1",
                 "--seed", "3", "--no-progress", "--out", str(folder / "run")]) == 0
    return folder / "run"


def snapshot(folder: Path, skip: str) -> dict:
    """{relative path: (size, mtime)} of everything under ``folder`` outside ``skip``."""
    found = {}
    for path in folder.rglob("*"):
        rel = path.relative_to(folder)
        if rel.parts[0] in (skip, ".stdout", ".stderr"):
            continue
        info = path.lstat()
        found[str(rel)] = (info.st_size, info.st_mtime_ns)
    return found


def run_and_check(server, work: Path, argv, run_name="run", new_run=False):
    """Run ``argv`` in ``work`` and assert the outcome is a success or a one-line refusal."""
    before = snapshot(work, run_name)
    answer = server.run(argv, work)
    err = (work / ".stderr").read_text(errors="replace")
    context = f"{argv}: {answer}\n{err[-3000:]}"
    assert not answer["timed_out"], f"hang: {context}"
    assert answer["signal"] is None, f"killed by signal {answer['signal']}: {context}"
    assert "Traceback" not in err, f"traceback: {context}"
    assert answer["rc"] in (0, 2), f"exit status {answer['rc']}: {context}"
    if answer["rc"] == 2:
        lines = [line for line in err.splitlines() if line.strip() and not NOISE.match(line)]
        assert len(lines) == 1 and REFUSAL.match(lines[0]), f"not one refusal line: {context}"
        if new_run:
            assert not os.path.lexists(work / run_name), f"a refused new run left {run_name}: {context}"
    assert snapshot(work, run_name) == before, f"files outside the run changed: {context}"
    return answer["rc"]


def workdir():
    return Path(tempfile.mkdtemp(prefix="fuzz-"))


TRAIN_NEW = ["--backend", "numpy", "train", "--iterations", "1", "--batch-size", "2", "--sample-interval", "1",
             "--seed", "0", "--no-progress", "--out", "run"]

# --- checkpoints -------------------------------------------------------------------------

DTYPES = ["float64", "float16", "int32", "int64", "uint8", "bool", "<U7", ">f4", "complex64"]
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10)


@st.composite
def array_mutation(draw, keys):
    key = draw(st.sampled_from(keys))
    how = draw(st.sampled_from(["shape", "dtype", "scalar", "nonfinite", "negative", "delete", "extra", "json",
                                "text", "huge-int"]))
    return key, how, draw(st.integers(0, 2**31)), draw(JSON_VALUES)


def mutate_arrays(arrays: dict, key, how, number, value) -> None:
    rng = np.random.default_rng(number)
    a = arrays[key]
    if how == "shape":
        dims = tuple(int(d) for d in rng.integers(0, 5, rng.integers(0, 4)))
        arrays[key] = np.resize(a, dims) if a.size else np.zeros(dims, a.dtype)
    elif how == "dtype":
        arrays[key] = np.zeros(a.shape, dtype=DTYPES[number % len(DTYPES)])
    elif how == "scalar":
        # a small integer in the field's own dtype (wrapped for unsigned ones), or int64 for text
        arrays[key] = np.array(number % 7 - 3).astype(a.dtype if a.dtype.kind != "U" else np.int64)
    elif how == "nonfinite" and a.dtype.kind == "f" and a.size:
        a = a.copy()
        a.flat[number % a.size] = [np.nan, np.inf, -np.inf][number % 3]
        arrays[key] = a
    elif how == "negative" and a.dtype.kind in "fi" and a.size:
        arrays[key] = -np.abs(a) - 1
    elif how == "delete":
        del arrays[key]
    elif how == "extra":
        arrays[f"{key}/extra{number % 3}"] = np.zeros(3, np.float32)
    elif how == "json" and a.dtype.kind == "U":
        try:
            doc = json.loads(str(a))
        except json.JSONDecodeError:  # text that is not JSON (the format's name): replaced whole
            arrays[key] = np.array(json.dumps(value, default=str))
            return
        if isinstance(doc, dict) and doc:
            field = sorted(doc)[number % len(doc)]
            doc[field] = value
        arrays[key] = np.array(json.dumps(doc, default=str))
    elif how == "text":
        arrays[key] = np.array(json.dumps(value, default=str))
    elif how == "huge-int":
        arrays[key] = np.array(2**62 + number, dtype=np.int64)


def npy_bytes(shape, dtype, data: bytes) -> bytes:
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                                               "fortran_order": False, "shape": tuple(shape)})
    return out.getvalue() + data


@given(mutation=array_mutation(["G/dense/kernel", "G/dense_1/bias", "D/dense/kernel", "opt_G/dense/kernel/m",
                                "opt_D/dense_1/kernel/v", "opt_G/iterations", "iteration", "seed", "rng",
                                "recipe", "fixed_z", "history", "frames", "frame_iterations", "log_bytes",
                                "data_source", "G_rng/dense", "format"]),
       command=st.sampled_from(["resume", "sample"]))
def test_fuzz_checkpoint_fields(server, base_run, mutation, command):
    work = workdir()
    shutil.copytree(base_run, work / "run")
    path = work / "run" / "checkpoint.npz"
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    if mutation[0] in arrays:
        mutate_arrays(arrays, *mutation)
    np.savez(path, **arrays)
    argv = (["train", "--resume", "run", "--iterations", "3", "--no-progress"] if command == "resume"
            else ["sample", "run", "--n", "4", "--out", "run/s.npy"])  # its output: the one file it may write
    run_and_check(server, work, argv)
    shutil.rmtree(work)


@given(member=st.sampled_from(["G/dense/kernel", "opt_D/dense/kernel/m", "history", "recipe"]),
       shape=st.lists(st.sampled_from([0, 1, 3, 128, 2**20, 2**40, 2**62]), max_size=3),
       dtype=st.sampled_from(["<f4", "<f8", "|u1", "<U3", "|O"]),
       data_len=st.integers(0, 64), damage=st.sampled_from(["header", "truncate", "flip"]),
       where=st.floats(0, 1))
def test_fuzz_checkpoint_bytes(server, base_run, member, shape, dtype, data_len, damage, where):
    """.npy headers that lie about their size, truncated archives, flipped bytes."""
    work = workdir()
    shutil.copytree(base_run, work / "run")
    path = work / "run" / "checkpoint.npz"
    if damage == "header":
        with zipfile.ZipFile(path) as z:
            members = {i.filename: z.read(i) for i in z.infolist()}
        members[member + ".npy"] = npy_bytes(shape, dtype, b"\0" * data_len)
        with zipfile.ZipFile(path, "w") as z:
            for name, raw in members.items():
                z.writestr(name, raw)
    else:
        raw = bytearray(path.read_bytes())
        at = int(where * (len(raw) - 1))
        if damage == "truncate":
            raw = raw[:at]
        else:
            raw[at] ^= 0xFF
        path.write_bytes(bytes(raw))
    run_and_check(server, work, ["train", "--resume", "run", "--iterations", "3", "--no-progress"])
    shutil.rmtree(work)


# --- config.json -------------------------------------------------------------------------

@given(value=JSON_VALUES, field=st.sampled_from(["model", "seed", "data", "classes", "recipe", None]),
       raw=st.one_of(st.none(), st.binary(max_size=40)))
def test_fuzz_config(server, base_run, value, field, raw):
    work = workdir()
    shutil.copytree(base_run, work / "run")
    config_path = work / "run" / "config.json"
    if raw is not None:
        config_path.write_bytes(raw)
    elif field is None:
        config_path.write_text(json.dumps(value, default=str))
    else:
        config = json.loads(config_path.read_text())
        config[field] = value
        config_path.write_text(json.dumps(config, default=str))
    run_and_check(server, work, ["train", "--resume", "run", "--iterations", "3", "--no-progress"])
    shutil.rmtree(work)


# --- IDX files -----------------------------------------------------------------------------

DIMS = st.sampled_from([0, 1, 2, 28, 255, 2**16, 2**31 - 1, 2**32 - 1])


@given(magic=st.tuples(st.sampled_from([0, 0, 0, 1]), st.sampled_from([0, 0, 8]),
                       st.sampled_from([8, 8, 9, 0x0D, 0x0E, 0x42]), st.integers(0, 5)),
       dims=st.lists(DIMS, min_size=0, max_size=5), extra=st.integers(-3, 3), count=st.integers(0, 6),
       compress=st.booleans(), truncate_gz=st.booleans())
def test_fuzz_idx(server, magic, dims, extra, count, compress, truncate_gz):
    work = workdir()
    folder = work / "digits"
    folder.mkdir()
    dims = dims[:magic[3]] + [28] * max(0, magic[3] - len(dims))
    if magic[3] == 3 and not dims[0]:
        dims[0] = count
    size = int(np.prod(dims, dtype=object)) if dims else 0
    body = b"\x07" * max(0, min(size, 28 * 28 * 8) + extra)
    raw = bytes(magic) + struct.pack(f">{len(dims)}I", *dims) + body
    if compress:
        raw = gzip.compress(raw)
        if truncate_gz:
            raw = raw[: len(raw) // 2]
    (folder / "train-images-idx3-ubyte").write_bytes(raw)
    labels = bytes([0, 0, 8, 1]) + struct.pack(">I", count) + bytes(count)
    (folder / "train-labels-idx1-ubyte").write_bytes(labels)
    run_and_check(server, work, [*TRAIN_NEW, "--data", "digits"], new_run=True)
    shutil.rmtree(work)


# --- CIFAR-10 archives and pickles ----------------------------------------------------------

RECORD = 1 + 32 * 32 * 3
PICKLED = st.one_of(
    st.fixed_dictionaries({b"data": st.sampled_from(["ok", "empty", "wide", "floats", "list"]),
                           b"labels": st.lists(st.integers(-1, 11), max_size=4)}),
    JSON_VALUES)


def pickled_batch(spec) -> bytes:
    if isinstance(spec, dict) and b"data" in spec:
        rows = len(spec[b"labels"])
        data = {"ok": np.zeros((rows, 3072), np.uint8), "empty": np.zeros((0, 3072), np.uint8),
                "wide": np.zeros((rows, 3000), np.uint8), "floats": np.zeros((rows, 3072)),
                "list": [1, 2, 3]}[spec[b"data"]]
        return pickle.dumps({b"data": data, b"labels": spec[b"labels"]}, protocol=2)
    return pickle.dumps(spec, protocol=2)


@given(members=st.lists(st.tuples(
    st.sampled_from(["cifar-10-batches-bin/data_batch_1.bin", "cifar-10-batches-py/data_batch_2", "data_batch_3",
                     "readme.html", "../escape/data_batch_4.bin", "cifar-10-batches-py/test_batch"]),
    st.one_of(st.integers(0, 3).map(lambda n: b"\x03" * (n * RECORD)), st.binary(max_size=50), PICKLED)),
    max_size=5),
    compression=st.sampled_from(["", "gz", "bz2", "xz"]), cut=st.one_of(st.none(), st.floats(0, 1)))
def test_fuzz_cifar_archive(server, members, compression, cut):
    work = workdir()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, content in members:
            raw = content if isinstance(content, bytes) else pickled_batch(content)
            info = tarfile.TarInfo(name)
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    raw = out.getvalue()
    raw = {"": lambda b: b, "gz": gzip.compress, "bz2": bz2.compress, "xz": lzma.compress}[compression](raw)
    if cut is not None:
        raw = raw[: int(cut * len(raw))]
    (work / "cifar.tar").write_bytes(raw)
    run_and_check(server, work, [*TRAIN_NEW, "--model", "mlp", "--data", "cifar.tar"], new_run=True)
    shutil.rmtree(work)


# --- pictures --------------------------------------------------------------------------------

def picture_bytes(kind: str, size: int, number: int) -> bytes:
    from PIL import Image

    image = Image.fromarray(np.random.default_rng(number).integers(0, 255, (size, size, 3), dtype=np.uint8))
    out = io.BytesIO()
    if kind == "png":
        image.save(out, format="PNG")
    elif kind == "jpeg":
        image.save(out, format="JPEG")
    elif kind == "progressive":
        image.save(out, format="JPEG", progressive=True)
    elif kind == "gif":
        image.save(out, format="GIF")
    return out.getvalue()


@given(pictures=st.lists(st.tuples(
    st.sampled_from(["png", "jpeg", "progressive", "gif"]), st.sampled_from([1, 7, 40]), st.integers(0, 2**16),
    st.sampled_from(["none", "flip", "truncate", "scans", "junk"]), st.sampled_from([".png", ".jpg", ".JPEG"])),
    min_size=1, max_size=4))
def test_fuzz_picture_folder(server, pictures):
    work = workdir()
    folder = work / "pictures"
    folder.mkdir()
    for i, (kind, size, number, damage, suffix) in enumerate(pictures):
        raw = bytearray(picture_bytes(kind, size, number))
        if damage == "flip":
            raw[number % len(raw)] ^= 0xFF
        elif damage == "truncate":
            raw = raw[: number % len(raw)]
        elif damage == "scans":  # an SOS marker repeated: a JPEG claiming thousands of scans
            raw = raw[:-2] + b"\xff\xda\x00\x08\x01\x01\x00\x00\x3f\x00" * 500 + raw[-2:]
        elif damage == "junk":
            raw = bytearray(np.random.default_rng(number).bytes(64))
        (folder / f"p{i}{suffix}").write_bytes(bytes(raw))
    run_and_check(server, work, [*TRAIN_NEW, "--data", "pictures"], new_run=True)
    shutil.rmtree(work)
