"""lmp-theory: loss max-pooling (Rota Bulò, Neuhold, Kontschieder, CVPR 2017), checked.

The problem, its parameters and validation (``lmp_theory.problem``), the paper's
parameterisation (``paper_parameters``), duality certificates (``certify``) and the
exact cvxpy reference (``lmp_theory.reference``, imported lazily because cvxpy is slow to
import). Fast solvers live in the sibling package ``solvers``.
"""

from .certificate import Certificate, certify, dual_function, dual_minimum
from solvers.parameters import paper_parameters
from solvers.problem import cap_count, conjugate

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
