"""atheris (coverage-guided) fuzzing of the .bnn reader: `python fuzz/fuzz_bnnfile.py [libFuzzer
flags]`, e.g. -atheris_runs=200000 or -max_total_time=600. A Finding (any outcome but a model
or a clean BnnError, or a hang) is a crash: the input is saved as crash-<sha1> in the current
folder. The target and its modes are in fuzz_targets.py.
"""

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent))

# Everything the target reaches is imported here, so that atheris instruments it.
with atheris.instrument_imports(include=["bnn_mcu", "fuzz_targets"]):
    import fuzz_targets
    from bnn_mcu import emulator, summary  # noqa: F401
    from bnn_mcu.codegen import generate  # noqa: F401
    from bnn_mcu.ir import bnnfile, validate  # noqa: F401


def test_one_input(data: bytes) -> None:
    fuzz_targets.bnn_one_input(data)


if __name__ == "__main__":
    fuzz_targets.seed_models()
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
