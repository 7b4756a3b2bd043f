r"""Selection-based exact solver (expected :math:`O(n)` per pool): the private core of ``method="select"``.

Sorting is not needed: the answer is fixed by the threshold :math:`t^*` and the number ``k`` of
capped losses. As in Floyd–Rivest selection (and the linear-time simplex projections of Duchi
et al. 2008 and Condat 2016), a sorted strided sample of about 4,000 losses gives an estimate of
:math:`t^*` and a bracket ``[t_lo, t_hi)`` that contains it with high probability. One pass over
the pool then counts the losses above the bracket (all capped), sums :math:`(l/t_{lo})^q` below
it (all uncapped), and extracts the few losses inside it, which are sorted and solved exactly.
Both bracket ends are verified with the dual's :math:`h(t)`; if the sample missed, the pool falls
back to the sort path, so the answer is always the exact canonical one.

Every function takes the positive losses ``x`` of one pool (float64 or float32 work dtype), and
returns the threshold as float64 and the weights of ``x``.
"""

from __future__ import annotations

import math

import numpy as np

from lmp_theory.problem import log_ratio

SAMPLE = 4096
MARGIN = 4.0  # bracket half-width in standard deviations of the sample rank


def _sample(x: np.ndarray) -> np.ndarray:
    """A deterministic strided sample, sorted in decreasing order."""
    step = max(1, x.size // SAMPLE)
    return -np.sort(-x[step // 2 :: step])


def _bracket(sample: np.ndarray, rank: float, n: int):
    """Values bracketing the element of (real) rank ``rank`` among ``n``, from the sorted sample."""
    s = sample.size
    j = rank * s / n
    spread = MARGIN * math.sqrt(max(j, 1.0)) + 2.0
    hi_index, lo_index = int(math.floor(j - spread)), int(math.ceil(j + spread))
    t_hi = math.inf if hi_index < 0 else float(sample[min(hi_index, s - 1)])
    t_lo = 0.0 if lo_index >= s else float(sample[max(lo_index, 0)])
    return t_lo, t_hi


def select_p1(x: np.ndarray, gamma: float, tau: float):
    """p = 1: the (floor(m)+1)-th largest loss by selection inside a sampled bracket."""
    n = x.size
    m = 0.0 if math.isinf(tau) else gamma / tau
    if n <= m:
        return 0.0, np.full_like(x, tau)
    cut = int(math.floor(m))  # t* is the element of descending rank cut (0-based)
    t_lo, t_hi = _bracket(_sample(x), cut + 0.5, n)
    above = int(np.count_nonzero(x >= t_hi))
    inside = x[(x >= t_lo) & (x < t_hi)]
    if above <= cut < above + inside.size:
        t = float(np.partition(inside, inside.size - 1 - (cut - above))[inside.size - 1 - (cut - above)])
    else:  # the sample missed (rare): select on the whole pool
        t = float(np.partition(x, n - 1 - cut)[n - 1 - cut])
    n_above = int(np.count_nonzero(x > t))
    tied = int(np.count_nonzero(x == t))
    share = min(tau, (gamma - (tau * n_above if n_above else 0.0)) / tied)
    w = np.where(x > t, x.dtype.type(tau), x.dtype.type(0))
    w[x == t] = share
    return t, w


def select_holder(x: np.ndarray, p: float, gamma: float, tau: float, m: float):
    """1 < p < inf: k and t* from a sampled bracket, verified; ``None`` if the sample missed."""
    n = x.size
    q = p / (p - 1.0)
    sample = _sample(x)
    t_est = _sample_threshold(sample, q, m * sample.size / n)
    rank = float(np.count_nonzero(sample >= t_est)) * n / sample.size
    t_lo, t_hi = _bracket(sample, rank, n)
    above_mask = x >= t_hi
    below_mask = x < t_lo
    above = int(np.count_nonzero(above_mask))
    inside = -np.sort(-x[~(above_mask | below_mask)])
    below = x[below_mask] if t_lo > 0 else x[:0]
    below_top = float(below.max()) if below.size else 0.0
    # sum over the losses below the bracket of (l / below_top)^q, each term <= 1 (computed once)
    below_sum = float(np.sum((below / below_top) ** q, dtype=np.float64)) if below.size else 0.0

    # verify the bracket with h: h(t_hi) <= m (all above capped), h(t_lo) > m (all below uncapped)
    if above and _h(t_hi, above, inside, below_top, below_sum, q) > m:
        return None
    if below.size and _h(t_lo, above, inside, below_top, below_sum, q) <= m:
        return None
    return _solve_inside(x, above, inside, below_top, below_sum, q, p, gamma, tau, m)


def _sample_threshold(sample: np.ndarray, q: float, m_sample: float) -> float:
    """The threshold of the sample's own LMP problem with the cap count scaled to the sample."""
    z = q * log_ratio(sample, float(sample[0]))
    tail = np.logaddexp.accumulate(z[::-1])[::-1]
    h = np.arange(sample.size) + np.exp(tail - z)
    k = int(np.count_nonzero(h < m_sample))
    if k >= sample.size:
        return 0.0
    return float(sample[k] * math.exp((tail[k] - z[k] - math.log(max(m_sample - k, 1e-300))) / q))


def _h(t, above, inside, below_top, below_sum, q):
    """h(t) = #{l >= t} + sum_{l < t} (l / t)^q for t at a bracket end."""
    count = above + int(np.count_nonzero(inside >= t))
    part = float(np.sum((inside[inside < t] / t) ** q))
    if below_top > 0:
        part += below_sum * math.exp(q * math.log(below_top / t)) if below_top < t else math.inf
    return count + part


def _solve_inside(x, above, inside, below_top, below_sum, q, p, gamma, tau, m):
    """Exact k and t* with the capped losses known to be ``above`` plus a prefix of ``inside``."""
    # candidates for the first uncapped loss: the sorted inside losses, then the largest below
    cand = np.append(inside, below_top) if below_top > 0 else inside
    if cand.size == 0:
        return None
    log_c = q * log_ratio(cand, float(cand[0]))
    # suffix log-sums of (cand/cand[0])^q; the below part enters once, through below_sum
    terms = log_c.copy()
    if below_top > 0:
        terms[-1] = log_c[-1] + math.log(below_sum)
    tail = np.logaddexp.accumulate(terms[::-1])[::-1]
    h = above + np.arange(cand.size) + np.exp(tail - log_c)  # h at each candidate
    k_inside = int(np.count_nonzero(h < m))
    if k_inside >= cand.size:
        return None  # rounding put every candidate under the cap: let the sort path decide
    k = above + k_inside
    ref = float(cand[k_inside])
    # sum over the uncapped losses of (l / ref)^q (>= 1), recomputed with direct powers: the
    # log-sums above are accurate enough to choose k, not to 1e-15 once multiplied by q ~ 1000
    with np.errstate(under="ignore"):
        tail_sum = float(np.sum((inside[k_inside:].astype(np.float64) / ref) ** q))
        if below_top > 0:
            tail_sum += below_sum * (below_top / ref) ** q
    budget = gamma * math.exp(math.log1p(-min(k / m, 1.0)) / p) if k else gamma
    coef = budget / tail_sum ** (1.0 / p)
    t = ref * math.exp((math.log(tail_sum) - math.log(m - k)) / q)
    return t, capped_power_weights(x, ref, coef, q, tau)


def capped_power_weights(x: np.ndarray, ref, coef, q: float, tau) -> np.ndarray:
    """``min(tau, coef (x/ref)^(q-1))`` with ``tau`` above ``ref``, in ``x``'s dtype.

    ``ref``, ``coef`` and ``tau`` are scalars or arrays broadcastable against ``x`` (one per
    pool). A power of the ratio is one correctly rounded operation, so the relative error of a
    weight stays a few ulps even for ``q - 1 = 1000``; ratios that underflow go through logs,
    because ``(x/ref)^(q-1)`` can still matter for ``q`` near 1.
    """
    dtype = x.dtype.type
    ref, coef, tau = (np.asarray(v, dtype=np.float64).astype(x.dtype) for v in (ref, coef, tau))
    with np.errstate(over="ignore", under="ignore", divide="ignore", invalid="ignore"):
        r = x / ref
        w = coef * r ** dtype(q - 1.0)
        tiny = (r < np.finfo(x.dtype).tiny) & (x > 0)
        if tiny.any():
            exact = np.broadcast_to(coef, x.shape) * np.exp((q - 1.0) * log_ratio(x, ref)).astype(x.dtype)
            w[tiny] = exact[tiny]
        w = np.where((x > ref) | (w >= tau), np.broadcast_to(tau, x.shape), w)
    return w.astype(x.dtype, copy=False)
