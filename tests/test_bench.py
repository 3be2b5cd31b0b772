"""bench: exact, repeatable per-layer instruction counts; the JSON contract; the HTML report."""

import json
import subprocess
import sys

import pytest

from bnn_mcu.ir import bnnfile
from bnn_mcu.ir.synthetic import random_model
from conftest import ROOT, have

pytestmark = pytest.mark.skipif(not (have("arm-none-eabi-gcc") and have("qemu-system-arm")),
                                reason="needs gcc-arm-none-eabi and qemu-system-arm (make setup)")


def bench(*args):
    p = subprocess.run([sys.executable, "-m", "bnn_mcu.cli", "bench", *map(str, args)],
                       cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    return p.stdout


def test_json_contract_and_repeatable_counts(tmp_path):
    path = tmp_path / "m.bnn"
    model = random_model(11)
    bnnfile.save(model, path)
    a = json.loads(bench(path, "--target", "qemu:mps2-an386", "--json", "--report", tmp_path / "r.html"))
    b = json.loads(bench(path, "--target", "qemu:mps2-an386", "--json"))
    for key in ("board", "unit", "per_inference", "flash_bytes", "code_bytes", "arena_bytes",
                "stack_bytes", "layers"):
        assert key in a, key
    assert a["board"] == "mps2-an386" and a["unit"] == "instructions"
    assert [(l["name"], l["op"], l["count"], l["macs"]) for l in a["layers"]] == \
        [(l["name"], l["op"], l["count"], l["macs"]) for l in b["layers"]]  # exact, twice
    assert a["per_inference"] == b["per_inference"] == sum(l["count"] for l in a["layers"]) + a["tail"]
    assert [l["op"] for l in a["layers"]] == [op.c_function for op in model.ops]
    assert [l["macs"] for l in a["layers"]] == [op.macs for op in model.ops]
    assert a["flash_bytes"] == model.param_bytes and 0 < a["code_bytes"] < 20000
    assert 0 < a["stack_bytes"] < 16 * 1024
    html = (tmp_path / "r.html").read_text()
    assert "<svg" in html and "mps2-an386" in html and model.ops[0].name in html


def test_table_output_and_host_counter(tmp_path):
    path = tmp_path / "m.bnn"
    bnnfile.save(random_model(12), path)
    out = bench(path, "--target", "qemu:microbit")
    assert "microbit (cortex-m0):" in out and "instructions per inference" in out
    host = json.loads(bench(path, "--target", "host", "--json", "--repeats", "2"))
    # the host port counts CLOCK_MONOTONIC nanoseconds: ticks at 1 GHz
    assert host["unit"] == "ticks" and host["counter_hz"] == 10**9 and host["per_inference"] > 0
