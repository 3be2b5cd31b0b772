"""The BinaryNet training recipe (Courbariaux et al., 2016) on uint8 image data sets, with the
later BNN recipe options that still deploy exactly.

Adam; learning rate decayed exponentially (per epoch) or along a cosine (per step) from lr_start
to lr_end; optional per-layer Glorot learning-rate scaling of binary weights; latent weights
clipped to [-1, 1] after every step; squared hinge loss on +-1 targets or cross-entropy (with
optional label smoothing); augmentation; best-on-validation checkpoint; resume. Options from
later work: two-stage training (real-valued activations first, then binary), and knowledge
distillation from a real-valued twin of the model trained first (the teacher costs nothing at
inference). Under torchrun, data-parallel over processes (distributed.py).
"""

from __future__ import annotations

import io
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..data import Dataset
from ..errors import BnnError, ModelError
from ..outputs import check_writable
from . import distributed
from .export import CHECKPOINT_FORMAT, export_module, save_program
from .layers import STE_KINDS, binary_layers, set_real, set_ste
from .presets import BNNModel, ModelConfig, build_model


@dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 100
    lr_start: float = 3e-3
    lr_end: float = 3e-7
    loss: str = "ce"  # "ce" or "hinge" (BinaryNet's squared hinge on +-1 targets)
    glorot_lr: bool = True
    seed: int = 0
    threads: int | None = None
    bn_batches: int = 50  # training batches that set the final BN statistics of each epoch
    augment: str = "none"  # "none", "shift" (+-2 px) or "shift-flip" (and horizontal flips)
    lr_schedule: str = "exp"  # "exp" (per epoch, BinaryNet) or "cosine" (per step)
    label_smoothing: float = 0.0  # cross-entropy only
    two_stage: int = 0  # first epochs with real-valued (hardtanh) activations, binary weights
    distill: int = 0  # epochs of a real-valued teacher trained first; 0 = no distillation
    ste: str = "clip"  # sign's gradient: "clip" (BinaryNet: 1 on |x| <= 1) or "approx" (Bi-Real)
    device: str = "auto"  # "auto" (a CUDA GPU when PyTorch sees one), "cpu", "cuda" or "cuda:N"


# What `bnn-mcu train --preset P` uses for the options not given on the command line, where
# measured better than BinaryNet's defaults (docs/training.md has the measurements).
PRESET_RECIPES: dict[str, dict] = {
    # cosine + a real-valued teacher: 88.88 % vs 88.23 % (30 epochs, exp, no teacher)
    # (the teacher trains for half as many epochs as the model, whatever --epochs says);
    # BinaryNet's squared hinge: 89.05 / 89.10 / 88.95 % on seeds 0-2 (docs/training.md)
    "mlp": {"epochs": 30, "lr_schedule": "cosine", "distill_fraction": 0.5, "loss": "hinge"},
    # cosine: +1.0 point at 4 epochs; a teacher gave nothing there, at twice the time
    "cnn": {"epochs": 20, "lr_schedule": "cosine"},
}


def recipe(preset: str, **given) -> TrainConfig:
    """The preset's recipe, every option given (not None) taking precedence."""
    options = dict(PRESET_RECIPES.get(preset, {}))
    fraction = options.pop("distill_fraction", 0.0)
    options.update({k: v for k, v in given.items() if v is not None})
    if "distill" not in options and fraction:
        options["distill"] = max(1, round(options.get("epochs", TrainConfig.epochs) * fraction))
    return TrainConfig(**options)


def squared_hinge(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    targets = 2 * F.one_hot(labels, scores.shape[1]).to(scores.dtype) - 1
    return torch.clamp(1 - targets * scores, min=0).pow(2).mean()


def _loss_fn(name: str, label_smoothing: float = 0.0):
    if name == "hinge":
        return squared_hinge
    if name == "ce":
        return lambda scores, labels: F.cross_entropy(scores, labels, label_smoothing=label_smoothing)
    raise BnnError(f"unknown loss {name!r}; choose hinge or ce")


#: Largest input (values) and layer sizes a checkpoint's config may ask for; the model it
#: describes is then sized on the meta device (nothing allocated) before it is built.
_CONFIG_RANGES = {"width": (1, 1 << 16), "depth": (1, 64), "num_classes": (2, 0xFFFF)}
_MAX_INPUT_VALUES = 1 << 22


def checkpoint_config(ckpt: dict, where: str = "checkpoint") -> ModelConfig:
    """A checkpoint's model config, every field checked (types, ranges) and the model it
    describes sized before any of it is allocated: one line per problem."""
    from .presets import PRESETS
    from .program_vetting import MAX_TENSOR_BYTES

    d = ckpt.get("model_config")
    if not isinstance(d, dict):
        raise ModelError(f"{where}: damaged bnn-mcu checkpoint (no model_config)")
    known = set(ModelConfig.__dataclass_fields__)
    odd = sorted(map(str, set(d) - known))[:3] + sorted({"preset", "input_shape", "num_classes"}
                                                         - set(d))
    if odd:
        raise ModelError(f"{where}: damaged bnn-mcu checkpoint (config field {odd[0][:40]!r} is "
                         "unknown or missing)")

    def bad(field, want):
        return ModelError(f"{where}: checkpoint config {field} = {str(d.get(field))[:40]}: "
                          f"expected {want}")
    if d["preset"] not in PRESETS:
        raise bad("preset", "one of " + ", ".join(PRESETS))
    shape = d["input_shape"]
    if not (isinstance(shape, (list, tuple)) and len(shape) == 3 and
            all(type(v) is int and 1 <= v <= 4096 for v in shape)) or \
            math.prod(shape) > _MAX_INPUT_VALUES:
        raise bad("input_shape", f"[H, W, C] of 1..4096 each, at most {_MAX_INPUT_VALUES:,} values")
    for field, (lo, hi) in _CONFIG_RANGES.items():
        v = d.get(field)
        if not (v is None and field != "num_classes" or type(v) is int and lo <= v <= hi):
            raise bad(field, f"an integer in {lo}..{hi:,}")
    for field in ("dropout_in", "dropout_hidden"):
        v = d.get(field)
        if not (v is None or type(v) in (int, float) and 0 <= v < 1):
            raise bad(field, "a probability in [0, 1)")
    for field in ("stochastic", "rsign"):
        if type(d.get(field, False)) is not bool:
            raise bad(field, "true or false")
    cfg = ModelConfig.from_dict(d)
    with torch.device("meta"):  # shapes only: nothing allocated
        sized = build_model(cfg)
    nbytes = sum(t.numel() * t.element_size() for t in (*sized.parameters(), *sized.buffers()))
    if nbytes > MAX_TENSOR_BYTES:
        raise ModelError(f"{where}: the checkpoint's model would take {nbytes:,} bytes, more than "
                         f"the {MAX_TENSOR_BYTES:,} a model may have")
    state = ckpt.get("state_dict")
    want = {k: tuple(v.shape) for k, v in sized.state_dict().items()}
    have = {k: tuple(getattr(v, "shape", ())) for k, v in state.items()} \
        if isinstance(state, dict) else None
    if have != want:
        raise ModelError(f"{where}: damaged bnn-mcu checkpoint (its weights do not match its "
                         f"config {cfg.preset})")
    return cfg


# Weight of the teacher's term in the distillation loss (the rest: the labels' loss). The
# teacher's class distribution carries what it learned about similar classes (shirt vs T-shirt).
DISTILL_WEIGHT = 0.5


def distillation_loss(scores: torch.Tensor, teacher_scores: torch.Tensor) -> torch.Tensor:
    """KL(teacher || student) of the softmax distributions (temperature 1, ReActNet's choice)."""
    return F.kl_div(F.log_softmax(scores, 1), F.log_softmax(teacher_scores, 1),
                    reduction="batchmean", log_target=True)


def model_from_checkpoint(ckpt: dict, where: str = "checkpoint") -> BNNModel:
    cfg = checkpoint_config(ckpt, where)
    try:
        model = build_model(cfg)
        model.load_state_dict(ckpt["state_dict"])
    except (KeyError, TypeError, RuntimeError) as e:
        raise ModelError(f"{where}: damaged bnn-mcu checkpoint ({str(e).splitlines()[0]})") from None
    return model.eval()


@torch.no_grad()
def evaluate(model: torch.nn.Module, x: np.ndarray, y: np.ndarray, batch: int = 1000) -> float:
    """Accuracy of a module (or an exported program's module) on uint8 images."""
    model.eval() if hasattr(model, "eval") and not isinstance(model, torch.fx.GraphModule) else None
    correct = 0
    device = next((p.device for p in model.parameters()), None) if hasattr(model, "parameters") else None
    for i in range(0, len(y), batch):
        xb = torch.from_numpy(_model_input(x[i:i + batch])).to(device)
        correct += int((model(xb).argmax(1).numpy() == y[i:i + batch]).sum())
    return correct / max(1, len(y))


def _model_input(x: np.ndarray) -> np.ndarray:
    """N x H x W x C -> N x H x W when C = 1 (the exported models' input)."""
    return x[..., 0] if x.shape[-1] == 1 else x


def _optimizer(model: BNNModel, cfg: TrainConfig) -> torch.optim.Optimizer:
    binary = binary_layers(model)
    bin_params = {id(m.weight) for m in binary}
    groups = []
    for m in binary:
        scale = m.glorot_scale() if cfg.glorot_lr else 1.0
        groups.append({"params": [m.weight], "lr": cfg.lr_start * scale, "lr_scale": scale})
    rest = [p for p in model.parameters() if id(p) not in bin_params]
    groups.append({"params": rest, "lr": cfg.lr_start, "lr_scale": 1.0})
    return torch.optim.Adam(groups, lr=cfg.lr_start)


@torch.no_grad()
def recalibrate_batchnorm(model: torch.nn.Module, x: torch.Tensor, batches: int, batch_size: int,
                          rng: np.random.Generator) -> None:
    """Replace BN running statistics by exact averages over `batches` training batches.

    Binary activations flip on small threshold changes, so the noisy exponential running
    averages make validation accuracy swing from epoch to epoch; averaging the batch
    statistics over many batches (with the weights fixed) removes that noise.
    """
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average
    model.train()
    for _ in range(batches):
        model(x[torch.from_numpy(rng.integers(0, len(x), batch_size)).to(x.device)])
    for m, mom in zip(bns, saved):
        m.momentum = mom
    model.eval()


AUGMENTATIONS = ("none", "shift", "flip", "shift-flip")


def augment_batch(x: torch.Tensor, mode: str, gen: torch.Generator, max_shift: int = 2) -> torch.Tensor:
    """Random translations by up to max_shift pixels (zero fill) and/or horizontal flips of a
    uint8 batch N x H x W [x C]; the same for every image of the batch would be too weak, so
    each image gets its own shift and its own coin for the flip."""
    if mode == "none":
        return x
    if mode not in AUGMENTATIONS:
        raise BnnError(f"unknown augmentation {mode!r}; choose one of {', '.join(AUGMENTATIONS)}")
    n, h, w = x.shape[:3]
    if mode == "flip":
        out = x.clone()  # the flips below write in place: never into the training set
    else:
        pad = [0, 0] * (x.dim() - 3) + [max_shift, max_shift, max_shift, max_shift]
        xp = F.pad(x, pad)  # zero = background for these data sets
        dy = torch.randint(0, 2 * max_shift + 1, (n,), generator=gen)
        dx = torch.randint(0, 2 * max_shift + 1, (n,), generator=gen)
        rows = (dy[:, None] + torch.arange(h)[None, :])[:, :, None]  # [n, h, 1]
        cols = (dx[:, None] + torch.arange(w)[None, :])[:, None, :]  # [n, 1, w]
        # the random draws stay on the CPU generator (same streams on every device)
        out = xp[torch.arange(n)[:, None, None].to(x.device), rows.to(x.device), cols.to(x.device)]
    if mode in ("flip", "shift-flip"):
        flip = (torch.rand(n, generator=gen) < 0.5).to(x.device)
        out[flip] = out[flip].flip(2)
    return out


LR_SCHEDULES = ("exp", "cosine")


def learning_rate(cfg: TrainConfig, epoch: int, epochs: int, fraction: float = 0.0) -> float:
    """The learning rate `fraction` of the way through `epoch` (0-based) of a stage of `epochs`.

    exp: BinaryNet's, constant within an epoch, lr_start * (lr_end / lr_start)^(epoch / epochs);
    cosine: lr_end + (lr_start - lr_end) (1 + cos(pi t)) / 2, t the position in the stage.
    """
    if cfg.lr_schedule == "exp":
        decay = (cfg.lr_end / cfg.lr_start) ** (1.0 / max(1, epochs))  # as BinaryNet (same floats)
        return cfg.lr_start * decay**epoch
    if cfg.lr_schedule == "cosine":
        t = (epoch + fraction) / max(1, epochs)
        return cfg.lr_end + (cfg.lr_start - cfg.lr_end) * (1 + math.cos(math.pi * t)) / 2
    raise BnnError(f"unknown learning-rate schedule {cfg.lr_schedule!r}; "
                   f"choose one of {', '.join(LR_SCHEDULES)}")


def _set_lr(opt, lr: float) -> None:
    for g in opt.param_groups:
        g["lr"] = lr * g["lr_scale"]


def _stage(cfg: TrainConfig, epoch: int) -> tuple[bool, int, int]:
    """(real activations?, epoch within its stage, epochs of the stage): each stage of
    two-stage training runs its own learning-rate schedule."""
    if epoch < cfg.two_stage:
        return True, epoch, cfg.two_stage
    return False, epoch - cfg.two_stage, cfg.epochs - cfg.two_stage


def pick_threads(requested: int | None, model: torch.nn.Module, world_size: int = 1) -> tuple[int, str]:
    """The torch CPU thread count for training and why.

    PyTorch's default (one thread per core) collapses when the cores are busy: its worker
    threads spin and wait for each other, and a BNN this small gains little from them anyway
    (measured under load, `train --preset mlp --epochs 2`: 19 s on 2 threads, 7 s on 1; an
    earlier run saw 413 s vs 9 s). So: the requested count, else 1 thread for models under
    SMALL_MODEL_MACS per image, else the cores that the 1-minute load average leaves idle,
    shared among the torchrun processes of this machine.
    """
    if requested:
        return requested, "as asked"
    macs = multiply_accumulates(model)
    if macs < SMALL_MODEL_MACS:
        return 1, f"{macs / 1e6:.1f} M MACs per image: too small to gain from more"
    cores = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except OSError:  # not available on this platform
        load = 0.0
    idle = max(1, int(cores - load + 0.5) // max(1, world_size))
    return min(idle, cores), f"{cores} cores, load average {load:.1f}"


# Below this many multiply-accumulates per image a second thread did not pay for itself here.
SMALL_MODEL_MACS = 2_000_000


@torch.no_grad()
def multiply_accumulates(model: torch.nn.Module) -> int:
    """Multiply-accumulates of the binary layers for one image (one forward pass with hooks)."""
    total = 0

    def count(m, inp, out):
        nonlocal total
        total += out[0].numel() * m.weight[0].numel()

    binary = binary_layers(model)
    hooks = [m.register_forward_hook(count) for m in binary]
    was_training = model.training
    try:
        model.eval()
        model(torch.zeros((1,) + _image_shape(model), dtype=torch.uint8))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return total


def _image_shape(model) -> tuple:
    h, w, c = model.config.input_shape
    return (h, w) if c == 1 else (h, w, c)


def _check_config(cfg: TrainConfig) -> None:
    if cfg.epochs < 1 or cfg.batch_size < 1 or not 0 < cfg.lr_end <= cfg.lr_start:
        raise BnnError(f"training needs epochs >= 1, batch size >= 1 and 0 < lr_end <= lr_start "
                       f"(got {cfg.epochs}, {cfg.batch_size}, {cfg.lr_end:g}, {cfg.lr_start:g})")
    if not 0 <= cfg.two_stage < cfg.epochs:
        raise BnnError(f"--two-stage {cfg.two_stage}: the real-activation stage must leave binary "
                       f"epochs (0 <= two-stage < epochs = {cfg.epochs})")
    if cfg.distill < 0 or not 0 <= cfg.label_smoothing < 1:
        raise BnnError(f"training needs distill >= 0 and 0 <= label smoothing < 1 "
                       f"(got {cfg.distill}, {cfg.label_smoothing:g})")
    if cfg.label_smoothing and cfg.loss != "ce":
        raise BnnError(f"--label-smoothing {cfg.label_smoothing:g} smooths cross-entropy's targets, "
                       f"but the loss is {cfg.loss} (the mlp preset's default is hinge): add --loss ce")
    if cfg.ste not in STE_KINDS:
        raise BnnError(f"unknown sign gradient {cfg.ste!r}; choose {' or '.join(STE_KINDS)}")
    # the names of the schedule, augmentation and loss, checked before any work
    learning_rate(cfg, 0, 1)
    augment_batch(torch.zeros((0, 1, 1), dtype=torch.uint8), cfg.augment, torch.Generator())
    _loss_fn(cfg.loss)


@dataclass
class _Loop:
    """What every epoch of a run needs: data, random streams, processes, progress."""
    x: torch.Tensor
    y: torch.Tensor
    cfg: TrainConfig
    rng: np.random.Generator
    gen: torch.Generator
    world: distributed.World
    progress: bool


def _train_epoch(loop: _Loop, model, step_model, opt, loss_fn, lr_at, desc: str,
                 teacher: torch.nn.Module | None = None) -> tuple[float, float]:
    """One pass over the (shard of the) training set; returns (mean loss, accuracy) summed
    over the processes. `lr_at(fraction)` gives the base learning rate at that point."""
    cfg = loop.cfg
    model.train()
    perm = distributed.shard(torch.from_numpy(loop.rng.permutation(len(loop.y))), loop.world)
    steps = math.ceil(len(perm) / cfg.batch_size)
    bar = tqdm(range(steps), desc=desc, unit="batch", leave=False, dynamic_ncols=True,
               disable=not (loop.progress and sys.stderr.isatty()))
    tot_loss, tot_correct, seen = 0.0, 0, 0
    for s in bar:
        _set_lr(opt, lr_at(s / steps))
        idx = perm[s * cfg.batch_size:(s + 1) * cfg.batch_size].to(loop.x.device)
        xb, yb = augment_batch(loop.x[idx], cfg.augment, loop.gen), loop.y[idx]
        scores = step_model(xb)
        loss = loss_fn(scores, yb)
        if teacher is not None:
            with torch.no_grad():
                teacher_scores = teacher(xb)
            loss = (1 - DISTILL_WEIGHT) * loss + DISTILL_WEIGHT * distillation_loss(scores, teacher_scores)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        for m in binary_layers(model):
            m.clip_weights()
        tot_loss += loss.item() * len(idx)
        tot_correct += int((scores.argmax(1) == yb).sum())
        seen += len(idx)
        if s % 20 == 0:
            bar.set_postfix(loss=f"{tot_loss / seen:.4f}", acc=f"{tot_correct / seen:.3f}")
    bar.close()
    tot_loss, tot_correct, seen = distributed.sum_over_processes(loop.world, tot_loss, tot_correct, seen)
    # On every process (same weights, same batches): the BN statistics stay identical.
    recalibrate_batchnorm(model, loop.x, cfg.bn_batches, cfg.batch_size, loop.rng)
    return tot_loss / seen, tot_correct / seen


def train_teacher(model_cfg: ModelConfig, loop: _Loop, data: Dataset) -> tuple[torch.nn.Module, float]:
    """The real-valued twin of the model (real weights, hardtanh activations), trained for
    cfg.distill epochs with a plain Adam and the run's schedule; returns it (eval mode, frozen)
    and its validation accuracy."""
    cfg = loop.cfg
    teacher = build_model(model_cfg)
    set_real(teacher, activations=True, weights=True)
    teacher.to(loop.world.device)
    for m in binary_layers(teacher):
        # torch's own initialization: latent binary weights are uniform in [-1, 1], far too
        # large for Adam's steps to move real weights (the teacher learned slowly from them)
        m.reset_parameters()
    opt = torch.optim.Adam(teacher.parameters(), lr=cfg.lr_start)
    for g in opt.param_groups:
        g["lr_scale"] = 1.0
    step_model = distributed.wrap(teacher, loop.world)
    loss_fn = _loss_fn(cfg.loss, cfg.label_smoothing)
    val_acc = 0.0
    for epoch in range(cfg.distill):
        loss, acc = _train_epoch(loop, teacher, step_model, opt, loss_fn,
                                 lambda f, e=epoch: learning_rate(cfg, e, cfg.distill, f),
                                 f"teacher {epoch + 1}/{cfg.distill}")
        if loop.world.main:
            val_acc = evaluate(teacher, data.val_x, data.val_y)
            if loop.progress:
                tqdm.write(f"teacher {epoch + 1:3d}/{cfg.distill}  loss {loss:.4f}  train {acc:.4f}  "
                           f"val {val_acc:.4f}  (real-valued)")
    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher, val_acc


def train(model_cfg: ModelConfig, cfg: TrainConfig, data: Dataset, out: Path,
          resume: Path | None = None, progress: bool = True) -> dict | None:
    """Train, keep the best-on-validation weights, write out (.pt export), .ckpt and .json.
    Returns the metrics (None on the processes other than rank 0 under torchrun)."""
    _check_config(cfg)
    world = distributed.join(cfg.device)
    progress = progress and world.main
    out = Path(out)
    ckpt_path, metrics_path = out.with_suffix(".ckpt"), out.with_suffix(".json")
    for p in (out, ckpt_path, metrics_path):
        check_writable(p, "the model")
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model = build_model(model_cfg)
    set_ste(model, cfg.ste)
    threads, why = pick_threads(cfg.threads, model, world.size)
    torch.set_num_threads(threads)
    if world.main:  # even with -q: the one line a user needs when training is slow
        print(f"training on {_device_text(world.device)}{threads} CPU thread{'s' if threads > 1 else ''} "
              f"({why}{'' if cfg.threads else '; --threads N to choose'})", flush=True)
    model.to(world.device)
    opt = _optimizer(model, cfg)
    loss_fn = _loss_fn(cfg.loss, cfg.label_smoothing)
    start_epoch, best, history = 0, {"val_acc": -1.0}, []
    state = None
    if resume is not None:
        state = _load_checkpoint(resume)
        if state["model_config"] != model_cfg.to_dict():
            raise BnnError(f"{resume}: was trained with a different model "
                           f"({state['model_config']['preset']}); use the same preset and options")
        model.load_state_dict(state["last_state_dict"])
        opt.load_state_dict(state["optimizer"])
        start_epoch, best, history = state["epoch"], state["best"], state["history"]
        rng = np.random.default_rng(cfg.seed + start_epoch)
        torch.manual_seed(cfg.seed + start_epoch)
    # Augmentation differs per process; the permutations and BN batches (rng) are the same.
    gen = torch.Generator().manual_seed(cfg.seed + start_epoch + 1_000_003 * world.rank)
    loop = _Loop(torch.from_numpy(_model_input(data.train_x)).to(world.device),
                 torch.from_numpy(data.train_y).to(world.device), cfg, rng, gen, world, progress)
    t0 = time.time()
    teacher, teacher_val = None, None
    if cfg.distill:
        if state is not None and state.get("teacher_state_dict") is not None:
            teacher = build_model(model_cfg).to(world.device)
            teacher.load_state_dict(state["teacher_state_dict"])
            set_real(teacher, activations=True, weights=True)
            teacher.eval().requires_grad_(False)
            teacher_val = state.get("teacher_val_acc")
        else:
            teacher, teacher_val = train_teacher(model_cfg, loop, data)
    step_model = distributed.wrap(model, world)
    best_state = None if state is None else state["state_dict"]
    for epoch in range(start_epoch, cfg.epochs):
        real_act, e, stage_epochs = _stage(cfg, epoch)
        set_real(model, activations=real_act, weights=False)
        loss, acc = _train_epoch(loop, model, step_model, opt, loss_fn,
                                 lambda f: learning_rate(cfg, e, stage_epochs, f),
                                 f"epoch {epoch + 1}/{cfg.epochs}", teacher)
        lr = learning_rate(cfg, e, stage_epochs)
        if not world.main:
            continue
        val_acc = evaluate(model, data.val_x, data.val_y)
        rec = {"epoch": epoch + 1, "lr": lr, "train_loss": loss, "train_acc": acc,
               "val_acc": val_acc, "real_activations": real_act,
               "minutes": (time.time() - t0) / 60}
        history.append(rec)
        # A real-activation epoch is not the deployed model: never the best one.
        if not real_act and val_acc > best["val_acc"]:
            best = {"val_acc": val_acc, "epoch": epoch + 1}
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
        if progress:
            tqdm.write(f"epoch {epoch + 1:3d}/{cfg.epochs}  loss {loss:.4f}  "
                       f"train {acc:.4f}  val {val_acc:.4f}"
                       f"{'  (real activations)' if real_act else ''}"
                       f"{'  *best' if best.get('epoch') == epoch + 1 else ''}  lr {lr:.2e}")
        _save_checkpoint(ckpt_path, model_cfg, cfg, model, best_state, opt, epoch + 1, best, history,
                         teacher, teacher_val)
    set_real(model, activations=False, weights=False)
    distributed.check_in_step(model, world)
    if not world.main:
        distributed.leave(world)
        return None
    if best_state is None:
        best_state = model.state_dict()
    model.load_state_dict(best_state)
    model.eval()
    test_acc = evaluate(model, data.test_x, data.test_y)
    model.cpu()  # the exported program runs on the CPU, as every consumer of model.pt does
    save_program(export_module(model, model_cfg.input_shape), out)
    metrics = {"preset": model_cfg.preset, "data": data.name, "model_config": model_cfg.to_dict(),
               "train_config": asdict(cfg), "best_epoch": best["epoch"], "val_acc": best["val_acc"],
               "test_acc": test_acc, "minutes": (time.time() - t0) / 60, "history": history,
               "model": str(out), "checkpoint": str(ckpt_path), "processes": world.size,
               "threads": threads, "device": str(world.device), "teacher_val_acc": teacher_val}
    metrics_path.write_text(json.dumps(metrics, indent=2) + "\n")
    distributed.leave(world)
    return metrics


def _device_text(device: torch.device) -> str:
    """What `training on ...` names before the CPU threads (which still load the data)."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)}) and "
    return ""


def _save_checkpoint(path, model_cfg, cfg, model, best_state, opt, epoch, best, history,
                     teacher=None, teacher_val=None) -> None:
    tmp = Path(str(path) + ".tmp")
    try:
        torch.save({"format": CHECKPOINT_FORMAT, "model_config": model_cfg.to_dict(),
                    "train_config": asdict(cfg), "state_dict": best_state,
                    "last_state_dict": model.state_dict(), "optimizer": opt.state_dict(),
                    "epoch": epoch, "best": best, "history": history,
                    "teacher_state_dict": None if teacher is None else teacher.state_dict(),
                    "teacher_val_acc": teacher_val}, tmp)
        tmp.replace(path)  # never leave a half-written checkpoint behind
    except (OSError, RuntimeError) as e:  # disk full, folder removed mid-run
        raise BnnError(f"{path}: cannot write the checkpoint ({str(e).splitlines()[0]}); "
                       "the last good one, if any, is kept") from None


def _load_checkpoint(path: Path) -> dict:
    from ..inputs import read_regular_file
    from .archive import open_archive

    data = read_regular_file(path, what="bnn-mcu checkpoint (.ckpt)")
    open_archive(Path(path), data)  # sizes budgeted, both zip readers agree
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:
        raise BnnError(f"{path}: not a bnn-mcu checkpoint ({str(e).splitlines()[0]})") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise BnnError(f"{path}: not a bnn-mcu checkpoint")
    return state
