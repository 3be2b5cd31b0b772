"""Parity ladder levels 3-4: the generated C on the host and on six QEMU Cortex-M boards equals the
emulator on every score of every vector and on every traced layer's bits, for our presets and a
plain-PyTorch BNN, on real Fashion-MNIST test images; the serial path streams hundreds of vectors
per board, the rest goes through the bulk region."""

import numpy as np
import pytest

from bnn_mcu import emulator
from bnn_mcu.errors import TargetError
from bnn_mcu.models import load_model
from bnn_mcu.targets.boards import QEMU_BOARDS
from bnn_mcu.targets.session import Target, run_on_device
from bnn_mcu.verify import compare_device
from conftest import have

pytestmark = pytest.mark.skipif(not (have("arm-none-eabi-gcc") and have("qemu-system-arm")),
                                reason="needs gcc-arm-none-eabi and qemu-system-arm (make setup)")


@pytest.fixture(scope="module")
def models(trained_models):
    return {name: load_model(path) for name, path in trained_models.items()}


def check(model, target, x, y, stream, trace=4):
    emu = emulator.run(model, x, trace=True)
    res = run_on_device(model, target, x, stream=stream, trace=trace, progress=False)
    row = compare_device(model, res, emu, y)
    assert row.vectors == len(x) and row.streamed == stream and row.traced == trace
    assert row.trace_bits > 0
    assert row.score_mismatches == 0 and row.class_mismatches == 0, row
    assert row.trace_mismatching_bits == 0, row
    return row


@pytest.mark.parametrize("name", ["mlp", "cnn", "plain"])
def test_host_whole_test_set(models, fashion, name):
    check(models[name], Target("host", "host"), fashion.test_x, fashion.test_y, stream=300)


@pytest.mark.qemu
@pytest.mark.parametrize("board", QEMU_BOARDS)
def test_qemu_board_streams_and_bulk(models, fashion, board):
    # a few hundred vectors through the serial protocol, the rest preloaded (bulk)
    check(models["mlp"], Target("qemu", board), fashion.test_x[:1500], fashion.test_y[:1500],
          stream=300)
    for name in ("cnn", "plain"):
        check(models[name], Target("qemu", board), fashion.test_x[:400], fashion.test_y[:400],
              stream=40, trace=2)


def test_wrong_model_hash_is_refused(models, fashion):
    """Firmware built for one model, host expecting another: refused before any result."""
    from bnn_mcu.targets import session
    a, b = models["mlp"], models["plain"]
    fw = session.build_runner(a, "host", quiet=True)
    from bnn_mcu.ir.bnnfile import model_hash
    from bnn_mcu.targets.link import DeviceLink
    from bnn_mcu.targets.qemu import start_target
    with start_target("host", fw.elf) as ser:
        link = DeviceLink(ser, timeout=5.0, expected_hash=model_hash(b)[:16])
        with pytest.raises(TargetError, match=r"the board runs model [0-9a-f]{16}, expected [0-9a-f]{16}: build and flash"):
            link.wait_ready()
        link.close()
