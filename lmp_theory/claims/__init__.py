"""The theory's claims: each stated with its hypotheses, checked symbolically and by a counterexample search.

``run_claims()`` runs them all; ``lmp claims`` prints the table (``--json`` for machines).
``find_counterexample(prop)`` attacks any property of an ``Instance`` the same way.
"""

from . import bounds, closed_form, duality, imbalance  # noqa: F401  (each module registers its claims)
from .registry import REGISTRY, Claim, ClaimFailed, ClaimResult, Outcome, Search, run_claims
from .search import Instance, find_counterexample

__all__ = ["REGISTRY", "Claim", "ClaimFailed", "ClaimResult", "Instance", "Outcome", "Search", "find_counterexample",
           "run_claims"]
