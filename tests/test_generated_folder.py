"""The generated folder as a firmware engineer takes it (issue 16 items 1-2, issue 14 item 4):
one flat folder that `cc -c *.c` builds, only the kernels the model calls, a symbol prefix so
two models link into one program (and give the emulator's scores there), a header that refuses
another model's source, and README/header figures equal to what -fstack-usage and the linker
map say."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from bnn_mcu import emulator
from bnn_mcu.codegen.cores import CLANG_BUILDS_KERNELS, get_core
from bnn_mcu.codegen.project import generate_project
from bnn_mcu.ir.synthetic import random_model
from conftest import have

WARN = ["-std=c99", "-Wall", "-Wextra", "-Wpedantic", "-Werror"]
needs_arm = pytest.mark.skipif(not have("arm-none-eabi-gcc"), reason="needs gcc-arm-none-eabi")


def dense_model(seed: int = 21):
    return random_model(seed, input_shape=(8, 8, 1), layers=[("dense", dict(out=48)),
                                                             ("dense", dict(out=10))])


def conv_model(seed: int = 22):
    return random_model(seed, input_shape=(12, 12, 1), layers=[
        ("conv", dict(out=8, k=3, pad=1)), ("pool", dict(k=2)),
        ("conv", dict(out=16, k=3, pad=1)), ("dense", dict(out=5))])


def run(cmd, cwd=None, ok=True) -> subprocess.CompletedProcess:
    p = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True)
    if ok:
        assert p.returncode == 0, (cmd, p.stderr)
    return p


def sources(folder: Path) -> list[str]:
    return sorted(str(p) for p in folder.glob("*.c"))


def test_flat_folder_with_only_the_kernels_the_model_calls(tmp_path):
    out = tmp_path / "g"
    generate_project(dense_model(), out, with_figures=False)
    assert not [p for p in out.iterdir() if p.is_dir()]
    assert {p.name for p in out.glob("*.c")} == {
        "bnn_model.c", "bnn_dense_u8_b1.c", "bnn_bdense_s32.c", "bnn_argmax_s32.c"}
    # every quoted #include resolves in the folder; the generated model names no other file
    for f in out.iterdir():
        if f.suffix in (".c", ".h"):
            for name in re.findall(r'#\s*include\s*"([^"]+)"', f.read_text()):
                assert (out / name).is_file(), (f.name, name)
    for f in ("bnn_model.c", "bnn_model.h", "README.md"):
        for name in re.findall(r"[\w./-]+\.(?:[ch]|py|bnn)\b", (out / f).read_text()):
            assert (out / name).is_file() or name.startswith("*"), (f, name)
    # a conv model gets the conv kernels and not the dense ones
    generate_project(conv_model(), tmp_path / "c", with_figures=False)
    assert {p.name for p in (tmp_path / "c").glob("*.c")} == {
        "bnn_model.c", "bnn_conv2d_u8_b1.c", "bnn_maxpool2d_b1.c", "bnn_bconv2d_b1.c",
        "bnn_bdense_s32.c", "bnn_argmax_s32.c"}


@pytest.mark.parametrize("core", ["cortex-m0plus", "cortex-m4", "host"])
def test_cc_star_c_builds_without_include_paths(tmp_path, core):
    c = get_core(core)
    if not have(c.gcc):
        pytest.skip(f"needs {c.gcc}")
    out = tmp_path / "g"
    generate_project(conv_model(), out, core=core, prefix="kws_", with_figures=False)
    for opt in ("-O2", "-Os"):
        p = run([c.gcc, *WARN, opt, *c.gcc_flags, "-c", *sources(out)], cwd=tmp_path)
        assert not p.stderr, p.stderr


@pytest.mark.skipif(not have("clang"), reason="needs clang")
def test_clang_compiles_the_generated_model_for_every_core(tmp_path):
    """The generated C (data + schedule) under clang --target=arm-none-eabi, warning-free."""
    out = tmp_path / "g"
    generate_project(conv_model(), out, prefix="kws_", with_figures=False)
    for name in ("cortex-m0", "cortex-m0plus", "cortex-m3", "cortex-m4", "cortex-m7",
                 "cortex-m33", "cortex-m55", "cortex-m85"):
        for opt in ("-O2", "-Os"):
            p = run(["clang", *get_core(name).clang_flags, *WARN, opt, "-c",
                     out / "kws_bnn_model.c", "-o", tmp_path / "m.o"])
            assert not p.stderr, (name, opt, p.stderr)


@pytest.mark.skipif(not have("clang"), reason="needs clang")
@pytest.mark.parametrize("core", ["cortex-m0plus", "cortex-m4"])
def test_clang_builds_the_whole_folder_as_the_readme_says(tmp_path, core):
    """The README offers a clang build line only when cores.CLANG_BUILDS_KERNELS is True; that
    flag has to say what clang does with the kernels (issue 13 item 5 makes them build)."""
    out = tmp_path / "g"
    generate_project(conv_model(), out, core=core, with_figures=False)
    offered = "clang -O2 --target=arm-none-eabi" in (out / "README.md").read_text()
    assert offered == CLANG_BUILDS_KERNELS
    for opt in ("-O2", "-Os"):
        p = run(["clang", *get_core(core).clang_flags, "--sysroot=/usr/lib/arm-none-eabi", *WARN,
                 opt, "-c", *sources(out)], cwd=tmp_path, ok=False)
        assert (p.returncode == 0) == CLANG_BUILDS_KERNELS, \
            f"clang {opt} on {core}: rc {p.returncode}; set cores.CLANG_BUILDS_KERNELS to match\n{p.stderr[-600:]}"


MAIN = r"""
#include <stdio.h>
#include "kws_bnn_model.h"
#include "bnn_model.h"

/* argv[1]: N images for kws_ then N for the unprefixed model; writes both models' scores. */
int main(int argc, char **argv)
{
    static uint8_t a[KWS_BNN_MODEL_INPUT_BYTES], b[BNN_MODEL_INPUT_BYTES];
    int32_t sa[KWS_BNN_MODEL_NUM_CLASSES], sb[BNN_MODEL_NUM_CLASSES];
    FILE *in = argc > 1 ? fopen(argv[1], "rb") : NULL;
    if (!in) return 2;
    while (fread(a, 1, sizeof a, in) == sizeof a && fread(b, 1, sizeof b, in) == sizeof b) {
        int ca = kws_bnn_model_run(a, sa), cb = bnn_model_run(b, sb);
        fwrite(sa, sizeof sa, 1, stdout);
        fwrite(sb, sizeof sb, 1, stdout);
        fwrite(&ca, sizeof ca, 1, stdout);
        fwrite(&cb, sizeof cb, 1, stdout);
    }
    return 0;
}
"""


def test_two_models_link_into_one_program_and_match_the_emulator(tmp_path):
    ma, mb = conv_model(), dense_model()
    generate_project(ma, tmp_path / "kws", prefix="kws_", with_figures=False)
    generate_project(mb, tmp_path / "plain", with_figures=False)
    (tmp_path / "main.c").write_text(MAIN)
    obj = tmp_path / "obj"  # both folders' objects in one directory: no name clashes
    obj.mkdir()
    srcs = sources(tmp_path / "kws") + sources(tmp_path / "plain")
    run(["gcc", *WARN, "-O2", "-c", *srcs], cwd=obj)
    assert len(list(obj.glob("*.o"))) == len(srcs)
    # every external symbol of the prefixed folder starts with the prefix
    for o in obj.glob("kws_*.o"):
        defined = run(["nm", "-g", "--defined-only", o]).stdout.split()[2::3]
        assert defined and all(s.startswith("kws_") for s in defined), (o.name, defined)
    run(["gcc", *WARN, "-O2", f"-I{tmp_path / 'kws'}", f"-I{tmp_path / 'plain'}",
         tmp_path / "main.c", *sorted(obj.glob("*.o")), "-o", tmp_path / "prog"])
    rng = np.random.default_rng(5)
    n = 40
    xa = rng.integers(0, 256, (n, *ma.input_shape), dtype=np.uint8)
    xb = rng.integers(0, 256, (n, *mb.input_shape), dtype=np.uint8)
    (tmp_path / "in.bin").write_bytes(b"".join(xa[i].tobytes() + xb[i].tobytes() for i in range(n)))
    raw = subprocess.run([tmp_path / "prog", tmp_path / "in.bin"], capture_output=True,
                         check=True).stdout
    rec = np.frombuffer(raw, np.int32).reshape(n, ma.num_classes + mb.num_classes + 2)
    ra, rb = emulator.run(ma, xa), emulator.run(mb, xb)
    assert np.array_equal(rec[:, :ma.num_classes], ra.scores)
    assert np.array_equal(rec[:, ma.num_classes:-2], rb.scores)
    assert np.array_equal(rec[:, -2], ra.scores.argmax(1))
    assert np.array_equal(rec[:, -1], rb.scores.argmax(1))


@needs_arm
@pytest.mark.parametrize("core", ["cortex-m0plus", "cortex-m4"])
def test_two_models_link_into_one_arm_firmware(tmp_path, core):
    c = get_core(core)
    generate_project(conv_model(), tmp_path / "kws", prefix="kws_", core=core, with_figures=False)
    generate_project(conv_model(23), tmp_path / "img", prefix="img_", core=core,
                     with_figures=False)
    (tmp_path / "main.c").write_text(
        '#include "kws_bnn_model.h"\n#include "img_bnn_model.h"\n'
        "static uint8_t a[KWS_BNN_MODEL_INPUT_BYTES], b[IMG_BNN_MODEL_INPUT_BYTES];\n"
        "static int32_t sa[KWS_BNN_MODEL_NUM_CLASSES], sb[IMG_BNN_MODEL_NUM_CLASSES];\n"
        "int main(void) { return kws_bnn_model_run(a, sa) + img_bnn_model_run(b, sb); }\n")
    run([c.gcc, *WARN, "-O2", *c.gcc_flags, f"-I{tmp_path / 'kws'}", f"-I{tmp_path / 'img'}",
         "--specs=nano.specs", "--specs=nosys.specs", "-Wl,--gc-sections", tmp_path / "main.c",
         *sources(tmp_path / "kws"), *sources(tmp_path / "img"), "-o", tmp_path / "fw.elf"])
    syms = run([c.gcc.replace("gcc", "nm"), tmp_path / "fw.elf"]).stdout
    assert " T kws_bnn_bconv2d_b1" in syms and " T img_bnn_bconv2d_b1" in syms


def test_a_header_from_another_model_does_not_build(tmp_path):
    generate_project(conv_model(), tmp_path / "a", prefix="kws_", with_figures=False)
    generate_project(conv_model(24), tmp_path / "b", prefix="kws_", with_figures=False)
    run(["gcc", *WARN, "-c", tmp_path / "a" / "kws_bnn_model.c", "-o", tmp_path / "ok.o"])
    shutil.copy(tmp_path / "b" / "kws_bnn_model.h", tmp_path / "a" / "kws_bnn_model.h")
    p = run(["gcc", *WARN, "-c", tmp_path / "a" / "kws_bnn_model.c", "-o", tmp_path / "x.o"],
            ok=False)
    assert p.returncode != 0
    assert "#error" in p.stderr and "kws_bnn_model.h is from another model" in p.stderr


# ---- figures ---------------------------------------------------------------------------------

def _readme_rows(readme: str) -> dict[str, list[int]]:
    """{opt: [stack, code, constants, library, total, arena]} from the README's memory table."""
    rows = {}
    for line in readme.splitlines():
        m = re.match(r"\| `(-O\w)` \|(.*)\|$", line)
        if m:
            rows[m.group(1)] = [int(re.match(r"\s*([\d,]+)", cell).group(1).replace(",", ""))
                                for cell in m.group(2).split("|")]
    return rows


def _map_by_object(mapfile: Path, objects: set) -> dict[str, int]:
    """Bytes per output section that the map attributes to `objects` (a second, simple reading
    of the GNU ld map: input section lines name their object file last)."""
    sums: dict[str, int] = {}
    section = None
    text = mapfile.read_text().split("Linker script and memory map", 1)[1]
    for line in text.splitlines():
        if line[:1] == ".":
            section = line.split()[0]
        m = re.search(r"0x[0-9a-f]+\s+0x([0-9a-f]+)\s+(\S+\.o)$", line)
        if m and Path(m.group(2)).name in objects:
            sums[section] = sums.get(section, 0) + int(m.group(1), 16)
    return sums


@needs_arm
@pytest.mark.parametrize("core", ["cortex-m0plus", "cortex-m4"])
def test_readme_and_header_figures_are_what_stack_usage_and_the_linker_say(tmp_path, core):
    c = get_core(core)
    out = tmp_path / "g"
    generate_project(conv_model(), out, core=core, prefix="kws_")
    readme, header = (out / "README.md").read_text(), (out / "kws_bnn_model.h").read_text()
    rows = _readme_rows(readme)
    chains = dict(re.findall(r"^- `(-O\w)`: (.+)$", readme, re.M))
    assert set(rows) == set(chains) == {"-O2", "-Os"}
    build_line = re.search(r"```sh\n(arm-none-eabi-gcc .*) -c \*\.c\n", readme).group(1).split()
    assert build_line[0] == c.gcc and "-O2" in build_line
    main = tmp_path / "main.c"
    main.write_text('#include "kws_bnn_model.h"\nstatic uint8_t in[KWS_BNN_MODEL_INPUT_BYTES];\n'
                    "static int32_t s[KWS_BNN_MODEL_NUM_CLASSES];\n"
                    "int main(void) { return kws_bnn_model_run(in, s); }\n")
    for opt, (stack, code, consts, lib, total, arena) in rows.items():
        objdir = tmp_path / opt
        objdir.mkdir()
        flags = [f if f != "-O2" else opt for f in build_line[1:]]
        run([c.gcc, *flags, "-fstack-usage", "-c", *sources(out)], cwd=objdir)
        su = {}
        for f in objdir.glob("*.su"):
            for line in f.read_text().splitlines():
                where, size, _ = line.split("\t")
                su[where.rsplit(":", 1)[1]] = max(su.get(where.rsplit(":", 1)[1], 0), int(size))
        # the chain: each frame is the -fstack-usage figure (C library functions have none)
        chain = [(n, int(b)) for n, b in re.findall(r"(\S+) (\d+)", chains[opt])]
        assert chain[0][0] == "kws_bnn_model_run" and sum(b for _, b in chain) == stack
        for name, frame in chain:
            key = re.sub(r"(\.\w+)\.\d+$", r"\1", name)
            assert su.get(key, frame) == frame, (name, su.get(key))
            assert key in su or name in ("memset", "memcpy"), name
        # no kernel the schedule calls has a bigger frame than the chain's total
        assert max(v for k, v in su.items()) <= stack
        # a firmware's link: the map's bytes from the folder's objects are the README's
        objs = sorted(objdir.glob("*.o"))
        run([c.gcc, *flags, "--specs=nano.specs", "--specs=nosys.specs", "-Wl,--gc-sections",
             f"-Wl,-Map={objdir / 'fw.map'}", f"-I{out}", main, *objs, "-o", objdir / "fw.elf"])
        got = _map_by_object(objdir / "fw.map", {o.name for o in objs})
        assert got.get(".text", 0) == code, (opt, got)
        assert got.get(".rodata", 0) + got.get(".data", 0) == consts, (opt, got)
        assert got.get(".bss", 0) == arena == int(re.search(
            r"KWS_BNN_MODEL_ARENA_BYTES\s+(\d+)u", header).group(1))
        assert total == code + consts + lib
    header_stack = int(re.search(r"#define KWS_BNN_MODEL_STACK_BYTES\s+(\d+)u", header).group(1))
    assert header_stack == max(r[0] for r in rows.values())
    assert int(re.search(r"#define KWS_BNN_MODEL_FLASH_BYTES\s+(\d+)u", header).group(1)) == \
        max(r[4] for r in rows.values())


def test_pio_project_accepts_the_same_model_under_another_name(tmp_path):
    """verify --target pio:... checks the project's model hash: a renamed copy of the model is
    the same model; other weights are another model (issue 16 item 3)."""
    import copy

    from bnn_mcu.errors import TargetError
    from bnn_mcu.platformio.project import generate_pio_project
    from bnn_mcu.platformio.target import check_model

    model = dense_model()
    model.meta.update(name="m.pt", source="m.pt")
    generate_pio_project(model, tmp_path / "proj", boards=["qemu-mps2-an386"])
    renamed = copy.deepcopy(model)
    renamed.meta.update(name="renamed copy.ckpt", source="renamed copy.ckpt")
    check_model(tmp_path / "proj", renamed)
    other = copy.deepcopy(model)
    other.ops[0].weights[0, 0] ^= 1
    with pytest.raises(TargetError, match="was generated from another model"):
        check_model(tmp_path / "proj", other)


def test_cli_generate_core_and_prefix(tmp_path):
    import sys

    from bnn_mcu.ir import bnnfile
    bnnfile.save(dense_model(), tmp_path / "m.bnn")

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "bnn_mcu.cli", "generate", tmp_path / "m.bnn",
                               *args], capture_output=True, text=True)
    p = cli("-o", tmp_path / "a", "--core", "m0+", "--prefix", "kws_")
    assert p.returncode == 0 and "core cortex-m0plus" in p.stdout, p.stderr
    assert (tmp_path / "a" / "kws_bnn_model.c").is_file()
    if have("arm-none-eabi-gcc"):
        header = (tmp_path / "a" / "kws_bnn_model.h").read_text()
        stack = int(re.search(r"#define KWS_BNN_MODEL_STACK_BYTES\s+(\d+)u", header).group(1))
        rows = {line.split()[0]: line for line in p.stdout.splitlines() if line.startswith("-O")}
        assert set(rows) == {"-O2", "-Os"}  # the printed table: the header's figure is its max
        assert max(int(r.split()[1].replace(",", "")) for r in rows.values()) == stack
    for args, msg in ((["--prefix", "9x"], "bad --prefix '9x'"),
                      (["--prefix", "a-b"], "bad --prefix 'a-b'"),
                      (["--core", "m99"], "unknown core 'm99'; choose one of cortex-m0, cortex-m0plus")):
        p = cli("-o", tmp_path / "b", *args)
        lines = p.stderr.strip().splitlines()
        assert p.returncode != 0 and len(lines) == 1 and msg in lines[0], p.stderr
        assert not (tmp_path / "b").exists()
    # the host core: nothing to measure, and the README says so
    p = cli("-o", tmp_path / "h", "--core", "host")
    assert p.returncode == 0, p.stderr
    assert "STACK_BYTES" not in (tmp_path / "h" / "bnn_model.h").read_text()
    assert "were not measured" in (tmp_path / "h" / "README.md").read_text()


def test_without_the_cross_compiler_the_figures_are_left_out_and_said_so(tmp_path, monkeypatch):
    import bnn_mcu.codegen.footprint as footprint
    monkeypatch.setattr(footprint.shutil, "which", lambda tool: None)
    generate_project(dense_model(), tmp_path / "g", core="cortex-m4")
    assert "STACK_BYTES" not in (tmp_path / "g" / "bnn_model.h").read_text()
    assert "arm-none-eabi-gcc was not found when this folder was generated" in \
        (tmp_path / "g" / "README.md").read_text()


QEMU_MAIN = r"""
#include "bnn_port.h"
#include "kws_bnn_model.h"
#include "img_bnn_model.h"
#include "vectors.h"

/* Both models on every vector, scores to the host; exit once the host says it has read all. */
int main(void)
{
    static int32_t sa[KWS_BNN_MODEL_NUM_CLASSES], sb[IMG_BNN_MODEL_NUM_CLASSES];
    uint32_t i;
    bnn_port_init();
    for (i = 0; i < N_VECTORS; ++i) {
        (void)kws_bnn_model_run(xa[i], sa);
        (void)img_bnn_model_run(xb[i], sb);
        bnn_port_write((const uint8_t *)sa, (uint32_t)sizeof sa);
        bnn_port_write((const uint8_t *)sb, (uint32_t)sizeof sb);
    }
    (void)bnn_port_read_byte();
    bnn_port_exit(0);
    return 0;
}
"""


def _c_rows(x: np.ndarray) -> str:
    return ",\n".join("{" + ", ".join(str(int(v)) for v in row.reshape(-1)) + "}" for row in x)


@pytest.mark.qemu
@needs_arm
@pytest.mark.skipif(not have("qemu-system-arm"), reason="needs qemu-system-arm")
@pytest.mark.parametrize("board", ["mps2-an386", "microbit"])
def test_two_models_in_one_firmware_on_qemu_match_the_emulator(tmp_path, board):
    """Two prefixed folders, their own kernels only (no firmware runtime), one image on a QEMU
    board (Cortex-M4, Cortex-M0): both models give the emulator's scores."""
    import time

    from bnn_mcu.targets.boards import get_board
    from bnn_mcu.targets.build import build_firmware
    from bnn_mcu.targets.qemu import start_target

    ma, mb = conv_model(), dense_model()
    core = get_board(board).core
    generate_project(ma, tmp_path / "kws", prefix="kws_", core=core, with_figures=False)
    generate_project(mb, tmp_path / "img", prefix="img_", core=core, with_figures=False)
    n = 12
    rng = np.random.default_rng(8)
    xa = rng.integers(0, 256, (n, *ma.input_shape), dtype=np.uint8)
    xb = rng.integers(0, 256, (n, *mb.input_shape), dtype=np.uint8)
    app = tmp_path / "app"
    app.mkdir()
    (app / "vectors.h").write_text(
        f"#define N_VECTORS {n}u\n"
        f"static const uint8_t xa[{n}][{xa[0].size}] = {{\n{_c_rows(xa)}\n}};\n"
        f"static const uint8_t xb[{n}][{xb[0].size}] = {{\n{_c_rows(xb)}\n}};\n")
    (app / "main.c").write_text(QEMU_MAIN)
    elf = build_firmware(board, None, tmp_path / "build", runtime=False, jobs=2,
                         app=[app / "main.c", *sources(tmp_path / "kws"), *sources(tmp_path / "img")],
                         extra_cflags=[f"-I{app}", f"-I{tmp_path / 'kws'}", f"-I{tmp_path / 'img'}"])
    want = n * 4 * (ma.num_classes + mb.num_classes)
    with start_target(board, elf) as ser:
        buf, deadline = bytearray(), time.monotonic() + 30
        while len(buf) < want and time.monotonic() < deadline:
            ser.timeout = 0.2
            buf += ser.read(want - len(buf))
        ser.write(b"x")
    assert len(buf) == want
    rec = np.frombuffer(bytes(buf), "<i4").reshape(n, ma.num_classes + mb.num_classes)
    assert np.array_equal(rec[:, :ma.num_classes], emulator.run(ma, xa).scores)
    assert np.array_equal(rec[:, ma.num_classes:], emulator.run(mb, xb).scores)
