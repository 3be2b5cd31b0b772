"""bnn-mcu: binarized neural networks on microcontrollers, bit-exact from PyTorch to the chip.

The Python API (the `bnn-mcu` command is these functions plus printing):

    import bnn_mcu

    model = bnn_mcu.load("model.pt")       # .pt/.pt2 torch.export, .ckpt, .bnn; or from memory:
    # model = bnn_mcu.convert(my_module, input_shape=(28, 28, 1))
    print(model.summary())                 # per-layer table in deployed bytes
    model.save("model.bnn")                # the integer model: packed bits, int32 thresholds

    result = bnn_mcu.verify(model, data="fashion-mnist")        # PyTorch vs emulator, every bit
    print(result.table()); assert result.ok
    bnn_mcu.generate(model, "out/c", core="cortex-m4")          # C99 + runtime + README
    bnn_mcu.verify(model, data="fashion-mnist", target="qemu:mps2-an386")   # the C on a Cortex-M4
    print(bnn_mcu.bench(model, target="qemu:mps2-an386").table())           # exact instructions

Functions: load, convert, train, evaluate, predict, verify, generate, bench (see each one's
help). Targets: "emulator", "host", "qemu:BOARD", "qemu:all", "serial:PORT", "pio:PROJECT:ENV".
Errors a user can fix raise BnnError with a one-line message; a parity failure is a result
whose .ok is False. Nothing imports torch until a PyTorch model is read.
"""

__version__ = "0.1.0"

# Importing a submodule binds its name on this package, and bench.py and verify.py are named
# like two API functions: they are imported first, so the functions bound below win.
from . import bench as _bench_module, verify as _verify_module  # noqa: F401,E402
from .api import (BenchResult, Generated, Model, Prediction, VerifyResult, bench, convert,
                  evaluate, generate, load, predict, train, verify)
from .data import load_dataset
from .errors import BnnError

__all__ = ["load", "convert", "train", "evaluate", "predict", "verify", "generate", "bench",
           "load_dataset", "Model", "Prediction", "VerifyResult", "Generated", "BenchResult",
           "BnnError", "__version__"]
