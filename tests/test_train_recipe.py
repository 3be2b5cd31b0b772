"""Training recipe options (issue 12) and the thread choice (issue 16.6): each option still
deploys exactly, on tiny real data (the 8x8 digits), one or two epochs."""

import json
import math
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch

from bnn_mcu.errors import BnnError
from bnn_mcu.nn import train as train_mod
from bnn_mcu.nn.layers import LearnableBias, SignActivation, binarize, set_real
from bnn_mcu.nn.presets import ModelConfig, build_model
from bnn_mcu.nn.train import (TrainConfig, augment_batch, distillation_loss, learning_rate, multiply_accumulates,
                              pick_threads, train)


@pytest.fixture(scope="module")
def digits():
    from bnn_mcu.data import load_dataset
    return load_dataset("digits")


def _parity(out, data):
    from bnn_mcu.models import convert_program
    from bnn_mcu.nn.export import load_program
    from bnn_mcu.verify import verify_against_pytorch
    ep = load_program(out)
    return verify_against_pytorch(ep, convert_program(ep, out.name), data.test_x, data.test_y)


def test_schedules_start_at_lr_start_and_reach_lr_end():
    exp = TrainConfig(epochs=10, lr_start=1e-2, lr_end=1e-4)
    assert learning_rate(exp, 0, 10) == pytest.approx(1e-2)
    assert learning_rate(exp, 10, 10) == pytest.approx(1e-4)
    assert learning_rate(exp, 3, 10, 0.0) == learning_rate(exp, 3, 10, 0.9)  # per epoch
    cos = replace(exp, lr_schedule="cosine")
    points = [learning_rate(cos, e, 10, f) for e in range(10) for f in (0.0, 0.5)]
    assert points[0] == pytest.approx(1e-2) and all(a > b for a, b in zip(points, points[1:]))
    assert learning_rate(cos, 5, 10) == pytest.approx((1e-2 + 1e-4) / 2)  # half way
    assert learning_rate(cos, 9, 10, 1.0) == pytest.approx(1e-4)


def test_distillation_loss_is_zero_only_when_the_distributions_agree():
    t = torch.tensor([[2.0, -1.0, 0.5], [0.0, 3.0, 1.0]])
    assert distillation_loss(t, t).item() == pytest.approx(0.0, abs=1e-7)
    assert distillation_loss(t + 5.0, t).item() == pytest.approx(0.0, abs=1e-6)  # softmax shift
    assert distillation_loss(t.flip(1), t).item() > 0.1


def test_real_mode_gives_hardtanh_activations_and_real_weights():
    model = build_model(ModelConfig("mlp", (8, 8, 1), 10, width=16)).eval()
    x = torch.randint(0, 256, (4, 8, 8), dtype=torch.uint8)
    acts = []
    hook = [m.register_forward_hook(lambda m, i, o: acts.append(o))
            for m in model.modules() if isinstance(m, SignActivation)]
    model(x)
    assert set(acts[0].unique().tolist()) <= {-1.0, 1.0}
    set_real(model, activations=True, weights=True)
    acts.clear()
    model(x)
    assert acts[0].abs().max() <= 1 and not set(acts[0].unique().tolist()) <= {-1.0, 1.0}
    lin = model.body[1]
    assert torch.equal(lin.binary_weight(), lin.weight)  # real weights: no sign
    set_real(model, activations=False, weights=False)
    assert set(lin.binary_weight().unique().tolist()) <= {-1.0, 1.0}
    for h in hook:
        h.remove()


@pytest.mark.parametrize("mode", ["shift", "flip", "shift-flip"])
def test_augmentations_move_each_image_on_its_own_and_never_touch_the_training_set(mode):
    x = torch.randint(1, 256, (64, 8, 8), dtype=torch.uint8)  # no zero pixel: shifts show
    before = x.clone()
    out = augment_batch(x, mode, torch.Generator().manual_seed(0))
    assert torch.equal(x, before) and out.shape == x.shape
    flipped = shifted = 0
    for a, b in zip(x, out):
        options = {}
        for f in ((False, True) if "flip" in mode else (False,)):
            src = a.flip(1) if f else a
            for dy in ((-2, -1, 0, 1, 2) if "shift" in mode else (0,)):
                for dx in ((-2, -1, 0, 1, 2) if "shift" in mode else (0,)):
                    # the image moved by (dy, dx), zeros where it left nothing
                    t = torch.zeros_like(src)
                    t[max(0, -dy):8 - max(0, dy), max(0, -dx):8 - max(0, dx)] = \
                        src[max(0, dy):8 + min(0, dy), max(0, dx):8 + min(0, dx)]
                    options[(f, dy, dx)] = t
        hit = [k for k, t in options.items() if torch.equal(t, b)]
        assert len(hit) == 1, (mode, hit)
        flipped += hit[0][0]
        shifted += hit[0][1:] != (0, 0)
    assert (flipped > 16) == ("flip" in mode) and (shifted > 32) == ("shift" in mode)


def test_sign_gradients_clip_and_approx_share_the_value_and_differ_only_in_gradient():
    x = torch.tensor([-1.5, -1.0, -0.75, -0.0, 0.0, 0.25, 0.5, 1.0, 1.25], requires_grad=True)
    grads = {}
    for kind in ("clip", "approx"):
        y = binarize(x, training=True, ste=kind)
        assert y.tolist() == [-1, -1, -1, 1, 1, 1, 1, 1, 1]  # sign(0) = sign(-0.0) = +1
        (g,) = torch.autograd.grad(y.sum(), x)
        grads[kind] = g.tolist()
    assert grads["clip"] == [0, 1, 1, 1, 1, 1, 1, 1, 0]
    assert grads["approx"] == [0, 0, 0.5, 2, 2, 1.5, 1, 0, 0]  # 2 - 2|x| on |x| <= 1


def test_approx_sign_gradient_trains_a_model_that_deploys_exactly(tmp_path, digits):
    out = tmp_path / "m.pt"
    cfg = TrainConfig(epochs=3, lr_schedule="cosine", ste="approx", bn_batches=5, threads=1)
    m = train(ModelConfig("mlp", digits.image_shape, 10, width=32), cfg, digits, out,
              progress=False)
    assert m["train_config"]["ste"] == "approx" and m["test_acc"] > 0.4, m["test_acc"]  # seen 0.60
    rep = _parity(out, digits)
    assert rep.ok and rep.correct_dev / rep.vectors == pytest.approx(m["test_acc"])
    with pytest.raises(BnnError, match="unknown sign gradient 'tanh'; choose clip or approx"):
        train(ModelConfig("mlp", digits.image_shape, 10, width=32), replace(cfg, ste="tanh"),
              digits, tmp_path / "n.pt", progress=False)


@pytest.mark.parametrize("preset", ["mlp", "cnn"])
def test_rsign_shifts_fold_into_thresholds_exactly(tmp_path, digits, preset):
    """Random, large per-channel shifts before every sign: the integer model still matches
    PyTorch on every hidden bit of every test image."""
    from bnn_mcu.nn.export import export_module, save_program
    cfg = ModelConfig(preset, digits.image_shape, 10, width=8 if preset == "cnn" else 32,
                      rsign=True)
    torch.manual_seed(1)
    model = build_model(cfg)
    shifts = [m for m in model.modules() if isinstance(m, LearnableBias)]
    assert len(shifts) == (3 if preset == "cnn" else 2)
    with torch.no_grad():
        for m in shifts:
            m.bias.uniform_(-1.5, 1.5)
    # BN statistics from real images, so the shifted thresholds land among attainable sums
    train_mod.recalibrate_batchnorm(model, torch.from_numpy(digits.train_x[..., 0]), 5, 100,
                                    np.random.default_rng(0))
    out = tmp_path / "m.pt"
    save_program(export_module(model.eval(), cfg.input_shape), out)
    rep = _parity(out, digits)
    assert rep.ok and rep.vectors == len(digits.test_y)


def test_two_stage_and_distillation_train_a_model_that_deploys_exactly(tmp_path, digits):
    out = tmp_path / "m.pt"
    cfg = TrainConfig(epochs=3, two_stage=1, distill=1, lr_schedule="cosine",
                      label_smoothing=0.1, lr_end=1e-4, bn_batches=5, threads=1)
    m = train(ModelConfig("mlp", digits.image_shape, 10, width=32, rsign=True), cfg, digits, out,
              progress=False)
    hist = m["history"]
    assert [h["real_activations"] for h in hist] == [True, False, False]
    assert m["best_epoch"] in (2, 3)  # a real-activation epoch is never the kept model
    assert 0.1 < m["teacher_val_acc"] <= 1.0
    assert m["test_acc"] > 0.5, m["test_acc"]  # 10 classes; seen: 0.9
    rep = _parity(out, digits)
    assert rep.ok and rep.correct_dev / rep.vectors == pytest.approx(m["test_acc"])
    ck = torch.load(out.with_suffix(".ckpt"), weights_only=True)
    assert ck["teacher_state_dict"] is not None  # --resume does not train the teacher again


def test_threads_small_models_get_one_big_ones_the_idle_cores(monkeypatch):
    small = build_model(ModelConfig("mlp", (28, 28, 1), 10))
    big = build_model(ModelConfig("cnn", (28, 28, 1), 10, width=64))
    assert multiply_accumulates(small) == 784 * 256 + 256 * 256 + 256 * 10
    assert multiply_accumulates(big) > train_mod.SMALL_MODEL_MACS
    assert pick_threads(3, small)[0] == 3
    assert pick_threads(None, small)[0] == 1
    monkeypatch.setattr(train_mod.os, "cpu_count", lambda: 8)
    monkeypatch.setattr(train_mod.os, "getloadavg", lambda: (0.2, 0.0, 0.0))
    assert pick_threads(None, big) == (8, "8 cores, load average 0.2")
    assert pick_threads(None, big, world_size=2)[0] == 4
    monkeypatch.setattr(train_mod.os, "getloadavg", lambda: (6.6, 0.0, 0.0))
    assert pick_threads(None, big)[0] == 1
    monkeypatch.setattr(train_mod.os, "getloadavg", lambda: (20.0, 0.0, 0.0))
    assert pick_threads(None, big)[0] == 1


def test_cli_says_which_thread_count_and_refuses_a_two_stage_without_binary_epochs(tmp_path):
    cli = [sys.executable, "-m", "bnn_mcu.cli", "train", "--preset", "mlp", "--width", "16",
           "--data", "digits", "-q"]
    p = subprocess.run(cli + ["--epochs", "2", "--two-stage", "2", "-o", str(tmp_path / "a.pt")],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode != 0 and "Traceback" not in p.stderr
    assert "two-stage" in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    # the mlp preset trains on the squared hinge: label smoothing would be silently ignored
    p = subprocess.run(cli + ["--label-smoothing", "0.1", "-o", str(tmp_path / "s.pt")],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode != 0 and "Traceback" not in p.stderr and not (tmp_path / "s.pt").exists()
    assert p.stderr.strip().endswith("--label-smoothing 0.1 smooths cross-entropy's targets, but the "
                                     "loss is hinge (the mlp preset's default is hinge): add --loss ce"), p.stderr
    p = subprocess.run(cli + ["--epochs", "1", "-o", str(tmp_path / "b.pt")],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert "training on 1 CPU thread (" in p.stdout
    assert json.loads((tmp_path / "b.json").read_text())["threads"] == 1
    assert not math.isnan(json.loads((tmp_path / "b.json").read_text())["test_acc"])


def test_preset_recipes_yield_to_every_option_given():
    from bnn_mcu.nn.train import PRESET_RECIPES, recipe
    assert recipe("binarynet-mlp") == TrainConfig()  # no recipe: the dataclass defaults
    mlp = recipe("mlp")
    assert mlp.lr_schedule == "cosine" and mlp.distill == mlp.epochs // 2 and mlp.loss == "hinge"
    assert recipe("mlp", loss="ce").loss == "ce" and recipe("cnn").loss == "ce"
    assert recipe("mlp", epochs=4).distill == 2  # the teacher follows the run's length
    assert recipe("mlp", epochs=4, distill=0).distill == 0
    assert recipe("cnn", lr_schedule="exp", epochs=None).lr_schedule == "exp"
    assert recipe("cnn").epochs == PRESET_RECIPES["cnn"]["epochs"]


def test_device_auto_is_the_gpu_when_torch_sees_one_and_each_torchrun_process_its_own(monkeypatch):
    from bnn_mcu.errors import BnnError
    from bnn_mcu.nn import distributed
    monkeypatch.setattr(distributed.torch.cuda, "is_available", lambda: False)
    assert distributed.pick_device("auto") == torch.device("cpu")
    with pytest.raises(BnnError, match=r"^--device cuda: PyTorch sees no CUDA GPU here .*use "
                                       r"--device cpu \(or auto\)$"):
        distributed.pick_device("cuda")
    monkeypatch.setattr(distributed.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(distributed.torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert distributed.pick_device("auto") == torch.device("cuda", 1)
    assert distributed.pick_device("cuda") == torch.device("cuda", 1)
    assert distributed.pick_device("cuda:0") == torch.device("cuda", 0)
    assert distributed.pick_device("cpu") == torch.device("cpu")
    with pytest.raises(BnnError, match=r"^--device cuda:2: PyTorch sees 2 CUDA GPUs \(cuda:0 to cuda:1\)$"):
        distributed.pick_device("cuda:2")
    with pytest.raises(BnnError, match=r"^--device tpu: unknown device; choose one of auto, cpu, "
                                       r"cuda, cuda:N$"):
        distributed.pick_device("tpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for machines without a GPU")
def test_cli_refuses_a_gpu_it_does_not_have_before_loading_data_and_trains_on_cpu(tmp_path):
    cli = [sys.executable, "-m", "bnn_mcu.cli", "train", "--preset", "mlp", "--width", "16",
           "--data", "digits", "-q", "--epochs", "1"]
    p = subprocess.run(cli + ["--device", "cuda", "-o", str(tmp_path / "a.pt")],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode != 0 and p.stdout == "", p.stdout
    assert p.stderr.startswith("bnn-mcu: error: --device cuda: PyTorch sees no CUDA GPU here")
    assert len(p.stderr.strip().splitlines()) == 1 and not (tmp_path / "a.ckpt").exists()
    p = subprocess.run(cli + ["--device", "cpu", "-o", str(tmp_path / "b.pt")],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert json.loads((tmp_path / "b.json").read_text())["device"] == "cpu"
