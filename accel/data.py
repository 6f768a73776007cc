"""Data to run models on: built-in datasets that ship offline, and files (``--data``).

Built-in (:data:`BUILTIN`):

* ``digits`` - scikit-learn's 8x8 digits, ``[N, 1, 8, 8]`` pixels 0..16, the fixed stratified split
  of ``models.digits`` (1437 train / 360 test);
* ``fashion-mnist`` - Zalando's Fashion-MNIST, ``[N, 1, 28, 28]`` pixels 0..255 (60,000 train /
  10,000 test), read from the Debian package ``dataset-fashion-mnist``
  (``/usr/share/datasets/fashion-mnist``, or ``$ACCEL_FASHION_MNIST``);
* ``random-cifar`` - 256 uniform random ``[3, 32, 32]`` images in [0, 1), random labels (seeded).

Files: ``.npz`` (inputs under ``x``, ``inputs`` or ``images``, labels under ``y`` or ``labels``),
``.npy`` (inputs; labels from ``labels=``), IDX (``*-idx3-ubyte[.gz]``; its labels file is found
by name, ``images`` -> ``labels``, or given), or a folder of images in one sub-folder per class
(sorted names are the labels; read with Pillow, all of one size). Preprocessing is explicit:
``x * scale``, then ``(x - mean) / std`` per channel; ``layout="nhwc"`` inputs are moved to NCHW.
Every problem is a :class:`DataError` that names the file and what was expected.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["DataError", "Dataset", "BUILTIN", "PREPROCESSING", "load_data", "model_data",
           "digits_split", "fashion_mnist_dir", "read_idx"]

#: Built-in datasets (see the module docstring).
BUILTIN = ("digits", "fashion-mnist", "random-cifar")
#: Preprocessing keys of :func:`load_data` (and of a model's ``meta["input"]``).
PREPROCESSING = ("scale", "mean", "std", "layout")
#: Seed and test share of the digits' stratified split (fixed: every recipe uses the same split).
DIGITS_SPLIT_SEED = 0
DIGITS_TEST_SHARE = 0.2
#: Where the Debian package puts Fashion-MNIST.
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")


class DataError(ValueError):
    """A dataset that cannot be used; the message names it and what was expected."""


@dataclass
class Dataset:
    """Inputs ``x`` (float32, batch first), labels ``y`` (int64, or None) and where they came from."""

    x: np.ndarray
    y: np.ndarray | None
    name: str
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.x.shape[0])


def fashion_mnist_dir() -> Path:
    """The Fashion-MNIST folder (``$ACCEL_FASHION_MNIST`` or the Debian package's)."""
    return Path(os.environ.get("ACCEL_FASHION_MNIST", FASHION_MNIST_DIR))


def read_idx(path: str | Path) -> np.ndarray:
    """An IDX file (``.gz`` or not) as a numpy array of its declared type and shape."""
    path = Path(path)
    try:
        raw = gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError) as e:
        raise DataError(f"{path} cannot be read as an IDX file: {e}") from None
    types = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in types or raw[3] < 1:
        raise DataError(f"{path} is not an IDX file (expected the magic 00 00 <type> <dims>)")
    dims = raw[3]
    if len(raw) < 4 + 4 * dims:
        raise DataError(f"{path}: IDX header truncated")
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(dims))
    dt = np.dtype(types[raw[2]])
    body = raw[4 + 4 * dims:]
    if len(body) != int(np.prod(shape)) * dt.itemsize:
        raise DataError(f"{path}: IDX body holds {len(body)} bytes, its header promises "
                        f"{int(np.prod(shape)) * dt.itemsize} (shape {shape}); truncated?")
    return np.frombuffer(body, dtype=dt).reshape(shape).astype(dt.newbyteorder("="))


def _fashion_mnist(split: str) -> Dataset:
    folder = fashion_mnist_dir()
    prefix = "t10k" if split == "test" else "train"
    images = folder / f"{prefix}-images-idx3-ubyte.gz"
    if not images.is_file():
        raise DataError(f"Fashion-MNIST is not installed: {images} is missing (install the "
                        "Debian package dataset-fashion-mnist, or point $ACCEL_FASHION_MNIST at "
                        "a folder with its four idx .gz files)")
    x = read_idx(images).astype(np.float32)[:, None]
    y = read_idx(folder / f"{prefix}-labels-idx1-ubyte.gz").astype(np.int64)
    return Dataset(x, y, f"fashion-mnist/{split}", {"range": [0, 255]})


def digits_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x_train, y_train, x_test, y_test)`` of scikit-learn's digits: 1437 / 360 images
    ``[N, 1, 8, 8]`` float32 pixels 0..16, stratified, seeded (:data:`DIGITS_SPLIT_SEED`)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = d.images.astype(np.float32)[:, None]
    xtr, xte, ytr, yte = train_test_split(x, d.target, test_size=DIGITS_TEST_SHARE,
                                          stratify=d.target, random_state=DIGITS_SPLIT_SEED)
    return xtr, ytr.astype(np.int64), xte, yte.astype(np.int64)


def _builtin(name: str, split: str, seed: int) -> Dataset:
    if name == "digits":
        xtr, ytr, xte, yte = digits_split()
        x, y = (xtr, ytr) if split == "train" else (xte, yte)
        return Dataset(x, y, f"digits/{split}", {"range": [0, 16]})
    if name == "fashion-mnist":
        return _fashion_mnist(split)
    rng = np.random.default_rng(seed + (split == "test"))
    return Dataset(rng.random((256, 3, 32, 32), dtype=np.float32), rng.integers(0, 10, 256),
                   f"random-cifar/{split}")


def _load_npy(path: Path, what: str) -> np.ndarray:
    try:
        with open(path, "rb") as f:
            magic = f.read(6)
    except OSError as e:
        raise DataError(f"{what} {path} cannot be read ({e.strerror})") from None
    if magic != b"\x93NUMPY":
        raise DataError(f"{what} {path} is not a .npy array file (it does not begin with the "
                        ".npy magic; text, CSV or another format?)")
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as e:
        if "pickle" in str(e) or "object" in str(e):
            raise DataError(f"{what} {path} holds Python objects (a pickle); expected a numeric "
                            ".npy array") from None
        raise DataError(f"{what} {path} is not a readable .npy array file ({e})") from None
    except OSError as e:
        raise DataError(f"{what} {path} cannot be read as a .npy array ({e})") from None


def _from_npz(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    try:
        z = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as e:
        raise DataError(f"data {path} is not a readable .npz archive ({e})") from None
    keys = list(z.keys())
    xk = next((k for k in ("x", "inputs", "images") if k in keys), None)
    if xk is None:
        raise DataError(f"data {path} has arrays {keys}; expected the inputs under 'x', 'inputs' "
                        "or 'images' (and labels under 'y' or 'labels')")
    yk = next((k for k in ("y", "labels") if k in keys), None)
    return z[xk], (z[yk] if yk else None)


def _from_folder(path: Path) -> tuple[np.ndarray, np.ndarray]:
    classes = sorted(p for p in path.iterdir() if p.is_dir())
    if not classes:
        raise DataError(f"data folder {path} has no class sub-folders; expected one folder of "
                        "images per class (their sorted names are the labels 0, 1, ...)")
    try:
        from PIL import Image
    except ImportError:
        raise DataError("reading a folder of images needs Pillow (pip install pillow)") from None
    xs, ys = [], []
    for label, folder in enumerate(classes):
        for f in sorted(folder.iterdir()):
            if f.suffix.lower() not in (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff"):
                continue
            try:
                img = np.asarray(Image.open(f), dtype=np.float32)
            except OSError as e:
                raise DataError(f"image {f} cannot be read ({e})") from None
            xs.append(img[None] if img.ndim == 2 else np.moveaxis(img, -1, 0))
            ys.append(label)
    if not xs:
        raise DataError(f"data folder {path}: no images in {', '.join(c.name for c in classes)}")
    shapes = {a.shape for a in xs}
    if len(shapes) > 1:
        raise DataError(f"data folder {path}: images of different sizes {sorted(shapes)}; "
                        "resize them to one size first")
    return np.stack(xs), np.asarray(ys, np.int64)


def _from_path(path: Path, labels: str | None) -> tuple[np.ndarray, np.ndarray | None]:
    if path.is_dir():
        return _from_folder(path)
    if not path.is_file():
        raise DataError(f"data {path} does not exist (give a .npz, .npy, IDX file, a folder of "
                        f"class folders, or a built-in dataset: {', '.join(BUILTIN)})")
    name = path.name
    if name.endswith(".npz"):
        x, y = _from_npz(path)
    elif name.endswith(".npy"):
        x, y = _load_npy(path, "data"), None
    elif "idx" in name:
        x = read_idx(path)
        guess = path.with_name(name.replace("images", "labels").replace("idx3", "idx1"))
        y = read_idx(guess) if labels is None and guess != path and guess.is_file() else None
    else:
        raise DataError(f"data {path}: unknown kind {path.suffix!r}; expected .npz, .npy, an IDX "
                        "file (*-idx3-ubyte[.gz]) or a folder of class folders")
    if labels is not None:
        lp = Path(labels)
        y = read_idx(lp) if "idx" in lp.name else _load_npy(lp, "labels")
    return x, y


def load_data(spec: str, split: str = "test", seed: int = 0, labels: str | None = None,
              scale: float | None = None, mean: list[float] | None = None,
              std: list[float] | None = None, layout: str = "nchw") -> Dataset:
    """A dataset by built-in name or path (module docstring), preprocessed."""
    if spec in BUILTIN:
        ds = _builtin(spec, split, seed)
        x, y = ds.x, ds.y
    else:
        x, y = _from_path(Path(spec), labels)
        ds = Dataset(x, y, str(spec))
    if x.dtype.kind not in "iuf" or x.ndim < 2:
        raise DataError(f"data {spec}: inputs must be a numeric array with a batch axis, not "
                        f"{x.dtype} of shape {x.shape}")
    if x.shape[0] == 0:
        raise DataError(f"data {spec} holds no samples (T = 0); give at least one")
    if y is not None:
        y = np.asarray(y)
        if y.dtype.kind not in "iu" or y.ndim != 1 or y.shape[0] != x.shape[0]:
            raise DataError(f"data {spec}: labels must be {x.shape[0]} integers (one per sample), "
                            f"not {y.dtype} of shape {y.shape}")
    if layout not in ("nchw", "nhwc"):
        raise DataError(f"layout must be 'nchw' or 'nhwc', not {layout!r}")
    x = np.asarray(x, dtype=np.float32)
    if layout == "nhwc" and x.ndim == 4:
        x = np.ascontiguousarray(np.moveaxis(x, -1, 1))
    if scale is not None:
        x = x * np.float32(scale)
    if mean is not None or std is not None:
        c = x.shape[1] if x.ndim == 4 else 1
        m = np.asarray(mean if mean is not None else [0.0], np.float32)
        s = np.asarray(std if std is not None else [1.0], np.float32)
        for what, v in (("mean", m), ("std", s)):
            if v.size not in (1, c):
                raise DataError(f"{what} has {v.size} values; the inputs have {c} channels")
        if np.any(s <= 0):
            raise DataError(f"std must be positive, not {s.tolist()}")
        shape = (1, -1) + (1,) * (x.ndim - 2) if x.ndim >= 2 else (-1,)
        x = (x - m.reshape(shape)) / s.reshape(shape)
    ds.x, ds.y = x, None if y is None else y.astype(np.int64)
    return ds


def model_data(meta: dict[str, Any], data: str | None = None, *, split: str = "test",
               seed: int = 0, labels: str | None = None, **preprocessing: Any) -> Dataset:
    """The data to run a model on: ``data`` (built-in name or path), else the model's own dataset
    (``meta["dataset"]``, else ``digits``).

    The model's preprocessing (``meta["input"]``: scale, mean, std, layout) goes with its own
    dataset only; other data is taken as given. ``preprocessing`` (keys of :data:`PREPROCESSING`,
    None for unset) overrides either.
    """
    unknown = set(preprocessing) - set(PREPROCESSING)
    if unknown:
        raise DataError(f"unknown preprocessing {', '.join(sorted(unknown))}; valid: "
                        f"{', '.join(PREPROCESSING)}")
    spec = data or meta.get("dataset") or "digits"
    pre = dict(meta.get("input") or {}) if spec == meta.get("dataset") else {}
    pre.update({k: v for k, v in preprocessing.items() if v is not None})
    return load_data(spec, split=split, seed=seed, labels=labels, scale=pre.get("scale"),
                     mean=pre.get("mean"), std=pre.get("std"), layout=pre.get("layout", "nchw"))
