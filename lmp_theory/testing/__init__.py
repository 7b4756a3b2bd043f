"""Conformance kit: test any LMP implementation against exact answers (see ``kit``).

Typical use in your own test suite::

    import pytest
    from lmp_theory.testing import assert_conforms, check_case, conformance_cases

    def test_my_solver_conforms():
        assert_conforms(my_lmp_weights)                 # the whole corpus, one readable failure table

    @pytest.mark.parametrize("case", conformance_cases(), ids=lambda c: c.name)
    def test_my_solver_case(case):                      # or: every case its own test
        result = check_case(my_lmp_weights, case)
        assert result.status == "pass", result
"""

from .kit import (
    STATUSES,
    TOLERANCES,
    CaseResult,
    Report,
    assert_conforms,
    batched,
    check_case,
    check_solver,
    conformance_cases,
    torch_solver,
)

__all__ = ["STATUSES", "TOLERANCES", "CaseResult", "Report", "assert_conforms", "batched", "check_case",
           "check_solver", "conformance_cases", "torch_solver"]
