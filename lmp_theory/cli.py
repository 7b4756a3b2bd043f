"""The ``lmp`` command: ``lmp verify`` (the main job) and ``lmp claims`` (the theory, checked)."""

from __future__ import annotations

import argparse
import platform
import sys
import time

import numpy as np

__all__ = ["main"]


def _load_function(spec: str):
    """``package.module:function`` -> the function (the current directory is importable)."""
    import importlib

    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise SystemExit(f"lmp verify: --solver must look like package.module:function, got {spec!r}")
    if "" not in sys.path:
        sys.path.insert(0, "")
    try:
        obj = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise SystemExit(f"lmp verify: cannot load {spec!r}: {exc}") from None
    if not callable(obj):
        raise SystemExit(f"lmp verify: {spec!r} is not callable")
    return obj


def _verify_third_party(args) -> int:
    from .testing import batched, check_solver, conformance_cases, torch_solver

    fn = _load_function(args.solver)
    if args.batched:
        fn = batched(fn)
    if args.torch:
        fn = torch_solver(fn, device=args.device)
    dtype = np.dtype(args.dtype)
    report = check_solver(fn, dtype=dtype, cases=conformance_cases(large=args.large),
                          canonical=not args.any_maximizer, name=args.solver)
    print(report.summary())
    if not report.passed:
        print(report.table(limit=args.show))
    return 0 if report.passed else 1


def _verify(args) -> int:
    if args.solver:
        return _verify_third_party(args)
    from . import __version__
    from .corpus import cases
    from .verify import builtin_solvers, compute_references, format_table, measure, reference_row

    corpus = cases(full=args.full, large=args.large)
    print(f"lmp-theory {__version__} | numpy {np.__version__} | python {platform.python_version()} | "
          f"{len(corpus)} cases ({'full' if args.full else 'standard'} corpus{', large pools' if args.large else ''})")
    started = time.perf_counter()
    refs = compute_references(corpus)
    rows = [reference_row(corpus, refs, time.perf_counter() - started)]
    for name, (fn, dtype) in builtin_solvers(torch_devices=not args.no_torch).items():
        rows.append(measure(name, fn, dtype, corpus, refs))
    print(format_table(rows))
    print("cvxpy+refine: 'value err' and 'weight err' compare the raw conic answer with its refinement;")
    print("solver rows compare with the refined reference (pools above 5000 losses: certificate only).")
    failed = [row for row in rows if not row.passed]
    for row in failed:
        print(f"\n{row.solver}: {len(row.failures)} failing case(s)")
        for line in row.failures[: args.show]:
            print(f"  {line}")
    print("\nall solvers agree with the exact reference" if not failed else "\nVERIFICATION FAILED")
    return 1 if failed else 0


def _claims(args) -> int:
    import json

    from .claims import run_claims

    results = run_claims(args.ids or None, budget=args.budget, seed=args.seed)
    if args.json:
        print(json.dumps([r.as_json() for r in results], indent=2))
    else:
        width = max(len(r.id) for r in results)
        print(f"{'id'.ljust(width)}  symbolic  search  instances  time s  statement")
        print("-" * (width + 100))
        for r in results:
            seconds = r.symbolic.seconds + r.numeric.seconds
            statement = r.statement if len(r.statement) <= 64 else r.statement[:61] + "..."
            print(f"{r.id.ljust(width)}  {r.symbolic.status:8}  {r.numeric.status:6}  {r.numeric.searched:9}  "
                  f"{seconds:6.2f}  {statement}")
        for r in results:
            if args.verbose:
                print(f"\n{r.id}: {r.title}\n  hypotheses: {r.hypotheses}\n  statement: {r.statement}")
            for kind, outcome in (("symbolic", r.symbolic), ("search", r.numeric)):
                if outcome.status != "pass" or args.verbose:
                    print(f"  {r.id} [{kind}: {outcome.status}] {outcome.detail}")
        failed = sum(not r.passed for r in results)
        searched = sum(r.numeric.searched for r in results)
        print(f"\n{len(results) - failed} of {len(results)} claims hold ({searched} instances searched, seed "
              f"{args.seed}; -v for hypotheses and details)" + (f"; {failed} FAILED" if failed else ""))
    return 0 if all(r.passed for r in results) else 1


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lmp", description="Loss max-pooling: theory and verification toolkit.")
    sub = parser.add_subparsers(dest="command", required=True)
    verify = sub.add_parser("verify", help="check the built-in solvers against the exact cvxpy reference")
    verify.add_argument("--full", action="store_true", help="every p with every ratio (about 1,100 cases; slower)")
    verify.add_argument("--large", action="store_true", help="add pools of 2^16 and 2^20 losses (certificate-checked)")
    verify.add_argument("--no-torch", action="store_true", help="leave out the Torch backend")
    verify.add_argument("--show", type=int, default=10, help="failing cases to list per solver (default 10)")
    verify.add_argument("--solver", metavar="MODULE:FUNCTION",
                        help="run the conformance kit on fn(losses, p, gamma, tau) -> weights instead")
    verify.add_argument("--dtype", choices=["float64", "float32"], default="float64", help="with --solver")
    verify.add_argument("--batched", action="store_true", help="with --solver: fn takes (..., n) batches")
    verify.add_argument("--torch", action="store_true", help="with --solver: fn takes and returns tensors")
    verify.add_argument("--device", default="cpu", help="with --torch: the tensors' device")
    verify.add_argument("--any-maximizer", action="store_true",
                        help="with --solver: accept optimal but non-canonical weights")
    claims = sub.add_parser("claims", help="check the theory's claims symbolically (sympy) and numerically")
    claims.add_argument("ids", nargs="*", help="claim ids to run (default: all)")
    claims.add_argument("--json", action="store_true", help="JSON objects: id, statement, hypotheses, symbolic, numeric, searched")
    claims.add_argument("-v", "--verbose", action="store_true", help="print hypotheses, statements and every detail")
    claims.add_argument("--budget", type=_positive_int, help="instances each search tries (default: the claim's own)")
    claims.add_argument("--seed", type=int, default=0, help="seed of the counterexample searches (default 0)")
    args = parser.parse_args(argv)
    if args.command == "verify":
        return _verify(args)
    if args.command == "claims":
        return _claims(args)
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
