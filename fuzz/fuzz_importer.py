"""atheris (coverage-guided) fuzzing of PyTorch model loading: the archive vetting, torch's
loaders and the importer, through bnn_mcu.models.load_model as the CLI calls it.
`python fuzz/fuzz_importer.py [libFuzzer flags]`, e.g. -atheris_runs=3000. A Finding (any
outcome but a model or a clean BnnError, a hang, or a pickle that ran) is a crash. The
target and its modes are in fuzz_targets.py.
"""

import logging
import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent))

with atheris.instrument_imports(include=["bnn_mcu", "fuzz_targets"]):
    import fuzz_targets
    from bnn_mcu import models  # noqa: F401
    from bnn_mcu.ir import passes, validate  # noqa: F401
    from bnn_mcu.nn import export, importer  # noqa: F401


def test_one_input(data: bytes) -> None:
    fuzz_targets.model_one_input(data)


if __name__ == "__main__":
    logging.disable(logging.WARNING)  # torch logs tracebacks for every damaged archive
    fuzz_targets.seed_program_bytes("mlp")
    fuzz_targets.seed_program_bytes("cnn")
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
