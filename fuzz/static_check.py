"""cppcheck and clang-tidy on the firmware and on generated code, with every finding either
fixed or justified here (JUSTIFIED, also in docs/robustness.md).

    python fuzz/static_check.py [--only host,cortex-m4,...] [--verbose]

Targets: the host build (protocol, app, kernels' portable paths, host port), Cortex-M0, M4 and
M55 builds (kernels' v6-M, DSP and MVE paths, the Cortex-M port, with the board's headers and
newlib), and the generated C of two models (a CNN and an MLP: bnn_model.c plus the runtime
copy `generate` writes). Exits 1 when a finding is not justified. Needs cppcheck,
clang-tidy (Debian: cppcheck clang-tidy-14) and, for the Cortex-M runs, newlib headers
(libnewlib-arm-none-eabi).
"""

from __future__ import annotations

import argparse
import fnmatch
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FW = ROOT / "firmware"
NEWLIB = Path("/usr/lib/arm-none-eabi/include")
TIDY_CHECKS = "clang-analyzer-*,bugprone-*,cert-*,-bugprone-easily-swappable-parameters"
CPPCHECK = ["--enable=warning,style,performance,portability", "--std=c99", "--force",
            "--inline-suppr", "--quiet", "--template={file}:{line}: [{id}] {message}"]

# (path glob relative to the repo or the generated folder, check id glob) -> why it stays.
JUSTIFIED = {
    ("firmware/ports/host/port_host.c", "bugprone-reserved-identifier"):
        "_DEFAULT_SOURCE/_XOPEN_SOURCE are the POSIX feature-test macros: they must be defined",
    ("firmware/ports/host/port_host.c", "cert-dcl*"):
        "_DEFAULT_SOURCE/_XOPEN_SOURCE are the POSIX feature-test macros: they must be defined",
    ("firmware/ports/host/port_host.c", "cert-err33-c"):
        "return values of fprintf/fputs/fclose/fflush/sigaction on the exit and diagnostic "
        "paths: the program is ending or cannot report better, there is nothing to do on failure",
    ("firmware/ports/host/port_host.c", "bugprone-implicit-widening-of-multiplication-result"):
        "constant sizes (1 MiB stack + one page, 64 KiB signal stack): no overflow in 32 bits",
    ("firmware/ports/common/cortexm/startup.c", "*reserved-identifier"):
        "__data_start, __bss_end...: the names the linker script defines (toolchain convention)",
    ("firmware/ports/common/cortexm/startup.c", "cert-dcl*"):
        "__data_start, __bss_end...: the names the linker script defines (toolchain convention)",
    ("firmware/ports/common/cortexm/startup.c", "comparePointers"):
        "the startup code measures .data/.bss between linker-script symbols: that is its job",
    ("firmware/ports/common/cortexm/port_cortexm.c", "bugprone-branch-clone"):
        "counter_is_dwt ? BOARD_CLOCK_HZ : COUNTER_HZ: the two macros are equal on some boards",
}
# Kernels are being rewritten by their owner: findings there are listed as REPORTED (they do
# not fail this script unless --strict) and handed over in docs/robustness.md.
REPORTED = "firmware/src/kernels/*"

# Kernel findings reviewed by the kernel owner (docs/robustness.md, section 2, kernel table).
# Fixed: (file, check id) -> (lines at commit 1b6a2de, what was done). Such a finding seen
# again is OPEN.
KERNEL_FIXED = {
    ("firmware/src/kernels/bnn_bconv2d_b1.c", "clang-analyzer-core.uninitialized.Assign"):
        ("127", "false positive (the analyzer drops k_w * words(C) == 3 and reads padw[3]); the "
                "edge-window words are now filled by a loop over the 3 words"),
    ("firmware/src/kernels/bnn_conv9_thumb2.h", "clang-analyzer-core.UndefinedBinaryOperatorResult"):
        ("30", "false positive (same cause: k_w = 1, words(C) = 2 leaves edge[ky][2] unset); "
               "same fix"),
    ("firmware/src/kernels/bnn_kernel_util.h", "clang-analyzer-core.NullDereference"):
        ("91", "false positive (assumes out == NULL); the layer kernels' pointers are declared "
               "nonnull to the analyzer (BNN_NONNULL), as the contract requires"),
    ("firmware/src/kernels/bnn_maxpool2d_b1.c", "bugprone-implicit-widening-of-multiplication-result"):
        ("44,45", "false positive (kx * words(C) < 255 * 2048); size_t operand, same Arm code"),
}
# Justified: (file, check id, text of the flagged line) -> why it stays. Holds while the flagged
# line contains that text: edited, the finding is REPORTED again for a new look.
KERNEL_JUSTIFIED = {
    ("firmware/src/kernels/bnn_u8_table.h", "clang-analyzer-core.uninitialized.Assign",
     "for (; b != end; b += step, ++acc) *acc += BNN_TABLE_ENTRY(t0, b[0]);"):
        "false positive: the walk ends at b + nb * step, i.e. after exactly the nb sums the "
        "caller set (the analyzer does not relate the two induction variables); MSan, valgrind "
        "and the QEMU trace see no such read; no rewrite of the loop is free on v6-M",
    ("firmware/src/kernels/bnn_conv2d_u8_b1.c", "variableScope", "part[BNN_BLOCK]"):
        "style only: moving part[] into the branch changes GCC's register allocation "
        "(measured up to +0.5 % on some u8 convs), so it stays with m[]",
}

BOARDS = {  # clang-tidy target flags; cppcheck gets the same includes
    "cortex-m0": ("microbit", ["--target=arm-none-eabi", "-mcpu=cortex-m0", "-mthumb",
                               "-mfloat-abi=soft"]),
    "cortex-m4": ("mps2-an386", ["--target=arm-none-eabi", "-mcpu=cortex-m4", "-mthumb",
                                 "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard"]),
    "cortex-m55": ("mps3-an547", ["--target=arm-none-eabi", "-mcpu=cortex-m55", "-mthumb",
                                  "-mfloat-abi=hard"]),
}


def generate_models(out: Path) -> list[Path]:
    """Two generated projects (what `bnn-mcu generate` writes) to check."""
    sys.path.insert(0, str(ROOT))
    from bnn_mcu.codegen.project import generate_project
    from bnn_mcu.ir.synthetic import random_model

    cnn = random_model(1)
    mlp = random_model(2, layers=[("dense", dict(out=256)), ("dense", dict(out=100)),
                                  ("dense", dict(out=10))])
    dirs = []
    for name, m in (("cnn", cnn), ("mlp", mlp)):
        generate_project(m, out / name, core="cortex-m4")
        dirs.append(out / name)
    return dirs


def run(cmd: list, cwd: Path = ROOT) -> str:
    res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=1800)
    return res.stdout + res.stderr


_TIDY = re.compile(r"^(?P<file>[^:\s]+):(?P<line>\d+):\d+: (?:warning|error): (?P<msg>.*) "
                   r"\[(?P<ids>[\w.,\-]+)\]$")
_CPPC = re.compile(r"^(?P<file>[^:\s]+):(?P<line>\d+): \[(?P<ids>[\w.\-]+)\] (?P<msg>.*)$")


def parse(text: str, pattern: re.Pattern, base: Path) -> set:
    out = set()
    for line in text.splitlines():
        m = pattern.match(line.strip())
        if not m:
            continue
        f = Path(m["file"])
        f = f if f.is_absolute() else (base / f)
        try:
            rel = str(f.resolve().relative_to(ROOT))
        except ValueError:
            rel = "generated/" + "/".join(f.resolve().parts[-2:])
        for check in m["ids"].split(","):
            out.add((rel, int(m["line"]), check, m["msg"]))
    return out


def source_line(rel: str, line: int) -> str:
    try:
        lines = (ROOT / rel).read_text().splitlines()
    except OSError:
        return ""
    return lines[line - 1] if 0 < line <= len(lines) else ""


def justification(rel: str, check: str, line: int = 0) -> str | None:
    for (glob, cid), why in JUSTIFIED.items():
        if fnmatch.fnmatch(rel, glob) and fnmatch.fnmatch(check, cid):
            return why
    for (path, cid, text), why in KERNEL_JUSTIFIED.items():
        if rel == path and check == cid and text in source_line(rel, line):
            return why
    return None


def status(f: tuple, strict: bool) -> str:
    if justification(f[0], f[2], f[1]):
        return "justified"
    if (f[0], f[2]) in KERNEL_FIXED:
        return "OPEN"  # a fixed kernel finding is back
    if fnmatch.fnmatch(f[0], REPORTED) and not strict:
        return "REPORTED"
    return "OPEN"


def check_target(name: str, gen: list[Path]) -> set:
    inc = FW / "include"
    model_inc = gen[0]  # app/main.c and the ports include bnn_model.h
    findings = set()
    if name == "host":
        srcs = sorted((FW / "src").rglob("*.c")) + [FW / "ports/common/port_common.c",
                                                    FW / "ports/host/port_host.c"]
        flags = ["-std=c99", f"-I{inc}", f"-I{FW / 'ports/host'}", f"-I{FW / 'ports/common'}",
                 f"-I{model_inc}"]
        findings |= parse(run(["clang-tidy", f"-checks={TIDY_CHECKS}", *map(str, srcs), "--",
                               *flags]), _TIDY, ROOT)
        findings |= parse(run(["clang-tidy", f"-checks={TIDY_CHECKS}", str(FW / "app/main.c"),
                               "--", *flags, "-Dmain=bnn_app_main"]), _TIDY, ROOT)
        findings |= parse(run(["cppcheck", *CPPCHECK, *flags[1:], str(FW / "src"),
                               str(FW / "app"), *map(str, srcs[-2:])]), _CPPC, ROOT)
    elif name in BOARDS:
        board, target = BOARDS[name]
        bdir = FW / "ports" / board
        srcs = sorted((FW / "src" / "kernels").glob("*.c")) + sorted(
            (FW / "ports/common/cortexm").glob("*.c")) + sorted(bdir.glob("*.c"))
        flags = ["-std=c99", f"-I{inc}", f"-I{bdir}", f"-I{FW / 'ports/common'}",
                 f"-I{FW / 'ports/common/cortexm'}", f"-I{model_inc}", "-isystem", str(NEWLIB)]
        findings |= parse(run(["clang-tidy", f"-checks={TIDY_CHECKS}", *map(str, srcs), "--",
                               *target, *flags]), _TIDY, ROOT)
        findings |= parse(run(["cppcheck", *CPPCHECK, "-D__arm__", "-D__thumb__",
                               *[f for f in flags if f.startswith("-I")], *map(str, srcs)]),
                          _CPPC, ROOT)
    else:  # generated code
        for d in gen:
            flags = ["-std=c99", f"-I{d}"]  # one flat folder
            srcs = [d / "bnn_model.c"]
            findings |= parse(run(["clang-tidy", f"-checks={TIDY_CHECKS}", *map(str, srcs), "--",
                                   *flags]), _TIDY, d)
            findings |= parse(run(["cppcheck", *CPPCHECK, *flags[1:], *map(str, srcs)]),
                              _CPPC, d)
    return findings


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", help="comma-separated: host, cortex-m0, cortex-m4, cortex-m55, "
                                   "generated")
    ap.add_argument("--verbose", action="store_true", help="print justified findings too")
    ap.add_argument("--strict", action="store_true", help="kernel findings count as open")
    args = ap.parse_args(argv)
    for tool in ("cppcheck", "clang-tidy"):
        if shutil.which(tool) is None:
            print(f"{tool} not found: apt-get install cppcheck clang-tidy", file=sys.stderr)
            return 2
    names = args.only.split(",") if args.only else ["host", *BOARDS, "generated"]
    if any(n in BOARDS for n in names) and not NEWLIB.is_dir():
        print(f"{NEWLIB} not found: apt-get install libnewlib-arm-none-eabi", file=sys.stderr)
        return 2
    open_count = 0
    seen = set()
    with tempfile.TemporaryDirectory(prefix="bnn-static-") as tmp:
        gen = generate_models(Path(tmp))
        for name in names:
            found = sorted(check_target(name, gen))
            seen |= {(f[0], f[2]) for f in found}
            kinds = [status(f, args.strict) for f in found]
            open_count += kinds.count("OPEN")
            print(f"{name}: {len(found)} findings: {kinds.count('OPEN')} open, "
                  f"{kinds.count('REPORTED')} reported (kernels), {kinds.count('justified')} "
                  "justified", flush=True)
            for (rel, line, check, msg), kind in zip(found, kinds):
                if kind != "justified" or args.verbose:
                    why = justification(rel, check, line)
                    print(f"  {kind} {rel}:{line}: [{check}] {msg}"
                          + (f"\n      because: {why}" if why else ""))
    fixed = [k for k in KERNEL_FIXED if k not in seen]
    count = sum(len(KERNEL_FIXED[k][0].split(",")) for k in fixed)
    print(f"kernel findings reviewed (docs/robustness.md): {count} fixed (not seen again), "
          f"{len(KERNEL_JUSTIFIED)} justified, {len(KERNEL_FIXED) - len(fixed)} fixed kinds back")
    for rel, check in fixed if args.verbose else []:
        lines, note = KERNEL_FIXED[(rel, check)]
        print(f"  fixed {rel}:{lines}: [{check}] {note}")
    return 1 if open_count else 0


if __name__ == "__main__":
    sys.exit(main())
