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
