"""A named, deterministic corpus of hard LMP problems.

Every case is built from a fixed seed, so the same name always means the same numbers. The
families cover what public LMP code gets wrong: exact zeros and ties, many tiny losses (below
float32's 1.2e-7), all-zero and all-negative pools, a single loss, ranges from 1e-30 to 1e30
(and, in float64 only, 1e-300 to 1e300 and subnormals), one huge outlier, ``tau`` above
``gamma``, and ``p`` from 1 to 1e6 and infinity. Losses of cases marked ``float32`` are exactly
representable in float32 (checked, not declared), so one float64 reference serves both precisions.

The ``sizes`` family (``size_cases``, ``SIZES``) is one pool of every size on a log grid from 1 to
2^20 + 1: three per decade up to 10^5, every power of two with its two neighbours (the solvers' own switches,
``solvers._numpy_select.SELECT_MIN_N`` = 4,096, ``AUTO_SELECT_MIN_N`` = 16,384 and 2^19, where the
selection sample starts to grow, among them), with
``p`` and the ratio cycling over ``P_VALUES`` and ``RATIOS``. Like the large pools, it has no golden
answers: the duality certificate judges it.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np

from solvers._numpy_select import SELECT_MIN_N
from solvers._policy import AUTO_SELECT_MIN_N
from solvers.parameters import paper_parameters

__all__ = ["Case", "P_VALUES", "RATIOS", "SIZES", "cases", "case_by_name", "size_cases"]

P_VALUES = (1.0, 1.001, 1.05, 1.3, 1.7, 2.0, 3.0, 10.0, 1e6, math.inf)
RATIOS = (0.0, 0.01, 0.1, 1 / 3, 1.0)
MAX_SIZE = 2**20 + 1
SIZES = tuple(sorted({n for n in [*(m * 10**k for k in range(5) for m in (1, 2, 5)), 100_000,
                                  *(2**k + d for k in range(21) for d in (-1, 0, 1)),
                                  *(t + d for t in (SELECT_MIN_N, AUTO_SELECT_MIN_N) for d in (-1, 0, 1))]
                      if 1 <= n <= MAX_SIZE}))


@dataclass(frozen=True)
class Case:
    """One LMP problem: ``losses`` (1-D float64), ``p``, ``gamma``, ``tau``.

    ``family`` groups cases by what they stress; ``ratio`` is the paper's ratio when
    ``(gamma, tau)`` came from ``lmp_theory.paper_parameters`` (None otherwise);
    ``float32`` says whether the losses are exactly representable in float32 (and, for float32
    runs, whether the case is used).
    """

    name: str
    family: str
    losses: np.ndarray = field(repr=False)
    p: float
    gamma: float
    tau: float
    ratio: float | None = None
    float32: bool = True

    @property
    def n(self) -> int:
        return int(self.losses.size)


def _f32(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float32).astype(np.float64)


def _powers_of_ten(exponents: np.ndarray) -> np.ndarray:
    """``10 ** x`` with the C library's pow, element by element: NumPy's vectorised pow differs between CPUs
    in the last bit, and the corpus must be the same on every machine."""
    return np.array([10.0 ** float(x) for x in exponents])


def _representable_in_float32(x: np.ndarray) -> bool:
    with np.errstate(over="ignore"):
        return bool(np.array_equal(x.astype(np.float32).astype(np.float64), x))


def _families(rng: np.random.Generator, large: bool, seed: int):
    """(family, label, losses) for every loss vector of the corpus. The large pools draw from
    generators of their own, so that adding them leaves every other case's numbers as they are."""
    out = []
    for n, scale in [(1, 1.0), (2, 1.0), (7, 1e-3), (50, 1.0), (300, 1e3)]:
        out.append(("random", f"normal-n{n}-s{scale:g}", _f32(scale * rng.standard_normal(n))))
    out.append(("random", "exponential-n200", _f32(rng.exponential(1.0, 200))))
    out.append(("random", "lognormal-n500", _f32(rng.lognormal(0.0, 3.0, 500))))
    out.append(("ties", "ties-0to3-n60", rng.integers(0, 4, 60).astype(np.float64)))
    out.append(("ties", "ties-all-equal-n40", np.full(40, 2.5)))
    zeros = _f32(rng.exponential(1.0, 80))
    zeros[rng.random(80) < 0.4] = 0.0
    out.append(("zeros", "exact-zeros-n80", zeros))
    for share in (0.25, 0.5, 0.75):
        n = 120
        x = _f32(rng.uniform(0.1, 3.0, n))
        tiny = rng.permutation(n)[: int(share * n)]
        x[tiny] = _f32(rng.uniform(1e-12, 1.19e-7, tiny.size))
        out.append(("tiny", f"tiny-{int(share * 100)}pct-n{n}", x))
    out.append(("degenerate", "all-zero-n10", np.zeros(10)))
    out.append(("degenerate", "all-negative-n10", -_f32(rng.uniform(0.1, 2.0, 10))))
    out.append(("degenerate", "mixed-sign-n30", _f32(rng.standard_normal(30))))
    out.append(("degenerate", "single-n1", np.array([1.75])))
    out.append(("extreme", "range-1e-30-1e30-n100", _f32(_powers_of_ten(rng.uniform(-30, 30, 100)))))
    out.append(("extreme", "range-1e-300-1e300-n100", _powers_of_ten(rng.uniform(-300, 300, 100))))
    sub = np.concatenate([rng.uniform(1, 100, 20) * 5e-324, [1e-310, 3e-309]])
    out.append(("extreme", "subnormal-n22", sub))
    out.append(("extreme", "huge-1e300-n50", rng.uniform(0.5, 1.0, 50) * 1e300))
    outlier = _f32(rng.uniform(0.0, 1.0, 100))
    outlier[17] = 1e12
    out.append(("outlier", "outlier-1e12-n100", outlier))
    if large:
        for n in (2**16, 2**20):
            own = np.random.default_rng([seed, n])
            x = _f32(own.exponential(1.0, n))
            tiny = own.random(n) < 0.3
            x[tiny] = _f32(own.uniform(0.0, 1e-7, int(np.count_nonzero(tiny))))
            out.append(("large", f"exponential-n{n}", x))
    return out


def cases(*, full: bool = False, large: bool = False, seed: int = 20170404) -> list[Case]:
    """The corpus.

    Parameters
    ----------
    full : bool
        Every loss vector with every ``p`` in ``P_VALUES`` and every ratio in ``RATIOS``
        (about 1,300 cases). Otherwise (the default, used by ``lmp verify``) each loss vector
        gets every ``p`` once, with the ratio cycling through ``RATIOS``, plus the
        ``tau > gamma`` and explicit-parameter cases (about 300).
    large : bool
        Add pools of 2^16 and 2^20 losses (checked by certificate, not by cvxpy).
    seed : int
        The corpus is deterministic for a given seed.
    """
    rng = np.random.default_rng(seed)
    out: list[Case] = []
    for index, (family, label, losses) in enumerate(_families(rng, large, seed)):
        f32 = _representable_in_float32(losses)
        if full:
            grid = list(itertools.product(P_VALUES, RATIOS))
        else:
            grid = [(p, RATIOS[(index + j) % len(RATIOS)]) for j, p in enumerate(P_VALUES)]
        for p, ratio in grid:
            gamma, tau = paper_parameters(losses.size, p, ratio)
            name = f"{label}/p={p:g}/ratio={ratio:.3g}"
            out.append(Case(name, family, losses, p, gamma, tau, ratio, f32))
    explicit = _f32(rng.exponential(1.0, 64))
    for p in P_VALUES:
        for gamma, tau in [(1.0, 2.0), (0.5, 0.05), (3.0, math.inf), (2.0, 1e-3)]:
            name = f"explicit-n64/p={p:g}/gamma={gamma:g}/tau={tau:g}"
            family = "tau-above-gamma" if tau > gamma else "explicit"
            out.append(Case(name, family, explicit, p, gamma, tau, None, _representable_in_float32(explicit)))
    return out


def size_cases(*, seed: int = 20170404, sizes=SIZES) -> list[Case]:
    """The ``sizes`` family (module docs): one pool of exponential losses (float32-representable, a
    generator of its own per size) for each of ``sizes``."""
    out = []
    for index, n in enumerate(sizes):
        losses = _f32(np.random.default_rng([seed, 7, n]).exponential(1.0, n))
        p, ratio = P_VALUES[index % len(P_VALUES)], RATIOS[index % len(RATIOS)]
        gamma, tau = paper_parameters(n, p, ratio)
        out.append(Case(f"sizes-n{n}/p={p:g}/ratio={ratio:.3g}", "sizes", losses, p, gamma, tau, ratio, True))
    return out


def case_by_name(name: str, *, seed: int = 20170404) -> Case:
    """Look up any case of the corpus by its name: standard, full, large or sizes (for ``seed``)."""
    if name.startswith("sizes-n"):
        n = name[len("sizes-n"):].partition("/")[0]
        found = [c for c in size_cases(seed=seed) if n.isdigit() and c.n == int(n) and c.name == name]
        if found:
            return found[0]
    for large in (False, True):
        for case in cases(full=True, large=large, seed=seed):
            if case.name == name:
                return case
    raise KeyError(f"no corpus case named {name!r}")
