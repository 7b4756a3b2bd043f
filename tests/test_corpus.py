"""The corpus: a name means one problem, whichever options built the corpus."""

import numpy as np

from lmp_theory.corpus import case_by_name, cases


def test_adding_the_large_pools_changes_no_other_case():
    """A reproducer printed by a ``--large`` run (``lmp verify --case NAME``) must select the same problem."""
    standard = {c.name: c for c in cases(full=True)}
    with_large = {c.name: c for c in cases(full=True, large=True)}
    assert len(with_large) > len(standard)
    for name, case in standard.items():
        other = with_large[name]
        assert np.array_equal(case.losses, other.losses), name
        assert (case.p, case.gamma, case.tau) == (other.p, other.gamma, other.tau), name


def test_names_are_unique_and_found():
    everything = cases(full=True, large=True)
    assert len({c.name for c in everything}) == len(everything)
    case = everything[-1]
    assert np.array_equal(case_by_name(case.name).losses, case.losses)
