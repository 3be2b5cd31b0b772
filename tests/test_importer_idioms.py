"""Importer idioms beyond the outside corpus: PReLU slopes of both signs in the threshold chain,
and the note for a model that takes float pixels without scaling them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch
import torch.nn as nn

from bnn_mcu.models import convert_program
from bnn_mcu.verify import verify_against_pytorch

CLI = str(Path(sys.executable).with_name("bnn-mcu"))


def _sign(x):
    return torch.where(x >= 0, 1.0, -1.0)


class PReLUChain(nn.Module):
    """ReActNet's RPReLU between batch norm and the next sign, with slopes from -0.5 to 0.5: a
    negative slope makes the response non-monotone (constant +1 after the sign here), a
    positive one keeps it a threshold; both are exact."""

    def __init__(self):
        super().__init__()
        self.fc1, self.bn1 = nn.Linear(784, 32), nn.BatchNorm1d(32)
        self.prelu = nn.PReLU(32)
        self.fc2, self.bn2 = nn.Linear(32, 10), nn.BatchNorm1d(10)
        with torch.no_grad():
            self.prelu.weight.copy_(torch.linspace(-0.5, 0.5, 32))
            self.bn1.bias.copy_(torch.linspace(-0.3, 0.3, 32))

    def forward(self, x):
        x = x.flatten(1).float() / 255
        x = self.prelu(self.bn1(nn.functional.linear(x, _sign(self.fc1.weight), self.fc1.bias))
                       - 0.2)
        return self.bn2(nn.functional.linear(_sign(x), _sign(self.fc2.weight)))


class UnscaledFloat(nn.Module):
    """Takes float images and scales nothing (the user's transform did x / 255 outside)."""

    def __init__(self):
        super().__init__()
        self.fc1, self.bn1 = nn.Linear(784, 16, bias=False), nn.BatchNorm1d(16)
        self.fc2, self.bn2 = nn.Linear(16, 10, bias=False), nn.BatchNorm1d(10)

    def forward(self, x):
        x = torch.sign(self.bn1(nn.functional.linear(x.flatten(1), _sign(self.fc1.weight))))
        return self.bn2(nn.functional.linear(x, _sign(self.fc2.weight)))


def _calibrated(net, images):
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.momentum = None  # real statistics of the images
    net.train()
    with torch.no_grad():
        net(images)
    return net.eval()


def test_prelu_slopes_of_both_signs_are_exact(fashion):
    torch.manual_seed(0)
    net = _calibrated(PReLUChain(), torch.from_numpy(fashion.train_x[:2000, ..., 0]))
    ep = torch.export.export(net, (torch.from_numpy(fashion.train_x[:4, ..., 0]),),
                             dynamic_shapes=({0: torch.export.Dim.AUTO},))
    model = convert_program(ep, "prelu_chain")
    rep = verify_against_pytorch(ep, model, fashion.test_x[:2000], fashion.test_y[:2000])
    assert [(l.name, l.mismatching_bits) for l in rep.layers] == [("linear", 0)]
    assert rep.agree == 2000


def test_unscaled_float_input_is_converted_with_a_note(fashion, tmp_path):
    torch.manual_seed(0)
    images = torch.from_numpy(fashion.train_x[:2000, ..., 0]).float()
    net = _calibrated(UnscaledFloat(), images)
    ep = torch.export.export(net, (images[:4],), dynamic_shapes=({0: torch.export.Dim.AUTO},))
    torch.export.save(ep, tmp_path / "unscaled.pt2")
    r = subprocess.run([CLI, "convert", str(tmp_path / "unscaled.pt2"), "-o",
                        str(tmp_path / "unscaled.bnn")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip() == (
        "note: the model takes float input and scales nothing itself, so the device feeds it "
        "the raw pixel values 0..255; if it was trained on scaled input (e.g. x / 255 in a data "
        "transform), put that scaling in forward() and export again")
