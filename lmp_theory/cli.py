"""The ``lmp`` command: ``lmp verify`` (the main job) and ``lmp claims`` (the theory, checked)."""

from __future__ import annotations

import argparse
import platform
import sys
import time

import numpy as np

__all__ = ["main"]


def _verify(args) -> int:
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

    results = run_claims(args.ids or None)
    if args.json:
        print(json.dumps([r.as_json() for r in results], indent=2))
    else:
        width = max(len(r.id) for r in results)
        print(f"{'id'.ljust(width)}  symbolic  numeric   time s  statement")
        print("-" * (width + 100))
        for r in results:
            seconds = r.symbolic.seconds + r.numeric.seconds
            statement = r.statement if len(r.statement) <= 72 else r.statement[:69] + "..."
            print(f"{r.id.ljust(width)}  {r.symbolic.status:8}  {r.numeric.status:8}  {seconds:6.2f}  {statement}")
        for r in results:
            for kind, outcome in (("symbolic", r.symbolic), ("numeric", r.numeric)):
                if outcome.status != "pass" or args.verbose:
                    print(f"  {r.id} [{kind}: {outcome.status}] {outcome.detail}")
        failed = sum(not r.passed for r in results)
        print(f"\n{len(results) - failed} of {len(results)} claims hold" + (f"; {failed} FAILED" if failed else ""))
    return 0 if all(r.passed for r in results) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lmp", description="Loss max-pooling: theory and verification toolkit.")
    sub = parser.add_subparsers(dest="command", required=True)
    verify = sub.add_parser("verify", help="check the built-in solvers against the exact cvxpy reference")
    verify.add_argument("--full", action="store_true", help="every p with every ratio (about 1,100 cases; slower)")
    verify.add_argument("--large", action="store_true", help="add pools of 2^16 and 2^20 losses (certificate-checked)")
    verify.add_argument("--no-torch", action="store_true", help="leave out the Torch backend")
    verify.add_argument("--show", type=int, default=10, help="failing cases to list per solver (default 10)")
    claims = sub.add_parser("claims", help="check the theory's claims symbolically (sympy) and numerically")
    claims.add_argument("ids", nargs="*", help="claim ids to run (default: all)")
    claims.add_argument("--json", action="store_true", help="JSON objects with id, statement, symbolic, numeric")
    claims.add_argument("-v", "--verbose", action="store_true", help="print every check's detail")
    args = parser.parse_args(argv)
    if args.command == "verify":
        return _verify(args)
    if args.command == "claims":
        return _claims(args)
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
