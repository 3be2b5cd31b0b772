"""Every hostile model file of issue 14, refused by `bnn-mcu convert` under a memory limit:
one row per file with its size, exit code, wall time, peak RSS and the one-line error.

    python fuzz/hostile_files.py [--ulimit-kb 4000000]

Each file is built here (fuzz_targets.py), written to a temporary folder and converted in its
own process (`ulimit -v`); the payloads would create a marker file, which must stay absent.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fuzz_targets as T  # noqa: E402


def hostile_files(folder: Path, marker: Path) -> dict[str, Path]:
    files = {"front-zip differential.pt2": T.front_zip_differential(marker),
             "case-folded constants config.pt2": T.casefold_config(marker),
             "opaque constant.pt2": T.rezip(T.opaque_constant_members(marker)),
             "Max(s77, 10**10**10).pt2": T.pow_expression_program(),
             "1000 MiB JSON member.pt2": T.json_bomb_program(),
             "2 x 2^27 complex128 zeros.pt2": T.zeros_weights_program(),
             "width 2^20.ckpt": T.checkpoint_file(width=2**20),
             "dropout_in 2.0.ckpt": T.checkpoint_file(dropout_in=2.0)}
    out = {}
    for name, data in {**files, **T.hostile_programs(marker)}.items():
        path = folder / (name if "." in name else f"{name}.pt2")
        path.write_bytes(data)
        out[path.name] = path
    sparse = folder / "8 GiB sparse.bnn"
    with open(sparse, "wb") as f:
        f.truncate(8 << 30)
    out[sparse.name] = sparse
    fifo = folder / "fifo.bnn"
    os.mkfifo(fifo)
    out[fifo.name] = fifo
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ulimit-kb", type=int, default=4_000_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        marker = tmp / "payload-ran"
        rows, worst = [], 0
        t0 = time.monotonic()  # the floor of every row: start Python, import bnn_mcu and torch
        subprocess.run(["bash", "-c", f"ulimit -v {args.ulimit_kb} && exec \"$@\"", "-",
                        sys.executable, "-c", "import bnn_mcu.cli, bnn_mcu.nn.export"],
                       check=True, timeout=300)
        base = (time.monotonic() - t0, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
        for name, path in hostile_files(tmp, marker).items():
            before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            t0 = time.monotonic()
            res = subprocess.run(["bash", "-c", f"ulimit -v {args.ulimit_kb} && exec \"$@\"", "-",
                                  sys.executable, "-m", "bnn_mcu.cli", "convert", str(path), "-o",
                                  str(tmp / "out.bnn")], capture_output=True, text=True,
                                 timeout=300)
            secs = time.monotonic() - t0
            rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            size = path.stat().st_size if path.is_file() else 0
            msg = res.stderr.strip().replace(str(path), "FILE")
            rows.append((name, size, res.returncode, secs, max(rss, before), msg))
            worst = max(worst, rss)
        print(f"| file | bytes | exit | s | peak RSS MB (so far) | message |\n|---|---|---|---|---|---|")
        for name, size, rc, secs, rss, msg in rows:
            print(f"| {name} | {size:,} | {rc} | {secs:.1f} | {rss // 1024} | "
                  f"{msg[:160].replace('|', '/')}{'...' if len(msg) > 160 else ''} |")
        print(f"baseline (start Python, import bnn_mcu and torch, no model): {base[0]:.1f} s, "
              f"{base[1] // 1024} MB; highest peak RSS of any row: {worst // 1024} MB")
        ok = all(r[2] == 2 and r[5].count("\n") == 0 for r in rows) and not marker.exists()
        print(f"marker file: {'CREATED' if marker.exists() else 'absent'}; every file refused "
              f"with one line and exit 2: {'yes' if ok else 'NO'}")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
