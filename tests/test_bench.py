"""bench: exact, repeatable per-layer instruction counts and cycle estimates; the JSON contract;
the HTML report (its rendering in a browser: tests/test_report_html.py)."""

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
    for key in ("board", "unit", "per_inference", "cycles_est", "flash_bytes", "code_bytes",
                "arena_bytes", "stack_bytes", "layers", "model_hash", "compiler", "clock_hz"):
        assert key in a, key
    assert a["board"] == "mps2-an386" and a["unit"] == "instructions"
    assert [(l["name"], l["op"], l["count"], l["cycles_est"], l["macs"]) for l in a["layers"]] == \
        [(l["name"], l["op"], l["count"], l["cycles_est"], l["macs"]) for l in b["layers"]]  # twice
    per = a["per_inference"]
    assert per == b["per_inference"]
    assert per["instructions"] == sum(l["count"] for l in a["layers"]) + a["tail"]
    assert per["cycles_est"] == a["cycles_est"] == \
        sum(l["cycles_est"] for l in a["layers"]) + a["tail_cycles_est"]
    # every instruction costs at least one cycle on a Cortex-M4, loads and taken branches more
    assert all(l["count"] < l["cycles_est"] < 3 * l["count"] for l in a["layers"])
    assert "-mcpu=cortex-m4" in a["compiler"] and "-O2" in a["compiler"]
    assert a["clock_hz"] == 25_000_000
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
    assert "estimated cortex-m0 cycles per inference" in out and "cycles (est.)" in out
    host = json.loads(bench(path, "--target", "host", "--json", "--repeats", "2"))
    # the host port counts CLOCK_MONOTONIC nanoseconds: ticks at 1 GHz
    assert host["unit"] == "ticks" and host["counter_hz"] == 10**9
    assert host["per_inference"]["ticks"] > 0 and host["cycles_est"] is None  # no estimate there
