"""bench --report / verify --report open in a real headless browser (Debian's chromium) with
their record, table and charts: the DOM after parsing, and pixels of a screenshot."""

import re
import shutil
import subprocess
import sys
import tempfile

import pytest

from bnn_mcu.ir import bnnfile
from bnn_mcu.ir.bnnfile import model_hash
from bnn_mcu.ir.synthetic import random_model
from conftest import ROOT, have

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.skipif(not (have("arm-none-eabi-gcc") and have("qemu-system-arm")),
                       reason="needs gcc-arm-none-eabi and qemu-system-arm (make setup)"),
    pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (make setup)"),
]

BAR = (0x4E, 0x79, 0xA7)  # report_html's bar colour
HEADER = (0xF3, 0xF3, 0xF3)  # table header background


def cli(*args):
    p = subprocess.run([sys.executable, "-m", "bnn_mcu.cli", *map(str, args)], cwd=ROOT,
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    return p


def chromium(*args, timeout=60):
    # --no-sandbox: CI runs as root; a private profile keeps runs independent
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                               "--hide-scrollbars", f"--user-data-dir={profile}", *map(str, args)],
                              capture_output=True, text=True, timeout=timeout)


def colour_counts(png) -> dict:
    from PIL import Image
    img = Image.open(png).convert("RGB")
    return {colour: n for n, colour in img.getcolors(maxcolors=img.width * img.height)}


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("report") / "m.bnn"
    bnnfile.save(random_model(11), path)
    return path


def test_bench_report_renders_record_table_and_charts(model_file, tmp_path):
    page = tmp_path / "bench.html"
    cli("bench", model_file, "--target", "qemu:mps2-an386", "--report", page, "--clock-mhz", "80")
    model = bnnfile.load(model_file)
    dom = chromium("--dump-dom", page.as_uri()).stdout
    # the record a user keeps
    assert model_hash(model) in dom and "bnn-mcu version" in dom and "-mcpu=cortex-m4" in dom
    assert "mps2-an386 (cortex-m4)" in dom and "time at 80 MHz" in dom and "80 MHz (--clock-mhz)" in dom
    # the per-layer table: one row per layer, then argmax and the total
    table = re.search(r'<table class="layers">.*?</table>', dom, re.S).group(0)
    rows = re.findall(r"<tr>", table)
    assert len(rows) == 1 + len(model.ops) + 2
    for op in model.ops:
        assert f">{op.name}<" in table
    # charts: per layer, then flash and RAM on their own axes, each starting at 0
    for chart in ("layers-0", "flash-0", "ram-0"):
        svg = re.search(rf'<svg id="{chart}".*?</svg>', dom, re.S).group(0)
        assert svg.count('class="bar"') >= 3 and ">0<" in svg
    flash_axis = re.search(r'<svg id="flash-0".*?</svg>', dom, re.S).group(0)
    assert "bytes of flash" in flash_axis and "bytes of RAM" not in flash_axis

    shot = tmp_path / "bench.png"
    res = chromium("--window-size=1200,2000", f"--screenshot={shot}", page.as_uri())
    assert shot.exists(), res.stderr
    colours = colour_counts(shot)
    assert colours.get(BAR, 0) > 5000  # the bars were painted
    assert colours.get(HEADER, 0) > 2000  # so were the tables' header cells


def test_verify_report_records_parity_and_accuracy(model_file, tmp_path):
    page = tmp_path / "verify.html"
    out = cli("verify", model_file, "--target", "qemu:microbit", "--limit", "10", "--report", page)
    assert "PARITY OK" in out.stdout and "est. cycles" in out.stdout
    dom = chromium("--dump-dom", page.as_uri()).stdout
    assert "bnn-mcu verify report" in dom and "fashion-mnist test set, 10 images" in dom
    parity = re.search(r'<table class="parity">.*?</table>', dom, re.S).group(0)
    assert "qemu:microbit" in parity and "PASS" in parity and "%" in parity
    assert "16 MHz (board default)" in dom and '<svg id="layers-0"' in dom


def test_verify_report_needs_a_device_target(model_file, tmp_path):
    p = subprocess.run([sys.executable, "-m", "bnn_mcu.cli", "verify", model_file, "--report",
                        tmp_path / "v.html"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode != 0 and "Traceback" not in p.stderr
    assert "--report records a device run" in p.stderr
