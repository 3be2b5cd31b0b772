"""IDX reader and built-in data sets, on real files and on corrupted copies."""

import gzip
import shutil

import numpy as np
import pytest

from bnn_mcu.data import FASHION_MNIST_DIR, load_dataset, load_idx_folder, read_idx
from bnn_mcu.errors import DataError


def test_fashion_mnist_real_files(fashion):
    assert fashion.train_x.shape == (55000, 28, 28, 1) and fashion.train_x.dtype == np.uint8
    assert fashion.val_x.shape == (5000, 28, 28, 1)
    assert fashion.test_x.shape == (10000, 28, 28, 1)
    assert fashion.num_classes == 10
    assert np.bincount(fashion.test_y).tolist() == [1000] * 10  # the real test set is balanced
    # the split is deterministic and disjoint: train + val = the 60,000 originals
    again = load_dataset("fashion-mnist")
    assert np.array_equal(again.val_y, fashion.val_y) and np.array_equal(again.val_x, fashion.val_x)
    raw = read_idx(FASHION_MNIST_DIR / "train-labels-idx1-ubyte.gz")
    assert len(raw) == 60000
    assert np.array_equal(np.sort(np.concatenate([fashion.train_y, fashion.val_y])), np.sort(raw))


def test_mnist5k_and_digits():
    m = load_dataset("mnist5k")
    assert m.train_x.shape[1:] == (28, 28, 1) and m.train_x.dtype == np.uint8
    assert len(m.train_y) + len(m.val_y) + len(m.test_y) == 5000
    assert m.train_x.max() == 255
    d = load_dataset("digits")
    assert d.train_x.shape[1:] == (8, 8, 1) and d.train_x.max() == 255
    assert len(d.train_y) + len(d.val_y) + len(d.test_y) == 1797


@pytest.fixture
def idx_copy(tmp_path):
    """An uncompressed copy of the Fashion-MNIST test files as a 4-file IDX folder."""
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        data = gzip.decompress((FASHION_MNIST_DIR / f"{name}.gz").read_bytes())
        (tmp_path / name).write_bytes(data)
        (tmp_path / name.replace("t10k", "train")).write_bytes(data)
    return tmp_path


def test_idx_folder_raw_files(idx_copy):
    ds = load_dataset(f"idx:{idx_copy}")
    assert ds.test_x.shape == (10000, 28, 28, 1)
    assert len(ds.train_y) + len(ds.val_y) == 10000


def test_wrong_magic(idx_copy):
    p = idx_copy / "train-images-idx3-ubyte"
    data = bytearray(p.read_bytes())
    data[0] = 0x42
    p.write_bytes(bytes(data))
    with pytest.raises(DataError, match="not an IDX file"):
        load_idx_folder(idx_copy)


def test_truncated(idx_copy):
    p = idx_copy / "t10k-images-idx3-ubyte"
    p.write_bytes(p.read_bytes()[:-100])
    with pytest.raises(DataError, match=r"truncated: header says 10000x28x28 \(7840000 bytes"):
        load_idx_folder(idx_copy)


def test_count_mismatch(idx_copy):
    p = idx_copy / "train-labels-idx1-ubyte"
    data = p.read_bytes()
    p.write_bytes(data[:4] + (9999).to_bytes(4, "big") + data[8:-1])
    with pytest.raises(DataError, match="train count mismatch: 10000 images .* but 9999 labels"):
        load_idx_folder(idx_copy)


def test_missing_file_and_folder(idx_copy, tmp_path):
    (idx_copy / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError, match="missing t10k-labels-idx1-ubyte"):
        load_idx_folder(idx_copy)
    with pytest.raises(DataError, match="no such folder"):
        load_dataset(f"idx:{tmp_path / 'nope'}")


def test_corrupt_gzip(tmp_path):
    src = FASHION_MNIST_DIR / "t10k-labels-idx1-ubyte.gz"
    p = tmp_path / "t10k-labels-idx1-ubyte.gz"
    shutil.copy(src, p)
    p.write_bytes(p.read_bytes()[:200])
    with pytest.raises(DataError, match="corrupt gzip"):
        read_idx(p)


def test_unknown_dataset():
    with pytest.raises(DataError, match="unknown data set 'cifar'; choose one of fashion-mnist"):
        load_dataset("cifar")
