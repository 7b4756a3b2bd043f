"""hypothesis strategies for loss max-pooling problems: the adversarial families, in one place.

The claims' counterexample search (``lmp_theory.claims.find_counterexample``) and the
conformance kit's fuzzer draw from these generators, so both attack the same hard inputs that
public LMP code gets wrong:

* small integer pools: ties, exact zeros and negative losses;
* plain real losses of either sign;
* one huge outlier among ordinary losses;
* many tiny losses (below float32's 1.2e-7) among ordinary ones;
* losses spanning up to 600 decades (1e-300 to 1e300);
* subnormal losses;

with ``p`` from 1 through 1 + 1e-3, 1.7, 10 and 1e6 to infinity (and arbitrary reals between),
and either the paper's parameters at many ratios or raw ``gamma``/``tau`` (``tau > gamma`` and
``tau = inf`` included). Pools are short by default; ``loss_vectors(bulk=N)`` also draws pools of
up to ``N`` losses (the fuzzer uses thousands). Every strategy shrinks towards short pools of
small integers, so a failure found anywhere ends as an instance a person can read.
"""

from __future__ import annotations

import math
import random
from typing import Any, Callable

import numpy as np
from hypothesis import HealthCheck, Phase, assume, find, settings
from hypothesis import strategies as st
from hypothesis.errors import NoSuchExample

from solvers.parameters import paper_parameters

from ..instance import Instance

__all__ = ["P_CHOICES", "RATIO_CHOICES", "FAMILIES", "exponents", "loss_vectors", "instances", "shrunk_failure"]

P_CHOICES = (1.0, 1.0 + 1e-3, 1.05, 1.3, 1.7, 2.0, 3.0, 10.0, 1e3, 1e6, math.inf)
RATIO_CHOICES = (0.0, 0.01, 0.1, 0.25, 1 / 3, 0.5, 0.7, 1.0)
FAMILIES = ("integers", "reals", "outlier", "tiny", "decades", "subnormal")


def exponents(min_p: float = 1.0, max_p: float = math.inf, *, exclude_min: bool = False,
              exclude_max: bool = False) -> st.SearchStrategy[float]:
    """``p`` in the interval from ``min_p`` to ``max_p`` (ends excluded on request).

    Draws the landmark values (1, 1 + 1e-3, 1.7, 10, 1e6, inf, ...) that fall in the interval and
    arbitrary reals in it (up to 50 when the interval is unbounded).
    """

    def inside(p: float) -> bool:
        above = p > min_p if exclude_min else p >= min_p
        below = p < max_p if exclude_max else p <= max_p
        return above and below

    landmarks = [p for p in P_CHOICES if inside(p)]
    top = min(max_p, 50.0)
    options = []
    if landmarks:
        options.append(st.sampled_from(landmarks))
    if top > min_p:
        options.append(st.floats(min_p, top, exclude_min=exclude_min,
                                 exclude_max=exclude_max and top == max_p).filter(inside))
    if not options:
        raise ValueError(f"no p in the interval [{min_p}, {max_p}] with the exclusions asked for")
    return st.one_of(*options)


def _integers(size, positive):
    return st.lists(st.integers(1 if positive else -3, 6).map(float), **size)


def _reals(size, positive):
    values = st.floats(0.0, 100.0, exclude_min=True) if positive else st.floats(-100.0, 100.0)
    return st.lists(values, **size)


@st.composite
def _outlier(draw, size, positive):
    base = draw(st.lists(st.floats(0.0 if not positive else 1e-3, 1.0), **size))
    base[draw(st.integers(0, len(base) - 1))] = 10.0 ** draw(st.integers(3, 12))
    return base


@st.composite
def _tiny(draw, size, positive):
    values = draw(st.lists(st.one_of(st.floats(0.1, 3.0), st.floats(1e-12, 1.19e-7)), **size))
    return values


def _decades(size, positive):
    return st.lists(st.floats(-300.0, 300.0).map(lambda e: 10.0**e), **size)


def _subnormal(size, positive):
    return st.lists(st.integers(1, 10**6).map(lambda k: k * 5e-324), **size)


_FAMILY = {"integers": _integers, "reals": _reals, "outlier": _outlier, "tiny": _tiny,
           "decades": _decades, "subnormal": _subnormal}


def _expand(base: np.ndarray, size: int, seed: int, distinct: bool) -> np.ndarray:
    """``size`` losses: ``base`` and draws from it, half exact copies (ties), half rescaled by up to 2x."""
    rng = np.random.default_rng(seed)
    extra = rng.choice(base, size - base.size)
    rescale = np.ones(extra.size, dtype=bool) if distinct else rng.random(extra.size) < 0.5
    extra[rescale] *= 2.0 ** rng.uniform(-1.0, 1.0, int(np.count_nonzero(rescale)))
    return rng.permutation(np.concatenate([base, extra]))


def _log_uniform_sizes(low: int, high: int) -> st.SearchStrategy[int]:
    """Sizes from ``low`` to ``high``, every octave as likely as the next.

    The octave is drawn by ``sampled_from`` and the place within it on a grid of 256: one
    ``integers(low, high)``, or one over a fine grid, lands in the lowest octave most of the time
    (hypothesis favours small integers), so pools in the thousands were rare draws."""
    octaves = math.log2(high / low)
    whole = math.ceil(octaves)
    top = whole * 256 - 1
    return st.tuples(st.sampled_from(range(whole)), st.integers(0, 255)).map(
        lambda at: min(high, int(round(low * 2.0 ** (octaves * (at[0] * 256 + at[1]) / top)))))


def loss_vectors(*, min_size: int = 1, max_size: int = 8, families=FAMILIES, positive: bool = False,
                 distinct: bool = False, bulk: int = 0) -> st.SearchStrategy[np.ndarray]:
    """1-D float64 loss vectors from the adversarial ``families``.

    ``positive``: every loss > 0. ``distinct``: no two losses equal and no exact zero (where the
    value is differentiable). ``bulk``: when above ``max_size``, also draw pools of up to ``bulk``
    losses (up to 300, and beyond with every octave as likely as the next): a drawn vector expanded
    by NumPy from a drawn seed, with ties and rescaled copies of its values.
    Shrinks towards a single small integer.
    """
    unknown = set(families) - set(_FAMILY)
    if unknown or not families:
        raise ValueError(f"families must be a non-empty subset of {FAMILIES}, got {tuple(families)}")
    if not 1 <= min_size <= max_size:
        raise ValueError(f"need 1 <= min_size <= max_size, got {min_size}, {max_size}")
    size = {"min_size": min_size, "max_size": max_size}
    vectors = st.one_of(*(_FAMILY[f](size, positive) for f in families)).map(
        lambda xs: np.asarray(xs, dtype=np.float64))
    if bulk > max_size:
        middle = min(bulk, max(300, max_size + 1))
        sizes = st.integers(max_size + 1, middle)
        if bulk > middle:
            sizes = st.one_of(sizes, _log_uniform_sizes(middle + 1, bulk))
        vectors = st.one_of(vectors, st.builds(_expand, vectors, sizes, st.integers(0, 2**32 - 1),
                                               st.just(distinct)))
    if positive:
        vectors = vectors.filter(lambda x: bool(np.all(x > 0)))
    if distinct:
        vectors = vectors.filter(lambda x: bool(np.all(x != 0)) and np.unique(x).size == x.size)
    return vectors


def instances(*, p: st.SearchStrategy[float] | None = None, losses: st.SearchStrategy | None = None,
              parameters: str = "any", cap: bool | None = None) -> st.SearchStrategy[Instance]:
    """Problems built from ``p`` (default ``exponents``) and ``losses`` (default ``loss_vectors``).

    ``parameters``: ``"paper"`` (``paper_parameters`` at a drawn ratio), ``"raw"`` (``gamma`` and
    ``tau`` drawn over six decades each, ``tau > gamma`` and ``tau = inf`` included) or ``"any"``.
    ``cap``: ``True`` for a finite ``tau``, ``False`` for ``tau = inf``, ``None`` for either.
    """
    if parameters not in ("any", "paper", "raw"):
        raise ValueError(f"parameters must be 'any', 'paper' or 'raw', got {parameters!r}")
    if cap not in (None, True, False):
        raise ValueError(f"cap must be None, True or False, got {cap!r}")
    exponent_st = exponents() if p is None else p
    losses_st = loss_vectors() if losses is None else losses
    ratios = st.one_of(st.sampled_from(RATIO_CHOICES), st.floats(0.0, 1.0))
    capped_ratios = ratios.filter(lambda r: r > 0)
    scale = st.floats(-3.0, 3.0).map(lambda e: 10.0**e)
    gammas = st.one_of(st.just(1.0), scale)
    taus = {True: st.one_of(st.just(0.5), scale), False: st.just(math.inf),
            None: st.one_of(st.just(0.5), scale, st.just(math.inf))}[cap]

    @st.composite
    def build(draw) -> Instance:
        exponent, vector = draw(exponent_st), draw(losses_st)
        paper_allowed = parameters != "raw" and not (cap is False and math.isinf(exponent))
        assume(parameters != "paper" or paper_allowed)  # the paper's p = inf always caps (tau = 1/n)
        if paper_allowed and (parameters == "paper" or draw(st.booleans())):
            if cap is False:
                ratio = 0.0
            else:
                ratio = draw(capped_ratios if cap and not math.isinf(exponent) else ratios)
            gamma, tau = paper_parameters(vector.size, exponent, ratio)
            assume(cap is not True or math.isfinite(tau))  # a subnormal ratio's tau overflows to inf
            return Instance(vector, exponent, gamma, tau, ratio)
        return Instance(vector, exponent, draw(gammas), draw(taus), None)

    return build()


def shrunk_failure(problems: st.SearchStrategy, fails: Callable[[Any], bool], *, budget: int, seed: int):
    """The smallest problem drawn from ``problems`` on which ``fails`` is True, or None.

    ``budget`` problems are tried, then a failure is shrunk by hypothesis; no example database, no
    deadline and no health checks, so the same ``seed`` always gives the same answer.
    """
    config = settings(max_examples=budget, database=None, deadline=None, derandomize=False,
                      phases=(Phase.generate, Phase.shrink), suppress_health_check=list(HealthCheck))
    try:
        return find(problems, fails, settings=config, random=random.Random(seed))
    except NoSuchExample:
        return None
