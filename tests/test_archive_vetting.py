"""Issue 14: model files are data. Each attack found against the landed vetting is built here,
refused with one line, without running code (the marker its payload would write stays absent),
within seconds and (test_attacks_under_a_memory_limit) under `ulimit -v 4000000`."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bnn_mcu.errors import ModelError
from bnn_mcu.models import is_bnn_file, load_model

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "fuzz"))
import fuzz_targets as T  # noqa: E402


def refused(path: Path, pattern: str, seconds: float = 30.0) -> str:
    """load_model refuses `path` with one line matching `pattern`, within `seconds` (the
    attacks ran for minutes or forever; a refusal takes milliseconds on an idle machine)."""
    t0 = time.monotonic()
    with pytest.raises(ModelError, match=pattern) as e:
        load_model(path)
    assert time.monotonic() - t0 < seconds
    assert "\n" not in str(e.value)
    return str(e.value)


# ---- two zip readers ------------------------------------------------------------------------

def test_front_zip_differential_is_refused(tmp_path):
    """A malicious zip in front of a harmless one: torch loaded the malicious one (canary),
    the vetting read the harmless one."""
    import torch

    marker = tmp_path / "ran"
    data = T.front_zip_differential(marker)
    try:  # the canary: torch's own loader runs the payload of this very file
        torch.export.load(io.BytesIO(data))
    except Exception:  # noqa: BLE001 - only the marker matters here
        pass
    assert marker.exists(), "the crafted file no longer fools torch: rebuild the attack"
    marker.unlink()
    p = tmp_path / "evil.pt2"
    p.write_bytes(data)
    refused(p, r"refused: its central directory is [\d,]+ bytes away from where its end record "
               r"says \(two zip readers could see different files\)")
    assert not marker.exists()


def test_names_equal_after_case_folding_are_refused(tmp_path):
    marker = tmp_path / "ran"
    p = tmp_path / "evil.pt2"
    p.write_bytes(T.casefold_config(marker))
    refused(p, r"holds both '.*model_constants_config.json' and "
               r"'.*model_constants_config.JSON', one name to torch's reader")
    assert not marker.exists()


@pytest.mark.parametrize("name, make, message", [
    ("leading bytes", lambda: bytes(100) + T.seed_program_bytes(),
     "100 bytes precede its first zip entry"),
    ("trailing bytes", lambda: T.seed_program_bytes() + b"x",
     "end record is not the last 22 bytes"),
    ("duplicate names", T.duplicate_member, "holds both .* one name to torch's reader"),
])
def test_archives_the_readers_could_see_differently_are_refused(tmp_path, name, make, message):
    p = tmp_path / "evil.pt2"
    p.write_bytes(make())
    refused(p, message)


def test_pickled_payloads_are_refused_whatever_the_member_is_called(tmp_path):
    marker = tmp_path / "ran"

    def custom_ref(m, root):  # a custom object named by the real constants config
        name = f"{root}/data/constants/model_constants_config.json"
        m[name] = json.dumps({"config": {"c": {"path_name": "custom_obj_0", "is_param": False,
                                               "use_pickle": False, "tensor_meta": None}}}).encode()

    def extra_config(m, root):  # use_pickle in a JSON member of another name
        m[f"{root}/extra/weights_config.json"] = json.dumps(
            {"config": {"w": {"path_name": "weight_0", "use_pickle": True}}}).encode()

    for i, (edit, message) in enumerate([
            (custom_ref, "payload 'custom_obj_0', which is not a plain tensor"),
            (extra_config, "'extra/weights_config.json' asks for a pickled object")]):
        p = tmp_path / f"evil{i}.pt2"
        p.write_bytes(T.edited_program(edit))
        refused(p, message)
    p = tmp_path / "opaque.pt2"
    p.write_bytes(T.rezip(T.opaque_constant_members(marker)))
    refused(p, "opaque_obj_0'?, which is not part of a plain torch.export program")
    assert not marker.exists()


def test_trust_pickle_still_loads_a_plain_program(tmp_path):
    p = tmp_path / "tiny.pt2"
    p.write_bytes(T.seed_program_bytes())
    assert load_model(p, trust_pickle=True).num_classes == 3


# ---- budgets --------------------------------------------------------------------------------

def test_pow_in_a_shape_expression_is_refused_at_once(tmp_path):
    p = tmp_path / "pow.pt2"
    p.write_bytes(T.pow_expression_program())
    refused(p, r"shape expression 'Max\(s77, 10\*\*10\*\*10\)'")


def test_total_tensor_bytes_are_budgeted(tmp_path):
    """Two empty records of 2**27 complex128 each: 4 GiB of zeros, each weight under the old
    per-weight element limit."""
    p = tmp_path / "zeros.pt2"
    p.write_bytes(T.zeros_weights_program())
    refused(p, r"weights and constants take 4,294,96\d,\d+ bytes in all, more than the "
               r"536,870,912")


@pytest.fixture(scope="module")
def json_bomb(tmp_path_factory):
    p = tmp_path_factory.mktemp("bomb") / "json.pt2"
    p.write_bytes(T.json_bomb_program())
    return p


def test_a_huge_json_member_is_refused_before_parsing(json_bomb):
    assert json_bomb.stat().st_size < 2_000_000
    refused(json_bomb, r"'models/model.json' is 1,04\d,\d{3},\d{3} bytes, more than the 8,388,608")


def test_bnn_files_are_checked_with_stat_first(tmp_path):
    sparse = tmp_path / "huge.bnn"
    with open(sparse, "wb") as f:
        f.write(T.seed_models()[0][:64])
        f.truncate(8 << 30)  # 8 GiB, sparse: nothing is written
    t0 = time.monotonic()
    with pytest.raises(ModelError, match=r"is 8,589,934,592 bytes, more than the"):
        load_model(sparse)
    from bnn_mcu.ir import bnnfile
    with pytest.raises(ModelError, match=r"more than the 268,435,456 a .bnn model file"):
        bnnfile.load(sparse)
    assert time.monotonic() - t0 < 2


def test_a_fifo_is_refused_not_waited_for(tmp_path):
    fifo = tmp_path / "model.bnn"
    os.mkfifo(fifo)
    assert not is_bnn_file(fifo)
    code = ("import sys\nfrom bnn_mcu.models import load_model\nfrom bnn_mcu.ir import bnnfile\n"
            "for f in (load_model, bnnfile.load):\n"
            "    try:\n        f(sys.argv[1])\n    except Exception as e:\n        print(e)\n")
    res = subprocess.run([sys.executable, "-c", code, str(fifo)], capture_output=True, text=True,
                         timeout=60)
    assert res.stdout.count("is not a regular file (a FIFO, socket or device)") == 2, res


@pytest.mark.parametrize("config, message", [
    (dict(width=2**20), r"checkpoint config width = 1048576: expected an integer in 1..65,536"),
    (dict(width=60000, depth=8), r"the checkpoint's model would take [\d,]+ bytes, more than"),
    (dict(dropout_in=2.0), r"checkpoint config dropout_in = 2.0: expected a probability"),
    (dict(input_shape=[28, 28]), r"checkpoint config input_shape = \[28, 28\]"),
    (dict(evil=1), r"config field 'evil' is unknown or missing"),
    (dict(), r"its weights do not match its config mlp"),
])
def test_checkpoint_configs_are_validated_before_allocation(tmp_path, config, message):
    import tracemalloc

    p = tmp_path / "evil.ckpt"
    p.write_bytes(T.checkpoint_file(**config))
    tracemalloc.start()
    refused(p, message)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 50_000_000


# ---- all of them end to end, under a 4 GB address-space limit -------------------------------

_DRIVER = r"""
import json, sys, time, io, contextlib
from bnn_mcu.cli import main
import bnn_mcu.nn.export  # torch imported before the clock starts
out = {}
for path in sys.argv[2:]:
    err = io.StringIO()
    t0 = time.monotonic()
    with contextlib.redirect_stderr(err):
        rc = main(["convert", path, "-o", sys.argv[1]])
    out[path] = [rc, err.getvalue(), time.monotonic() - t0]
print(json.dumps(out))
"""


def test_attacks_under_a_memory_limit(tmp_path, json_bomb):
    """`bnn-mcu convert` on every attack with `ulimit -v 4000000`: exit 2, one line, seconds,
    no marker, no .bnn written."""
    marker = tmp_path / "ran"
    files = {"differential.pt2": T.front_zip_differential(marker),
             "casefold.pt2": T.casefold_config(marker),
             "pow.pt2": T.pow_expression_program(),
             "zeros.pt2": T.zeros_weights_program(),
             "width.ckpt": T.checkpoint_file(width=2**20),
             "dropout.ckpt": T.checkpoint_file(dropout_in=2.0)}
    paths = [str(json_bomb)]
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        paths.append(str(tmp_path / name))
    sparse = tmp_path / "sparse.bnn"
    with open(sparse, "wb") as f:
        f.truncate(8 << 30)
    paths.append(str(sparse))
    out = tmp_path / "out.bnn"
    res = subprocess.run(["bash", "-c", 'ulimit -v 4000000 && exec "$@"', "-", sys.executable,
                          "-c", _DRIVER, str(out), *paths], capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    results = json.loads(res.stdout.splitlines()[-1])
    for path, (rc, err, seconds) in results.items():
        assert rc == 2 and err.count("\n") == 1 and err.startswith("bnn-mcu: error: "), (path, err)
        # the attacks ran for minutes; a refusal takes well under a second on an idle machine
        # (fuzz/hostile_files.py prints the figures): 30 s leaves room for a busy CI runner
        assert "Traceback" not in err and seconds < 30, (path, err, seconds)
    assert not marker.exists() and not out.exists()
