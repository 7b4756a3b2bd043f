"""Golden answers for the conformance corpus: computed with mpmath, stored in ``golden.npz``.

Regenerate after changing the corpus or the exact evaluation::

    python -m lmp_theory.testing.golden --write

``python -m lmp_theory.testing.golden --check`` recomputes everything and exits non-zero if the
stored file has drifted from the generator (the test suite runs that check).

Each case stores the exact canonical weights and value (rounded to float64), the threshold, a
fingerprint of its definition (losses, ``p`` and the ratio, or the explicit ``gamma``/``tau``),
the ``gamma`` and ``tau`` the answer was computed for, and its *conditioning slack*: how far the
exact answer moves when ``gamma`` or ``tau`` moves by 4 units in the last place. A float64 solver
computes ``m = (gamma/tau)^p`` to a few ulps, and in rare cases (``m`` within 1e-15 of an integer
and a gap of many orders of magnitude below the last capped loss) that moves the small uncapped
weights by more than 1e-10 of the largest; the kit allows exactly that much movement and no more.
The same slack covers ``paper_parameters`` rounding differently in the last place on another
machine (NumPy's vectorised ``power`` differs between CPUs): a stored answer serves a case whose
``gamma`` and ``tau`` are within 4 ulps of the stored ones (``Expected.serves``).
"""

from __future__ import annotations

import argparse
import hashlib
import math
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..corpus import Case, cases
from .exact import exact_solution

GOLDEN_PATH = Path(__file__).with_name("golden.npz")
ULPS = 4.0


@dataclass(frozen=True)
class Expected:
    """The exact answer of one case."""

    weights: np.ndarray
    value: float
    threshold: float
    weight_slack: float
    value_slack: float
    fingerprint: str = ""
    gamma: float = math.nan
    tau: float = math.nan
    certified: bool = False  # the duality certificate's answer: its value is the dual minimum itself

    def serves(self, case: Case) -> bool:
        """True if this answer is the case's: same definition, ``gamma``/``tau`` within ``ULPS`` ulps."""
        return self.fingerprint == fingerprint(case) and _near(case.gamma, self.gamma) and _near(case.tau, self.tau)


def _near(a: float, b: float) -> bool:
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= ULPS * np.finfo(np.float64).eps * abs(b)


def fingerprint(case: Case) -> str:
    """A hash of the case's definition (losses, ``p``, and the ratio or explicit ``gamma``/``tau``):
    the golden file is stale if the corpus changes."""
    digest = hashlib.sha256(np.ascontiguousarray(case.losses, dtype=np.float64).tobytes())
    params = [case.p, case.ratio] if case.ratio is not None else [case.p, case.gamma, case.tau]
    digest.update(np.array(params, dtype=np.float64).tobytes())
    return digest.hexdigest()[:16]


def golden_cases() -> list[Case]:
    """The cases with stored answers: the full corpus without the large pools."""
    return cases(full=True)


def compute(case: Case) -> Expected:
    """The exact answer and its conditioning slack (see the module docs)."""
    w, value, threshold = exact_solution(case.losses, case.p, case.gamma, case.tau)
    eps = ULPS * np.finfo(np.float64).eps
    weight_slack = value_slack = 0.0
    for gamma, tau in [(case.gamma * (1 + eps), case.tau), (case.gamma * (1 - eps), case.tau),
                       (case.gamma, case.tau * (1 + eps)), (case.gamma, case.tau * (1 - eps))]:
        w2, v2, _ = exact_solution(case.losses, case.p, gamma, tau)
        weight_slack = max(weight_slack, float(np.max(np.abs(w2 - w), initial=0.0)))
        value_slack = max(value_slack, abs(v2 - value))
    return Expected(w, value, threshold, weight_slack, value_slack, fingerprint(case), case.gamma, case.tau)


def generate(corpus: list[Case] | None = None) -> dict[str, np.ndarray]:
    """Arrays for ``golden.npz``: one row per case, weights concatenated with offsets."""
    corpus = golden_cases() if corpus is None else corpus
    answers = [compute(c) for c in corpus]
    sizes = np.array([c.n for c in corpus], dtype=np.int64)
    return {
        "names": np.array([c.name for c in corpus]),
        "fingerprints": np.array([fingerprint(c) for c in corpus]),
        "offsets": np.concatenate([[0], np.cumsum(sizes)]),
        "weights": np.concatenate([a.weights for a in answers]) if answers else np.zeros(0),
        "values": np.array([a.value for a in answers]),
        "thresholds": np.array([a.threshold for a in answers]),
        "weight_slack": np.array([a.weight_slack for a in answers]),
        "value_slack": np.array([a.value_slack for a in answers]),
        "gammas": np.array([c.gamma for c in corpus]),
        "taus": np.array([c.tau for c in corpus]),
    }


def load(path: Path = GOLDEN_PATH) -> dict[str, Expected]:
    """Case name -> ``Expected``, from the stored file."""
    with np.load(path) as data:
        arrays = {key: data[key] for key in data.files}
    out = {}
    for i, name in enumerate(arrays["names"]):
        lo, hi = arrays["offsets"][i], arrays["offsets"][i + 1]
        out[str(name)] = Expected(arrays["weights"][lo:hi], float(arrays["values"][i]), float(arrays["thresholds"][i]),
                                  float(arrays["weight_slack"][i]), float(arrays["value_slack"][i]),
                                  str(arrays["fingerprints"][i]), float(arrays["gammas"][i]),
                                  float(arrays["taus"][i]))
    return out


def drift(path: Path = GOLDEN_PATH, corpus: list[Case] | None = None) -> list[str]:
    """Differences between the stored file and a fresh generation (empty list: no drift)."""
    whole = corpus is None
    corpus = golden_cases() if whole else corpus
    stored = load(path)
    prints = {name: e.fingerprint for name, e in stored.items()}
    problems = []
    if whole:
        extra = set(prints) - {c.name for c in corpus}
        problems += [f"{name}: stored but no longer in the corpus" for name in sorted(extra)]
    for case in corpus:
        if case.name not in stored:
            problems.append(f"{case.name}: missing from the golden file")
            continue
        old = stored[case.name]
        if not old.serves(case):
            problems.append(f"{case.name}: inputs changed (fingerprint, or gamma/tau beyond {ULPS:g} ulps)")
            continue
        fresh = compute(replace(case, gamma=old.gamma, tau=old.tau))  # the parameters it was made for
        if not (np.array_equal(fresh.weights, old.weights) and fresh.value == old.value
                and fresh.weight_slack == old.weight_slack):
            problems.append(f"{case.name}: answer differs from the generator")
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Generate or check the conformance kit's golden answers.")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--write", action="store_true", help=f"regenerate {GOLDEN_PATH.name}")
    group.add_argument("--check", action="store_true", help="exit 1 if the stored file drifted from the generator")
    args = parser.parse_args(argv)
    if args.write:
        np.savez_compressed(GOLDEN_PATH, **generate())
        print(f"wrote {GOLDEN_PATH} ({GOLDEN_PATH.stat().st_size // 1024} KiB)")
        return 0
    problems = drift()
    print("\n".join(problems) if problems else "golden file matches the generator")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
