import numpy as np
import pytest
from hypothesis import settings

from tests.site_build import build_site

settings.register_profile("ci", max_examples=60, deadline=None)
settings.load_profile("ci")

P_GRID = [1.0, 1.001, 1.3, 1.7, 2.0, 3.0, 10.0, 1e6, np.inf]
RATIO_GRID = [0.0, 0.1, 0.3, 1.0]


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture(scope="session")
def built_site(tmp_path_factory):
    """The documentation site, built strictly once per session."""
    return build_site(tmp_path_factory.mktemp("site") / "site")


@pytest.hookimpl(tryfirst=True)  # before the -m selection of pytest's mark plugin
def pytest_collection_modifyitems(config, items):
    """Notebooks (collected by nbmake from pyproject's testpaths) run whole: they belong to the slow suite.

    Their code paths are tested piecewise in the fast loop; ``pytest -m "not slow"`` leaves them out."""
    for item in items:
        if item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.slow)
