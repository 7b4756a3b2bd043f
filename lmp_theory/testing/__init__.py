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

_HOMES = {  # each public name and the module that holds it: imported on first use (PEP 562), so that a
    # worker importing ``lmp_theory.testing.serve`` does not pay for hypothesis, the judge or the oracles
    "check_instance": "fuzz", "fuzz_solver": "fuzz",
    "STATUSES": "kit", "TIME_LIMIT": "kit", "assert_conforms": "kit", "batched": "kit", "check_case": "kit",
    "check_solver": "kit", "conformance_cases": "kit", "torch_solver": "kit",
    "ORACLES": "oracle", "oracle_named": "oracle",
    "POOL_STATUSES": "pool", "assert_pool_conforms": "pool", "check_pool": "pool",
    "CaseResult": "report", "Report": "report",
    "check_answers": "vectors", "write_vectors": "vectors",
    "TOLERANCES": "verdict",
    "Worker": "worker",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOMES))
