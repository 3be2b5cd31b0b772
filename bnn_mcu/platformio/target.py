"""`--target pio:PROJECT:ENV`: a generated PlatformIO project's QEMU env, built and run by pio.

    bnn-mcu verify MODEL --target pio:out/proj:qemu-mps2-an386 --data fashion-mnist

builds the env with `pio run -e ENV` (offline pieces checked first, bounded by a timeout), then
runs `pio run -e ENV -t upload`: the bnn-qemu platform starts QEMU with the board's UART on a
TCP server at the port bnn-mcu chose (BNN_QEMU_PORT), and the usual session (DeviceLink, bulk
region, parity table) talks to it, exactly as for qemu:BOARD. Real-board envs are flashed with
pio and verified with --target serial:PORT.
"""

from __future__ import annotations

import configparser
import shlex
import shutil
import sys
from pathlib import Path

from ..errors import BnnError, TargetError
from ..ir import bnnfile
from ..targets.boards import BOARDS, REAL_BOARDS
from ..targets.host import SerialProcess, bulk_file
from .pieces import check_ready, pio_command, pio_variables, run_pio
from .project import env_spec

KIND = "pio"
MODEL_FILE = Path("lib") / "bnn_model" / "model.bnn"


def split_target(name: str) -> tuple[Path, str]:
    """"PROJECT:ENV" -> (project folder, env); one-line errors for what does not exist."""
    proj, sep, env = name.rpartition(":")
    if not sep or not proj or not env:
        raise BnnError(f"pio target {name!r}: write pio:PROJECT_DIR:ENV, e.g. "
                       "pio:out/proj:qemu-mps2-an386")
    path = Path(proj)
    ini = path / "platformio.ini"
    if not ini.is_file():
        raise BnnError(f"{path} is not a PlatformIO project (no platformio.ini): generate it "
                       "with `bnn-mcu generate MODEL --platformio -o DIR`")
    envs = project_envs(ini)
    if env not in envs:
        raise BnnError(f"{ini} has no env {env!r}; its envs: {', '.join(envs) or 'none'}")
    if env in REAL_BOARDS:
        raise BnnError(f"{env} is a real board: flash it with `pio run -d {path} -e {env} -t "
                       f"upload`, then use --target serial:{REAL_BOARDS[env].port_hint}")
    try:
        env_spec(env)
    except BnnError:
        raise BnnError(f"env {env} of {ini} is not one of bnn-mcu's QEMU envs") from None
    return path, env


def check_target(name: str) -> None:
    """Fail fast, before models and data are loaded: the project, the env, the offline pieces."""
    split_target(name)
    check_ready()


def project_envs(ini: Path) -> list[str]:
    cfg = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        cfg.read(ini)
    except configparser.Error as e:
        raise TargetError(f"{ini}: not readable ({e.__class__.__name__})") from None
    return [s[4:] for s in cfg.sections() if s.startswith("env:")]


def check_model(project: Path, model) -> None:
    """The project must have been generated from this model (its hash is checked again by the
    link, but a rebuild of the wrong project is worth avoiding)."""
    path = project / MODEL_FILE
    try:
        have = bnnfile.model_hash(bnnfile.load(path))
    except Exception as e:  # missing or unreadable
        raise TargetError(f"{project}: cannot read the project's model ({e}): regenerate it "
                          f"with `bnn-mcu generate MODEL --platformio -o {project} --force`") from None
    want = bnnfile.model_hash(model)
    if have != want:
        raise TargetError(f"{project} was generated from another model (hash {have[:16]}; this "
                          f"model has {want[:16]}): regenerate it with `bnn-mcu generate MODEL "
                          f"--platformio -o {project} --force`")


def pio_firmware(name: str, model, core_dir: Path | None = None):
    """Build the env with `pio run`; the session's Firmware (ELF and sizes)."""
    from ..targets.session import Firmware, _elf_sizes

    project, env = split_target(name)
    check_model(project, model)
    core = check_ready(core_dir)
    print(f"building {env} of {project} with pio ...", file=sys.stderr)
    run_pio(["run", "-d", str(project), "-e", env], core, what=f"pio run -e {env}")
    elf = project / ".pio" / "build" / env / "firmware.elf"
    if not elf.is_file():
        raise TargetError(f"`pio run -e {env}` produced no {elf}")
    return Firmware(elf, *_elf_sizes(elf, host=False))


class PioUploadProcess(SerialProcess):
    """`pio run -d PROJECT -e ENV -t upload`: QEMU started by the bnn-qemu platform, its UART
    on 127.0.0.1:PORT; a context manager yielding the serial object, like QemuProcess."""

    def __init__(self, name: str, *, bulk=None, count_instructions: bool = False,
                 core_dir: Path | None = None, **kw):
        if count_instructions:
            raise TargetError("exact instruction counts run the firmware under qemu:BOARD, "
                              "not through pio")
        if shutil.which("qemu-system-arm") is None:
            raise TargetError("qemu-system-arm not found (pio's upload runs it): "
                              "apt-get install qemu-system-arm")
        self.project, self.env = split_target(name)
        self.core = check_ready(core_dir)
        # pio starts, checks the build, then starts QEMU: slower to listen than QEMU alone.
        kw.setdefault("connect_timeout", 60.0)
        super().__init__(f"pio run -e {self.env} -t upload", **kw)
        self.board = BOARDS[env_spec(self.env).qemu]
        self.bulk = bulk

    def command(self, port: int) -> list[str]:
        extra = []
        if self.bulk is not None:
            b = self.board
            path = bulk_file(self.bulk, self.workdir)
            if b.bulk is None or path.stat().st_size > b.bulk.size:
                raise TargetError(f"bulk data of {path.stat().st_size} bytes does not fit "
                                  f"{b.name}'s bulk region")
            extra = ["-device", f"loader,file={path},addr=0x{b.bulk.base:08x}"]
        variables = {**pio_variables(self.core), "BNN_QEMU_PORT": str(port),
                     "BNN_QEMU_SERIAL_LOG": str(self.workdir / "uart.log"),
                     "BNN_QEMU_ARGS": shlex.join(extra)}
        return ["env", *(f"{k}={v}" for k, v in variables.items()), *pio_command(),
                "run", "-d", str(self.project), "-e", self.env, "-t", "upload"]

    def serial_log_path(self) -> Path | None:
        return self._dir / "uart.log" if self._dir else None
