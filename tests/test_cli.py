"""The CLI end to end on real data, and one-line errors for user mistakes."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cli(*args, cwd=None):
    p = subprocess.run([sys.executable, "-m", "bnn_mcu.cli", *map(str, args)], cwd=cwd or ROOT,
                       capture_output=True, text=True, timeout=600)
    return p.returncode, p.stdout, p.stderr


def one_line_error(rc, err, pattern, code=2):
    import re
    assert rc == code, (rc, err)
    lines = [l for l in err.strip().splitlines() if l.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert re.search(pattern, lines[0]), lines[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    rc, out, err = cli("train", "--preset", "mlp", "--width", "64", "--data", "digits",
                       "--epochs", "2", "-q", "-o", d / "m.pt")
    assert rc == 0, err
    assert "test accuracy" in out
    from bnn_mcu.ir import bnnfile
    from bnn_mcu.models import load_model
    bnnfile.save(load_model(d / "m.pt"), d / "ref.bnn")
    return d


def test_train_writes_model_checkpoint_metrics(trained):
    import json
    assert (trained / "m.pt").is_file() and (trained / "m.ckpt").is_file()
    metrics = json.loads((trained / "m.json").read_text())
    assert metrics["data"] == "digits" and len(metrics["history"]) == 2
    assert 0.3 < metrics["test_acc"] <= 1.0
    # loadable without our classes
    ep = torch.export.load(open(trained / "m.pt", "rb"))
    out = ep.module()(torch.zeros(3, 8, 8, dtype=torch.uint8))
    assert out.shape == (3, 10)


def test_resume_continues_epochs(trained):
    rc, out, err = cli("train", "--preset", "mlp", "--width", "64", "--data", "digits",
                       "--epochs", "3", "-q", "-o", trained / "m.pt", "--resume", trained / "m.ckpt")
    assert rc == 0, err
    import json
    hist = json.loads((trained / "m.json").read_text())["history"]
    assert [h["epoch"] for h in hist] == [1, 2, 3]


def test_evaluate_convert_inspect_predict_verify(trained):
    rc, out, err = cli("evaluate", trained / "m.pt", "--data", "digits")
    assert rc == 0 and "accuracy" in out, err
    acc_pt = float(out.split("accuracy")[-1])
    rc, out, err = cli("convert", trained / "m.pt", "-o", trained / "m.bnn")
    assert rc == 0 and "hash" in out, err
    rc, out, err = cli("evaluate", trained / "m.bnn", "--data", "digits")
    assert rc == 0 and float(out.split("accuracy")[-1]) == acc_pt, out
    rc, out, err = cli("inspect", trained / "m.bnn")
    assert rc == 0 and "bnn_dense_u8_b1" in out and "total" in out, err
    from bnn_mcu.data import load_dataset
    x = load_dataset("digits").test_x[:50, ..., 0]
    np.save(trained / "x.npy", x)
    rc, out, err = cli("predict", trained / "m.bnn", "--inputs", trained / "x.npy",
                       "-o", trained / "p.npy", "--scores", trained / "s.npy")
    assert rc == 0, err
    pred = np.load(trained / "p.npy")
    assert pred.dtype == np.int64 and pred.shape == (50,)
    ep = torch.export.load(open(trained / "m.pt", "rb"))
    ref = ep.module()(torch.from_numpy(x)).argmax(1).numpy()
    assert np.array_equal(ref, pred)
    rc, out, err = cli("verify", trained / "m.pt", "--data", "digits")
    assert rc == 0 and "PARITY OK" in out, out + err


def test_model_hash_same_from_pt_ckpt_bnn_any_name(trained, tmp_path):
    """issue 16 item 3: the hash is the integer model's content, not the file it came from."""
    import re
    import shutil
    shutil.copy(trained / "m.pt", tmp_path / "renamed copy.pt")
    rc, out, err = cli("convert", tmp_path / "renamed copy.pt", "-o", tmp_path / "x.bnn")
    assert rc == 0, err
    hashes = set(re.findall(r"hash ([0-9a-f]{16})", out))
    for f in (trained / "m.pt", trained / "m.ckpt", tmp_path / "renamed copy.pt", tmp_path / "x.bnn"):
        rc, out, err = cli("inspect", f)
        assert rc == 0, err
        hashes |= set(re.findall(r"hash ([0-9a-f]{16})", out.splitlines()[0]))
    assert len(hashes) == 1, hashes


def test_bad_inputs_one_line_errors(trained, tmp_path):
    one_line_error(*cli("train", "--preset", "resnet", "--data", "digits", "-o", tmp_path / "x.pt")[::2],
                   "unknown preset 'resnet'; choose one of mlp, cnn")
    one_line_error(*cli("train", "--preset", "mlp", "--data", "cifar", "-o", tmp_path / "x.pt")[::2],
                   "unknown data set 'cifar'")
    (tmp_path / "idx").mkdir()
    one_line_error(*cli("train", "--preset", "mlp", "--data", f"idx:{tmp_path / 'idx'}",
                        "-o", tmp_path / "x.pt")[::2], "missing train-images-idx3-ubyte")
    ro = tmp_path / "ro"
    ro.mkdir()
    (ro / "sub").write_text("a file, not a folder")
    one_line_error(*cli("train", "--preset", "mlp", "--data", "digits", "--epochs", "1",
                        "-o", ro / "sub" / "m.pt")[::2], "cannot write the model there")
    # root may "access" a folder it cannot create files in: refused before training, no traceback
    one_line_error(*cli("train", "--preset", "mlp", "--data", "digits", "--epochs", "1",
                        "-o", "/proc/m.pt")[::2], "^bnn-mcu: error: /proc/m.pt: cannot write the "
                                                  "model there")
    one_line_error(*cli("convert", tmp_path / "missing.pt", "-o", tmp_path / "m.bnn")[::2],
                   "no such file")
    # a pickled module: refused without --trust-pickle
    from bnn_mcu.nn.presets import ModelConfig, build_model
    torch.save(build_model(ModelConfig("mlp", (8, 8, 1), 10, width=16)), tmp_path / "pickled.pt")
    one_line_error(*cli("convert", tmp_path / "pickled.pt", "-o", tmp_path / "p.bnn")[::2],
                   "pickled Python object; loading it runs code from the file.*--trust-pickle")
    rc, out, err = cli("convert", tmp_path / "pickled.pt", "--trust-pickle", "-o", tmp_path / "p.bnn")
    assert rc == 0, err
    # a damaged .bnn
    data = bytearray((trained / "ref.bnn").read_bytes())
    data[100] ^= 4
    (tmp_path / "bad.bnn").write_bytes(bytes(data))
    one_line_error(*cli("inspect", tmp_path / "bad.bnn")[::2], r"corrupt .bnn file \(content hash mismatch\)")
    (tmp_path / "short.bnn").write_bytes(bytes(data[:50]))
    one_line_error(*cli("inspect", tmp_path / "short.bnn")[::2], "truncated or corrupt")
    # an unsupported layer
    body = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 4))
    from bnn_mcu.nn.export import export_module, save_program
    from bnn_mcu.nn.layers import InputQuant

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.q, self.b = InputQuant(1), body

        def forward(self, x):
            return self.b(self.q(x))
    save_program(export_module(Net(), (8, 8, 1)), tmp_path / "float.pt")
    one_line_error(*cli("convert", tmp_path / "float.pt", "-o", tmp_path / "f.bnn")[::2],
                   r"node 'linear' \(linear.default\): weights are not binary")
    np.save(tmp_path / "wrong.npy", np.zeros((3, 9, 9), np.uint8))
    one_line_error(*cli("predict", trained / "ref.bnn", "--inputs", tmp_path / "wrong.npy", "-o",
                        tmp_path / "p.npy")[::2], r"shape \(3, 9, 9\), the model takes N x 8 x 8")
    one_line_error(*cli("predict", trained / "ref.bnn", "--inputs", tmp_path / "wrong.npy", "-o",
                        tmp_path / "p.npy", "--target", "fpga")[::2], "unknown target 'fpga'")
    # counts and rates out of range: argparse's usage line and one error line, exit 2
    for args, msg in ((("--epochs", "0"), "argument --epochs: 0 is less than 1"),
                      (("--batch-size", "x"), "argument --batch-size: 'x' is not an integer"),
                      (("--lr-start", "-1"), "argument --lr-start: -1 is not above 0"),
                      (("--dropout-in", "1"), "argument --dropout-in: 1 is not in [0, 1)")):
        rc, _, err = cli("train", "--preset", "mlp", "--data", "digits", *args, "-o",
                         tmp_path / "x.pt")
        assert rc == 2 and err.strip().splitlines()[-1] == f"bnn-mcu train: error: {msg}", err
    one_line_error(*cli("bench", trained / "m.pt", "--target", "host", "--report",
                        "/proc/r.html")[::2], "^bnn-mcu: error: /proc/r.html: cannot write the "
                                              "report there")
    rc, _, err = cli("convert", trained / "ref.bnn", "-o", tmp_path / "new" / "sub" / "c.bnn")
    assert rc == 0 and (tmp_path / "new" / "sub" / "c.bnn").is_file(), err  # folders created
    np.save(tmp_path / "x.npy", np.zeros((2, 8, 8), np.uint8))
    one_line_error(*cli("predict", trained / "ref.bnn", "--inputs", tmp_path / "x.npy", "-o",
                        "/proc/p.npy")[::2], "^bnn-mcu: error: /proc/p.npy: cannot write the "
                                             "predictions there")
    # not a model at all: a folder, a text file
    kinds = r"a torch.export program \(.pt/.pt2\), a bnn-mcu checkpoint \(.ckpt\), a .bnn"
    one_line_error(*cli("inspect", tmp_path)[::2], f"{tmp_path}: is a folder; give a model file "
                   f"\\({kinds}")
    (tmp_path / "m.json").write_text("{}")
    one_line_error(*cli("convert", tmp_path / "m.json", "-o", tmp_path / "j.bnn")[::2],
                   f"m.json: not a model file; expected {kinds}")
    # a data set of another image size (the model is an 8x8 digits model)
    for args in (("evaluate", trained / "m.pt"), ("evaluate", trained / "ref.bnn"),
                 ("verify", trained / "m.pt"), ("verify", trained / "m.pt", "--target", "host")):
        one_line_error(*cli(*args, "--data", "mnist5k")[::2], r"^bnn-mcu: error: the model takes "
                       r"8x8x1 images, the inputs are 28x28x1: use a data set or inputs of the "
                       r"model's size$")


def test_small_mistakes_are_one_line(trained, tmp_path):
    """Issue 16's list: each of these was a traceback, a wrong name or a misleading line."""
    (tmp_path / "afile").write_text("x")
    one_line_error(*cli("demo", "--out", "/sys/x")[::2], r"^bnn-mcu: error: /sys/x/model.pt: "
                   r"cannot write the demo's files there")
    one_line_error(*cli("demo", "--out", tmp_path / "afile")[::2], r"afile: is a file; --out "
                   "names a folder")
    # a text file is not "pickled data"
    (tmp_path / "x.txt").write_text("1 2 3\n")
    one_line_error(*cli("predict", trained / "ref.bnn", "--inputs", tmp_path / "x.txt", "-o",
                        tmp_path / "p.npy")[::2], r"x.txt: not a .npy file; save the uint8 "
                   r"images with numpy.save$")
    # the file predict names is the file it wrote, whatever its suffix
    np.save(tmp_path / "x.npy", np.zeros((3, 8, 8), np.uint8))
    rc, out, err = cli("predict", trained / "ref.bnn", "--inputs", tmp_path / "x.npy", "-o",
                       tmp_path / "p.txt")
    assert rc == 0 and out.strip().endswith(f"-> {tmp_path / 'p.txt'}"), err
    assert not (tmp_path / "p.txt.npy").exists() and np.load(tmp_path / "p.txt").shape == (3,)
    # unknown names are argument mistakes: exit 2, like every other one
    for args, pattern in ((("verify", trained / "ref.bnn", "--target", "qemu:mps9"),
                           "unknown QEMU board 'mps9'"),
                          (("verify", trained / "ref.bnn", "--target", "fpga"),
                           "unknown target 'fpga'"),
                          (("bench", trained / "ref.bnn", "--target", "qemu:mps9"),
                           "unknown QEMU board 'mps9'"),
                          (("generate", trained / "ref.bnn", "--platformio", "--board", "nucleo_zz",
                            "-o", tmp_path / "proj"), "unknown board 'nucleo_zz'")):
        one_line_error(*cli(*args)[::2], pattern, code=2)
    # the preset is checked before the data set is read
    one_line_error(*cli("train", "--preset", "resnet", "--data", f"idx:{tmp_path}/none", "-o",
                        tmp_path / "m.pt")[::2], "unknown preset 'resnet'")


def test_qemu_env_spelling_is_a_target():
    from bnn_mcu.targets.dispatch import check_target, device_targets
    check_target("qemu-mps2-an386")
    (t,) = device_targets("qemu-mps2-an386", 115200)
    assert (t.kind, t.name) == ("qemu", "mps2-an386")


def test_every_option_has_help():
    import argparse
    from bnn_mcu.cli import build_parser
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    missing = [f"{name} {a.option_strings or a.dest}" for name, p in sub.choices.items()
               for a in p._actions if not a.help]
    assert not missing, missing


def test_bench_table_names_each_unit():
    from bnn_mcu.bench import BenchReport, LayerBench, bench_table
    layer = LayerBench("d", "bnn_bdense_b1", "1x1x64", "1x1x64", 4096, 0, 1024)
    for unit, column, per in (("instructions", "MACs/instr.", "MACs per instruction"),
                              ("cycles", "MACs/cycle", "MACs per cycle"),
                              ("ticks", "MACs/tick", "MACs per tick"),
                              ("ns", "MACs/ns", "MACs per ns")):
        text = bench_table(BenchReport("b", "c", unit, 1100, 1, 1, 1, 1, 1, 1, [layer], 76))
        header = text.splitlines()[1]
        assert column in header.split("  ") or f" {column} " in header, header
        assert f"4.00 {unit}" not in text and f"({4096 / 1100:.2f} {per}" in text, text


def test_interrupted_train_names_the_checkpoint(tmp_path):
    import signal
    import time
    out = tmp_path / "m.pt"
    # A suite started in the background (`cmd &` in a script) inherits SIGINT ignored, and so
    # would the child: give it the default disposition, as a terminal user's process has.
    p = subprocess.Popen([sys.executable, "-m", "bnn_mcu.cli", "train", "--preset", "mlp",
                          "--width", "16", "--data", "digits", "--epochs", "1000", "-q",
                          "-o", str(out)], cwd=ROOT, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 300
        while not out.with_suffix(".ckpt").exists() and time.monotonic() < deadline:
            assert p.poll() is None, p.communicate()
            time.sleep(0.2)
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=60)
    finally:
        p.kill()
    ckpt = out.with_suffix(".ckpt")
    assert p.returncode == 130 and "Traceback" not in err, err
    assert (f"interrupted; {ckpt} holds the last finished epoch: continue with the same "
            f"command plus --resume {ckpt}") in err.strip().splitlines()[-1], err


def test_docs_agree_on_the_cnn_instruction_count():
    """README's figures table and docs/robustness.md quote the same M4 CNN count."""
    import re
    readme = open(os.path.join(ROOT, "README.md")).read()
    robust = open(os.path.join(ROOT, "docs", "robustness.md")).read()
    row = next(l for l in readme.splitlines() if l.startswith("| CNN conv32")
               and "instructions per inference | cortex-m4 |" in l)
    m4 = row.split("|")[3].strip()
    quoted = re.findall(r"M4 MLP [\d,]+, CNN\s+([\d,]+)", robust)[-1]  # the latest figures
    assert quoted == m4, (quoted, m4)
