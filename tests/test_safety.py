"""Model-loading safety, generated-code safety and limits (docs/robustness.md).

No file runs code unless --trust-pickle; a file's claimed sizes are never allocated on trust;
names from a model file cannot break out of the generated C; `generate` writes only inside
its output folder; too-big models are refused with the numbers. Each hostile input here was
a crash, a hang or code execution before the fix named next to it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from bnn_mcu.codegen import generate_model_sources
from bnn_mcu.codegen.project import check_budget, generate_project
from bnn_mcu.errors import BnnError, ModelError, TargetError
from bnn_mcu.ir import bnnfile
from bnn_mcu.ir.synthetic import random_model
from bnn_mcu.models import load_model

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "fuzz"))
import fuzz_targets as T  # noqa: E402

from conftest import have  # noqa: E402


def rehashed(header: dict, blob: bytes) -> bytes:
    return T.bnn_file(json.dumps(header).encode(), blob)


@pytest.fixture(scope="module")
def seed():
    data = T.seed_models()[0]
    header, blob = T.split_bnn(data)
    return json.loads(header), blob


# ---- the .bnn reader: hostile files with a valid hash --------------------------------------

def test_seed_files_are_valid():
    for data in T.seed_models():
        assert T.check_bnn(data) == "model"


def _op0(h, **kw):
    h = json.loads(json.dumps(h))
    h["ops"][0].update(kw)
    return h


@pytest.mark.parametrize("name, edit, message", [
    # RecursionError from json.loads (fixed: caught as a corrupt header)
    ("deep nesting", lambda h: "[" * 100_000 + "]" * 100_000, "corrupt .bnn header"),
    # ValueError from int() of a 5000-digit literal inside json.loads
    ("huge literal", lambda h: json.dumps(h).replace('"num_classes": 4', '"num_classes": '
                                                     + "9" * 5000), "corrupt .bnn header"),
    # OverflowError from int(inf)
    ("infinite class count", lambda h: dict(h, num_classes=float("inf")), "bad class count"),
    ("class count as text", lambda h: dict(h, num_classes="4"), "bad class count"),
    ("bool class count", lambda h: dict(h, num_classes=True), "bad class count"),
    # TypeError in validate: tuple(5)
    ("in_shape is a number", lambda h: _op0(h, in_shape=5), "expected 3 integers"),
    # TypeError in validate: '>=' between str and int
    ("kernel is text", lambda h: _op0(h, kernel="ab"), "expected 2 integers"),
    ("kernel of 3 values", lambda h: _op0(h, kernel=[3, 3, 3]), "expected 2 integers"),
    # ZeroDivisionError in validate (found by atheris): a pool's out_shape before its stride
    ("pool stride 0", lambda h: {**h, "ops": [h["ops"][0], dict(h["ops"][1], stride=[2, 0])]
                                 + h["ops"][2:]}, r"stride: expected 2 integers in 1\.\."),
    # a dict name was accepted and rendered into the generated C
    ("name is an object", lambda h: _op0(h, name={"a": 1}), "printable text"),
    ("name with a newline", lambda h: _op0(h, name="a\nb"), "printable text"),
    # AttributeError in validate: weights None
    ("op without weights", lambda h: {**h, "ops": [{k: v for k, v in h["ops"][0].items()
                                                    if k != "weights"}] + h["ops"][1:]},
     "without 'weights'"),
    # TypeError: unhashable list as a dtype key
    ("tensor dtype is a list", lambda h: _op0(h, weights=dict(h["ops"][0]["weights"],
                                                              tensor=["<u4"])), "bad tensor entry"),
    ("unknown field", lambda h: _op0(h, evil=1), "unknown field"),
    ("zero point as float", lambda h: _op0(h, zero_point=128.0), "32-bit integer"),
    ("zero point 2**40", lambda h: _op0(h, zero_point=2**40), "32-bit integer"),
    # a later field (.bnn version 2) in a version 1 file
    ("half zero point in version 1", lambda h: _op0(h, half_zero_point=True),
     "field 'half_zero_point' in a version 1 file"),
    ("kind is a list", lambda h: _op0(h, kind=["conv2d_u8"]), "unknown op kind"),
    ("meta is a list", lambda h: dict(h, meta=[1, 2]), "meta must map"),
    ("meta name is a list", lambda h: dict(h, meta={"name": ["x"]}), "printable text"),
    ("input of 2**20 rows", lambda h: dict(h, input_shape=[2**20, 8, 1]), "bad input shape"),
    ("header is a list", lambda h: [], "expected input_shape"),
    ("no ops", lambda h: dict(h, ops=[]), "1..65535 layers"),
])
def test_hostile_headers_are_clean_errors(seed, name, edit, message):
    header, blob = seed
    out = edit(json.loads(json.dumps(header)))
    text = out.encode() if isinstance(out, str) else json.dumps(out).encode()
    with pytest.raises(ModelError, match=message):
        bnnfile.parse(T.bnn_file(text, blob), "evil.bnn")
    assert T.check_bnn(T.bnn_file(text, blob)) == "error"


def test_tensor_shape_product_does_not_wrap(seed):
    """shape [2**31-1, 2**31-1, 2**31-1, 4]: an int64 product wraps to a small number; the
    reader multiplies exactly and refuses."""
    header, blob = seed
    w = dict(header["ops"][0]["weights"], shape=[2**31 - 1] * 3 + [4])
    with pytest.raises(ModelError, match="outside the file"):
        bnnfile.parse(rehashed(_op0(header, weights=w), blob), "evil.bnn")


def test_huge_claimed_sizes_allocate_nothing(seed):
    header, blob = seed
    huge = dict(header["ops"][0]["weights"], shape=[2**30, 2**30], nbytes=2**62)
    files = [rehashed(_op0(header, weights=huge), blob),
             T.bnn_file(json.dumps(header).encode(), blob, sizes=(2**31, 2**62))]
    for data in files:
        tracemalloc.start()
        with pytest.raises(ModelError):
            bnnfile.parse(data, "evil.bnn")
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < 1_000_000 + 4 * len(data)


def test_accepted_files_work_downstream():
    """A mutated file the reader accepts still runs in the emulator and generates C."""
    m = random_model(5, input_shape=(6, 6, 3), layers=[("conv", dict(out=4, k=3, pad=1)),
                                                      ("dense", dict(out=3))])
    m.meta["name"] = 'hostile */ "name" ??/'
    m.ops[0].name = 'a"b\\c*/??/'
    assert T.check_bnn(bnnfile.serialize(m)) == "model"


# ---- generated C: names from a model file stay data ---------------------------------------

HOSTILE_NAMES = ['q"); int evil = 1; ("', "end */ int evil; /* x", "trigraph ??/", "back\\slash",
                 "né\u00e9\u4e2d", "../../etc/passwd", "a" * 300]


@pytest.mark.skipif(not have("gcc"), reason="needs gcc")
def test_hostile_names_round_trip_through_generated_c(tmp_path):
    m = random_model(3, input_shape=(6, 6, 1), layers=[
        ("conv", dict(out=4, k=3, pad=1)), ("pool", dict(k=2)), ("dense", dict(out=5)),
        ("dense", dict(out=3)), ("dense", dict(out=3)), ("dense", dict(out=3)),
        ("dense", dict(out=3))])
    for op, name in zip(m.ops, HOSTILE_NAMES):
        op.name = name
    m.meta["name"] = "model */ #error injected /*"
    m.meta["source"] = "x.pt */ int evil; /* ??/"
    m = bnnfile.parse(bnnfile.serialize(m))  # the reader accepts all of these
    out = tmp_path / "model"
    generate_model_sources(m, out)
    main = tmp_path / "main.c"
    main.write_text('#include <stdio.h>\n#include "bnn_model.h"\nint main(void) {\n'
                    '  for (unsigned i = 0; i < BNN_MODEL_NUM_LAYERS; i++)\n'
                    '    printf("%s\\n", bnn_model_layers[i].name);\n  return 0;\n}\n')
    # the model file alone (no kernels linked: only the layer table is read)
    exe = tmp_path / "names"
    fw = ROOT / "firmware"
    res = subprocess.run(["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-ffunction-sections",
                          "-Wl,--gc-sections", f"-I{fw / 'include'}", f"-I{out}", str(main),
                          str(out / "bnn_model.c"), *map(str, sorted((fw / "src" / "kernels")
                                                                     .glob("*.c"))),
                          "-o", str(exe)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    printed = subprocess.run([str(exe)], capture_output=True, timeout=30).stdout.decode()
    assert printed.split("\n")[:-1] == [op.name for op in m.ops]


# ---- PyTorch model files: nothing runs without --trust-pickle -------------------------------

@pytest.mark.filterwarnings("ignore:Detected pickle protocol 5")
def test_malicious_pickles_do_not_run_without_trust(tmp_path):
    marker = tmp_path / "ran"
    files = {"pickle.pt": T.malicious_pickle(marker=marker),
             "pickle5.pt": T.malicious_pickle(5, marker=marker),
             "torchsave.pt": T.malicious_torch_save(marker)}
    for name, data in files.items():
        p = tmp_path / name
        p.write_bytes(data)
        with pytest.raises(ModelError, match="pickled Python object.*--trust-pickle"):
            load_model(p)
        assert not marker.exists(), name
    # the canary works: with --trust-pickle the same file runs its code (then fails to be a
    # module), so the assertions above can fail
    with pytest.raises(ModelError, match="not an nn.Module"):
        load_model(tmp_path / "torchsave.pt", trust_pickle=True)
    assert marker.exists()


@pytest.fixture(scope="module")
def hostile_archives(tmp_path_factory):
    marker = tmp_path_factory.mktemp("marker") / "ran"
    return marker, T.hostile_programs(marker)


@pytest.mark.parametrize("name, message", [
    # ran code before the fix: torch retried a failed weights-only load with full unpickling
    ("sample_inputs_pickle", "Weights only load failed"),
    # ran code: use_pickle weights were unpickled with weights_only=False
    ("weight_use_pickle", "asks for a pickled object"),
    # pickle.loads of an "opaque object" constant
    ("opaque_constant", "opaque_obj_0.*not part of a plain torch.export program"),
    # ran code: sympy.sympify evaluated the shape expression
    ("sympy_expression", "shape expression"),
    # torch.os.system resolved by name, then run on constants by the importer
    ("node_target", "not an ATen operator"),
    # exec'd by ExportedProgram.module() (bnn-mcu evaluate)
    ("guards_code", "guard code"),
    # compiled AOTInductor libraries would be loaded
    ("aoti_library", "not part of a plain torch.export program"),
])
def test_hostile_export_archives_are_refused(tmp_path, hostile_archives, name, message):
    marker, archives = hostile_archives
    p = tmp_path / "evil.pt2"
    p.write_bytes(archives[name])
    with pytest.raises(ModelError, match=message):
        load_model(p)
    assert not marker.exists()


def test_the_seed_archive_still_converts(tmp_path):
    p = tmp_path / "tiny.pt2"
    p.write_bytes(T.seed_program_bytes())
    model = load_model(p)
    assert model.num_classes == 3 and model.input_shape == (4, 4, 1)


def test_zip_bombs_are_refused_with_their_numbers(tmp_path):
    for name, data, numbers in [
            ("bomb.pt2", T.zip_bomb("model/models/model.json", 0xF0000000),
             "unpacks to 4,026,531,840 bytes, more than the 1,073,741,824"),
            ("bomb.pt", T.zip_bomb("archive/data.pkl", 1 << 31), "unpacks to 2,147,483,648 bytes"),
            ("zeros.pt2", T.memory_bomb_program(1 << 34), "take 68,719,477,568 bytes in all, more than the 536,870,912")]:
        p = tmp_path / name
        p.write_bytes(data)
        with pytest.raises(ModelError, match=numbers):
            load_model(p)


def test_importer_refuses_non_aten_targets_and_huge_constants():
    """The second line of defence (the importer), on a graph edited in memory."""
    import io

    import torch

    from bnn_mcu.nn.importer import import_program

    def fresh():
        return torch.export.load(io.BytesIO(T.seed_program_bytes()))

    ep = fresh()
    node = next(n for n in ep.graph.nodes if n.op == "call_function" and "ge" in str(n.target))
    node.target = os.getcwd  # any Python callable
    with pytest.raises(ModelError, match="not an ATen operator"):
        import_program(ep, "evil")
    ep = fresh()  # a huge constant the output depends on (dead nodes are never evaluated)
    ge = next(n for n in ep.graph.nodes if n.op == "call_function" and "ge" in str(n.target))
    with ep.graph.inserting_before(ge):
        huge = ep.graph.call_function(torch.ops.aten.full.default, ([1 << 15, 1 << 15], 1.0))
    ge.args = (huge,) + tuple(ge.args[1:])
    with pytest.raises(ModelError, match="would compute 1,073,741,824 elements"):
        import_program(ep, "evil")
    ep = torch.export.load(io.BytesIO(T.seed_program_bytes("cnn")))
    pool = next(n for n in ep.graph.nodes if "max_pool2d" in str(n.target))
    pool.args = (pool.args[0], pool.args[1], [0, 0]) + tuple(pool.args[3:])
    with pytest.raises(ModelError, match=r"max-pool kernel \(2, 2\) / stride \(0, 0\)"):
        import_program(ep, "evil")  # was ZeroDivisionError
    ep = torch.export.load(io.BytesIO(T.seed_program_bytes("cnn")))
    pool = next(n for n in ep.graph.nodes if "max_pool2d" in str(n.target))
    pool.args = (pool.args[0], ["a", "b"]) + tuple(pool.args[2:])
    with pytest.raises(ModelError, match=r"\(max_pool2d.default\): cannot convert \(ValueError"):
        import_program(ep, "evil")  # any other exception inside a node names the node
    ep = fresh()
    x = next(n for n in ep.graph.nodes if n.op == "placeholder" and n.name == "x")
    x.meta["val"] = torch.empty((2, 4096, 4096), dtype=torch.uint8, device="meta")
    with pytest.raises(ModelError, match="input of 4096x4096x1 pixels"):
        import_program(ep, "evil")


# ---- generate writes only inside its output folder -------------------------------------------

@pytest.fixture
def small_model():
    m = random_model(11, input_shape=(6, 6, 1), layers=[("dense", dict(out=8)),
                                                       ("dense", dict(out=3))])
    m.meta["name"] = "../../../escape"
    m.ops[0].name = "../../x"
    return m


def test_generate_writes_only_inside_the_folder(tmp_path, small_model):
    out = tmp_path / "a" / "out"
    written = generate_project(small_model, out)
    for p in written:
        assert p.resolve().is_relative_to(out.resolve())
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file() and not
                  p.resolve().is_relative_to(out.resolve())) == []


@pytest.mark.parametrize("link", ["README.md", "bnn_model.c", "bnn_kernels.h", "model.bnn"])
def test_generate_does_not_follow_links(tmp_path, small_model, link):
    out = tmp_path / "out"
    generate_project(small_model, out)
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "bnn_model.c").write_text("precious")
    target = out / link
    target.unlink()
    target.symlink_to(victim / "bnn_model.c")
    with pytest.raises(BnnError, match="symbolic link"):
        generate_project(small_model, out, force=True)
    assert [p.name for p in victim.iterdir()] == ["bnn_model.c"]
    assert (victim / "bnn_model.c").read_text() == "precious"


def test_generate_refuses_a_fifo(tmp_path, small_model):
    out = tmp_path / "out"
    generate_project(small_model, out)
    (out / "README.md").unlink()
    os.mkfifo(out / "README.md")
    with pytest.raises(BnnError, match="not a regular file"):
        generate_project(small_model, out, force=True)


# ---- limits --------------------------------------------------------------------------------

def test_budget_refusal_names_the_numbers():
    m = random_model(2)
    with pytest.raises(BnnError, match=r"model needs [\d,]+ B of flash .* more than the 1 KB "
                                       r"\(1,024 B\)"):
        check_budget(m, flash_kb=1, ram_kb=None)
    with pytest.raises(BnnError, match=r"model needs [\d,]+ B of RAM \(arena [\d,]+ \+ input "
                                       r"784 \+ scores 40\), more than the 1 KB"):
        check_budget(m, flash_kb=None, ram_kb=1)


@pytest.mark.skipif(not have("arm-none-eabi-gcc"), reason="needs arm-none-eabi-gcc")
def test_microbit_refuses_a_model_too_big_with_the_numbers(tmp_path, monkeypatch):
    from bnn_mcu.targets.session import build_runner

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    m = random_model(4, input_shape=(28, 28, 1), layers=[("dense", dict(out=3000)),
                                                        ("dense", dict(out=10))])
    with pytest.raises(TargetError, match=r"does not fit microbit \(cortex-m0, 16 KB RAM, 256 KB "
                                          r"flash\): it needs [\d,]+ B of constants"):
        build_runner(m, "microbit", quiet=True)


# ---- soak (fuzz/soak.py runs 100,000; this is the CI-sized version) ------------------------

@pytest.mark.qemu
@pytest.mark.skipif(not (have("qemu-system-arm") and have("arm-none-eabi-gcc")),
                    reason="needs qemu-system-arm and arm-none-eabi-gcc")
def test_soak_2000_inferences_on_qemu():
    from soak import soak

    m = random_model(31, input_shape=(8, 8, 1), layers=[
        ("conv", dict(out=8, k=3, pad=1)), ("pool", dict(k=2)), ("dense", dict(out=16)),
        ("dense", dict(out=10))])
    x = np.random.default_rng(31).integers(0, 256, (500, 8, 8, 1), dtype=np.uint8)
    r = soak(m, "mps2-an386", x, 2000)
    assert (r.inferences, r.passes, r.mismatching) == (2000, 4, 0)
    assert r.stable and len(r.stack) == 5 and r.stack[1] > 0, r.stack


# ---- sanitized host build (fuzz/sanitized_parity.py runs whole test sets) -------------------

@pytest.mark.skipif(not have("gcc"), reason="needs gcc (libasan, libubsan)")
def test_sanitized_host_build_parity():
    """The runner (app, protocol, kernels, generated model, host port) under ASan + UBSan:
    exact scores and layer traces; a sanitizer report would abort it and fail the run."""
    from bnn_mcu import emulator
    from bnn_mcu.targets.host import HostProcess
    from bnn_mcu.targets.link import DeviceLink
    from bnn_mcu.targets.protocol import bulk_image
    from bnn_mcu.targets.session import build_runner
    from sanitized_parity import SANITIZE

    m = random_model(41, input_shape=(12, 12, 3), layers=[
        ("conv", dict(out=40, k=3, pad=1)), ("pool", dict(k=2)),
        ("conv", dict(out=33, k=3, pad=1, pad_value=-1)),
        ("pool", dict(k=3, stride=1, pad=1)),  # clipped windows: padded taps skipped
        ("conv", dict(out=16, k=3, stride=2)), ("dense", dict(out=20)), ("dense", dict(out=7))])
    x = np.random.default_rng(41).integers(0, 256, (300, 12, 12, 3), dtype=np.uint8)
    fw = build_runner(m, "host", extra_cflags=SANITIZE, quiet=True)
    image = fw.elf.read_bytes()
    assert b"__asan_init" in image and b"__ubsan_handle" in image  # really instrumented
    want = emulator.run(m, x, trace=True)
    flat = x.reshape(len(x), -1)
    with HostProcess(fw.elf, bulk=bulk_image(flat[100:])) as ser:
        link = DeviceLink(ser, timeout=30.0)
        link.wait_ready(timeout=30.0)
        got = np.concatenate([link.run(flat[:100]).scores, link.bulk().scores])
        layers = link.trace(flat[0]).layers
        link.exit()
    assert np.array_equal(got, want.scores)
    for i, op in enumerate(m.ops):
        ref = np.ascontiguousarray(want.layers[i][0]).astype(want.layers[i].dtype.newbyteorder("<"))
        assert layers[i] == ref.tobytes(), f"layer {i} ({op.kind})"


# ---- names from files stay data in platformio.ini, README and JSON (issue 14) -------------------

EVIL_FILE = "m\n[env:evil]\nplatform = native\nbuild_flags = !touch X\n;* \"q\" 'r'\u2028.pt2"


def test_a_hostile_file_name_stays_in_its_comment(tmp_path):
    import configparser

    from bnn_mcu import cli

    model = tmp_path / EVIL_FILE
    model.write_bytes(T.seed_program_bytes())
    proj = tmp_path / "proj"
    assert cli.main(["generate", str(model), "--platformio", "-o", str(proj)]) == 0
    ini = (proj / "platformio.ini").read_text()
    cfg = configparser.ConfigParser()
    cfg.read_string(ini)
    assert not any("evil" in s for s in cfg.sections()) and "!touch" not in "".join(
        v for s in cfg.sections() for v in cfg[s].values())
    assert ini.splitlines()[0].startswith("; m?[env:evil]?platform = native?build_flags = ")
    readme = (proj / "README.md").read_text().splitlines()[0]
    assert readme.startswith(r"""# m?\[env:evil\]?platform = native?build\_flags = \!touch X?;\* "q" 'r'?""")
    lib = json.loads((proj / "lib" / "bnn_model" / "library.json").read_text())
    assert lib["description"].startswith("m?[env:evil]?")
    out = tmp_path / "c"
    assert cli.main(["generate", str(model), "-o", str(out)]) == 0
    assert (out / "README.md").read_text().splitlines()[0].startswith(r"# m?\[env:evil\]?")
    bnn = tmp_path / "m.bnn"  # convert keeps a name the .bnn reader accepts
    assert cli.main(["convert", str(model), "-o", str(bnn)]) == 0
    assert bnnfile.load(bnn).meta["source"].startswith("m?[env:evil]?")


def test_markdown_table_cells_escape_names():
    from bnn_mcu.summary import summary_table

    m = random_model(5, input_shape=(4, 4, 1), layers=[("dense", dict(out=3))])
    m.ops[0].name = "a|b <img src=x> [l](u)"
    row = next(line for line in summary_table(m, fmt="github").splitlines() if "img" in line)
    assert r"a\|b \<img src=x\> \[l\](u)" in row and row.count("|") - row.count(r"\|") == 12


# ---- generate, convert and the PlatformIO project are atomic (issue 14) -------------------------

def _coherent(out: Path, readme: Path | None = None) -> str:
    """The model hash the folder's files agree on (a mix fails)."""
    digest = bnnfile.model_hash(bnnfile.load(out / "model.bnn"))
    assert digest[:16] in (out / "bnn_model.h").read_text()
    c = (out / "bnn_model.c").read_text()
    assert ", ".join(f"0x{digest[i:i + 2]}u" for i in range(0, 16, 2)) in c
    assert digest[:16] in (readme or out / "README.md").read_text()
    return digest


@pytest.mark.parametrize("pio", [False, True])
def test_an_interrupted_generate_leaves_the_previous_files(tmp_path, monkeypatch, pio):
    """Stopped before every 5th file it writes, then just before the swap: the folder holds
    the old model's files (and the user's own file), never a mix; finished, the new ones."""
    import bnn_mcu.codegen.project as cp
    import bnn_mcu.outputs as outputs
    import bnn_mcu.platformio.project as pp

    old, new = (random_model(s, input_shape=(6, 6, 1), layers=[("dense", dict(out=8)),
                                                              ("dense", dict(out=3))])
                for s in (1, 2))
    out = tmp_path / "out"

    def gen(m):
        if pio:
            pp.generate_pio_project(m, out, boards=["nucleo_f401re"], force=True)
        else:
            cp.generate_project(m, out, force=True)

    def coherent():
        return _coherent(out / "lib" / "bnn_model", out / "README.md") if pio else _coherent(out)
    gen(old)
    (out / "mine.txt").write_text("user file")
    before = coherent()
    real_write, real_carry = cp._write, outputs._carry_over
    stops = 0
    for stop in range(0, 10_000, 5):
        def failing(path, data, written, stop=stop, calls=[]):
            if len(calls) == stop:
                raise KeyboardInterrupt
            calls.append(path)
            real_write(path, data, written)
        monkeypatch.setattr(cp, "_write", failing)
        monkeypatch.setattr(pp, "_write", failing)
        try:
            gen(new)
        except KeyboardInterrupt:
            stops += 1
            assert coherent() == before and (out / "mine.txt").read_text() == "user file"
            continue
        break
    assert stops >= 3
    monkeypatch.setattr(cp, "_write", real_write)
    monkeypatch.setattr(pp, "_write", real_write)

    def stop_before_swap(*args):
        raise KeyboardInterrupt
    monkeypatch.setattr(outputs, "_carry_over", stop_before_swap)
    with pytest.raises(KeyboardInterrupt):
        gen(old)
    monkeypatch.setattr(outputs, "_carry_over", real_carry)
    assert coherent() == bnnfile.model_hash(new) != before
    assert (out / "mine.txt").read_text() == "user file"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temporary folder left


_KILLED_AT = """
import os, signal, sys
import bnn_mcu.codegen.project as cp
from bnn_mcu import cli
real, calls = cp._write, []
def write(path, data, written):
    if len(calls) == int(sys.argv[1]):
        os.kill(os.getpid(), signal.SIGTERM)  # default action: gone, no clean-up runs
    calls.append(path)
    real(path, data, written)
cp._write = write
cli.main(sys.argv[2:])
"""


def test_sigterm_during_generate_never_leaves_a_mix(tmp_path):
    """The reported failure: SIGTERM during `generate -o DIR --force` over another model's
    folder, delivered before the first file, a third and two thirds in, and the last: the old
    model's files remain."""
    a, b = tmp_path / "a.bnn", tmp_path / "b.bnn"
    for seed, path in ((1, a), (2, b)):
        bnnfile.save(random_model(seed, input_shape=(8, 8, 1), layers=[
            ("conv", dict(out=8, k=3, pad=1)), ("dense", dict(out=10))]), path)
    out = tmp_path / "out"
    n = len(generate_project(bnnfile.load(a), out))
    before = _coherent(out)
    for k in sorted({0, n // 3, 2 * n // 3, n - 1}):
        res = subprocess.run([sys.executable, "-c", _KILLED_AT, str(k), "generate", str(b),
                              "-o", str(out), "--force"], capture_output=True, timeout=120)
        assert res.returncode == -15, res.stderr[-500:]
        assert _coherent(out) == before


def test_convert_replaces_the_bnn_in_one_step(tmp_path, monkeypatch):
    import bnn_mcu.outputs as outputs

    path = tmp_path / "m.bnn"
    bnnfile.save(random_model(1), path)
    before = path.read_bytes()

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(outputs.os, "replace", broken_replace)
    with pytest.raises(ModelError, match="cannot write"):
        bnnfile.save(random_model(2), path)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["m.bnn"]


def test_generate_refuses_to_replace_the_current_folder(tmp_path, monkeypatch, small_model):
    """A swap would leave the user's shell in the removed folder; an empty current folder is
    written in place (nothing to mix with)."""
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.chdir(out)
    generate_project(small_model, Path("."))
    with pytest.raises(BnnError, match="is the current folder .* run bnn-mcu from outside it"):
        generate_project(small_model, Path("."), force=True)
    assert (out / "bnn_model.c").is_file()
