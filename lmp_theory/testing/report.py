"""Reports of the conformance kit: verdicts per case, broken down so that they find the bug.

A ``Report`` holds one ``CaseResult`` per case (or, for the fuzzer, the shrunk
counterexample). It prints a summary line, a breakdown by family x p (x ratio) with the count of
each status, and the failures worst first, every status represented, each with its tolerance, a
message that says what is wrong and where, and a one-line command that reproduces it. ``as_json``
gives the same for machines. ``summary_table`` puts several reports side by side, one line each
(the worst figures, the tolerance, the time and the result), as ``lmp verify`` prints the
built-in solvers.
"""

from __future__ import annotations

import math
import shlex
from collections import Counter
from dataclasses import asdict, dataclass, field

__all__ = ["CaseResult", "Report", "SEVERITY", "summary_table"]

# every status the kit gives, most severe first: silent wrong answers, then loud failures
SEVERITY = ("non-finite", "nan-leak", "infeasible", "wrong-value", "suboptimal", "no-gradient", "wrong-gradient",
            "wrong-weights", "mutates-input", "wrong-type", "wrong-shape", "timeout", "crashed", "raised", "missing",
            "optimal-not-canonical", "pass")
_RANK = {status: i for i, status in enumerate(SEVERITY)}
_MEASURE = {"infeasible": "violation", "suboptimal": "value_error", "wrong-value": "value_error",
            "wrong-weights": "weight_error", "optimal-not-canonical": "weight_error", "wrong-gradient": "weight_error"}


@dataclass(frozen=True)
class CaseResult:
    """The verdict on one case. Errors, tolerances and the certificate's duality ``gap`` are
    relative (see ``verdict``); NaN where not measured. ``output`` is what the code under test
    printed (shown with ``verbose``); ``seconds`` the wall time of its call."""

    name: str
    family: str
    n: int
    p: float
    status: str
    value_error: float = math.nan
    weight_error: float = math.nan
    violation: float = math.nan
    message: str = ""
    ratio: float | None = None
    value_tol: float = math.nan
    weight_tol: float = math.nan
    output: str = ""
    gap: float = math.nan
    seconds: float = 0.0

    def severity(self) -> tuple[int, float]:
        """Sort key: status rank, then the size of the failing figure (largest first)."""
        figure = getattr(self, _MEASURE.get(self.status, "status"), 0.0)
        figure = figure if isinstance(figure, float) and not math.isnan(figure) else 0.0
        return _RANK.get(self.status, len(SEVERITY)), -figure


@dataclass
class Report:
    """The verdicts on one implementation; ``passed`` is True when something was checked and
    nothing failed.

    ``command`` is the ``lmp verify`` command line that runs the same check (it gives each
    failure its reproducer); the fuzzer sets ``examples`` (how many it tried) and
    ``counterexample`` (the shrunk failing ``lmp_theory.instance.Instance``, or None).
    """

    solver: str
    dtype: str
    canonical: bool = True
    results: list[CaseResult] = field(default_factory=list)
    command: str = ""
    examples: int | None = None
    counterexample: object = None
    code: str = ""
    compares: str = ""  # what the errors compare, for summary_table (e.g. "golden", "raw vs refined")

    def counts(self) -> dict[str, int]:
        tally = Counter(r.status for r in self.results)
        return {s: tally[s] for s in sorted(tally, key=lambda s: -_RANK.get(s, -1))}

    def failing(self) -> list[CaseResult]:
        allowed = {"pass"} if self.canonical else {"pass", "optimal-not-canonical"}
        return [r for r in self.results if r.status not in allowed]

    @property
    def checked(self) -> int:
        return len(self.results) if self.examples is None else self.examples

    @property
    def passed(self) -> bool:
        return self.checked > 0 and not self.failing()

    def summary(self) -> str:
        counts = ", ".join(f"{k} {v}" for k, v in self.counts().items())
        counts = counts or ("no failure" if self.checked else "nothing checked")
        verdict = "CONFORMS" if self.passed else "DOES NOT CONFORM"
        demand = "canonical weights demanded" if self.canonical else "any optimal weights accepted"
        what = f"{self.examples} fuzzed examples" if self.examples is not None else f"{len(self.results)} cases"
        return f"{self.solver} [{self.dtype}, {demand}]: {what}: {counts} -> {verdict}"

    def reproducer(self, result: CaseResult) -> str:
        """The one-line command that checks this case alone (empty without a ``command``)."""
        if self.examples is not None or not self.command:
            return self.command
        return f"{self.command} --case {shlex.quote(result.name)}"

    def worst(self, limit: int | None = None) -> list[CaseResult]:
        """Failures, most severe first; with ``limit``, every failing status gets its turn."""
        ranked = sorted(self.failing(), key=CaseResult.severity)
        if limit is None or len(ranked) <= limit:
            return ranked
        queues: dict[str, list[CaseResult]] = {}
        for r in ranked:
            queues.setdefault(r.status, []).append(r)
        picked: list[CaseResult] = []
        while len(picked) < limit:
            for queue in queues.values():
                if queue and len(picked) < limit:
                    picked.append(queue.pop(0))
        return sorted(picked, key=CaseResult.severity)

    def breakdown(self, by: tuple[str, ...] = ("family", "p")) -> dict[tuple, dict[str, int]]:
        """Status counts per group, e.g. ``{("tiny", 1.7): {"pass": 8, "suboptimal": 2}}``."""
        out: dict[tuple, Counter] = {}
        for r in self.results:
            out.setdefault(tuple(getattr(r, key) for key in by), Counter())[r.status] += 1
        return {key: dict(tally) for key, tally in out.items()}

    def breakdown_table(self, by: tuple[str, ...] = ("family", "p"), only_failing: bool = True) -> str:
        """The breakdown as a table, groups with failures only unless ``only_failing=False``."""
        groups = self.breakdown(by)
        bad = set(SEVERITY) - {"pass"} - ({"optimal-not-canonical"} if not self.canonical else set())
        if only_failing:
            groups = {k: v for k, v in groups.items() if bad & set(v)}
        statuses = sorted({s for tally in groups.values() for s in tally}, key=lambda s: _RANK.get(s, 99))
        cells = [[*by, *statuses]] + [[_key(k) for k in key] + [str(tally.get(s, "")) for s in statuses]
                                      for key, tally in groups.items()]
        widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
        lines = ["  ".join(c.ljust(w) if i < len(by) else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
                 for row in cells]
        return "\n".join([lines[0], "-" * len(lines[0])] + lines[1:])

    def table(self, only_failing: bool = True, limit: int = 40, verbose: bool = False) -> str:
        """Failures worst first (or every result), each with its message and reproducer."""
        rows = self.worst(limit) if only_failing else self.results[:limit]
        total = len(self.failing()) if only_failing else len(self.results)
        head = f"{'case':52} {'status':22} {'value err':>9} {'weight err':>10} {'violation':>9} {'tol (value/weight)':>18}"
        lines = [head, "-" * len(head)]
        for r in rows:
            lines.append(f"{r.name[:52]:52} {r.status:22} {r.value_error:9.1e} {r.weight_error:10.1e} "
                         f"{r.violation:9.1e} {_fmt(r.value_tol):>8}/{_fmt(r.weight_tol):<9}")
            if r.message:
                lines.append(f"    {r.message}")
            if verbose and r.output:
                lines += [f"    | {line}" for line in r.output.rstrip().splitlines()]
            if r.status != "pass" and self.reproducer(r):
                lines.append(f"    reproduce: {self.reproducer(r)}")
        if total > len(rows):
            lines.append(f"... and {total - len(rows)} more")
        return "\n".join(lines)

    def as_json(self) -> dict:
        """Everything in the report as JSON-ready data (floats: NaN and inf as strings)."""
        results = []
        for r in self.results:
            row = {k: _json_number(v) for k, v in asdict(r).items()}
            row["reproducer"] = self.reproducer(r) if r.status != "pass" else ""
            results.append(row)
        return {"solver": self.solver, "dtype": str(self.dtype), "canonical": self.canonical, "passed": self.passed,
                "checked": self.checked, "counts": self.counts(),
                "breakdown": [{"family": k[0], "p": _json_number(k[1]), "counts": v}
                              for k, v in self.breakdown().items()],
                "counterexample": repr(self.counterexample) if self.counterexample is not None else None,
                "code": self.code, "results": results}


def summary_table(reports: list[Report]) -> str:
    """One line per report: cases, the worst value and weight errors, certificate gap and violation
    over its cases, what the errors compare (``Report.compares``), the widest value and weight
    tolerances in force (a weight tolerance wider than the dtype's is a case's conditioning
    allowance), the wall time of its calls (the code under test, with the kit's capture and time
    limit around it) and the result."""
    head = ("solver", "cases", "value err", "weight err", "cert gap", "violation", "compared with", "value tol",
            "weight tol", "time s", "result")
    lines = [head]
    for r in reports:
        worst = {key: _worst(getattr(c, key) for c in r.results)
                 for key in ("value_error", "weight_error", "gap", "violation")}
        tols = [_worst(getattr(c, key) for c in r.results) for key in ("value_tol", "weight_tol")]
        lines.append((r.solver, str(len(r.results)), *(f"{x:.1e}" for x in worst.values()), r.compares or "-",
                      *("-" if math.isnan(t) else f"{t:.0e}" for t in tols),
                      f"{sum(c.seconds for c in r.results):.2f}",
                      "pass" if r.passed else f"FAIL ({len(r.failing())})"))
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    rows = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths)))
            for line in lines]
    return "\n".join([rows[0], "-" * len(rows[0])] + rows[1:])


def _worst(figures) -> float:
    """The largest figure, NaN (not measured) left out; NaN if none was measured."""
    return max((x for x in figures if not math.isnan(x)), default=math.nan)


def _fmt(x) -> str:
    if isinstance(x, float):
        return "-" if math.isnan(x) else f"{x:.3g}" if x >= 1e-3 or x == 0 else f"{x:.0e}"
    return str(x)


def _key(x) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def _json_number(x):
    return str(x) if isinstance(x, float) and not math.isfinite(x) else x
