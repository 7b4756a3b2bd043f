"""lmp-theory: loss max-pooling (Rota Bulò, Neuhold, Kontschieder, CVPR 2017), checked.

Duality certificates (``certify``), the exact cvxpy reference (``lmp_theory.reference``, not
imported here because cvxpy is slow to import and an extra), the claims (``lmp_theory.claims``),
the conformance kit (``lmp_theory.testing``) and ``lmp verify``. It builds on the fast solvers of
the sibling package ``solvers``, whose validation and derived quantities it shares
(``solvers.problem``) and whose ``paper_parameters``, ``cap_count`` and ``conjugate`` it re-exports.
"""

from solvers.parameters import paper_parameters
from solvers.problem import cap_count, conjugate

from .certificate import Certificate, certify, dual_function, dual_minimum

__version__ = "0.1.0"

__all__ = [
    "Certificate",
    "certify",
    "dual_function",
    "dual_minimum",
    "paper_parameters",
    "cap_count",
    "conjugate",
    "__version__",
]
