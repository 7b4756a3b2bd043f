"""The kit on code written elsewhere: every verdict confirmed by an independent classification.

The independent check below shares no code with the kit's verdicts: it reads the mpmath golden
answers directly, measures feasibility with ``np.linalg.norm``, looks for a larger loss with a smaller
weight pair by pair (the kit sorts), and decides where maximizers may
differ from the structure of the exact weights (budget left over, entries strictly between 0 and
the cap that share their loss) instead of from the certificate's threshold.
"""

import math
import warnings

import numpy as np

from lmp_theory.testing import check_solver, conformance_cases
from lmp_theory.testing.golden import load
from lmp_theory.testing.verdict import ALLOWANCE_CAP
from tests.third_party import kernel_port, scs_raw, torch_bisection

CASES = conformance_cases()
GOLDEN = load()
TOL = 1e-10


def independent_status(case, w):
    """The status of weights ``w`` (already returned, real, right shape, finite) on ``case``."""
    exact = GOLDEN[case.name]
    assert exact.serves(case)
    l, g, t, p = case.losses, case.gamma, case.tau, case.p
    top = float(np.max(np.abs(w))) if w.size else 0.0
    norm = 0.0 if top <= 0 else top * np.linalg.norm(w / top, ord=p)  # literally: negative entries count
    excess = max(-float(np.min(w)) / min(g, t), norm / g - 1, float(np.max(w)) / t - 1 if math.isfinite(t) else 0.0)
    if excess > TOL:
        return "infeasible"
    e = int(np.frexp(np.max(np.abs(l)))[1]) if np.any(l) else 0  # values on losses scaled to ~1
    opt = math.fsum(exact.weights * np.ldexp(l, -e))
    got = math.fsum(w * np.ldexp(l, -e))
    wscale = float(np.max(exact.weights)) or min(g, t)
    vscale = abs(opt) or wscale * float(np.max(np.abs(np.ldexp(l, -e))))
    if opt - got > TOL * vscale + np.ldexp(exact.value_slack, -e):
        return "suboptimal"
    if np.any((l[:, None] > l[None, :]) & (w[:, None] < w[None, :] - 2 * TOL * wscale)):
        return "wrong-weights"  # not a maximizer: swapping w[i] and w[j] raises the value
    off = np.abs(w - exact.weights) > TOL * wscale + min(2 * exact.weight_slack, ALLOWANCE_CAP * wscale)
    if not np.any(off):
        return "pass"
    exact_norm = np.inf if math.isinf(p) else np.linalg.norm(exact.weights / wscale, ord=p) * wscale
    budget_left = math.isinf(p) or (np.sum(exact.weights) if p == 1 else exact_norm) < g * (1 - 1e-12)
    free = (l == 0) & budget_left
    if p == 1:
        partial = (exact.weights > 0) & (exact.weights < t)
        shared = np.array([np.count_nonzero(l == x) > 1 for x in l])
        free |= partial & shared
    return "wrong-weights" if np.any(off & ~free) else "optimal-not-canonical"


def confirm(fn, cases):
    report = check_solver(fn, cases=cases)
    disagreements = []
    for case, result in zip(cases, report.results):
        if result.status in ("raised", "timeout", "wrong-type", "wrong-shape", "non-finite"):
            continue  # nothing to classify: the kit's message says what came back
        w = np.asarray(fn(case.losses.copy(), case.p, case.gamma, case.tau), dtype=np.float64)
        if independent_status(case, w) != result.status:
            disagreements.append((case.name, result.status, independent_status(case, w)))
    return report, disagreements


def test_kernel_port_verdicts_are_confirmed():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report, disagreements = confirm(kernel_port, CASES)
    assert disagreements == []
    counts = report.counts()
    # the ways such a kernel goes wrong, each reported, not just its exceptions
    for status in ("raised", "non-finite", "infeasible", "suboptimal", "wrong-weights", "pass"):
        assert counts.get(status, 0) > 0, counts
    shown = {r.status for r in report.worst(limit=10)}
    assert {"non-finite", "infeasible", "raised"} <= shown  # not ten identical 'raised' rows


def test_bisection_verdicts_are_confirmed_and_wrong_weights_are_not_optimal_not_canonical():
    report, disagreements = confirm(torch_bisection, CASES)
    assert disagreements == []
    wrong = [r for r in report.results if r.status == "wrong-weights"]
    assert wrong and max(r.weight_error for r in wrong) > 0.5  # hidden by the value once, now flagged
    for r in report.results:
        if r.status == "optimal-not-canonical":  # only where the problem has several maximizers
            assert r.p in (1.0, math.inf) or "zero losses" in r.message, r
    lenient = check_solver(torch_bisection, cases=[c for c in CASES if c.family == "outlier"], canonical=False)
    assert not lenient.passed and "wrong-weights" in lenient.counts()


SCS_CASES = [c for c in CASES if c.n <= 40 and c.family in ("degenerate", "random", "ties")
             and c.p in (1.0, 2.0, math.inf) and c.ratio in (0.0, 1 / 3)]


def test_scs_default_tolerance_verdicts_are_confirmed():
    assert 15 <= len(SCS_CASES) <= 60
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report, disagreements = confirm(scs_raw, SCS_CASES)
    assert disagreements == []
    assert not report.passed
    zero = [r for r in report.results if r.name.startswith("all-zero")]
    assert zero and all(r.status != "pass" or r.weight_error <= 1e-10 for r in zero)
    negative = [r for r in report.results if r.name.startswith("all-negative")]
    assert all(r.status in ("pass", "suboptimal", "infeasible") for r in negative)
