"""CI smoke runs of the fuzzers in fuzz/ (seconds each; the long campaigns are in
docs/robustness.md): the protocol parser and dispatcher under libFuzzer with ASan + UBSan,
the .bnn reader and the PyTorch model loader under hypothesis, with the fuzz targets' own
oracles. The libFuzzer part needs clang and its fuzzer runtime (Debian: clang-14
libclang-rt-14-dev); without them it is skipped with that reason.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parent.parent
FUZZ = ROOT / "fuzz"
sys.path.insert(0, str(FUZZ))
import fuzz_targets as T  # noqa: E402

CLANG_PACKAGES = "clang-14 libclang-rt-14-dev"


def _clang() -> str | None:
    return shutil.which("clang-14") or shutil.which("clang")


def _fuzzer_runtime_problem(tmp: Path) -> str | None:
    clang = _clang()
    if clang is None:
        return f"clang not found: apt-get install {CLANG_PACKAGES}"
    src = tmp / "probe.c"
    src.write_text("#include <stddef.h>\n#include <stdint.h>\n"
                   "int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; "
                   "return 0; }\n")
    res = subprocess.run([clang, "-fsanitize=fuzzer,address,undefined", str(src), "-o",
                          str(tmp / "probe")], capture_output=True, text=True, timeout=120)
    if res.returncode != 0:
        return f"clang's fuzzer/sanitizer runtime is missing: apt-get install {CLANG_PACKAGES}"
    return None


def _build(tmp: Path, protocol_dir: Path | None = None) -> Path:
    """The harness (fuzz/Makefile); protocol_dir replaces firmware/src/protocol (mutants)."""
    cmd = ["make", "-s", "-C", str(FUZZ), "protocol", f"BUILD={tmp}"]
    if protocol_dir is not None:
        cmd.append(f"PROTO_SRCS={' '.join(str(p) for p in sorted(protocol_dir.glob('*.c')))}")
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    return tmp / "fuzz_protocol_stub"


@pytest.fixture(scope="module")
def fuzz_build(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fuzz")
    problem = _fuzzer_runtime_problem(tmp)
    if problem:
        pytest.skip(problem)
    return tmp


def _fuzz(exe: Path, workdir: Path, *flags: str, timeout: float = 240) -> subprocess.CompletedProcess:
    corpus = workdir / "corpus"
    corpus.mkdir(exist_ok=True)
    return subprocess.run([str(exe), *flags, "-max_len=4096", "-timeout=10",
                           f"-dict={FUZZ / 'protocol' / 'protocol.dict'}",
                           f"-artifact_prefix={workdir}/", str(corpus),
                           str(FUZZ / "protocol" / "seeds")],
                          cwd=workdir, capture_output=True, text=True, timeout=timeout)


def test_protocol_fuzzer_smoke(fuzz_build):
    exe = _build(fuzz_build / "ok")
    res = _fuzz(exe, fuzz_build / "ok", "-runs=10000", "-seed=1")
    assert res.returncode == 0, res.stderr[-3000:]
    assert "Done 10000 runs" in res.stderr
    assert "ERROR:" not in res.stderr and "fuzz_runner:" not in res.stderr


@pytest.mark.parametrize("file, old, new, report", [
    # the version check removed: the shadow receiver sees a foreign frame obeyed
    ("bnn_frame.c", "if (b[0] != BNN_PROTO_VERSION) {", "if (0) {",
     "fuzz_runner: a bad frame must get an ERROR"),
    # one byte too many accepted into the receive buffer: AddressSanitizer
    ("bnn_cobs.c", "if (d->len < d->cap) {", "if (d->len <= d->cap) {",
     "AddressSanitizer: heap-buffer-overflow"),
])
def test_protocol_fuzzer_finds_a_planted_bug(fuzz_build, file, old, new, report):
    """The harness is not vacuous: a mutant of the protocol code is caught at once."""
    mutant = fuzz_build / f"src-{file}"
    mutant.mkdir()
    for src in (ROOT / "firmware" / "src" / "protocol").glob("*.c"):
        text = src.read_text()
        if src.name == file:
            assert old in text
            text = text.replace(old, new)
        (mutant / src.name).write_text(text)
    exe = _build(fuzz_build / f"mutant-{file}", mutant)
    res = _fuzz(exe, fuzz_build / f"mutant-{file}", "-runs=200000", "-seed=1")
    assert res.returncode != 0
    assert report in res.stderr


# ---- the .bnn reader ----------------------------------------------------------------------

def test_bnn_oracle_reports_a_crash(monkeypatch):
    from bnn_mcu.ir import bnnfile

    def broken(data, name="model"):
        raise TypeError("boom")
    monkeypatch.setattr(bnnfile, "parse", broken)
    with pytest.raises(T.Finding, match="TypeError: boom"):
        T.check_bnn(b"anything")


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400))
def test_bnn_reader_any_bytes(data):
    T.bnn_one_input(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 5), st.integers(0, 1), st.binary(min_size=1, max_size=120))
@example(mode=1, seed=0, choices=b"\x01\x00\x03\xd7\x00E")  # a conv whose weights became 0-d (CI, once)
def test_bnn_reader_mutated_valid_files(mode, seed, choices):
    T.bnn_one_input(bytes([mode, seed]) + choices)


# ---- PyTorch model files ------------------------------------------------------------------

def test_model_oracle_reports_code_execution(monkeypatch):
    import bnn_mcu.models as models

    def runs_code(path, trust_pickle=False, input_shape=None):
        T.PICKLE_MARKER.write_text("ran")
        raise models.ModelError("refused, but too late")
    monkeypatch.setattr(models, "load_model", runs_code)
    with pytest.raises(T.Finding, match="executed without --trust-pickle"):
        T.check_model_file(b"PK")


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 6), st.binary(min_size=1, max_size=60))
def test_model_loader_hostile_files(mode, choices):
    T.model_one_input(bytes([mode]) + choices)


# ---- static analysis (fuzz/static_check.py; the full run takes minutes) ---------------------

@pytest.mark.skipif(not (shutil.which("cppcheck") and shutil.which("clang-tidy")),
                    reason="needs cppcheck and clang-tidy (apt-get install cppcheck clang-tidy)")
def test_generated_code_is_clean_and_the_checkers_bite(tmp_path):
    import static_check

    assert static_check.main(["--only", "generated"]) == 0
    bad = tmp_path / "bad.c"
    bad.write_text("int f(int *p) { int a[4]; if (p) return 0; a[4] = *p; return a[0]; }\n")
    tidy = static_check.parse(static_check.run(["clang-tidy", f"-checks={static_check.TIDY_CHECKS}",
                                                str(bad), "--", "-std=c99"]),
                              static_check._TIDY, tmp_path)
    cpp = static_check.parse(static_check.run(["cppcheck", *static_check.CPPCHECK, str(bad)]),
                             static_check._CPPC, tmp_path)
    assert any("NullDereference" in f[2] for f in tidy), tidy
    assert any(f[2] in ("arrayIndexOutOfBounds", "nullPointerRedundantCheck") for f in cpp), cpp


# ---- the two zip readers (fuzz/fuzz_zip_differential.py runs the long campaign) --------------

@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 6), st.binary(min_size=1, max_size=48))
def test_zip_readers_agree_on_every_accepted_zip(mode, choices):
    data = T.make_zip_pair_input(bytes([choices[0], mode]) + choices[1:])
    assert T.check_zip_pair(data) in ("refused", "same")


def test_zip_oracle_reports_a_differential(monkeypatch):
    """The oracle is not vacuous: with the layout checks gone, the reported attack (a zip in
    front of another) is accepted and the two readers' views differ."""
    import bnn_mcu.nn.archive as archive

    monkeypatch.setattr(archive, "zip_disagreement", lambda data: None)
    monkeypatch.setattr(archive, "entry_disagreement", lambda *a: None)
    real = archive.open_archive

    def lenient(path, data):  # the old vetting: zipfile's view only
        try:
            return real(path, data)
        except archive.ModelError:
            import zipfile
            z = zipfile.ZipFile(__import__("io").BytesIO(data))
            return archive.Archive(path, data, "archive", {i.filename.split("/", 1)[1]: i.file_size
                                                          for i in z.infolist()})
    monkeypatch.setattr(archive, "open_archive", lenient)
    with pytest.raises(T.Finding, match="differs between the readers|list different members"):
        T.check_zip_pair(T.front_zip_differential(Path("/nonexistent/marker")))
