"""The counterexample search: attack a property of loss max-pooling over adversarial instances.

``find_counterexample(prop)`` draws problems from ``lmp_theory.testing.strategies`` (every
adversarial family, every kind of ``p`` and of parameters), stops at the first instance where
``prop`` is false (or raises), and lets hypothesis shrink it to the smallest failing instance it
can find: a handful of losses, usually small integers. Same seed, same answer.
"""

from __future__ import annotations

from typing import Callable

from hypothesis import strategies as st

from ..instance import Instance
from ..testing.strategies import instances as all_instances
from ..testing.strategies import shrunk_failure

__all__ = ["Instance", "find_counterexample"]


def find_counterexample(prop: Callable[[Instance], bool], *, budget: int = 2000, seed: int = 0,
                        instances: st.SearchStrategy[Instance] | None = None) -> Instance | None:
    """A small instance on which ``prop`` fails, or ``None`` if ``budget`` instances found none.

    Parameters
    ----------
    prop : callable
        ``prop(instance) -> bool``, True where the property holds. An exception inside ``prop``
        counts as a failure (a property that cannot be evaluated is not established).
    budget : int
        How many instances to try before concluding that none fails (shrinking a failure costs extra).
    seed : int
        The search is deterministic for a given seed.
    instances : hypothesis strategy, optional
        Where to search: the property's hypotheses, e.g.
        ``strategies.instances(p=strategies.exponents(1, math.inf, exclude_min=True, exclude_max=True))``.
        Default: every family of ``lmp_theory.testing.strategies.instances``.

    Returns
    -------
    Instance or None
        The shrunk counterexample (``repr`` and ``Instance.reproducer`` print it exactly).
    """
    if not callable(prop):
        raise TypeError(f"prop must be callable (instance -> bool), got {type(prop).__name__}")
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise ValueError(f"budget must be an int >= 1, got {budget!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")

    def fails(instance: Instance) -> bool:
        try:
            return not prop(instance)
        except Exception:  # noqa: BLE001  (an error is a failure to establish the property)
            return True

    return shrunk_failure(all_instances() if instances is None else instances, fails, budget=budget, seed=seed)
