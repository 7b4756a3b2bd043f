r"""The paper's parameterisation of loss max-pooling by a pool size, ``p`` and a ratio.

Rota Bulò, Neuhold, Kontschieder, *Loss Max-Pooling for Semantic Image Segmentation*,
CVPR 2017 (arXiv 1704.02966), section 3.1. For a pool of ``n`` losses and a ratio
$\rho \in [0, 1]$:

.. math::

    \gamma = n^{1/p - 1}, \qquad m = \rho n, \qquad \tau = \gamma\, m^{-1/p}

so that the uniform weighting $1/n$ has $p$-norm exactly $\gamma$ (the plain
mean is admissible) and exactly ``m`` weights at the cap exhaust the norm budget. ``m`` is kept
real (no rounding), so the loss is continuous in $\rho$; $\rho = 0$ means no cap
($\tau = \infty$).
"""

from __future__ import annotations

import math
import operator

import numpy as np

from .problem import check_counts, check_p, check_ratio, p_is_inf

__all__ = ["paper_parameters", "gamma_tau"]


def paper_parameters(n, p, ratio):
    r"""The paper's $(\gamma, \tau)$ for pools of ``n`` losses.

    Parameters
    ----------
    n : int or array_like of int
        Pool size(s), each ``>= 1``. An array gives per-pool parameters of the same shape.
    p : float
        Norm exponent in ``[1, inf]``.
    ratio : float
        $\rho \in [0, 1]$, the least share of the pool that the weighting spreads over.

    Returns
    -------
    gamma, tau : float or ndarray
        $\gamma = n^{1/p-1}$ and $\tau = \gamma (\rho n)^{-1/p}$ (``inf`` for
        $\rho = 0$). Special cases: ``p = 1`` gives $\gamma = 1,\ \tau = 1/m$;
        ``p = inf`` gives $\gamma = \tau = 1/n$ for every ratio, 0 included.
        Python floats for scalar ``n``, float64 arrays otherwise.
    """
    p = check_p(p)
    ratio = check_ratio(ratio)
    counts = check_counts(n)
    with np.errstate(divide="ignore", over="ignore"):  # m below ~1e-308: tau overflows to inf
        if counts.ndim == 0:  # NumPy scalars use the C library's pow, not SIMD kernels that differ by CPU
            gamma, tau = gamma_tau(np.float64(counts), p, ratio)
            return float(gamma), float(tau)
        return gamma_tau(counts, p, ratio)


def gamma_tau(counts, p: float, ratio: float, power=operator.pow):
    """The formula of ``paper_parameters`` on validated inputs, for NumPy arrays and Torch tensors.

    ``counts`` (``>= 1``) may be a float64 ndarray or tensor; ``p`` and ``ratio`` are Python
    floats, so the only branches are on them, never on the data (no host synchronisation).
    Tensors pass ``power=solvers._torch_closed_form.power`` (powers that follow ``p`` under
    ``torch.compile``).
    """
    if p_is_inf(p):
        gamma = 1.0 / counts
        return gamma, gamma * 1.0
    gamma = power(counts, 1.0 / p - 1.0)
    if ratio == 0.0:
        return gamma, gamma * math.inf
    return gamma, gamma * power(ratio * counts, -1.0 / p)
