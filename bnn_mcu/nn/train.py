"""The BinaryNet training recipe (Courbariaux et al., 2016) on uint8 image data sets.

Adam; learning rate decayed exponentially from lr_start to lr_end over the epochs; optional
per-layer Glorot learning-rate scaling of binary weights; latent weights clipped to [-1, 1]
after every step; squared hinge loss on +-1 targets or cross-entropy; best-on-validation
checkpoint; resume. Under torchrun, data-parallel over processes (distributed.py).
"""

from __future__ import annotations

import io
import json
import math
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
from .layers import binary_layers
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


def squared_hinge(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    targets = 2 * F.one_hot(labels, scores.shape[1]).to(scores.dtype) - 1
    return torch.clamp(1 - targets * scores, min=0).pow(2).mean()


def _loss_fn(name: str):
    if name == "hinge":
        return squared_hinge
    if name == "ce":
        return F.cross_entropy
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
    if type(d.get("stochastic", False)) is not bool:
        raise bad("stochastic", "true or false")
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
    for i in range(0, len(y), batch):
        xb = torch.from_numpy(_model_input(x[i:i + batch]))
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
        model(x[torch.from_numpy(rng.integers(0, len(x), batch_size))])
    for m, mom in zip(bns, saved):
        m.momentum = mom
    model.eval()


AUGMENTATIONS = ("none", "shift", "shift-flip")


def augment_batch(x: torch.Tensor, mode: str, gen: torch.Generator, max_shift: int = 2) -> torch.Tensor:
    """Random translations by up to max_shift pixels (zero fill) and optional horizontal flips
    of a uint8 batch N x H x W [x C]; the same for every image of the batch would be too weak,
    so each image gets its own shift."""
    if mode == "none":
        return x
    if mode not in AUGMENTATIONS:
        raise BnnError(f"unknown augmentation {mode!r}; choose one of {', '.join(AUGMENTATIONS)}")
    n, h, w = x.shape[:3]
    pad = [0, 0] * (x.dim() - 3) + [max_shift, max_shift, max_shift, max_shift]
    xp = F.pad(x, pad)  # zero = background for these data sets
    dy = torch.randint(0, 2 * max_shift + 1, (n,), generator=gen)
    dx = torch.randint(0, 2 * max_shift + 1, (n,), generator=gen)
    rows = (dy[:, None] + torch.arange(h)[None, :])[:, :, None]  # [n, h, 1]
    cols = (dx[:, None] + torch.arange(w)[None, :])[:, None, :]  # [n, 1, w]
    out = xp[torch.arange(n)[:, None, None], rows, cols]
    if mode == "shift-flip":
        flip = torch.rand(n, generator=gen) < 0.5
        out[flip] = out[flip].flip(2)
    return out


def _set_lr(opt, cfg: TrainConfig, epoch: int) -> float:
    decay = (cfg.lr_end / cfg.lr_start) ** (1.0 / max(1, cfg.epochs))
    lr = cfg.lr_start * decay**epoch
    for g in opt.param_groups:
        g["lr"] = lr * g["lr_scale"]
    return lr


def train(model_cfg: ModelConfig, cfg: TrainConfig, data: Dataset, out: Path,
          resume: Path | None = None, progress: bool = True) -> dict | None:
    """Train, keep the best-on-validation weights, write out (.pt export), .ckpt and .json.
    Returns the metrics (None on the processes other than rank 0 under torchrun)."""
    if cfg.epochs < 1 or cfg.batch_size < 1 or not 0 < cfg.lr_end <= cfg.lr_start:
        raise BnnError(f"training needs epochs >= 1, batch size >= 1 and 0 < lr_end <= lr_start "
                       f"(got {cfg.epochs}, {cfg.batch_size}, {cfg.lr_end:g}, {cfg.lr_start:g})")
    world = distributed.join()
    progress = progress and world.main
    out = Path(out)
    ckpt_path, metrics_path = out.with_suffix(".ckpt"), out.with_suffix(".json")
    for p in (out, ckpt_path, metrics_path):
        check_writable(p, "the model")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model = build_model(model_cfg)
    opt = _optimizer(model, cfg)
    loss_fn = _loss_fn(cfg.loss)
    start_epoch, best, history = 0, {"val_acc": -1.0}, []
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
    step_model = distributed.wrap(model, world)
    x_tr = torch.from_numpy(_model_input(data.train_x))
    y_tr = torch.from_numpy(data.train_y)
    t0 = time.time()
    best_state = None if resume is None else _load_checkpoint(resume)["state_dict"]
    for epoch in range(start_epoch, cfg.epochs):
        lr = _set_lr(opt, cfg, epoch)
        model.train()
        perm = distributed.shard(torch.from_numpy(rng.permutation(len(y_tr))), world)
        steps = math.ceil(len(perm) / cfg.batch_size)
        bar = tqdm(range(steps), desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch",
                   disable=not (progress and sys.stderr.isatty()), leave=False, dynamic_ncols=True)
        tot_loss, tot_correct, seen = 0.0, 0, 0
        for s in bar:
            idx = perm[s * cfg.batch_size:(s + 1) * cfg.batch_size]
            xb, yb = augment_batch(x_tr[idx], cfg.augment, gen), y_tr[idx]
            scores = step_model(xb)
            loss = loss_fn(scores, yb)
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
        tot_loss, tot_correct, seen = distributed.sum_over_processes(tot_loss, tot_correct, seen)
        # On every process (same weights, same batches): the BN statistics stay identical.
        recalibrate_batchnorm(model, x_tr, cfg.bn_batches, cfg.batch_size, rng)
        if not world.main:
            continue
        val_acc = evaluate(model, data.val_x, data.val_y)
        rec = {"epoch": epoch + 1, "lr": lr, "train_loss": tot_loss / seen,
               "train_acc": tot_correct / seen, "val_acc": val_acc,
               "minutes": (time.time() - t0) / 60}
        history.append(rec)
        if val_acc > best["val_acc"]:
            best = {"val_acc": val_acc, "epoch": epoch + 1}
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
        if progress:
            tqdm.write(f"epoch {epoch + 1:3d}/{cfg.epochs}  loss {rec['train_loss']:.4f}  "
                       f"train {rec['train_acc']:.4f}  val {val_acc:.4f}"
                       f"{'  *best' if best['epoch'] == epoch + 1 else ''}  lr {lr:.2e}")
        _save_checkpoint(ckpt_path, model_cfg, cfg, model, best_state, opt, epoch + 1, best, history)
    distributed.check_in_step(model, world)
    if not world.main:
        distributed.leave(world)
        return None
    if best_state is None:
        best_state = model.state_dict()
    model.load_state_dict(best_state)
    model.eval()
    test_acc = evaluate(model, data.test_x, data.test_y)
    save_program(export_module(model, model_cfg.input_shape), out)
    metrics = {"preset": model_cfg.preset, "data": data.name, "model_config": model_cfg.to_dict(),
               "train_config": asdict(cfg), "best_epoch": best["epoch"], "val_acc": best["val_acc"],
               "test_acc": test_acc, "minutes": (time.time() - t0) / 60, "history": history,
               "model": str(out), "checkpoint": str(ckpt_path), "processes": world.size}
    metrics_path.write_text(json.dumps(metrics, indent=2) + "\n")
    distributed.leave(world)
    return metrics


def _save_checkpoint(path, model_cfg, cfg, model, best_state, opt, epoch, best, history) -> None:
    tmp = Path(str(path) + ".tmp")
    try:
        torch.save({"format": CHECKPOINT_FORMAT, "model_config": model_cfg.to_dict(),
                    "train_config": asdict(cfg), "state_dict": best_state,
                    "last_state_dict": model.state_dict(), "optimizer": opt.state_dict(),
                    "epoch": epoch, "best": best, "history": history}, tmp)
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
