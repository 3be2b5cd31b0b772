"""The Python API: the README's example runs as written, help(bnn_mcu) documents it, and its
errors are the CLI's one-line BnnErrors, raised before any slow work."""

import pydoc
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import bnn_mcu
from bnn_mcu import BnnError
from bnn_mcu.errors import InputShapeError

ROOT = Path(__file__).resolve().parent.parent


def readme_example() -> str:
    """The first ```python block of the README's "Python API" section."""
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    m = re.search(r"```python\n(.*?)```", section, re.S)
    assert m, "the README's Python API section has no ```python block"
    return m.group(1)


@pytest.mark.qemu
def test_readme_example_runs_as_written(tmp_path):
    """Train, summarize, convert, verify (PyTorch and QEMU Cortex-M4), generate, bench."""
    p = subprocess.run([sys.executable, "-c", readme_example()], cwd=tmp_path,
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    assert p.stdout.count("PARITY OK") == 1  # the PyTorch-vs-emulator table
    assert "instructions per inference" in p.stdout
    assert (tmp_path / "out" / "digits.bnn").is_file()
    assert (tmp_path / "out" / "digits_c" / "bnn_model.c").is_file()
    # the saved .bnn is the model the example converted: same hash back
    loaded = bnn_mcu.load(tmp_path / "out" / "digits.bnn")
    assert re.search(rf"hash {loaded.hash[:16]}>", p.stdout)


def test_help_documents_every_public_name():
    text = pydoc.render_doc(bnn_mcu, renderer=pydoc.plaintext)
    for name in bnn_mcu.__all__:
        obj = getattr(bnn_mcu, name)
        if name.startswith("__"):
            continue
        assert obj.__doc__ and len(obj.__doc__.strip()) > 20, name
        first = obj.__doc__.strip().splitlines()[0][:40]
        assert name in text and first in text, (name, first)
    assert "VERSION" in text and "bnn_mcu.load(" in text


def test_api_names_survive_submodule_imports():
    """bench.py and verify.py are submodules named like API functions."""
    import bnn_mcu.bench  # noqa: F401
    import bnn_mcu.verify  # noqa: F401
    assert callable(bnn_mcu.verify) and callable(bnn_mcu.bench)
    assert bnn_mcu.verify.__module__ == "bnn_mcu.api"


def test_import_does_not_load_torch():
    code = "import sys, bnn_mcu; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60).stdout
    assert out.strip() == "False"


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A random integer model (no training) saved as .bnn."""
    from bnn_mcu.ir import bnnfile
    from bnn_mcu.ir.synthetic import random_model
    path = tmp_path_factory.mktemp("api") / "r.bnn"
    bnnfile.save(random_model(3, (8, 8, 1)), path)
    return path


def test_load_predict_save_roundtrip(small, tmp_path):
    from bnn_mcu import emulator
    model = bnn_mcu.load(small)
    assert model.program is None and model.input_shape == (8, 8, 1)
    x = np.random.default_rng(1).integers(0, 256, (20, 8, 8), dtype=np.uint8)
    p = bnn_mcu.predict(model, x)
    ref = emulator.run(model.ir, x[..., None])
    assert np.array_equal(p.scores, ref.scores) and np.array_equal(p.classes, ref.predictions)
    digest = model.save(tmp_path / "new" / "copy.bnn")
    assert digest == model.hash == bnn_mcu.load(tmp_path / "new" / "copy.bnn").hash
    assert "total" in model.summary() and model.totals()["flash_bytes"] == model.ir.param_bytes


def test_errors_are_one_line_and_come_first(small, tmp_path):
    missing = tmp_path / "missing.pt"
    with pytest.raises(BnnError, match="missing.pt: no such file"):
        bnn_mcu.load(missing)
    # argument mistakes are found before the model file is read
    with pytest.raises(BnnError, match="unknown target 'fpga'"):
        bnn_mcu.verify(missing, target="fpga")
    with pytest.raises(BnnError, match="unknown QEMU board 'mps9'"):
        bnn_mcu.bench(missing, target="qemu:mps9")
    with pytest.raises(BnnError, match="bench needs a device target"):
        bnn_mcu.bench(missing, target="emulator")
    with pytest.raises(BnnError, match="add --platformio"):
        bnn_mcu.generate(missing, tmp_path / "c", boards=["pico"])
    with pytest.raises(BnnError, match="unknown board 'nucleo_zz'"):
        bnn_mcu.generate(missing, tmp_path / "c", platformio=True, boards=["nucleo_zz"])
    with pytest.raises(BnnError, match="unknown core 'cortex-m99'"):
        bnn_mcu.generate(missing, tmp_path / "c", core="cortex-m99")
    with pytest.raises(BnnError, match="a .bnn has no PyTorch reference"):
        bnn_mcu.verify(small, data="digits")
    with pytest.raises(InputShapeError, match=r"shape \(2, 9, 9\), the model takes N x 8 x 8"):
        bnn_mcu.predict(small, np.zeros((2, 9, 9), np.uint8))
    with pytest.raises(BnnError, match="not an nn.Module|takes an nn.Module"):
        bnn_mcu.convert(42)


def test_generate_accepts_the_target_spelling_of_a_qemu_board(small, tmp_path, monkeypatch):
    monkeypatch.setenv("BNN_PIO_CORE_DIR", str(tmp_path / "core"))  # QEMU envs write its platform
    g = bnn_mcu.generate(small, tmp_path / "p", platformio=True, boards=["qemu:mps2-an386"])
    assert g.envs == ["qemu-mps2-an386"]
    assert "[env:qemu-mps2-an386]" in (tmp_path / "p" / "platformio.ini").read_text()
