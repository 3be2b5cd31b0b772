"""`--target` for predict and verify: emulator, host, qemu:BOARD, qemu:all, serial:PORT."""

from __future__ import annotations

import numpy as np

from ..errors import BnnError, MismatchError

TARGET_HELP = "emulator, host, qemu:BOARD, qemu:all, serial:PORT"


def parse_target(text: str) -> tuple[str, str | None]:
    kind, _, arg = text.partition(":")
    if kind == "emulator" and not arg:
        return "emulator", None
    raise BnnError(f"unknown target {text!r}; use one of: {TARGET_HELP}")


def predict_on_target(model, x: np.ndarray, target: str, args):
    kind, arg = parse_target(target)
    from .. import emulator
    r = emulator.run(model, x)
    return r.scores, r.predictions


def verify_on_target(args) -> int:
    from ..data import load_dataset
    from ..models import is_bnn_file
    from ..verify import report_table, verify_against_pytorch

    kind, arg = parse_target(args.target)
    if is_bnn_file(args.model):
        raise BnnError(f"{args.model}: --target emulator compares the PyTorch model with the "
                       "emulator; give the .pt model (a .bnn has no PyTorch reference)")
    from ..models import convert_program
    from ..nn.export import load_program
    from pathlib import Path

    data = load_dataset(args.data)
    x, y = data.test_x[: args.limit], data.test_y[: args.limit]
    ep = load_program(args.model, args.trust_pickle, args.input_shape)
    model = convert_program(ep, Path(args.model).name)
    rep = verify_against_pytorch(ep, model, x, y)
    print(f"{Path(args.model).name} on {data.name} test set: PyTorch (eval) vs emulator")
    print(report_table(rep))
    if not rep.ok:
        raise MismatchError(f"{rep.mismatching_bits} mismatching bits, "
                            f"{rep.vectors - rep.agree} differing predictions")
    return 0
