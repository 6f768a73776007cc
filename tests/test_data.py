"""accel.data: built-in datasets, files of every kind, preprocessing, and the errors."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from accel.data import DataError, fashion_mnist_dir, load_data, read_idx


def _idx(path, a: np.ndarray, code: int) -> None:
    header = bytes([0, 0, code, a.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in a.shape)
    data = header + a.astype(a.dtype.newbyteorder(">")).tobytes()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)


def test_idx_round_trip_and_labels_found_by_name(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (5, 4, 3)).astype(np.uint8)
    y = np.arange(5, dtype=np.uint8)
    _idx(tmp_path / "t-images-idx3-ubyte.gz", x, 0x08)
    _idx(tmp_path / "t-labels-idx1-ubyte.gz", y, 0x08)
    assert np.array_equal(read_idx(tmp_path / "t-images-idx3-ubyte.gz"), x)
    d = load_data(str(tmp_path / "t-images-idx3-ubyte.gz"), scale=0.5)
    assert d.x.shape == (5, 4, 3) and np.array_equal(d.x, x * 0.5) and d.y.tolist() == list(range(5))
    (tmp_path / "short-idx3-ubyte").write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 9, 1, 2]))
    with pytest.raises(DataError, match="truncated"):
        read_idx(tmp_path / "short-idx3-ubyte")


def test_npz_npy_folder_and_preprocessing(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.random((6, 2, 3, 3)).astype(np.float32)
    np.savez(tmp_path / "d.npz", images=x, labels=np.arange(6))
    d = load_data(str(tmp_path / "d.npz"), mean=[0.5, 0.25], std=[2.0, 4.0])
    want = (x - np.array([0.5, 0.25]).reshape(1, 2, 1, 1)) / np.array([2.0, 4.0]).reshape(1, 2, 1, 1)
    assert np.allclose(d.x, want) and d.y.tolist() == list(range(6))
    np.save(tmp_path / "x.npy", np.moveaxis(x, 1, -1))
    np.save(tmp_path / "y.npy", np.arange(6))
    d = load_data(str(tmp_path / "x.npy"), labels=str(tmp_path / "y.npy"), layout="nhwc")
    assert np.array_equal(d.x, x) and d.y.tolist() == list(range(6))
    from PIL import Image

    for label in ("a", "b"):
        (tmp_path / "imgs" / label).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(rng.integers(0, 256, (5, 4), dtype=np.uint8)).save(
                tmp_path / "imgs" / label / f"{i}.png")
    d = load_data(str(tmp_path / "imgs"))
    assert d.x.shape == (4, 1, 5, 4) and d.y.tolist() == [0, 0, 1, 1]


@pytest.mark.parametrize("make, msg", [
    (lambda p: (p / "x.npy").write_text("text\n"), "is not a .npy array file"),
    (lambda p: np.save(p / "x.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True),
     "holds Python objects"),
    (lambda p: np.save(p / "x.npy", np.zeros((0, 3))), r"holds no samples \(T = 0\)"),
    (lambda p: np.savez(p / "x.npz", q=np.zeros(3)), "expected the inputs under 'x'"),
    (lambda p: np.savez(p / "x.npz", x=np.zeros((3, 2)), y=np.zeros(2, int)), "labels must be 3"),
    (lambda p: (p / "x.csv").write_text("1,2\n"), "unknown kind '.csv'"),
    (lambda p: None, "does not exist"),
])
def test_errors_name_the_file(tmp_path, make, msg):
    make(tmp_path)
    name = next((f.name for f in tmp_path.iterdir()), "missing.npz")
    with pytest.raises(DataError, match=msg) as e:
        load_data(str(tmp_path / name))
    assert name in str(e.value) or "missing" in str(e.value)


def test_fashion_mnist_builtin(monkeypatch, tmp_path):
    if not (fashion_mnist_dir() / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip("the Debian package dataset-fashion-mnist is not installed")
    d = load_data("fashion-mnist")
    assert d.x.shape == (10000, 1, 28, 28) and d.y.shape == (10000,) and d.x.max() == 255
    assert np.bincount(d.y).tolist() == [1000] * 10
    monkeypatch.setenv("ACCEL_FASHION_MNIST", str(tmp_path))
    with pytest.raises(DataError, match="Fashion-MNIST is not installed.*dataset-fashion-mnist"):
        load_data("fashion-mnist")
