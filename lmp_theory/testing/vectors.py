"""Test vectors: the corpus and its expected answers for any language, and judging answers computed elsewhere.

``write_vectors(directory)`` (``lmp vectors --write DIR``) writes ``index.json`` and, per case,
``ID-losses.npy`` and ``ID-weights.npy`` (the expected canonical weights, float64): ``.npy`` and
JSON, which every language reads. ``index.json`` holds the format, the tolerances, and per case
its ``id``, ``name``, ``family``, ``n``, ``p``, ``gamma``, ``tau`` (``"inf"`` for infinity), the
expected ``value``, the file names, whether it runs in float32, and ``weight_tol`` (relative to the
largest expected weight: the dtype's tolerance plus the case's conditioning allowance) and
``value_tol`` (relative to the value).

A program computes its weights for each case and writes them as ``ID-answer.npy`` next to the
vectors; ``check_answers(directory)`` (``lmp verify --answers DIR``) judges them with the kit's own
verdicts and expected answers, not the ones in the files: the vectors say what to compute, the kit
says whether it was right. A case without an answer file is ``missing``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ..corpus import Case
from .kit import TIME_LIMIT, check_case, conformance_cases
from .oracle import Oracle, certificate_answer, stored_answer
from .report import CaseResult, Report
from .verdict import ALLOWANCE_CAP, TOLERANCES

__all__ = ["FORMAT", "write_vectors", "check_answers"]

FORMAT = "lmp-vectors 1"


def _number(x: float):
    return str(x) if not math.isfinite(x) else x


def write_vectors(directory, *, cases: list[Case] | None = None, oracle: Oracle = stored_answer) -> Path:
    """Write the vectors of ``cases`` (default: the golden corpus) to ``directory``; returns the index path."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    entries = []
    for index, case in enumerate(conformance_cases() if cases is None else cases):
        expected = oracle(case) or certificate_answer(case.losses, case.p, case.gamma, case.tau)
        ident = f"{index:05d}"
        np.save(out / f"{ident}-losses.npy", case.losses)
        np.save(out / f"{ident}-weights.npy", expected.weights)
        scale = float(np.max(expected.weights, initial=0.0)) or min(case.gamma, case.tau)
        allowance = min(2 * expected.weight_slack / scale, ALLOWANCE_CAP)
        entries.append({"id": ident, "name": case.name, "family": case.family, "n": case.n, "p": _number(case.p),
                        "gamma": _number(case.gamma), "tau": _number(case.tau), "value": _number(expected.value),
                        "losses": f"{ident}-losses.npy", "weights": f"{ident}-weights.npy",
                        "answer": f"{ident}-answer.npy", "float32": case.float32,
                        "weight_tol": {str(d): t + allowance for d, t in TOLERANCES.items()},
                        "value_tol": {str(d): t for d, t in TOLERANCES.items()}})
    index = out / "index.json"
    index.write_text(json.dumps({"format": FORMAT, "weights_relative_to": "the largest expected weight "
                                 "(min(gamma, tau) when all are 0)", "cases": entries}, indent=1))
    return index


def check_answers(directory, *, dtype=np.float64, canonical: bool = True, oracle: Oracle = stored_answer,
                  corpus: list[Case] | None = None) -> Report:
    """Judge the ``ID-answer.npy`` files in a vectors ``directory`` (see the module docs)."""
    root = Path(directory)
    index_path = root / "index.json"
    if not index_path.is_file():
        raise ValueError(f"answers must be a directory written by `lmp vectors --write`; {index_path} does not exist")
    index = json.loads(index_path.read_text())
    if index.get("format") != FORMAT:
        raise ValueError(f"{index_path} is not in the format {FORMAT!r} (got {index.get('format')!r})")
    dtype = np.dtype(dtype)
    by_name = {c.name: c for c in (conformance_cases(sizes=True, large=True) if corpus is None else corpus)}
    report = Report(f"answers in {root}", str(dtype), canonical)
    for entry in index["cases"]:
        case = by_name.get(entry["name"])
        if case is None or not np.array_equal(np.load(root / entry["losses"]), case.losses):
            raise ValueError(f"{index_path}: case {entry['name']!r} is not this version's; write the vectors again")
        if dtype == np.float32 and not case.float32:
            continue
        answer = root / entry["answer"]
        if not answer.is_file():
            report.results.append(CaseResult(case.name, case.family, case.n, case.p, "missing", ratio=case.ratio,
                                             message=f"no answer: {answer} does not exist"))
            continue
        weights = np.load(answer, allow_pickle=False)
        report.results.append(check_case(lambda *_: weights, case, dtype=dtype, oracle=oracle, time_limit=TIME_LIMIT))
    return report
