"""Training on several processes with torchrun + DDP (bnn_mcu/nn/distributed.py)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from bnn_mcu.nn.distributed import World, shard


def test_shards_partition_each_epoch_into_equal_parts():
    perm = torch.from_numpy(np.random.default_rng(0).permutation(1257))
    for size in (1, 2, 3, 4):
        parts = [shard(perm, World(rank, size)) for rank in range(size)]
        assert len({len(p) for p in parts}) == 1  # equal steps: no process waits forever
        seen = torch.cat(parts)
        assert len(seen) == 1257 // size * size and len(set(seen.tolist())) == len(seen)
        assert set(seen.tolist()) <= set(perm.tolist())
    assert torch.equal(shard(perm, World()), perm)  # one process: the plain loop's order


def test_two_processes_train_a_model_that_deploys_exactly(tmp_path):
    """torchrun with two CPU processes (gloo): one set of outputs written by rank 0, the
    processes end with identical weights (else train raises and torchrun fails), and the model
    converts and matches its integer twin on every test image."""
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists():
        torchrun = shutil.which("torchrun")
    if torchrun is None:
        pytest.skip("torchrun not installed")
    out = tmp_path / "m.pt"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    p = subprocess.run([str(torchrun), "--standalone", "--nproc-per-node", "2", "--no-python",
                        sys.executable, "-m", "bnn_mcu.cli", "train", "--preset", "mlp",
                        "--width", "64", "--data", "digits", "--epochs", "6", "--lr-end", "1e-4",
                        "-q", "-o", str(out)], capture_output=True, text=True, timeout=600, env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stdout.count("best epoch") == 1 and p.stdout.count("digits: 8x8x1") == 1, p.stdout
    metrics = json.loads(out.with_suffix(".json").read_text())
    assert metrics["processes"] == 2
    assert metrics["test_acc"] > 0.7, metrics["test_acc"]  # 10 classes: chance is 0.1 (seen: 0.78)

    from bnn_mcu.data import load_dataset
    from bnn_mcu.models import convert_program
    from bnn_mcu.nn.export import load_program
    from bnn_mcu.verify import verify_against_pytorch
    data = load_dataset("digits")
    ep = load_program(out)
    rep = verify_against_pytorch(ep, convert_program(ep, out.name), data.test_x, data.test_y)
    assert rep.ok and rep.vectors == len(data.test_y)
