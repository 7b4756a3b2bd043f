"""The theory's claims: each stated with its hypotheses, checked symbolically and by a counterexample search.

``run_claims()`` runs them all; ``lmp claims`` prints the table (``--json`` for machines).
``find_counterexample(prop)`` attacks any property of an ``Instance`` the same way; it needs the
core install only, while the registry (``REGISTRY``, ``run_claims`` and the claim records) needs the
``symbolic`` and ``torch`` extras (sympy for the proofs, torch because the claims cover both
backends) and is loaded on first use.
"""

from importlib import import_module

from solvers.extras import import_extra

from .search import Instance, find_counterexample

_REGISTRY_NAMES = ("REGISTRY", "Claim", "ClaimFailed", "ClaimResult", "Outcome", "Search", "run_claims")

# the registry's names are left out of ``import *``, which must work on the core install too
__all__ = ["Instance", "find_counterexample"]


def __getattr__(name: str):
    if name not in _REGISTRY_NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    for module in ("sympy", "torch"):
        import_extra(module, "the claims registry (lmp_theory.claims)")
    for module in ("bounds", "closed_form", "duality", "imbalance", "second_order"):  # each registers its claims
        import_module(f"{__name__}.{module}")
    return getattr(import_module(f"{__name__}.registry"), name)
