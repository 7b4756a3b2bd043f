r"""Selection-based exact solver (expected $O(n)$ per pool): the private core of ``method="select"``.

Sorting is not needed: the answer is fixed by the threshold $t^*$ and the number ``k`` of
capped losses. As in Floyd–Rivest selection (and the linear-time simplex projections of Duchi
et al. 2008 and Condat 2016), a sorted random sample of 4,096 losses gives an estimate of
$t^*$ and a bracket ``[t_lo, t_hi)`` that contains it with high probability. One pass over
the pool then counts the losses above the bracket (all capped), sums $(l/l_b)^q$ below it
(all uncapped; $l_b$ the largest of them), and extracts the few losses inside it, which are
sorted and solved exactly. Both bracket ends are verified with the dual's $h(t)$; if the
sample missed, the caller falls back to the sort path, so the answer is always the exact one.

``select_pools`` runs a batch pool by pool; each per-pool solver (``select_p1``, ``select_holder``)
takes the positive losses ``x`` of one pool (float32 or float64) and an ``out`` buffer of ``x``'s
shape and dtype for the weights, and returns ``(threshold, value)`` as floats, or ``None`` on a
miss. Memory: the weights, one boolean mask at a time, and the small inside set.
"""

from __future__ import annotations

import math

import numpy as np

from ._numpy_closed_form import (
    capped_power_weights,
    holder_coef,
    holder_threshold,
    p1_cap_count,
    p1_share,
)
from ._numpy_sort import sort_pools
from ._policy import computes_in_float64
from .problem import cap_count, conjugate, log_ratio
from .problem import exp_or_inf as _exp

SAMPLE = 4096
# method="select" on pools below the sample size would sort each whole pool in a Python loop:
# such pools take the vectorised sort path instead (same answer).
SELECT_MIN_N = SAMPLE
MARGIN = 4.0  # bracket half-width in standard deviations of the sample rank


def _sample(x: np.ndarray) -> np.ndarray:
    """A random sample (fixed seed: the same pool gives the same sample), sorted decreasingly.

    Random rather than strided, so that periodic structure in the pool cannot alias with it.
    """
    if x.size <= SAMPLE:
        return -np.sort(-x)
    index = np.random.default_rng(x.size).integers(0, x.size, SAMPLE)
    return -np.sort(-x[index])


def _bracket(sample: np.ndarray, rank: float, n: int):
    """Values bracketing the element of (real) rank ``rank`` among ``n``, from the sorted sample."""
    s = sample.size
    j = rank * s / n
    spread = MARGIN * math.sqrt(max(j, 1.0)) + 2.0
    hi_index, lo_index = int(math.floor(j - spread)), int(math.ceil(j + spread))
    t_hi = math.inf if hi_index < 0 else float(sample[min(hi_index, s - 1)])
    t_lo = 0.0 if lo_index >= s else float(sample[max(lo_index, 0)])
    return t_lo, t_hi


def select_pools(flat: np.ndarray, mask: np.ndarray | None, p: float, gamma: np.ndarray, tau: np.ndarray):
    """Pool by pool with the selection core (finite p): weights (``flat``'s dtype), values, thresholds.

    Memory: the weights, the pool's positive losses (a copy unless every loss is positive, in the
    work dtype), one weight buffer for them and a few boolean masks of one pool. Pools below
    ``SELECT_MIN_N`` losses take the sort path, vectorised over pools.
    """
    pools, n = flat.shape
    if n < SELECT_MIN_N:
        return sort_pools(flat, mask, p, gamma, tau)
    work = np.dtype(np.float64 if computes_in_float64(flat.dtype == np.float64, p) else np.float32)
    weights = np.zeros((pools, n), dtype=flat.dtype)
    value, threshold = np.zeros(pools), np.zeros(pools)
    for i in range(pools):
        row = flat[i]
        positive = row > 0
        if mask is not None:
            positive &= mask[i]
        dense = bool(positive.all())
        x = (row if dense else np.extract(positive, row)).astype(work, copy=False)  # extract: no index array
        if x.size == 0:
            continue
        in_place = dense and work == flat.dtype  # dense pools are solved in place
        out = weights[i] if in_place else np.empty_like(x)
        solved = _select_one(x, p, float(gamma[i]), float(tau[i]), out)
        if solved is None:  # the sampled bracket missed: the sort path for this pool
            w_row, v_row, t_row = sort_pools(flat[i : i + 1], None if mask is None else mask[i : i + 1],
                                             p, gamma[i : i + 1], tau[i : i + 1])
            weights[i], value[i], threshold[i] = w_row[0], v_row[0], t_row[0]
            continue
        threshold[i], value[i] = solved
        if dense and not in_place:
            weights[i] = out
        elif not dense:
            np.place(weights[i], positive, out.astype(weights.dtype, copy=False))  # no index array, unlike w[mask] = ...
    return weights, value, threshold


def _select_one(x: np.ndarray, p: float, gamma: float, tau: float, out: np.ndarray):
    """(threshold, value) for the positive losses x of one pool, finite p, weights into ``out``;
    None on a miss."""
    if p == 1.0:
        return select_p1(x, gamma, tau, out)
    m = float(cap_count(p, gamma, tau))
    if x.size <= m:
        out[...] = tau
        return 0.0, tau * float(np.sum(x, dtype=np.float64))
    if m == 0.0:  # no cap: Hölder's weighting, L = gamma ||x||_q
        q = conjugate(p)
        top = float(x.max())
        with np.errstate(under="ignore"):
            norm = float(np.sum((x / x.dtype.type(top)) ** q, dtype=np.float64))  # sum (x/top)^q, >= 1
        capped_power_weights(x, top, float(holder_coef(gamma, p, m, 0, norm)), q, math.inf, out=out)
        return math.inf, gamma * top * norm ** (1.0 / q)
    return select_holder(x, p, gamma, tau, m, out)


def select_p1(x: np.ndarray, gamma: float, tau: float, out: np.ndarray):
    """p = 1: the (floor(m)+1)-th largest loss by selection inside a sampled bracket."""
    n = x.size
    m = float(p1_cap_count(gamma, tau))
    if n <= m:
        out[...] = tau
        return 0.0, tau * float(np.sum(x, dtype=np.float64))
    cut = int(math.floor(m))  # t* is the element of descending rank `cut` (0-based)
    t_lo, t_hi = _bracket(_sample(x), cut + 0.5, n)
    above = int(np.count_nonzero(x >= t_hi))
    inside = x[(x >= t_lo) & (x < t_hi)]
    if above <= cut < above + inside.size:
        j = inside.size - 1 - (cut - above)
        t = float(np.partition(inside, j)[j])
    else:  # the sample missed (rare): select on the whole pool
        t = float(np.partition(x, n - 1 - cut)[n - 1 - cut])
    strictly = x > t
    n_above = int(np.count_nonzero(strictly))
    total_above = float(np.sum(x, where=strictly, dtype=np.float64))
    tied = int(np.count_nonzero(x == t))
    share = float(p1_share(gamma, tau, n_above, tied))
    out[...] = 0
    out[strictly] = tau
    out[x == t] = share
    return t, (tau * total_above if n_above else 0.0) + share * t * tied


def select_holder(x: np.ndarray, p: float, gamma: float, tau: float, m: float, out: np.ndarray):
    """1 < p < inf: k and t* from a sampled bracket, verified; ``None`` if the sample missed."""
    n = x.size
    q = conjugate(p)
    sample = _sample(x)
    t_est = _sample_threshold(sample, q, m * sample.size / n)
    rank = float(np.count_nonzero(sample >= t_est)) * n / sample.size
    t_lo, t_hi = _bracket(sample, rank, n)
    above = int(np.count_nonzero(x >= t_hi))
    inside = -np.sort(-x[(x >= t_lo) & (x < t_hi)])
    below = x < t_lo
    below_top = float(np.max(x, where=below, initial=0.0))
    below_sum = 0.0  # sum over the losses below the bracket of (l / below_top)^q, each term <= 1
    if below_top > 0:
        with np.errstate(over="ignore", under="ignore"):
            np.divide(x, x.dtype.type(below_top), out=out)
            np.power(out, x.dtype.type(q), out=out)  # entries at or above t_lo may overflow: not summed
        below_sum = float(np.sum(out, where=below, dtype=np.float64))

    # verify the bracket with h: h(t_hi) <= m (all above capped), h(t_lo) > m (all below uncapped)
    if above and _h(t_hi, above, inside, below_top, below_sum, q) > m:
        return None
    if below_top > 0 and _h(t_lo, above, inside, below_top, below_sum, q) <= m:
        return None
    return _solve_inside(x, above, inside, below_top, below_sum, q, p, gamma, tau, m, out)


def _sample_threshold(sample: np.ndarray, q: float, m_sample: float) -> float:
    """The threshold of the sample's own LMP problem with the cap count scaled to the sample."""
    z = q * log_ratio(sample, float(sample[0]))
    tail = np.logaddexp.accumulate(z[::-1])[::-1]
    with np.errstate(invalid="ignore", over="ignore"):
        h = np.arange(sample.size) + np.exp(np.where(sample > 0, tail - z, np.inf))
    k = int(np.count_nonzero(h < m_sample))
    if k >= sample.size or sample[k] <= 0:
        return 0.0
    return float(sample[k] * _exp((tail[k] - z[k] - math.log(max(m_sample - k, 1e-300))) / q))


def _h(t, above, inside, below_top, below_sum, q):
    """h(t) = #{l >= t} + sum_{l < t} (l / t)^q for t at a bracket end."""
    count = above + int(np.count_nonzero(inside >= t))
    part = float(np.sum((inside[inside < t] / t) ** q))
    if below_top > 0:
        part += below_sum * _exp(q * math.log(below_top / t)) if below_top < t else math.inf
    return count + part


def _solve_inside(x, above, inside, below_top, below_sum, q, p, gamma, tau, m, out):
    """Exact k and t* with the capped losses known to be ``above`` plus a prefix of ``inside``."""
    # candidates for the first uncapped loss: the sorted inside losses, then the largest below
    cand = np.append(inside, below_top).astype(np.float64) if below_top > 0 else inside.astype(np.float64)
    if cand.size == 0:
        return None
    log_c = q * log_ratio(cand, float(cand[0]))
    terms = log_c.copy()  # suffix log-sums of (cand/cand[0])^q; the below part enters once, via below_sum
    if below_top > 0:
        terms[-1] = log_c[-1] + math.log(below_sum)
    tail = np.logaddexp.accumulate(terms[::-1])[::-1]
    h = above + np.arange(cand.size) + np.exp(tail - log_c)  # h at each candidate
    k_inside = int(np.count_nonzero(h < m))
    if k_inside >= cand.size:
        return None  # rounding put every candidate under the cap: let the sort path decide
    ref = float(cand[k_inside])
    # Every loss <= ref follows the power law, every loss > ref is capped (a tie group that
    # rounding split at the boundary goes with the power law: then t* = ref to rounding anyway).
    # The sum of (l / ref)^q over them (>= 1) uses direct powers: the log-sums above are accurate
    # enough to choose k, not to 1e-15 once multiplied by q ~ 1000.
    k = above + int(np.count_nonzero(cand[: inside.size] > ref))
    with np.errstate(under="ignore"):
        inside_le = cand[: inside.size]
        tail_sum = float(np.sum((inside_le[inside_le <= ref] / ref) ** q))
        if below_top > 0:
            tail_sum += below_sum * (below_top / ref) ** q
    coef = float(holder_coef(gamma, p, m, k, tail_sum))
    t = float(holder_threshold(ref, tail_sum, m, k, q))
    capped_sum = float(np.sum(x, where=x > ref, dtype=np.float64)) if k else 0.0
    capped_power_weights(x, ref, coef, q, tau, out=out)
    return t, tau * capped_sum + coef * ref * tail_sum  # L = tau S_k + coef ref R_k: no pass over weights
