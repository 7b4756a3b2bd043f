"""Which path and precision a problem takes: the rules both backends follow, written once.

* ``method``: ``"sort"`` (vectorised over pools, $O(n \\log n)$), ``"select"`` (sort-free, expected
  $O(n)$) or ``"auto"``, which selects for pools of at least ``AUTO_SELECT_MIN_N`` losses.
* Precision: ``computes_in_float64`` says when float32 input is computed in float64.
* Memory: the sort path runs over chunks of pools (``chunk_rows``).

Every path gives the same canonical answer; these rules only decide speed, memory and rounding.
"""

from __future__ import annotations

from .problem import check_choice

METHODS = ("auto", "sort", "select")
# "auto" selects from this pool size on (benchmarks/run.py measures the crossing).
AUTO_SELECT_MIN_N = 16384
# Below this p (q - 1 > 8) a float32 ratio's rounding error is amplified more than 8-fold by the
# power (l / t)^(q-1): float32 input is computed in float64 to keep the 1e-5 accuracy. p = 1 and
# p = inf take no powers of the losses.
FLOAT64_BELOW_P = 1.125
# The sort path runs over chunks of at most 1/SORT_CHUNKS of the batch (at least SORT_CHUNK_MIN
# losses, below which chunks cost more time than they save, and at least one pool): a chunk's sorted
# copy and the weights are what it holds besides one block's temporaries. On CUDA (Torch's sort path
# holds about a dozen temporaries per loss) chunks start at CUDA_CHUNK_MIN losses, where a launch
# per chunk is free.
SORT_CHUNKS = 16
SORT_CHUNK_MIN = 2**16
CUDA_CHUNK_MIN = 2**22


def check_method(method) -> str:
    """Validate ``method``: ``"auto"``, ``"sort"`` or ``"select"``."""
    return check_choice(method, "method", METHODS)


def computes_in_float64(is_float64: bool, p: float) -> bool:
    """Whether the closed form runs in float64: for float64 input, and for any input when
    ``1 < p < FLOAT64_BELOW_P`` (powers amplify rounding). Otherwise float32 (half types included)."""
    return is_float64 or 1.0 < p < FLOAT64_BELOW_P


def chunk_rows(pools: int, n: int, min_elements: int = SORT_CHUNK_MIN) -> int:
    """Pools per chunk of the sort path: 1/``SORT_CHUNKS`` of the batch, at least ``min_elements``
    losses and at least one pool."""
    return max(1, max(min_elements, pools * n // SORT_CHUNKS) // n)
