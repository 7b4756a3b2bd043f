"""One loss max-pooling problem as a plain record: the unit that searches, fuzzers and reports share."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Instance"]


@dataclass(frozen=True)
class Instance:
    """The problem ``max <w, l> : w >= 0, ||w||_p <= gamma, w_i <= tau`` for one pool.

    ``losses`` is a 1-D float64 array; ``tau`` may be ``inf`` (no cap). ``ratio`` is the paper's
    ratio when ``(gamma, tau) = paper_parameters(losses.size, p, ratio)``, else ``None``.
    """

    losses: np.ndarray = field(repr=False)
    p: float
    gamma: float
    tau: float
    ratio: float | None = None

    def __post_init__(self):
        losses = np.array(self.losses, dtype=np.float64).reshape(-1)
        losses.setflags(write=False)
        object.__setattr__(self, "losses", losses)

    @property
    def n(self) -> int:
        return int(self.losses.size)

    def __repr__(self) -> str:
        return (f"Instance(losses={_literal(self.losses)}, p={_num(self.p)}, gamma={_num(self.gamma)}, "
                f"tau={_num(self.tau)}, ratio={None if self.ratio is None else _num(self.ratio)})")

    def reproducer(self) -> str:
        """Python source that rebuilds this instance exactly (floats written with ``repr``)."""
        return (f"np.array({_literal(self.losses)}), p={_num(self.p)}, gamma={_num(self.gamma)}, "
                f"tau={_num(self.tau)}")


def _num(x: float) -> str:
    x = float(x)
    return "math.inf" if math.isinf(x) and x > 0 else repr(x)


def _literal(values: np.ndarray) -> str:
    return "[" + ", ".join(repr(float(v)) for v in values) + "]"
