"""Small trained models shared by the device tests (trained once per session, on real data)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path


def train_preset(fashion, preset: str, out: Path, n_train: int, epochs: int = 1, **cfg) -> Path:
    from bnn_mcu.nn.presets import ModelConfig
    from bnn_mcu.nn.train import TrainConfig, train

    data = replace(fashion, train_x=fashion.train_x[:n_train], train_y=fashion.train_y[:n_train],
                   val_x=fashion.val_x[:1000], val_y=fashion.val_y[:1000],
                   test_x=fashion.test_x[:500], test_y=fashion.test_y[:500])
    mcfg = ModelConfig(preset, data.image_shape, data.num_classes, **cfg)
    train(mcfg, TrainConfig(epochs=epochs, bn_batches=10), data, out, progress=False)
    return out


def plain_model(fashion, out: Path) -> Path:
    import torch
    from plain_bnn import export_plain, train_plain

    ep = export_plain(train_plain(fashion.train_x[:10000, ..., 0], fashion.train_y[:10000], steps=80))
    with open(out, "wb") as f:
        torch.export.save(ep, f)
    return out
