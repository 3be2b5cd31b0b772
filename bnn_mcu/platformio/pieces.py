"""PlatformIO without its registry: the pieces `pio run` needs, in a private core dir.

Out of the box `pio run` downloads tool-scons, the platform and its toolchain from PlatformIO's
registry, which this machine cannot reach (each missing package costs about 60 s and ends in an
empty error). `bnn-mcu pio-setup` (setup()) prepares them locally instead, in a private core dir
(default ~/.cache/bnn-mcu/platformio-<version>; BNN_PIO_CORE_DIR or --core-dir to choose):

    CORE/bnn/tool-scons/                scons.py + SCons (PyPI, the version PlatformIO requires)
    CORE/bnn/toolchain-gccarmnoneeabi/  bin/arm-none-eabi-* -> Debian's /usr/bin/arm-none-eabi-*
    CORE/bnn/bnn-qemu/                  platform.json, boards/, builder/ (links into bnn-mcu's
                                        templates/platformio/platform) and firmware/ (the ports)
    CORE/packages/, CORE/platforms/     each registered with `pio pkg install -g ... symlink://`

Only pip (for the pinned PlatformIO and SCons, when they are missing) may use the network.
check_ready() looks at those files without running anything: run_pio() calls it first, so a
missing piece is a one-line error naming it and the fix, never a registry time-out. Every
`pio` call is bounded by a timeout and its whole process group is killed when it runs over.
"""

from __future__ import annotations

import fcntl
import importlib.metadata
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import TargetError
from ..resources import firmware_dir
from ..targets.build import ARM_PACKAGES, check_toolchain
from .qemu_boards import PLATFORM_NAME, platform_dir

#: Pinned: a core dir made by one PlatformIO version is not reliably usable by another.
PIO_VERSION = "6.2.0"
#: The SCons release PlatformIO 6.2.0 requires (its tool-scons "~4.41101.0" = SCons 4.11.1).
SCONS_VERSION = "4.11.1"
PIP_PINS = (f"platformio=={PIO_VERSION}", f"scons=={SCONS_VERSION}")
#: Version of our toolchain package: Debian's arm-none-eabi-gcc 12.2.1 in PlatformIO's scheme.
TOOLCHAIN_VERSION = "1.120201.0"
TOOLCHAIN_TOOLS = ("gcc", "g++", "cpp", "as", "ld", "ar", "ranlib", "nm", "objcopy", "objdump",
                   "readelf", "size", "strip", "gdb", "gcc-ar", "gcc-nm", "gcc-ranlib")
SETUP_HINT = "run `bnn-mcu pio-setup`"
PIO_TIMEOUT = 300.0  # one `pio run` (a first build of every env of a project takes ~10 s)
INSTALL_TIMEOUT = 120.0  # one `pio pkg install` of a local folder (~0.3 s)
PIP_TIMEOUT = 900.0


def default_core_dir() -> Path:
    env = os.environ.get("BNN_PIO_CORE_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "bnn-mcu" / f"platformio-{PIO_VERSION}"


def tool_scons_version(scons: str = SCONS_VERSION) -> str:
    """PlatformIO's version of the tool-scons package for an SCons release: 4.11.1 -> 4.41101.0."""
    major, minor, patch = (int(v) for v in scons.split("."))
    return f"{major}.{major * 10000 + minor * 100 + patch}.0"


def installed_version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def scons_package_dir() -> Path | None:
    spec = importlib.util.find_spec("SCons")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def pio_command() -> list[str]:
    """`pio` of this Python (the pinned version), not whatever is first on PATH."""
    return [sys.executable, "-m", "platformio"]


def pio_variables(core_dir: Path) -> dict:
    """What every `pio` call gets on top of the environment: the private core dir, no upgrade
    check, no telemetry (both would try the network)."""
    return {"PLATFORMIO_CORE_DIR": str(core_dir), "PLATFORMIO_DISABLE_UPGRADE_CHECK": "true",
            "PLATFORMIO_SETTING_ENABLE_TELEMETRY": "No"}


# --- the pieces ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Piece:
    name: str  # package name, also its folder under CORE/bnn/ and its .pio-link name
    kind: str  # "tool" or "platform" (pio pkg install -t / -p)
    version: str

    def folder(self, core: Path) -> Path:
        return core / "bnn" / self.name

    def link(self, core: Path) -> Path:
        return core / ("platforms" if self.kind == "platform" else "packages") / f"{self.name}.pio-link"


PIECES = (Piece("tool-scons", "tool", tool_scons_version()),
          Piece("toolchain-gccarmnoneeabi", "tool", TOOLCHAIN_VERSION),
          Piece(PLATFORM_NAME, "platform", "0.1.0"))

_SCONS_LAUNCHER = '''\
# Written by `bnn-mcu pio-setup`: PlatformIO runs this file to start SCons. The SCons package
# next to it links to the SCons {version} that pip installed from PyPI.
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import SCons.Script  # noqa: E402

SCons.Script.main()
'''


def _write_text(path: Path, text: str) -> None:
    if path.is_symlink() or (path.exists() and path.read_text() != text):
        path.unlink()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def _symlink(path: Path, target: Path) -> None:
    if path.is_symlink() and os.readlink(path) == str(target):
        return
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(target)


def _package_files(piece: Piece, folder: Path) -> None:
    """package.json, and the .piopm that names PlatformIO as the owner: what makes PlatformIO
    take a symlinked folder for the package it would otherwise download."""
    _write_text(folder / "package.json", json.dumps(
        {"name": piece.name, "version": piece.version,
         "description": "local piece written by bnn-mcu pio-setup"}, indent=2) + "\n")
    _write_text(folder / ".piopm", json.dumps(
        {"type": "tool", "name": piece.name, "version": piece.version,
         "spec": {"owner": "platformio", "id": None, "name": piece.name,
                  "requirements": None, "uri": None}}) + "\n")


def _write_pieces(core: Path) -> None:
    scons_dir = scons_package_dir()
    tools, chain = PIECES[0].folder(core), PIECES[1].folder(core)
    _package_files(PIECES[0], tools)
    _write_text(tools / "scons.py", _SCONS_LAUNCHER.format(version=SCONS_VERSION))
    _symlink(tools / "SCons", scons_dir)
    _package_files(PIECES[1], chain)
    for tool in TOOLCHAIN_TOOLS:
        exe = Path("/usr/bin") / f"arm-none-eabi-{tool}"
        if exe.exists():
            _symlink(chain / "bin" / exe.name, exe)
    write_platform(core)


def write_platform(core_dir: Path | None = None) -> Path:
    """CORE/bnn/bnn-qemu: links to this bnn-mcu's platform files and firmware (no pio needed).
    `generate --platformio` writes it too: the QEMU envs name it by path (platform_spec), so
    pio loads its platform.py, which fails in one line where the other pieces are missing."""
    folder = PIECES[2].folder(Path(core_dir) if core_dir else default_core_dir())
    src = platform_dir()
    for name in ("platform.json", "platform.py", "boards", "builder"):
        _symlink(folder / name, src / name)
    _symlink(folder / "firmware", firmware_dir())
    return folder


def platform_spec(core_dir: Path | None = None) -> str:
    """`platform =` of the QEMU envs: the platform folder by path, so that no core dir looks it
    up in PlatformIO's registry; under $HOME written as ${sysenv.HOME}/... (one project works
    for every user with the default core dir)."""
    folder = PIECES[2].folder(Path(core_dir) if core_dir else default_core_dir())
    home = Path(os.path.expanduser("~"))
    if folder.is_relative_to(home) and home != Path("/"):
        return "symlink://${sysenv.HOME}/" + folder.relative_to(home).as_posix()
    return f"symlink://{folder.as_posix()}"


def _registered(piece: Piece, core: Path) -> bool:
    """Is `piece` registered in the core dir as a link to its folder (and is the folder there)?"""
    try:
        spec = json.loads(piece.link(core).read_text())["spec"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    folder = piece.folder(core)
    return spec.get("uri") == f"symlink://{folder}" and (folder / _manifest(piece)).is_file()


def _manifest(piece: Piece) -> str:
    return "platform.json" if piece.kind == "platform" else "package.json"


def missing_pieces(core_dir: Path | None = None) -> list[str]:
    """What `pio run` on a bnn-qemu env still lacks (empty: ready). Runs nothing."""
    core = Path(core_dir) if core_dir else default_core_dir()
    missing = []
    have = installed_version("platformio")
    if have != PIO_VERSION:
        missing.append(f"PlatformIO {PIO_VERSION} (pip; found {have or 'none'})")
    have = installed_version("scons")
    if have != SCONS_VERSION or scons_package_dir() is None:
        missing.append(f"SCons {SCONS_VERSION} (pip; found {have or 'none'})")
    for piece in PIECES:
        if not _registered(piece, core):
            missing.append(f"{piece.name} in {core}")
    scons = PIECES[0].folder(core) / "SCons"
    if scons.is_symlink() and not scons.exists():
        missing.append(f"the SCons package that {scons} links to")
    if shutil.which("arm-none-eabi-gcc") is None:
        missing.append(f"arm-none-eabi-gcc (apt-get install {ARM_PACKAGES})")
    return missing


def check_ready(core_dir: Path | None = None) -> Path:
    """The core dir, ready for `pio run`; else a one-line TargetError naming what is missing."""
    core = Path(core_dir) if core_dir else default_core_dir()
    missing = missing_pieces(core)
    if missing:
        raise TargetError(f"PlatformIO is not set up for offline builds (missing: "
                          f"{'; '.join(missing)}): {SETUP_HINT}"
                          + (f" --core-dir {core}" if core != default_core_dir() else ""))
    return core


# --- running pio --------------------------------------------------------------------------------

@dataclass
class PioResult:
    code: int
    output: str
    seconds: float


def run_pio(args: list[str], core_dir: Path, cwd: Path | None = None,
            timeout: float = PIO_TIMEOUT, check: bool = True, what: str | None = None) -> PioResult:
    """`pio ARGS` with the private core dir; its output (stdout and stderr) is returned, and the
    whole process group is killed after `timeout` seconds. check=True: a non-zero exit is a
    TargetError with the first error lines."""
    import time

    from ..targets.build import first_errors

    what = what or "pio " + " ".join(args)
    with tempfile.TemporaryFile() as out:
        t0 = time.monotonic()
        try:
            proc = subprocess.Popen(pio_command() + list(args), cwd=cwd, env={**os.environ, **pio_variables(core_dir)},
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        except OSError as e:
            raise TargetError(f"cannot run {what}: {e}") from None
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            out.seek(0)
            tail = out.read().decode("utf-8", "replace").strip().splitlines()[-5:]
            raise TargetError(f"`{what}` took more than {timeout:.0f} s and was stopped"
                              + (f"; last output: {' | '.join(tail)}" if tail else "")) from None
        out.seek(0)
        text = out.read().decode("utf-8", "replace")
    res = PioResult(code, text, time.monotonic() - t0)
    if check and code != 0:
        raise TargetError(f"`{what}` failed (exit code {code}):\n{first_errors(text)}")
    return res


def _kill_group(proc: subprocess.Popen, grace: float = 5.0) -> None:
    """End pio and everything it started (SCons, QEMU): SIGTERM to the process group, SIGKILL
    to whatever is left after `grace` seconds; returns when the group is empty (or after a
    second grace period)."""
    import time

    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            proc.poll()  # reap the leader; orphaned children are reaped by init
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.02)
    proc.poll()


# --- setup --------------------------------------------------------------------------------------

def _pip_install(log) -> None:
    cmd = [sys.executable, "-m", "pip", "install", *PIP_PINS]
    log(f"installing {' '.join(PIP_PINS)} with pip ...")
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise TargetError(f"pip install {' '.join(PIP_PINS)} took more than "
                          f"{PIP_TIMEOUT:.0f} s") from None
    if res.returncode != 0:
        tail = (res.stderr or res.stdout).strip().splitlines()[-3:]
        raise TargetError(f"pip install {' '.join(PIP_PINS)} failed: {' | '.join(tail)}")
    importlib.invalidate_caches()


def setup(core_dir: Path | None = None, install: bool = True, log=lambda msg: None) -> Path:
    """Make `core_dir` ready for offline `pio run` on the bnn-qemu envs; idempotent (a ready
    core dir costs no subprocess). install=True lets pip fetch the pinned PlatformIO and SCons
    when they are missing. Returns the core dir."""
    core = Path(core_dir) if core_dir else default_core_dir()
    if installed_version("platformio") != PIO_VERSION or installed_version("scons") != SCONS_VERSION:
        if not install:
            raise TargetError(f"PlatformIO {PIO_VERSION} and SCons {SCONS_VERSION} are not "
                              f"installed: pip install {' '.join(PIP_PINS)}")
        _pip_install(log)
    if scons_package_dir() is None:
        raise TargetError(f"SCons is installed but not importable by {sys.executable}: "
                          f"pip install --force-reinstall scons=={SCONS_VERSION}")
    check_toolchain("mps2-an386")
    core.mkdir(parents=True, exist_ok=True)
    with open(core / ".bnn-setup.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel setups of one core dir take turns
        _write_pieces(core)
        for piece in PIECES:
            if _registered(piece, core):
                continue
            log(f"registering {piece.name} in {core}")
            flag = "-p" if piece.kind == "platform" else "-t"
            run_pio(["pkg", "install", "-g", flag, f"symlink://{piece.folder(core)}"], core,
                    cwd=core, timeout=INSTALL_TIMEOUT)
            if not _registered(piece, core):
                raise TargetError(f"`pio pkg install` did not register {piece.folder(core)} in "
                                  f"{core}: remove {core} and {SETUP_HINT} again")
    if shutil.which("qemu-system-arm") is None:
        log("note: qemu-system-arm is missing (needed by `-t upload`): "
            "apt-get install qemu-system-arm")
    return check_ready(core)
