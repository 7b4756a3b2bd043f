"""What the conformance kit's isolation costs: the same cases judged in-process and in a worker.

    python benchmarks/kit_isolation.py          # about a minute on 2 cores; writes benchmarks/kit_isolation.md
    python benchmarks/kit_isolation.py --before DIR   # also a checkout from before isolation (git worktree add DIR 6dab873)

Three ways to judge ``solvers.numpy:lmp_weights`` on the cases of every family but ``sizes`` and
``large`` (the corpus the kit had before it isolated the code under test), timed round-robin:

* *in-process*: ``check_solver(fn, isolate=False)`` in this process, the old default;
* *worker*: ``check_solver(Worker.for_spec(...))``, the worker's start included;
* *command line*: ``lmp verify --solver`` as a user runs it, against the in-process check run as a
  fresh ``python -c`` (the start of an interpreter and the imports on both sides), and with ``--before``
  against the same command in a checkout of the kit before it isolated the code (commit 6dab873,
  run by this interpreter from that directory).

And one call's round trip through a worker for a function that returns zeros at once (what the
protocol itself costs per case). ``benchmarks/report.py`` appends the table to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from lmp_theory.testing import Worker, check_solver, conformance_cases
from run import machine

HERE = Path(__file__).parent
OLD_FAMILIES = ("random", "ties", "zeros", "tiny", "degenerate", "extreme", "outlier", "tau-above-gamma", "explicit")
SPEC = "solvers.numpy:lmp_weights"
IN_PROCESS = ("import sys; from lmp_theory.testing import check_solver, conformance_cases; "
              "from solvers.numpy import lmp_weights; "
              f"r = check_solver(lmp_weights, cases=conformance_cases(families={OLD_FAMILIES!r})); "
              "sys.exit(0 if r.passed else 1)")


def _zeros(losses, p, gamma, tau):
    return np.zeros_like(losses)


def _seconds(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def _run(argv, cwd=HERE.parent) -> None:
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, cwd=cwd)


def measure(repeats: int = 5, before: Path | None = None) -> dict:
    from solvers.numpy import lmp_weights

    cases = conformance_cases(families=OLD_FAMILIES)
    cli = [sys.executable, "-m", "lmp_theory.cli", "verify", "--solver", SPEC]
    for family in OLD_FAMILIES:
        cli += ["--family", family]
    contenders = {
        "in-process": lambda: check_solver(lmp_weights, cases=cases),
        "worker": lambda: check_solver(Worker.for_spec(SPEC), cases=cases),
        "python -c, in-process": lambda: _run([sys.executable, "-c", IN_PROCESS]),
        "lmp verify --solver": lambda: _run(cli),
    }
    if before is not None:  # that checkout's own corpus is these families
        contenders["before"] = lambda: _run(cli[:6], cwd=before)
    times = {name: [] for name in contenders}
    for name, fn in contenders.items():  # warm-up
        fn()
    for _ in range(repeats):
        for name, fn in contenders.items():
            times[name].append(_seconds(fn))
    with Worker.for_function(_zeros) as worker:
        losses = np.random.default_rng(0).exponential(size=100)
        worker.call(losses, 1.7, 1.0, 0.1)
        calls = 2000
        round_trip = _seconds(lambda: [worker.call(losses, 1.7, 1.0, 0.1) for _ in range(calls)]) / calls
    return {"cases": len(cases), "median": {k: statistics.median(v) for k, v in times.items()},
            "round_trip_us": round_trip * 1e6, "repeats": repeats}


def write(result: dict, out: Path) -> None:
    m = result["median"]
    lines = [
        "## Conformance kit: isolation cost", "",
        "Produced by `python benchmarks/kit_isolation.py` (appended here by `benchmarks/report.py`). The",
        f"{result['cases']:,} cases of every family but `sizes` and `large`, judged for `{SPEC}`; medians",
        f"of {result['repeats']} round-robin repeats.", "",
        f"**Machine:** {machine()}", "",
        "| how | seconds | ratio |", "|---|---:|---:|",
        f"| `check_solver(fn, isolate=False)`, in this process | {m['in-process']:.3g} | 1 |",
        f"| `check_solver(Worker.for_spec(...))`, worker start included | {m['worker']:.3g} | "
        f"{m['worker'] / m['in-process']:.2f} |",
        f"| the in-process check as a fresh `python -c` | {m['python -c, in-process']:.3g} | 1 |",
        f"| `lmp verify --solver {SPEC} --family ...` | {m['lmp verify --solver']:.3g} | "
        f"{m['lmp verify --solver'] / m['python -c, in-process']:.2f} |",
    ]
    if "before" in m:
        lines += [f"| the same command, kit without isolation (commit 6dab873, whose whole corpus these cases are) | "
                  f"{m['before']:.3g} | 1 |",
                  f"| `lmp verify --solver {SPEC} --family ...`, against that | {m['lmp verify --solver']:.3g} | "
                  f"{m['lmp verify --solver'] / m['before']:.2f} |"]
    lines += [
        "",
        f"One call through a worker for a function that returns zeros at once (100 losses): "
        f"{result['round_trip_us']:.0f} µs, the protocol's cost per case (two frames in, one out, the",
        "time limit's watch, the output capture). The default `lmp verify --solver` run also judges the `sizes`",
        "family (72 pools up to 2^20, certificate-judged), which the in-process corpus did not have.",
    ]
    out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, help="a checkout of commit 6dab873 (before isolation) to time too")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=HERE / "kit_isolation.md")
    args = parser.parse_args()
    write(measure(args.repeats, args.before), args.out)
    print(args.out.read_text())
