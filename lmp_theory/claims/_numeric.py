"""Random and adversarial instances for the numeric side of the claims."""

from __future__ import annotations

import math

import numpy as np

P_CHOICES = (1.0, 1.001, 1.05, 1.3, 1.7, 2.0, 3.0, 10.0, 1e3, math.inf)


def instances(count: int, seed: int, *, no_cap: bool = False, distinct: bool = False, paper: bool = True):
    """``(losses, p, gamma, tau)`` tuples: mixed scales, zeros, negatives, ties, tiny losses.

    ``no_cap``: tau = inf. ``distinct``: no ties and no exact zeros (for derivatives).
    ``paper``: parameters from the paper's ratio (else random gamma and tau).
    """
    from lmp_theory import paper_parameters

    rng = np.random.default_rng(seed)
    for i in range(count):
        n = int(rng.integers(1, 60))
        kind = i % 5
        if kind == 0:
            losses = rng.exponential(size=n)
        elif kind == 1:
            losses = rng.standard_normal(n) * 10.0 ** rng.integers(-3, 4)
        elif kind == 2:
            losses = 10.0 ** rng.uniform(-12, 12, n)
        elif kind == 3:
            losses = rng.uniform(0.5, 2.0, n)
            losses[rng.random(n) < 0.5] *= 1e-9
        else:
            losses = rng.integers(-1, 4, n).astype(float)
        if distinct:
            losses = np.abs(losses) + rng.uniform(0.01, 1.0, n)
        p = float(P_CHOICES[i % len(P_CHOICES)])
        if paper:
            ratio = 0.0 if no_cap else float(rng.choice([0.0, 0.05, 0.2, 1 / 3, 0.7, 1.0]))
            gamma, tau = paper_parameters(n, p, ratio)
        else:
            gamma, tau = float(rng.uniform(0.1, 3)), float(rng.uniform(0.01, 3))
        yield losses, p, gamma, (math.inf if no_cap else tau)


def sorted_split(losses: np.ndarray, threshold: float):
    """Positive losses in decreasing order, and how many are capped (at or above the threshold t*)."""
    y = -np.sort(-losses[losses > 0])
    return y, (int(np.count_nonzero(y >= threshold)) if threshold > 0 else y.size)
