"""The theory's claims, each checked symbolically (sympy) and numerically (against the solvers).

``run_claims()`` runs them all; ``lmp claims`` prints the table (``--json`` for machines).
"""

from .registry import REGISTRY, Claim, ClaimFailed, ClaimResult, Outcome, run_claims

__all__ = ["REGISTRY", "Claim", "ClaimFailed", "ClaimResult", "Outcome", "run_claims"]
