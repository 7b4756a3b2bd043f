"""Fast closed-form loss max-pooling: ``solvers.numpy`` (NumPy) and ``solvers.torch`` (PyTorch).

Self-contained: the problem's validation and derived quantities (``solvers.problem``), the paper's
parameters (``solvers.parameters``) and the kernels live here; ``lmp_theory`` builds the exact
reference, the certificate, the claims and the conformance kit on top. ``solvers.torch`` needs the
``torch`` extra (``solvers.extras``).
"""
