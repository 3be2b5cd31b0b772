"""PlatformIO projects (bnn_mcu/platformio): generation, offline `pio run` on the QEMU envs with
exact parity, and what CI can check of the real-board envs.

- A trained model and a plain-PyTorch BNN each give a project; for every QEMU env,
  `pio run -e ENV -t upload` (the local bnn-qemu platform) runs the runner in QEMU and every score
  equals the emulator's.
- Real-board envs: the project's structure, the same sources cross-compiled with each board's core
  flags, and each framework's glue compiled against the STAND-IN vendor headers of
  tests/fixtures/pio_stubs (not the vendors' code: the frameworks cannot be installed here).
- User errors are one line; a missing offline piece fails fast, before pio runs; every pio call
  is bounded by a timeout.
"""

from __future__ import annotations

import configparser
import hashlib
import json
import shutil
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from bnn_mcu import cli, emulator
from bnn_mcu.errors import TargetError
from bnn_mcu.ir import bnnfile
from bnn_mcu.models import load_model
from bnn_mcu.platformio import pieces, qemu_boards
from bnn_mcu.platformio.project import env_spec, supported_envs
from bnn_mcu.targets.boards import QEMU_BOARDS, REAL_BOARDS
from bnn_mcu.targets.session import Target, run_on_device

STUBS = Path(__file__).parent / "fixtures" / "pio_stubs"
HAVE_ARM = bool(shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm"))
needs_arm = pytest.mark.skipif(not HAVE_ARM, reason="needs qemu-system-arm and arm-none-eabi-gcc "
                               "(apt-get install qemu-system-arm gcc-arm-none-eabi "
                               "libnewlib-arm-none-eabi)")
QEMU_ENVS = [qemu_boards.env_name(b) for b in QEMU_BOARDS]
pytestmark = pytest.mark.timeout(300)


def run_cli(capsys, *args) -> tuple[int, str, str]:
    """The CLI in this process (torch is imported once for the whole module)."""
    capsys.readouterr()
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and ".pio" not in p.parts}


@pytest.fixture(scope="module")
def core(tmp_path_factory) -> Path:
    """A private PlatformIO core dir with the offline pieces (pip pins must be installed)."""
    missing = [p for p in pieces.PIP_PINS
               if pieces.installed_version(p.split("==")[0]) != p.split("==")[1]]
    if missing:
        pytest.fail(f"missing {' '.join(missing)}: pip install -e '.[test]' (make setup)")
    if not shutil.which("arm-none-eabi-gcc"):
        pytest.skip("needs arm-none-eabi-gcc")
    return pieces.setup(tmp_path_factory.mktemp("pio-core"), install=False)


@pytest.fixture(scope="module")
def work(tmp_path_factory, core):
    """A trained MLP (1 epoch on digits) and its PlatformIO project with every env."""
    d = tmp_path_factory.mktemp("pio")
    code = cli.main(["train", "--preset", "mlp", "--width", "64", "--data", "digits",
                     "--epochs", "1", "-q", "-o", str(d / "m.pt")])
    assert code == 0
    with pytest.MonkeyPatch.context() as mp:  # the QEMU envs name the platform of this core dir
        mp.setenv("BNN_PIO_CORE_DIR", str(core))
        assert cli.main(["generate", str(d / "m.pt"), "--platformio", "-o", str(d / "proj")]) == 0
    return d


@pytest.fixture(scope="module")
def digits():
    from bnn_mcu.data import load_dataset
    return load_dataset("digits")


@pytest.fixture(autouse=True)
def private_core(core, monkeypatch):
    monkeypatch.setenv("BNN_PIO_CORE_DIR", str(core))


# --- generation ------------------------------------------------------------------------------

def read_ini(proj: Path) -> configparser.ConfigParser:
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(proj / "platformio.ini")
    return cfg


def test_project_structure(work, core):
    proj = work / "proj"
    cfg = read_ini(proj)
    envs = [s[4:] for s in cfg.sections() if s.startswith("env:")]
    assert envs == supported_envs() == [*REAL_BOARDS, *QEMU_ENVS]
    assert cfg["platformio"]["default_envs"] == "nucleo_f401re"
    for name, b in REAL_BOARDS.items():
        sec = cfg[f"env:{name}"]
        assert (sec["platform"], sec["board"], sec["framework"]) == (b.platform, b.name,
                                                                     b.framework)
        assert f"-D BNN_BOARD_{name.upper()}" in sec["build_flags"]
        assert sec["lib_deps"] == f"bnn_port_{b.glue}"
        assert ("build_src_flags" in sec) == (b.framework == "arduino")
    ports = set()
    for name in QEMU_ENVS:
        sec = cfg[f"env:{name}"]
        assert (sec["platform"], sec["board"], sec["framework"]) == (
            f"symlink://{core / 'bnn' / 'bnn-qemu'}", name, "bnn-ports")
        ports.add(sec["upload_port"])
    assert len(ports) == len(QEMU_ENVS)  # two QEMU envs can run at once
    assert (proj / "src" / "main.c").is_file()
    lib = proj / "lib"
    for name in ("bnn_model", "bnn_runtime", "bnn_port_stm32cube", "bnn_port_arduino"):
        manifest = json.loads((lib / name / "library.json").read_text())
        assert manifest["name"] == name
    assert json.loads((lib / "bnn_port_stm32cube" / "library.json").read_text())["frameworks"] \
        == "stm32cube"
    for h in ("bnn_kernels.h", "bnn_model_api.h", "bnn_port.h", "bnn_protocol.h"):
        assert (lib / "bnn_runtime" / "include" / h).is_file()
    assert list((lib / "bnn_runtime" / "src" / "protocol").glob("bnn_runner.c"))
    assert list((lib / "bnn_runtime" / "src" / "kernels").glob("bnn_*.c"))
    model = load_model(work / "m.pt")
    assert bnnfile.model_hash(bnnfile.load(lib / "bnn_model" / "model.bnn")) == \
        bnnfile.model_hash(model)
    board_h = (lib / "bnn_port_stm32cube" / "src" / "board.h").read_text()
    assert "#define BNN_UART_INSTANCE        LPUART1" in board_h and "GPIO_AF8_LPUART1" in board_h
    readme = (proj / "README.md").read_text()
    assert "pio run -e nucleo_f401re -t upload" in readme
    assert "--target serial:/dev/ttyACM0" in readme


def test_generation_is_deterministic(work, capsys):
    again = work / "again"
    code, _, err = run_cli(capsys, "generate", work / "m.pt", "--platformio", "-o", again)
    assert code == 0, err
    assert tree(again) == tree(work / "proj")
    # --force over an older project with other boards: exactly the same files afterwards
    code, _, err = run_cli(capsys, "generate", work / "m.pt", "--platformio", "--board", "pico",
                           "-o", again, "--force")
    assert code == 0, err
    assert not (again / "lib" / "bnn_port_stm32cube").exists()
    code, _, err = run_cli(capsys, "generate", work / "m.pt", "--platformio", "-o", again,
                           "--force")
    assert tree(again) == tree(work / "proj")


def test_board_selection_and_errors(work, capsys):
    out = work / "sel"
    code, text, err = run_cli(capsys, "generate", work / "m.pt", "--platformio", "--board",
                              "nucleo_l552ze_q", "--board", "qemu-microbit", "-o", out)
    assert code == 0, err
    assert "envs nucleo_l552ze_q, qemu-microbit" in text
    assert [s for s in read_ini(out).sections() if s.startswith("env:")] == \
        ["env:nucleo_l552ze_q", "env:qemu-microbit"]
    assert not (out / "lib" / "bnn_port_arduino").exists()

    code, _, err = run_cli(capsys, "generate", work / "m.pt", "--platformio", "--board",
                           "esp32dev", "-o", work / "bad")
    line = one_line(err)
    assert code == 2 and "unknown board 'esp32dev'" in line
    assert all(name in line for name in supported_envs())
    code, _, err = run_cli(capsys, "generate", work / "m.pt", "--board", "pico", "-o", work / "b2")
    assert code == 2 and "add --platformio" in one_line(err)
    assert not (work / "bad").exists() and not (work / "b2").exists()


def test_links_in_the_output_folder_are_refused(work, tmp_path, capsys):
    """--force over a folder whose README.md or lib/bnn_runtime is a link: nothing is written
    through it (outside the output folder)."""
    outside = tmp_path / "outside"
    outside.mkdir()
    for rel in ("README.md", "lib/bnn_runtime", "src"):
        proj = tmp_path / rel.replace("/", "_")
        (proj / rel).parent.mkdir(parents=True, exist_ok=True)
        (proj / rel).symlink_to(outside / "x")
        code, _, err = run_cli(capsys, "generate", work / "m.pt", "--platformio", "--board",
                               "qemu-mps2-an386", "-o", proj, "--force")
        assert code == 2 and "is a symbolic link" in one_line(err), err
    assert list(outside.iterdir()) == []


def test_model_too_large_for_a_board(tmp_path, capsys):
    from bnn_mcu.ir.synthetic import random_model
    big = random_model(3, (28, 28, 1), [("dense", dict(out=1024)), ("dense", dict(out=10))])
    bnnfile.save(big, tmp_path / "big.bnn")
    flash = big.param_bytes
    assert 64 * 1024 < flash < 400 * 1024  # more than a Blue Pill has, less than a Nucleo
    code, _, err = run_cli(capsys, "generate", tmp_path / "big.bnn", "--platformio", "--board",
                           "bluepill_f103c8", "-o", tmp_path / "p")
    line = one_line(err)
    assert code == 2
    assert f"model needs {flash:,} B of flash" in line
    assert "more than the 40 KB of bluepill_f103c8 left after the framework and the runner, of " \
           "64 KB flash and 20 KB RAM in all (40,960 B)" in line
    assert not (tmp_path / "p").exists()
    # the default set leaves out the boards it does not fit, and says so
    code, text, err = run_cli(capsys, "generate", tmp_path / "big.bnn", "--platformio",
                              "-o", tmp_path / "all")
    assert code == 0, err
    assert [ln.split(":")[0] for ln in err.splitlines()] == ["left out bluepill_f103c8"]
    assert "nucleo_f401re" in text and "bluepill_f103c8" not in text
    assert "bluepill_f103c8" in (tmp_path / "all" / "README.md").read_text()  # the note


def test_qemu_board_manifests_are_current():
    boards_dir = qemu_boards.platform_dir() / "boards"
    on_disk = {p.name: p.read_text() for p in boards_dir.glob("*.json")}
    assert on_disk == qemu_boards.manifest_files(), \
        "stale: python -m bnn_mcu.platformio.qemu_boards"


# --- offline set-up ---------------------------------------------------------------------------

def test_setup_is_idempotent_and_offline(core, capsys):
    t0 = time.monotonic()
    assert pieces.setup(core, install=False) == core
    assert time.monotonic() - t0 < 1.0  # a ready core dir runs nothing
    assert pieces.missing_pieces(core) == []
    code, out, err = run_cli(capsys, "pio-setup", "--core-dir", core, "--no-install")
    assert code == 0, err
    assert f"export PLATFORMIO_CORE_DIR={core}" in out


def test_missing_pieces_fail_fast(work, tmp_path, capsys, monkeypatch):
    empty = tmp_path / "empty-core"
    monkeypatch.setenv("BNN_PIO_CORE_DIR", str(empty))
    t0 = time.monotonic()
    code, _, err = run_cli(capsys, "verify", work / "m.pt", "--target",
                           f"pio:{work / 'proj'}:qemu-mps2-an386", "--data", "digits")
    line = one_line(err)
    assert code == 3 and time.monotonic() - t0 < 10
    assert "missing:" in line and "tool-scons" in line and "bnn-mcu pio-setup" in line

    # a core dir that lost one piece: that piece is named, and pio is never started
    core = pieces.setup(tmp_path / "one-short", install=False)
    (core / "packages" / "tool-scons.pio-link").unlink()
    assert pieces.missing_pieces(core) == [f"tool-scons in {core}"]
    with pytest.raises(TargetError, match="missing: tool-scons in .*bnn-mcu pio-setup"):
        pieces.run_pio(["run"], pieces.check_ready(core))


def test_plain_pio_run_before_setup_fails_in_one_line(tmp_path, monkeypatch):
    """`pio run -e qemu-...` in a core dir without the offline pieces (the user's default one,
    or before `bnn-mcu pio-setup`): the platform says so at once, instead of pio spending a
    minute on its registry and printing an empty HTTPClientError."""
    from bnn_mcu.ir.synthetic import random_model
    prepared = tmp_path / "prepared"  # what generate names; pio-setup has not run
    monkeypatch.setenv("BNN_PIO_CORE_DIR", str(prepared))
    bnnfile.save(random_model(0, (8, 8, 1)), tmp_path / "r.bnn")
    assert cli.main(["generate", str(tmp_path / "r.bnn"), "--platformio", "--board",
                     "qemu:mps2-an386", "-o", str(tmp_path / "proj")]) == 0
    assert f"tool-scons in {prepared}" in pieces.missing_pieces(prepared)
    t0 = time.monotonic()
    env = {**pieces.pio_variables(tmp_path / "users-core")}
    p = subprocess.run(["env", *(f"{k}={v}" for k, v in env.items()), *pieces.pio_command(),
                        "run", "-d", str(tmp_path / "proj"), "-e", "qemu-mps2-an386"],
                       capture_output=True, text=True, timeout=120)
    last = (p.stdout + p.stderr).strip().splitlines()[-1]
    assert p.returncode != 0 and time.monotonic() - t0 < 30, (p.returncode, last)
    assert last == (f"UserSideException: bnn-qemu: the PlatformIO core dir {tmp_path / 'users-core'} "
                    "lacks tool-scons and toolchain-gccarmnoneeabi (PlatformIO would try its "
                    f"registry): run `bnn-mcu pio-setup`, then `export PLATFORMIO_CORE_DIR="
                    f"{prepared}`"), last


def test_pio_target_errors(work, capsys):
    proj = work / "proj"
    cases = [(f"pio:{proj}:nucleo_f401re", r"real board: flash it with `pio run -d .* -e "
              r"nucleo_f401re -t upload`, then use --target serial:/dev/ttyACM0"),
             (f"pio:{proj}:qemu-none", r"has no env 'qemu-none'; its envs: nucleo_f401re"),
             (f"pio:{work}:qemu-mps2-an386", r"is not a PlatformIO project"),
             (f"pio:{proj}", r"write pio:PROJECT_DIR:ENV")]
    import re
    for target, pattern in cases:
        code, _, err = run_cli(capsys, "verify", work / "m.pt", "--target", target, "--data",
                               "digits")
        assert code == 2 and re.search(pattern, one_line(err)), (target, err)


def test_pio_run_is_bounded_by_a_timeout(work, core, monkeypatch):
    """An upload waits for a host that never comes: run_pio stops the whole process group."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("BNN_QEMU_PORT", str(port))
    proj = work / "proj"
    pieces.run_pio(["run", "-d", str(proj), "-e", "qemu-mps2-an386"], core)
    t0 = time.monotonic()
    with pytest.raises(TargetError, match=r"took more than 8 s and was stopped; last output: .*"
                                          r"QEMU waiting for connection"):
        pieces.run_pio(["run", "-d", str(proj), "-e", "qemu-mps2-an386", "-t", "upload"], core,
                       timeout=8)
    assert time.monotonic() - t0 < 20
    for _ in range(100):  # QEMU is gone: its port is free again
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", port))
            break
        except OSError:
            time.sleep(0.05)
    else:
        pytest.fail(f"port {port} still taken: QEMU survived the timeout")


# --- QEMU envs: pio run -t upload, exact parity -------------------------------------------------

@needs_arm
@pytest.mark.qemu
def test_verify_through_pio_cli(work, capsys):
    """The user's command, end to end: build with pio, run with `pio run -t upload`, parity."""
    code, out, err = run_cli(capsys, "verify", work / "m.pt", "--target",
                             f"pio:{work / 'proj'}:qemu-mps2-an386", "--data", "digits")
    assert code == 0, err
    assert "PARITY OK" in out
    row = [ln for ln in out.splitlines() if ln.startswith("pio:")][0]
    assert "360 (200 serial)" in row and " 0 " in row


@needs_arm
@pytest.mark.qemu
@pytest.mark.parametrize("env", QEMU_ENVS)
def test_every_qemu_env_is_exact(work, digits, env):
    model = load_model(work / "m.pt")
    x = digits.test_x[:160]
    res = run_on_device(model, Target("pio", f"{work / 'proj'}:{env}"), x, stream=40, trace=2,
                        progress=False)
    emu = emulator.run(model, x, trace=True)
    np.testing.assert_array_equal(res.scores, emu.scores)
    np.testing.assert_array_equal(res.classes, emu.predictions)
    assert res.streamed == 40 and res.bulk == 120
    assert res.info.core == env_spec(env).core
    for i, layers in enumerate(res.traces):
        for got, want in zip(layers, emu.layers):
            assert bytes(got) == np.ascontiguousarray(want[i]).tobytes()


@needs_arm
@pytest.mark.qemu
def test_plain_pytorch_bnn_through_pio(tmp_path, fashion, capsys):
    import torch
    from plain_bnn import export_plain, train_plain
    model = train_plain(fashion.train_x[:4000, ..., 0], fashion.train_y[:4000], steps=30)
    torch.export.save(export_plain(model), tmp_path / "plain.pt2")
    proj = tmp_path / "proj"
    code, _, err = run_cli(capsys, "generate", tmp_path / "plain.pt2", "--platformio",
                           "--board", "qemu-mps2-an386", "--board", "qemu-microbit",
                           "--board", "nucleo_f401re", "-o", proj)
    assert code == 0, err
    for env in ("qemu-mps2-an386", "qemu-microbit"):
        code, out, err = run_cli(capsys, "verify", tmp_path / "plain.pt2", "--target",
                                 f"pio:{proj}:{env}", "--data", "fashion-mnist", "--limit",
                                 "300", "--stream", "8", "--trace", "2")
        assert code == 0, err
        assert "PARITY OK" in out
    # a project made from another model is refused before anything is built
    other = tmp_path / "other"
    code, _, err = run_cli(capsys, "generate", tmp_path / "plain.pt2", "--platformio", "--board",
                           "qemu-mps2-an386", "-o", other)
    (other / "lib" / "bnn_model" / "model.bnn").write_bytes(b"BNN0")
    code, _, err = run_cli(capsys, "verify", tmp_path / "plain.pt2", "--target",
                           f"pio:{other}:qemu-mps2-an386", "--data", "fashion-mnist", "--limit", "4")
    last = err.strip().splitlines()[-1]  # after the "N vectors ..." progress line
    assert code == 3 and "Traceback" not in err
    assert f"{other}: cannot read the project's model" in last and "--force" in last


# --- real boards: same sources cross-compiled, glue against stand-in headers ----------------------

def _compile(cmd: list[str]) -> str | None:
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    return None if res.returncode == 0 else f"{' '.join(cmd)}\n{res.stderr}"


@pytest.mark.skipif(not shutil.which("arm-none-eabi-gcc"), reason="needs arm-none-eabi-gcc")
@pytest.mark.parametrize("board", list(REAL_BOARDS))
def test_real_board_sources_compile(work, tmp_path, board):
    """What `pio run -e BOARD` compiles, with the board's core flags: the runner, the model and
    the runtime as they are, and the framework glue against the stand-in vendor headers."""
    b = REAL_BOARDS[board]
    proj, lib = work / "proj", work / "proj" / "lib"
    glue = lib / f"bnn_port_{b.glue}" / "src"
    common = [*b.cflags, "-O2", "-Wall", "-Wextra", "-Werror", f"-DBNN_BOARD_{board.upper()}",
              "-I", str(lib / "bnn_runtime" / "include"), "-I", str(lib / "bnn_model")]
    jobs = []
    app_flags = ["-Dmain=bnn_app_main"] if b.framework == "arduino" else []
    sources = [proj / "src" / "main.c", *sorted((lib / "bnn_model").glob("*.c")),
               *sorted((lib / "bnn_runtime" / "src").rglob("*.c"))]
    for src in sources:
        extra = app_flags if src.parent.name == "src" and src.name == "main.c" else []
        jobs.append(["arm-none-eabi-gcc", "-std=c99", "-Wpedantic", *common, *extra,
                     "-I", str(src.parent), "-c", str(src)])
    stub = ["-I", str(glue), "-I", str(STUBS / b.glue)]
    for src in sorted(glue.iterdir()):
        if src.suffix == ".c":
            jobs.append(["arm-none-eabi-gcc", "-std=c99", "-Wpedantic", *common, *stub, "-c",
                         str(src)])
        elif src.suffix == ".cpp":
            jobs.append(["arm-none-eabi-g++", "-std=gnu++17", "-fno-exceptions", "-fno-rtti",
                         *common, *stub, "-c", str(src)])
    for i, job in enumerate(jobs):
        job += ["-o", str(tmp_path / f"{i}.o")]
    with ThreadPoolExecutor(max_workers=2) as pool:
        errors = [e for e in pool.map(_compile, jobs) if e]
    assert not errors, errors[0]
    assert len(jobs) > len(sources)  # the glue was compiled too
