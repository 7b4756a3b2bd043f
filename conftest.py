"""Settings for every test run, the notebooks' included (``pytest notebooks/`` loads this file too)."""

import os

# Notebook 4 trains its models for LMP_NOTEBOOK_STEPS steps (1,000 by default, minutes): the suite only
# checks that it runs, on one thread, as the notebook kernels share the cores with the other tests.
os.environ.setdefault("LMP_NOTEBOOK_STEPS", "40")
os.environ.setdefault("LMP_NOTEBOOK_THREADS", "1")
