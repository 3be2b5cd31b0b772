import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "fixtures"))

FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(scope="session")
def fashion():
    from bnn_mcu.data import load_dataset
    if not FASHION.is_dir():
        pytest.fail("Fashion-MNIST is missing: apt-get install dataset-fashion-mnist (make setup)")
    return load_dataset("fashion-mnist")


def have(tool: str) -> bool:
    return shutil.which(tool) is not None


@pytest.fixture(scope="session")
def trained_models(tmp_path_factory, fashion):
    """{name: .pt path}: our mlp and cnn presets and a plain-PyTorch BNN, briefly trained."""
    from models import plain_model, train_preset
    d = tmp_path_factory.mktemp("models")
    return {
        "mlp": train_preset(fashion, "mlp", d / "mlp.pt", n_train=20000),
        "cnn": train_preset(fashion, "cnn", d / "cnn.pt", n_train=3000),
        "plain": plain_model(fashion, d / "plain.pt"),
    }
