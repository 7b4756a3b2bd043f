"""Any language: the worker protocol, `lmp verify --exec` on a C++ kernel, test vectors and `--answers`,
and the command line a newcomer meets first (`--list`, errors that say what is wrong)."""

import io
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from lmp_theory.testing import check_solver, conformance_cases
from lmp_theory.testing.protocol import ProtocolError, decode, encode, frame_length, message
from lmp_theory.testing.vectors import check_answers, write_vectors
from lmp_theory.testing.worker import Worker, WorkerError
from solvers.numpy import lmp_weights

ROOT = Path(__file__).resolve().parent.parent
TIES = conformance_cases(families=["ties"])


def lmp(*args, cwd=ROOT, timeout=300):
    return subprocess.run([sys.executable, "-m", "lmp_theory.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


# ---- the protocol ------------------------------------------------------------------------------

def test_frames_round_trip_and_bad_frames_are_named():
    for array in (np.arange(5.0), np.float32([1.5, 2.5]), np.array("raised: ValueError: x"), np.zeros((0,))):
        frame = encode(array)
        assert frame_length(frame[:9], 1 << 20) is None and frame_length(frame, 1 << 20) == len(frame)
        assert np.array_equal(decode(frame), array)
    with pytest.raises(ProtocolError, match="not a .npy frame"):
        frame_length(b"hello world, no frame", 1 << 20)
    pickled = io.BytesIO()
    np.lib.format.write_array(pickled, np.array([None, 1], dtype=object), allow_pickle=True)
    with pytest.raises(ProtocolError, match="dtype object"):
        frame_length(pickled.getvalue(), 1 << 20)
    with pytest.raises(ProtocolError, match="more than the 1000"):
        frame_length(encode(np.zeros(200)), 1000)
    assert decode(message("mutates-input", "why")).item() == "mutates-input: why"


def script(tmp_path, name, body):
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return f"{sys.executable} {path}"


def test_a_python_program_speaking_the_protocol_is_judged_and_one_that_breaks_it_is_crashed(tmp_path):
    serve = textwrap.dedent("""
        import sys, numpy as np
        from lmp_theory.testing.protocol import read_frame
        from solvers.numpy import lmp_weights
        def frames():
            while (losses := read_frame(sys.stdin.buffer)) is not None:
                yield losses, read_frame(sys.stdin.buffer)
        for losses, (p, g, t) in frames():
            {body}
            sys.stdout.buffer.flush()
        """)
    good = script(tmp_path, "good.py", serve.format(body="np.save(sys.stdout.buffer, lmp_weights(losses, p, g, t))"))
    noisy = script(tmp_path, "noisy.py", serve.format(body="print('debug'); np.save(sys.stdout.buffer, losses)"))
    with Worker.for_command(good) as worker:
        assert check_solver(worker, cases=TIES).passed
    with Worker.for_command(noisy) as worker:
        report = check_solver(worker, cases=TIES[:2])
    assert {r.status for r in report.results} == {"crashed"} and "not a .npy frame" in report.results[0].message
    with pytest.raises(ValueError, match="non-empty shell command"):
        Worker.for_command("  ")


def test_a_worker_that_cannot_start_says_why():
    with pytest.raises(WorkerError, match="No module named 'no_such_module'"):
        Worker.for_spec("no_such_module:fn").start()


# ---- lmp verify --exec on a C++ kernel ---------------------------------------------------------

@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    if shutil.which("g++") is None:
        pytest.skip("g++ is not installed")
    binary = tmp_path_factory.mktemp("kernel") / "lmp_kernel"
    subprocess.run(["g++", "-O2", "-std=c++17", str(ROOT / "tests" / "lmp_kernel.cpp"), "-o", str(binary)],
                   check=True, capture_output=True, timeout=300)
    return binary


def test_lmp_verify_exec_judges_a_cpp_kernel(kernel):
    ok = lmp("verify", "--exec", str(kernel), "--family", "ties", "--family", "random", "--family", "zeros")
    assert ok.returncode == 0 and "CONFORMS" in ok.stdout, ok.stdout + ok.stderr
    broken = lmp("verify", "--exec", f"{kernel} --drop-last", "--family", "sizes", "--json")
    data = json.loads(broken.stdout)
    assert broken.returncode == 1 and not data["passed"]
    failing, big = {r["n"] for r in data["results"] if r["status"] != "pass"}, {r["n"] for r in data["results"] if r["n"] > 1000}
    assert failing <= big and len(failing) >= len(big) // 2  # not where the last loss's weight is 0 anyway
    in_float32 = lmp("verify", "--exec", str(kernel), "--family", "ties", "--dtype", "float32")
    assert in_float32.returncode == 0 and "[float32" in in_float32.stdout, in_float32.stdout + in_float32.stderr


# ---- test vectors and --answers ----------------------------------------------------------------

def test_vectors_carry_the_expected_answers_and_answers_written_elsewhere_are_judged(tmp_path):
    cases = conformance_cases(families=["ties", "degenerate"])
    index = json.loads(write_vectors(tmp_path, cases=cases).read_text())
    assert index["format"] == "lmp-vectors 1" and len(index["cases"]) == len(cases)
    for entry, case in zip(index["cases"], cases):
        assert np.array_equal(np.load(tmp_path / entry["losses"]), case.losses)
        weights = np.load(tmp_path / entry["weights"])
        answer = lmp_weights(case.losses, case.p, case.gamma, case.tau)
        np.testing.assert_allclose(weights, answer, rtol=0, atol=1e-12 * max(answer.max(), 1e-300))
        if entry["id"] != index["cases"][3]["id"]:  # one case left without an answer, one answered wrongly
            np.save(tmp_path / entry["answer"], answer * (1.05 if entry is index["cases"][5] else 1.0))
    report = check_answers(tmp_path, corpus=cases)
    by_name = {r.name: r.status for r in report.results}
    assert by_name[cases[3].name] == "missing" and by_name[cases[5].name] in ("infeasible", "suboptimal")
    assert sum(s == "pass" for s in by_name.values()) == len(cases) - 2 and not report.passed
    out = lmp("verify", "--answers", str(tmp_path), "--json")
    counts = json.loads(out.stdout)["counts"]
    assert out.returncode == 1 and counts["missing"] == 1 and counts["pass"] == len(cases) - 2, out.stderr


def test_lmp_vectors_writes_the_corpus(tmp_path):
    out = lmp("vectors", "--write", str(tmp_path / "v"))
    assert out.returncode == 0 and f"wrote {len(conformance_cases())} cases" in out.stdout
    assert (tmp_path / "v" / "00000-losses.npy").is_file()


# ---- the command line a newcomer meets first ---------------------------------------------------

def test_newcomer_errors_say_what_is_wrong():
    claims = lmp("claims", "nosuchid")
    assert claims.returncode != 0 and "unknown claim id(s): nosuchid" in claims.stderr
    assert "Traceback" not in claims.stderr
    dtype = lmp("verify", "--dtype", "float32")
    assert dtype.returncode != 0 and "--dtype only apply with --solver or --exec" in dtype.stderr
    family = lmp("verify", "--family", "nosuch")
    assert family.returncode != 0 and "--family 'nosuch' is not a family; families:" in family.stderr
    p = lmp("verify", "--solver", "solvers.numpy:lmp_weights", "--p", "4")
    assert p.returncode != 0 and "--p 4: no case has this p" in p.stderr
    both = lmp("verify", "--solver", "a:b", "--exec", "c")
    assert both.returncode != 0 and "not --solver and --exec" in both.stderr


def test_list_shows_families_sizes_and_case_names():
    out = lmp("verify", "--list")
    assert out.returncode == 0
    assert "sizes" in out.stdout and "1 to 1048577 losses" in out.stdout and "sizes-n65537/" in out.stdout
    assert "ties-0to3-n60/p=1/ratio=0" in out.stdout
    data = json.loads(lmp("verify", "--list", "--family", "sizes", "--json").stdout)
    assert {c["family"] for c in data} == {"sizes"} and len(data) == 72


def test_a_reader_that_stops_early_gets_no_traceback():
    """`lmp verify --list | head`: the listing meets a pipe whose reader is gone (closed before the
    command starts, so that every write fails whatever the timing)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        process = subprocess.Popen([sys.executable, "-m", "lmp_theory.cli", "verify", "--list"], cwd=ROOT,
                                   stdout=write_end, stderr=subprocess.PIPE)
    finally:
        os.close(write_end)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 1 and b"Traceback" not in err and b"BrokenPipe" not in err, err


def test_the_summary_table_shows_the_tolerances_in_force_and_what_each_row_compares():
    out = lmp("verify", "--family", "zeros", "--no-torch")
    assert out.returncode == 0, out.stdout + out.stderr
    head = next(line for line in out.stdout.splitlines() if line.startswith("solver"))
    assert "compared with" in head and "value tol" in head and "weight tol" in head
    reference = next(line for line in out.stdout.splitlines() if line.startswith("cvxpy+refine"))
    numpy_row = next(line for line in out.stdout.splitlines() if line.startswith("numpy float64"))
    assert "raw vs refined" in reference and "reference" in numpy_row
    golden = lmp("verify", "--family", "extreme", "--no-torch", "--oracle", "golden")
    numpy_row = next(line for line in golden.stdout.splitlines() if line.startswith("numpy float64"))
    fields = numpy_row.split()
    assert fields[7] == "golden" and fields[8] == "1e-10" and float(fields[9]) > 1e-6  # a conditioning allowance
