"""Conformance kit: test any LMP implementation against exact answers.

* ``check_solver`` / ``assert_conforms`` / ``check_case`` (``kit``): a weight
  function ``fn(losses, p, gamma, tau) -> weights`` on the corpus of hard cases;
* ``check_pool`` / ``assert_pool_conforms`` (``pool``): an autograd loss layer
  ``fn(losses, p, ratio, mask) -> values``, gradients included;
* ``fuzz_solver`` (``fuzz``): a weight function on problems drawn by hypothesis from
  ``strategies``, the failure shrunk to the smallest problem.

``isolate=True`` (or a ``worker.Worker``: ``Worker.for_spec("module:function")``,
``Worker.for_command("./my_kernel")`` for a program speaking the ``.npy`` protocol of ``protocol``)
runs the code under test in a process of its own; ``vectors`` writes the corpus as test vectors and
judges answers computed elsewhere.

The expected answers come from an oracle (``oracle``): the golden mpmath answers by default,
``oracle=oracle_named("reference")`` for the cvxpy reference or ``"certificate"`` for the duality
certificate. ``lmp verify`` runs the built-in solvers through this same check.

Typical use in your own test suite::

    import pytest
    from lmp_theory.testing import assert_conforms, check_case, conformance_cases, fuzz_solver

    def test_my_solver_conforms():
        assert_conforms(my_lmp_weights)                 # the whole corpus, one readable failure report

    def test_my_solver_survives_fuzzing():
        report = fuzz_solver(my_lmp_weights, examples=300)
        assert report.passed, report.summary()          # .counterexample, .code reproduce a failure

    @pytest.mark.parametrize("case", conformance_cases(), ids=lambda c: c.name)
    def test_my_solver_case(case):                      # or: every case its own test
        result = check_case(my_lmp_weights, case)
        assert result.status == "pass", result
"""

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the names' homes; at run time each module is imported on first use (``__getattr__``),
    # so that a worker importing ``lmp_theory.testing.serve`` does not load the judge, its oracles or mpmath
    from .fuzz import check_instance, fuzz_solver
    from .kit import (
        STATUSES,
        TIME_LIMIT,
        assert_conforms,
        batched,
        check_case,
        check_solver,
        conformance_cases,
        torch_solver,
    )
    from .oracle import ORACLES, oracle_named
    from .pool import POOL_STATUSES, assert_pool_conforms, check_pool
    from .report import CaseResult, Report
    from .vectors import check_answers, write_vectors
    from .verdict import TOLERANCES
    from .worker import Worker

__all__ = ["ORACLES", "STATUSES", "POOL_STATUSES", "TIME_LIMIT", "TOLERANCES", "CaseResult", "Report", "Worker",
           "assert_conforms", "assert_pool_conforms", "batched", "check_answers", "check_case", "check_instance",
           "check_pool", "check_solver", "conformance_cases", "fuzz_solver", "oracle_named", "torch_solver",
           "write_vectors"]
_HOMES = ("kit", "fuzz", "oracle", "pool", "report", "vectors", "verdict", "worker")


def __getattr__(name: str):
    if name in __all__:
        for home in _HOMES:
            module = importlib.import_module(f".{home}", __name__)
            if hasattr(module, name):
                globals()[name] = value = getattr(module, name)
                return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
