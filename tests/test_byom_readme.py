"""The README's "Bring your own model" example runs as written and converts exactly."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def _example() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Bring your own model", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_example_converts_bit_exactly(tmp_path, fashion):
    subprocess.run([sys.executable, "-c", _example()], cwd=tmp_path, check=True, timeout=300)
    import torch

    from bnn_mcu.models import convert_program
    from bnn_mcu.verify import verify_against_pytorch

    ep = torch.export.load(tmp_path / "my_bnn.pt2")
    model = convert_program(ep, "my_bnn.pt2")
    x, y = fashion.test_x[:2000], fashion.test_y[:2000]
    rep = verify_against_pytorch(ep, model, x, y)
    assert rep.mismatching_bits == 0 and rep.agree == len(x)
    assert rep.reference == "PyTorch (float64)"  # x / 127.5 - 1 is not exact in float32
    assert model.meta["exact_float32"] is False and model.ops[0].out_channels == 128


def test_inspect_graph_shows_where_a_refused_model_stops(tmp_path):
    """A model with average pooling between binary layers: the table marks the avg-pool node,
    the error is one line naming it."""
    code = '''
import torch, torch.nn as nn, torch.nn.functional as F
def sign(x):
    return torch.where(x >= 0, 1.0, -1.0)
class AvgNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.c, self.b, self.fc = nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Linear(4 * 13 * 13, 10)
    def forward(self, x):
        x = (x.unsqueeze(1).float() - 128) / 128
        x = sign(self.b(F.conv2d(x, sign(self.c.weight))))
        x = sign(F.avg_pool2d(x, 2))
        return F.linear(x.flatten(1), sign(self.fc.weight))
ep = torch.export.export(AvgNet().eval(), (torch.zeros(2, 28, 28, dtype=torch.uint8),))
torch.export.save(ep, "avg.pt2")
'''
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True, timeout=300)
    cli = Path(sys.executable).parent / "bnn-mcu"
    r = subprocess.run([str(cli), "inspect", "avg.pt2", "--graph"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert r.stderr.strip().count("\n") == 0
    assert "node 'avg_pool2d' (avg_pool2d.default): averages a layer's outputs" in r.stderr
    rows = {line.split()[0]: line for line in r.stdout.splitlines() if line.strip()}
    assert "STOPPED HERE" in rows["avg_pool2d"]
    assert "binary conv 'conv2d'" in rows["conv2d"]
    assert "input scaling: 0.0078125*x-1" in rows["div"]
    assert "(not reached)" in rows["linear"]
