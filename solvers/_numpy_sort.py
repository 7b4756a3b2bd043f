r"""The sort path of ``solvers.numpy`` (finite ``p``), vectorised over chunks of pools.

Each pool's non-negative losses are sorted decreasingly; the number ``k`` of capped losses is
found from suffix log-sum-exps of $q \log(l / \max l)$ (the dual's $h$ at every loss), the
threshold and weights then follow from the kernels of ``solvers._numpy_closed_form``. Ties are
counted exactly (run ends), so ``p`` as close to 1 as ``1 + 1e-15`` is handled, and the powers
never overflow or underflow into a wrong answer for losses spanning ``1e-300`` to ``1e300``.
Computation is in float64 (the chunks bound its temporaries); weights come back in the
losses' dtype.
"""

from __future__ import annotations

import numpy as np

from ._numpy_closed_form import capped_power_weights, holder_budget, holder_threshold, p1_cap_count, p1_share
from ._policy import chunk_rows
from .problem import cap_count, conjugate, log_ratio

def _positive_part(flat: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """The losses with non-positive and masked-out entries set to 0 (they get weight 0)."""
    keep = flat > 0
    if mask is not None:
        keep &= mask
    return np.where(keep, flat, flat.dtype.type(0))


def sort_pools(flat: np.ndarray, mask: np.ndarray | None, p: float, gamma: np.ndarray, tau: np.ndarray):
    """The sort path (finite p), chunk by chunk of pools: weights (``flat``'s dtype), values, thresholds."""
    pools, n = flat.shape
    weights = np.empty((pools, n), dtype=flat.dtype)
    value, threshold = np.empty(pools), np.empty(pools)
    rows = chunk_rows(pools, n)
    for start in range(0, pools, rows):
        chunk = slice(start, start + rows)
        lp = _positive_part(flat[chunk].astype(np.float64), None if mask is None else mask[chunk])
        w, threshold[chunk] = _solve_pools(lp, p, gamma[chunk], tau[chunk])
        scale = lp.max(axis=1)
        safe = np.where(scale > 0, scale, 1.0)
        value[chunk] = safe * np.sum(w * (lp / safe[:, None]), axis=1)
        weights[chunk] = w
    return weights, value, threshold


def _solve_pools(lp: np.ndarray, p: float, gamma: np.ndarray, tau: np.ndarray):
    """Weights and thresholds for a (pools, n) float64 array of non-negative losses, finite p
    (``lmp_solve`` handles p = inf itself)."""
    if p == 1.0:
        return _solve_p1(lp, gamma, tau)
    return _solve_holder(lp, p, gamma, tau)


def _run_ends(y: np.ndarray) -> np.ndarray:
    """For rows sorted decreasingly: per position, the index just after its group of equal values."""
    n = y.shape[1]
    last = np.ones_like(y, dtype=bool)
    last[:, :-1] = y[:, 1:] != y[:, :-1]
    ends = np.where(last, np.arange(1, n + 1), n)
    return np.minimum.accumulate(ends[:, ::-1], axis=1)[:, ::-1]


def _descending(lp: np.ndarray) -> np.ndarray:
    return -np.sort(-lp, axis=1)


def _solve_p1(lp, gamma, tau):
    """p = 1: tau on the losses above the floor(m)-th largest, the remainder shared at the cut."""
    pools, n = lp.shape
    y = _descending(lp)
    positives = np.count_nonzero(y > 0, axis=1)
    m = p1_cap_count(gamma, tau)
    cut = np.floor(np.minimum(m, n)).astype(np.int64)
    partial = cut < positives  # otherwise every positive loss gets tau
    rows = np.arange(pools)
    threshold = np.where(partial, y[rows, np.minimum(cut, n - 1)], 0.0)
    t = threshold[:, None]
    above = np.count_nonzero(lp > t, axis=1)
    at = np.count_nonzero((lp == t) & (lp > 0), axis=1)
    share = p1_share(gamma, tau, above, at)
    weights = np.where(lp > t, tau[:, None], np.where((lp == t) & (lp > 0), share[:, None], 0.0))
    return weights, threshold


def _solve_holder(lp, p, gamma, tau):
    """1 < p < inf: find the number k of capped losses, then the threshold, then the weights."""
    pools, n = lp.shape
    q = conjugate(p)
    y = _descending(lp)
    top = y[:, 0]
    positives = np.count_nonzero(y > 0, axis=1)
    m = cap_count(p, gamma, tau)
    rows = np.arange(pools)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        # h_j = #{y_i >= y_j} + sum_{y_i < y_j} (y_i / y_j)^q is the dual's h(t) at t = y_j; y_j
        # is capped iff h_j < m. Ties are counted exactly (run ends), only the strictly smaller
        # losses go through log-sums: for q ~ 1e15 (p within 1e-15 of 1) a log-sum of equal terms
        # would lose their count to the rounding of q log(y / top).
        z = q * log_ratio(y, np.where(top > 0, top, 1.0)[:, None])
        tail = np.logaddexp.accumulate(z[:, ::-1], axis=1)[:, ::-1]
        run_end = _run_ends(y)  # first index after the tie group of each position
        below = np.take_along_axis(np.pad(tail, ((0, 0), (0, 1)), constant_values=-np.inf), run_end, axis=1)
        h = run_end + np.exp(np.where(y > 0, below - z, np.inf))
        # Strict "<": then k < m, so the budget left for the uncapped losses is never rounded to 0.
        k = np.count_nonzero((y > 0) & (h < m[:, None]), axis=1)
        partial = k < positives
        ref = y[rows, np.minimum(k, n - 1)]  # largest uncapped loss (where partial)
        ref = np.where(partial, ref, 1.0)
        beyond = np.arange(n)[None, :] >= k[:, None]
        ratio_q = np.where(beyond & (y > 0), (y / ref[:, None]) ** q, 0.0)
        tail_sum = ratio_q.sum(axis=1)  # >= 1 where partial: sum_{i>k} (y_i / y_{k+1})^q
        coef = holder_budget(gamma, p, m, k) / tail_sum ** (1.0 / p)
        weights = capped_power_weights(lp, ref[:, None], coef[:, None], q, tau[:, None])
        weights = np.where(lp > 0, weights, 0.0)
        weights = np.where(partial[:, None], weights, np.where(lp > 0, tau[:, None], 0.0))
        threshold = np.where(partial, holder_threshold(ref, tail_sum, m, k, q), 0.0)
    return weights, threshold
