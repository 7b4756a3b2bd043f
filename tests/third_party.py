"""Implementations written the way outside code is written, for the conformance kit to judge.

None of them is this project's solver: a loop-style CPU kernel of the kind found in C++
extensions (raw powers, a rounded capped count, no clipping), a 30-step threshold bisection in
PyTorch, and a raw cvxpy problem solved by SCS at its default tolerance.
"""

import math

import numpy as np


def kernel_port(l, p, gamma, tau):
    """Sort, cap the first floor(m) losses, give the rest c * l^(q-1): raw powers, no search for the
    capped count, no clipping at tau; p = inf is not supported."""
    l = np.asarray(l, dtype=np.float64)
    if math.isinf(p):
        raise ValueError("p must be finite")
    order = np.argsort(-l, kind="stable")
    y = l[order]
    w = np.zeros_like(y)
    if p == 1.0:
        budget = gamma
        for i in range(y.size):  # walks down the sorted losses, whatever their sign
            w[i] = min(tau, budget)
            budget -= w[i]
            if budget <= 0:
                break
    else:
        q = p / (p - 1.0)
        m = 0.0 if math.isinf(tau) else (gamma / tau) ** p
        k = min(int(m), y.size)
        w[:k] = tau
        rest = y[k:]
        with np.errstate(all="ignore"):
            total = float(np.sum(rest**q))
            scale = ((gamma**p - k * tau**p) / total) ** (1.0 / p)  # ZeroDivisionError when nothing is left
            w[k:] = scale * rest ** (q - 1.0)
    out = np.empty_like(w)
    out[order] = w
    return out


def torch_bisection(l, p, gamma, tau, steps=30):
    """The threshold t* of h(t) = m found by bisecting [0, max l] 30 times, in PyTorch."""
    import torch

    x = torch.as_tensor(np.asarray(l), dtype=torch.float64).clamp(min=0)
    positive = x > 0
    if math.isinf(p):
        return (positive * min(gamma, tau)).numpy()
    if p == 1.0:
        m = 0.0 if math.isinf(tau) else gamma / tau
        order = torch.argsort(x, descending=True)
        w = torch.zeros_like(x)
        if math.isinf(tau):
            w[order[0]] = gamma
        else:
            k = min(int(m), x.numel())
            w[order[:k]] = tau
            if k < x.numel():
                w[order[k]] = gamma - k * tau
        return (w * positive).numpy()
    q = p / (p - 1.0)
    top = x.max()
    if math.isinf(tau):
        shape = (x / top) ** (q - 1.0)
        return (gamma * shape / ((x / top) ** q).sum() ** (1.0 / p)).numpy()
    m = (gamma / tau) ** p
    if positive.sum() <= m:
        return (positive * tau).numpy()
    lo, hi = torch.zeros(()), top.clone()
    for _ in range(steps):
        mid = (lo + hi) / 2
        h = torch.clamp((x / mid) ** q, max=1.0).sum()
        lo, hi = (mid, hi) if h > m else (lo, mid)
    return (tau * torch.clamp(x / hi, max=1.0) ** (q - 1.0)).numpy()


def scs_raw(l, p, gamma, tau):
    """The problem as written in cvxpy, solved by SCS with its defaults; whatever it returns."""
    import cvxpy as cp

    w = cp.Variable(len(l), nonneg=True)
    constraints = [cp.norm(w, "inf") <= gamma] if math.isinf(p) else [cp.pnorm(w, p) <= gamma]
    if math.isfinite(tau):
        constraints.append(w <= tau)
    cp.Problem(cp.Maximize(np.asarray(l, dtype=np.float64) @ w), constraints).solve(solver=cp.SCS)
    return w.value
