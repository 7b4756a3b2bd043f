"""The ``lmp`` command: ``lmp verify`` (the main job) and ``lmp claims`` (the theory, checked)."""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys

import numpy as np

from solvers.extras import MissingExtra

from . import __version__, claims
from .corpus import cases
from .testing import batched, check_pool, check_solver, conformance_cases, fuzz_solver, torch_solver
from .testing.kit import TIME_LIMIT, select_cases
from .testing.oracle import CVXPY_MAX_N, ORACLES, oracle_named
from .testing.report import summary_table
from .verify import verify_builtins

__all__ = ["main"]

ORACLE_WORDS = {"reference": "exact reference", "golden": "golden mpmath answers (large pools: certificate)",
                "certificate": "duality certificate"}


def _load_function(spec: str, option: str = "--solver"):
    """``package.module:function`` -> the function (the current directory is importable)."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise SystemExit(f"lmp verify: {option} must look like package.module:function, got {spec!r}")
    if "" not in sys.path:
        sys.path.insert(0, "")
    try:
        obj = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (Exception, SystemExit) as exc:  # noqa: BLE001  (a module that fails or exits on import)
        raise SystemExit(f"lmp verify: cannot load {spec!r}: {type(exc).__name__}: {exc}") from None
    if not callable(obj):
        raise SystemExit(f"lmp verify: {spec!r} is not callable")
    return obj


def _print_report(report, args) -> int:
    if args.json:
        print(json.dumps(report.as_json(), indent=2))
        return 0 if report.passed else 1
    print(report.summary())
    if report.counterexample is not None:
        print(f"\ncounterexample (shrunk): {report.counterexample!r}\n\nreproduce in Python:\n{report.code}\n")
    if not report.passed or args.verbose:
        if report.examples is None:
            by = ("family", "p", "ratio") if args.verbose else ("family", "p")
            print(f"\nby {', '.join(by)}{' (groups with failures)' if not args.verbose else ''}:")
            print(report.breakdown_table(by, only_failing=not args.verbose))
            print()
        print(report.table(only_failing=not args.verbose, limit=args.show, verbose=args.verbose))
    return 0 if report.passed else 1


def _verify_third_party(args) -> int:
    fn = _load_function(args.solver)
    if args.batched:
        fn = batched(fn)
    if args.torch:
        fn = torch_solver(fn, device=args.device)
    oracle = args.oracle or "golden"
    flags = (f" --dtype {args.dtype}" if args.dtype != "float64" else "") + (" --batched" if args.batched else "") \
        + (f" --torch --device {args.device}" if args.torch else "") + (" --any-maximizer" if args.any_maximizer else "") \
        + (f" --oracle {oracle}" if oracle != "golden" else "")
    command = f"lmp verify --solver {args.solver}{flags}"
    try:
        if args.fuzz is not None:
            report = fuzz_solver(fn, examples=args.fuzz, seed=args.seed, dtype=np.dtype(args.dtype),
                                 canonical=not args.any_maximizer, time_limit=args.time_limit, name=args.solver,
                                 command=f"{command} --fuzz {args.fuzz} --seed {args.seed}")
            return _print_report(report, args)
        selected = conformance_cases(large=args.large, names=args.case, families=args.family, p=args.p)
        if not selected:
            raise SystemExit("lmp verify: --case/--family/--p select no case of the corpus")
        report = check_solver(fn, dtype=np.dtype(args.dtype), cases=selected, canonical=not args.any_maximizer,
                              name=args.solver, time_limit=args.time_limit, command=command,
                              oracle=oracle_named(oracle))
    except ValueError as exc:  # bad --fuzz, --time-limit...
        raise SystemExit(f"lmp verify: {exc}") from None
    return _print_report(report, args)


def _verify_pool(args) -> int:
    fn = _load_function(args.pool, "--pool")
    command = f"lmp verify --pool {args.pool}" + (f" --device {args.device}" if args.device != "cpu" else "")
    try:
        report = check_pool(fn, device=args.device, names=args.case, time_limit=args.time_limit, name=args.pool,
                            command=command)
    except ValueError as exc:
        raise SystemExit(f"lmp verify: {exc}") from None
    return _print_report(report, args)


def _verify(args) -> int:
    if args.solver is not None and args.pool is not None:
        raise SystemExit("lmp verify: give --solver or --pool, not both")
    if args.solver is not None:
        return _verify_third_party(args)
    if args.pool is not None:
        return _verify_pool(args)
    return _verify_builtins(args)


def _verify_builtins(args) -> int:
    oracle = args.oracle or "reference"
    corpus = select_cases(cases(full=args.full, large=args.large), names=args.case, families=args.family, p=args.p)
    if not corpus:
        raise SystemExit("lmp verify: --case/--family/--p select no case of the corpus")
    if not args.json:
        print(f"lmp-theory {__version__} | numpy {np.__version__} | python {platform.python_version()} | "
              f"{len(corpus)} cases ({'full' if args.full else 'standard'} corpus{', large pools' if args.large else ''})"
              f" | oracle: {oracle}")
    try:
        reports = verify_builtins(corpus, oracle=oracle, torch_devices=not args.no_torch, time_limit=args.time_limit)
    except ValueError as exc:  # bad --time-limit
        raise SystemExit(f"lmp verify: {exc}") from None
    failed = [r for r in reports if not r.passed]
    if args.json:
        print(json.dumps({"oracle": oracle, "passed": not failed, "reports": [r.as_json() for r in reports]}, indent=2))
        return 1 if failed else 0
    print(summary_table(reports))
    if oracle == "reference":
        print("cvxpy+refine: 'value err' and 'weight err' compare the raw conic answer with its refinement;")
        print(f"solver rows are judged against the refined reference (pools above {CVXPY_MAX_N} losses: certificate).")
    else:
        print(f"solver rows are judged against the {ORACLE_WORDS[oracle]}.")
    for report in reports if args.verbose else failed:  # -v: every solver's status counts
        print(f"\n{report.summary()}")
        if not report.passed:
            print(report.table(limit=args.show, verbose=args.verbose))
    print("\nall solvers agree with the exact reference" if not failed and oracle == "reference" else
          f"\nall solvers agree with the {ORACLE_WORDS[oracle]}" if not failed else "\nVERIFICATION FAILED")
    return 1 if failed else 0


def _claims(args) -> int:
    results = claims.run_claims(args.ids or None, budget=args.budget, seed=args.seed)
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
    verify_parser = sub.add_parser("verify", help="check the built-in solvers (or yours) with the conformance kit")
    verify_parser.add_argument("--full", action="store_true", help="every p with every ratio (about 1,100 cases; slower)")
    verify_parser.add_argument("--large", action="store_true", help="add pools of 2^16 and 2^20 losses (certificate-checked)")
    verify_parser.add_argument("--no-torch", action="store_true", help="leave out the Torch backend")
    verify_parser.add_argument("--show", type=int, default=20, help="failing cases to list (default 20)")
    verify_parser.add_argument("--solver", metavar="MODULE:FUNCTION",
                        help="run the conformance kit on fn(losses, p, gamma, tau) -> weights instead")
    verify_parser.add_argument("--dtype", choices=["float64", "float32"], default="float64", help="with --solver")
    verify_parser.add_argument("--batched", action="store_true", help="with --solver: fn takes (..., n) batches")
    verify_parser.add_argument("--torch", action="store_true", help="with --solver: fn takes and returns tensors")
    verify_parser.add_argument("--device", default="cpu", help="with --torch or --pool: the tensors' device")
    verify_parser.add_argument("--any-maximizer", action="store_true",
                        help="with --solver: accept optimal but non-canonical weights")
    verify_parser.add_argument("--pool", metavar="MODULE:FUNCTION",
                        help="check a loss layer fn(losses (pools, n), p, ratio, mask) -> values, gradients included")
    verify_parser.add_argument("--oracle", choices=ORACLES,
                        help="the expected answers: the cvxpy reference (default for the built-in solvers), the "
                             "golden mpmath answers (default with --solver) or the duality certificate; the "
                             "certificate judges pools beyond the first two")
    verify_parser.add_argument("--case", action="append", metavar="NAME", help="only this case (repeatable)")
    verify_parser.add_argument("--family", action="append", help="only this family (repeatable)")
    verify_parser.add_argument("--p", action="append", type=float, help="only this p (repeatable; inf allowed)")
    verify_parser.add_argument("--fuzz", type=int, metavar="N", help="with --solver: fuzz with N drawn problems instead")
    verify_parser.add_argument("--seed", type=int, default=0, help="with --fuzz: the seed (default 0)")
    verify_parser.add_argument("--time-limit", type=float, default=TIME_LIMIT, metavar="S",
                        help=f"seconds per case before 'timeout' (default {TIME_LIMIT:g})")
    verify_parser.add_argument("--json", action="store_true", help="the report(s) as JSON")
    verify_parser.add_argument("-v", "--verbose", action="store_true",
                        help="every case, the full breakdown and the code's captured output (built-in solvers: "
                             "every solver's summary and cases)")
    claims_parser = sub.add_parser("claims", help="check the theory's claims symbolically (sympy) and numerically")
    claims_parser.add_argument("ids", nargs="*", help="claim ids to run (default: all)")
    claims_parser.add_argument("--json", action="store_true", help="JSON objects: id, statement, hypotheses, symbolic, numeric, searched")
    claims_parser.add_argument("-v", "--verbose", action="store_true", help="print hypotheses, statements and every detail")
    claims_parser.add_argument("--budget", type=_positive_int, help="instances each search tries (default: the claim's own)")
    claims_parser.add_argument("--seed", type=int, default=0, help="seed of the counterexample searches (default 0)")
    args = parser.parse_args(argv)
    try:
        if args.command == "verify":
            return _verify(args)
        if args.command == "claims":
            return _claims(args)
    except MissingExtra as exc:  # e.g. lmp claims on the core install: say which extra, no traceback
        raise SystemExit(f"lmp {args.command}: {exc}") from None
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
