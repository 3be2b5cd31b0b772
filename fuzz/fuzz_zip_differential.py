"""The two-reader differential: Python's zipfile against torch's own zip reader (miniz), on
zips built to make them disagree (data in front, a second zip, rebased directories, names
that differ in case, rewritten offsets and sizes). A zip that bnn_mcu.nn.archive.open_archive
accepts must list the same members, sizes and bytes through both; see fuzz_targets.check_zip_pair.

    python fuzz/fuzz_zip_differential.py -atheris_runs=100000     coverage-guided (atheris)
    python fuzz/fuzz_zip_differential.py --random 20000          seeded random inputs, no atheris
"""

import collections
import logging
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def random_run(n: int, seed: int = 0) -> None:
    import fuzz_targets
    rng = random.Random(seed)
    counts = collections.Counter()
    t0 = time.monotonic()
    for i in range(n):
        data = bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 48)))
        mode = fuzz_targets.make_zip_pair_input(data)
        counts[fuzz_targets.check_zip_pair(mode)] += 1
        if (i + 1) % 5000 == 0 or i + 1 == n:
            print(f"{i + 1:,} inputs in {time.monotonic() - t0:.0f} s: "
                  + ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items())), flush=True)


if __name__ == "__main__":
    logging.disable(logging.WARNING)
    if len(sys.argv) >= 3 and sys.argv[1] == "--random":
        random_run(int(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 0)
        sys.exit(0)
    import atheris

    with atheris.instrument_imports(include=["bnn_mcu", "fuzz_targets"]):
        import fuzz_targets
        from bnn_mcu.nn import archive  # noqa: F401

    atheris.Setup(sys.argv, lambda data: fuzz_targets.zip_pair_one_input(data))
    atheris.Fuzz()
