"""A binarized input image (FINN's LFC: the sign of the scaled pixels) converts exactly: the
device binarizes the uint8 image itself (bnn_binarize_u8_b1) and the layers after it are binary."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from bnn_mcu.errors import ModelError
from bnn_mcu.ir import bnnfile
from bnn_mcu.ir.ops import BinarizeU8
from bnn_mcu.models import convert_program
from bnn_mcu.verify import verify_against_pytorch

CLI = str(Path(sys.executable).with_name("bnn-mcu"))


def _sign(x):
    return torch.where(x >= 0, 1.0, -1.0)


class LFCStyle(nn.Module):
    """After FINN's LFC for MNIST (finn-examples / brevitas_examples bnn_pynq LFC): the image is
    binarized as sign(2 * x / 255 - 1) before binary fully connected layers; here a binary conv
    with zero padding and a max-pool come first."""

    def __init__(self, bright_negative: bool = False):
        super().__init__()
        self.bright_negative = bright_negative
        self.conv, self.bn0 = nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)
        self.fc1, self.bn1 = nn.Linear(8 * 14 * 14, 48, bias=False), nn.BatchNorm1d(48)
        self.fc2, self.bn2 = nn.Linear(48, 10, bias=False), nn.BatchNorm1d(10)

    def forward(self, x):
        x = 2.0 * (x.float() / 255.0) - 1.0
        x = torch.sign(-x if self.bright_negative else x).unsqueeze(1)
        x = _sign(self.bn0(F.max_pool2d(F.conv2d(x, _sign(self.conv.weight), padding=1), 2)))
        x = _sign(self.bn1(F.linear(x.flatten(1), _sign(self.fc1.weight))))
        return self.bn2(F.linear(x, _sign(self.fc2.weight)))


def _exported(fashion, **kw):
    torch.manual_seed(0)
    net = LFCStyle(**kw)
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.momentum = None  # real statistics of Fashion-MNIST images
    net.train()
    with torch.no_grad():
        net(torch.from_numpy(fashion.train_x[:2000, ..., 0]))
    net.eval()
    return torch.export.export(net, (torch.from_numpy(fashion.train_x[:4, ..., 0]),))


def test_binarized_input_is_exact_on_the_test_set(fashion, tmp_path):
    ep = _exported(fashion)
    model = convert_program(ep, "lfc")
    first = model.ops[0]
    assert isinstance(first, BinarizeU8) and first.threshold == 128  # 2*127/255 - 1 < 0
    rep = verify_against_pytorch(ep, model, fashion.test_x, fashion.test_y)
    assert rep.mismatching_bits == 0 and rep.agree == len(fashion.test_x)
    assert rep.layers[0].compared  # the binarized image itself is compared bit by bit
    bnnfile.save(model, tmp_path / "lfc.bnn")
    again = bnnfile.load(tmp_path / "lfc.bnn")
    assert again.ops[0] == first


def test_binarized_input_on_the_host_c(fashion, tmp_path):
    ep = _exported(fashion)
    path = tmp_path / "lfc.pt2"
    torch.export.save(ep, path)
    r = subprocess.run([CLI, "verify", str(path), "--target", "host", "--data", "fashion-mnist",
                        "--limit", "300"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "PARITY OK" in r.stdout


def test_bright_pixels_negative_is_refused_with_a_fix(fashion):
    with pytest.raises(ModelError, match=r"node 'sign' \(sign.default\): binarizes the input image "
                                         r"with -1 for bright pixels"):
        convert_program(_exported(fashion, bright_negative=True), "lfc-inverted")
