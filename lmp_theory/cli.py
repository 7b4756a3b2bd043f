"""The ``lmp`` command: ``lmp verify`` (the main job) and ``lmp claims`` (the theory, checked).

``lmp verify --solver`` and ``--exec`` never run the code under test in this process: it runs in a
worker process (``testing.worker``), so the exit status and the report are the judge's whatever
that code does. With ``--json`` the document goes to a private copy of standard output and file
descriptor 1 itself points at standard error while the checks run, so nothing printed in between
(by any code in any process started from here) can corrupt it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shlex
import sys

import numpy as np

from solvers.extras import MissingExtra

from . import __version__
from .corpus import cases, size_cases
from .testing import check_pool, check_solver, conformance_cases, fuzz_solver
from .testing.fuzz import MAX_SIZE
from .testing.invoke import check_spec, load_function
from .testing.kit import TIME_LIMIT, select_cases
from .testing.oracle import CVXPY_MAX_N, ORACLES, oracle_named
from .testing.report import summary_table
from .testing.vectors import check_answers, write_vectors
from .testing.verdict import ALLOWANCE_CAP
from .testing.worker import Worker, WorkerError
from .verify import verify_builtins

__all__ = ["main"]

ORACLE_WORDS = {"reference": "exact reference", "golden": "golden mpmath answers (sizes, large pools: certificate)",
                "certificate": "duality certificate"}
SOLVER_ONLY = ("dtype", "batched", "torch", "any_maximizer", "fuzz", "max_n")  # options that need --solver/--exec


def _print_report(report, args) -> int:
    if args.json:
        _emit(json.dumps(report.as_json(), indent=2))
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
    dtype = args.dtype or "float64"
    oracle = args.oracle or "golden"
    flags = (f" --dtype {dtype}" if dtype != "float64" else "") + (" --batched" if args.batched else "") \
        + (f" --torch --device {args.device}" if args.torch else "") + (" --any-maximizer" if args.any_maximizer else "") \
        + (f" --oracle {oracle}" if oracle != "golden" else "")
    if args.solver is not None:
        check_spec(args.solver)
        worker = Worker.for_spec(args.solver, batched=args.batched, torch=args.torch, device=args.device)
        label, command = args.solver, f"lmp verify --solver {args.solver}{flags}"
    else:
        if args.batched or args.torch:
            raise ValueError("--batched and --torch adapt Python functions: with --exec the program itself "
                             "answers one pool at a time in NumPy frames")
        worker = Worker.for_command(args.exec)
        label, command = args.exec, f"lmp verify --exec {shlex.quote(args.exec)}{flags}"
    with worker:
        worker.start(wait=False)  # the code loads while the corpus is built
        selected = None if args.fuzz is not None else \
            _selected(conformance_cases(large=args.large, sizes=True, names=args.case, families=args.family,
                                        p=args.p), args)
        try:
            worker.wait_ready()  # a solver that does not load fails here, once, not on every case
        except WorkerError as exc:
            raise SystemExit(f"lmp verify: {exc}") from None
        if args.fuzz is not None:
            report = fuzz_solver(worker, examples=args.fuzz, seed=args.seed, dtype=np.dtype(dtype),
                                 canonical=not args.any_maximizer, time_limit=args.time_limit, name=label,
                                 max_size=MAX_SIZE if args.max_n is None else args.max_n,
                                 command=f"{command} --fuzz {args.fuzz} --seed {args.seed}"
                                         + (f" --max-n {args.max_n}" if args.max_n is not None else ""))
            return _print_report(report, args)
        report = check_solver(worker, dtype=np.dtype(dtype), cases=selected, canonical=not args.any_maximizer,
                              name=label, time_limit=args.time_limit, command=command, oracle=oracle_named(oracle))
    return _print_report(report, args)


def _selected(corpus, args) -> list:
    """The cases ``--case``, ``--family`` and ``--p`` keep (``corpus`` is already filtered); an error
    naming the filter when nothing is left."""
    if corpus:
        return corpus
    every = conformance_cases(large=True, sizes=True) if args.solver or args.exec else \
        cases(full=True, large=True) + size_cases()
    families, exponents, names = sorted({c.family for c in every}), sorted({c.p for c in every}), {c.name for c in every}
    for name in args.case or []:
        if name not in names:
            raise ValueError(f"--case {name!r} is not a case of the corpus (lmp verify --list shows them)")
    for family in args.family or []:
        if family not in families:
            raise ValueError(f"--family {family!r} is not a family; families: {', '.join(families)}")
    for p in args.p or []:
        if p not in exponents:
            raise ValueError(f"--p {p:g}: no case has this p; p values: {', '.join(f'{x:g}' for x in exponents)}")
    given = [f"{flag} {' '.join(map(str, values))}" for flag, values in
             (("--case", args.case), ("--family", args.family), ("--p", args.p)) if values]
    raise ValueError(f"{' with '.join(given)} together select no case of this run's corpus"
                     + ("" if args.solver or args.exec or args.full else " (--full has every p with every ratio)"))


def _list(args) -> int:
    """``--list``: the families, then every case with its size (of the run the other flags choose)."""
    corpus = conformance_cases(large=True, sizes=True) if args.solver or args.exec else \
        select_cases(cases(full=args.full, large=True) + size_cases(), names=args.case, families=args.family, p=args.p)
    if args.solver or args.exec:
        corpus = select_cases(corpus, names=args.case, families=args.family, p=args.p)
    if args.json:
        _emit(json.dumps([{"name": c.name, "family": c.family, "n": c.n, "p": str(c.p) if np.isinf(c.p) else c.p,
                           "float32": c.float32} for c in corpus], indent=2))
        return 0
    tally: dict[str, list] = {}
    for c in corpus:
        tally.setdefault(c.family, []).append(c.n)
    print(f"{'family':18} {'cases':>5}  sizes")
    for family, sizes in tally.items():
        print(f"{family:18} {len(sizes):5}  {min(sizes)} to {max(sizes)} losses")
    print(f"\n{'case':60} {'n':>8}  float32")
    for c in corpus:
        print(f"{c.name:60} {c.n:8}  {'yes' if c.float32 else 'no'}")
    print("\n(large pools only with --large; sizes and large pools are judged by the duality certificate)")
    return 0


def _verify_pool(args) -> int:
    try:
        fn = load_function(args.pool, "--pool")  # in this process: layers need autograd (see docs/conformance.md)
    except ValueError as exc:
        raise SystemExit(f"lmp verify: {exc}") from None
    command = f"lmp verify --pool {args.pool}" + (f" --device {args.device}" if args.device != "cpu" else "")
    try:
        report = check_pool(fn, device=args.device, names=args.case, time_limit=args.time_limit, name=args.pool,
                            command=command)
    except ValueError as exc:
        raise SystemExit(f"lmp verify: {exc}") from None
    return _print_report(report, args)


def _verify(args) -> int:
    chosen = [flag for flag, value in (("--solver", args.solver), ("--exec", args.exec), ("--pool", args.pool),
                                       ("--answers", args.answers)) if value is not None]
    if len(chosen) > 1:
        raise ValueError(f"give one of --solver, --exec, --pool and --answers, not {' and '.join(chosen)}")
    if args.answers is not None:
        report = check_answers(args.answers, dtype=np.dtype(args.dtype or "float64"),
                               canonical=not args.any_maximizer, oracle=oracle_named(args.oracle or "golden"))
        return _print_report(report, args)
    unused = [f"--{name.replace('_', '-')}" for name in SOLVER_ONLY if getattr(args, name) not in (None, False)
              and (args.answers is None or name not in ("dtype", "any_maximizer"))]
    if unused and args.solver is None and args.exec is None:
        raise ValueError(f"{', '.join(unused)} only apply with --solver or --exec (the built-in solvers run in "
                         "both dtypes already)")
    if args.list:
        return _list(args)
    if args.solver is not None or args.exec is not None:
        return _verify_third_party(args)
    if args.pool is not None:
        return _verify_pool(args)
    return _verify_builtins(args)


def _verify_builtins(args) -> int:
    oracle = args.oracle or "reference"
    corpus = _selected(select_cases(cases(full=args.full, large=args.large) + size_cases(), names=args.case,
                                    families=args.family, p=args.p), args)
    if not args.json:
        print(f"lmp-theory {__version__} | numpy {np.__version__} | python {platform.python_version()} | "
              f"{len(corpus)} cases ({'full' if args.full else 'standard'} corpus{', large pools' if args.large else ''})"
              f" | oracle: {oracle}")
    reports = verify_builtins(corpus, oracle=oracle, torch_devices=not args.no_torch, time_limit=args.time_limit)
    failed = [r for r in reports if not r.passed]
    if args.json:
        _emit(json.dumps({"oracle": oracle, "passed": not failed, "reports": [r.as_json() for r in reports]},
                         indent=2))
        return 1 if failed else 0
    print(summary_table(reports))
    if oracle == "reference":
        print("cvxpy+refine: 'value err' and 'weight err' compare the raw conic answer with its refinement (not a "
              "verdict:\n  the row passes when the reference verified itself); solver rows are judged against the "
              f"refined reference\n  (the sizes family, large pools and pools above {CVXPY_MAX_N} losses: certificate).")
    else:
        print(f"solver rows are judged against the {ORACLE_WORDS[oracle]}.")
    print("value tol / weight tol: the widest in force over the row's cases (a weight tol above the dtype's is a "
          f"case's\n  conditioning allowance, at most {ALLOWANCE_CAP:g}; value and feasibility: the dtype's alone).")
    for report in reports if args.verbose else failed:  # -v: every solver's status counts
        print(f"\n{report.summary()}")
        if not report.passed:
            print(report.table(limit=args.show, verbose=args.verbose))
    print("\nall solvers agree with the exact reference" if not failed and oracle == "reference" else
          f"\nall solvers agree with the {ORACLE_WORDS[oracle]}" if not failed else "\nVERIFICATION FAILED")
    return 1 if failed else 0


def _claims(args) -> int:
    try:
        from . import claims  # here: the registry imports sympy and hypothesis

        results = claims.run_claims(args.ids or None, budget=args.budget, seed=args.seed)
    except KeyError as exc:  # an unknown id: the message lists the known ones
        raise SystemExit(f"lmp claims: {exc.args[0]}") from None
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
    verify_parser.add_argument("--exec", metavar="CMD",
                        help="run the conformance kit on a program in any language that speaks the worker "
                             "protocol on stdin/stdout (.npy frames; see docs/conformance.md)")
    verify_parser.add_argument("--list", action="store_true",
                        help="list the families and cases this run would check (with --solver/--exec: the kit's) and exit")
    verify_parser.add_argument("--dtype", choices=["float64", "float32"], help="with --solver/--exec (default float64)")
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
    verify_parser.add_argument("--max-n", type=_positive_int, metavar="N",
                        help=f"with --fuzz: the largest pool drawn (default {MAX_SIZE:,})")
    verify_parser.add_argument("--seed", type=int, default=0, help="with --fuzz: the seed (default 0)")
    verify_parser.add_argument("--time-limit", type=float, default=TIME_LIMIT, metavar="S",
                        help=f"seconds per case before 'timeout' (default {TIME_LIMIT:g})")
    verify_parser.add_argument("--json", action="store_true", help="the report(s) as JSON")
    verify_parser.add_argument("-v", "--verbose", action="store_true",
                        help="every case, the full breakdown and the code's captured output (built-in solvers: "
                             "every solver's summary and cases)")
    verify_parser.add_argument("--answers", metavar="DIR",
                        help="judge the ID-answer.npy files a program wrote into a directory of `lmp vectors`")
    vectors_parser = sub.add_parser("vectors", help="export the corpus as test vectors for any language (.npy + JSON)")
    vectors_parser.add_argument("--write", metavar="DIR", required=True, help="the directory to write")
    vectors_parser.add_argument("--sizes", action="store_true",
                                help="add the sizes family (1 to 2^20 + 1 losses; about 100 MB)")
    claims_parser = sub.add_parser("claims", help="check the theory's claims symbolically (sympy) and numerically")
    claims_parser.add_argument("ids", nargs="*", help="claim ids to run (default: all)")
    claims_parser.add_argument("--json", action="store_true", help="JSON objects: id, statement, hypotheses, symbolic, numeric, searched")
    claims_parser.add_argument("-v", "--verbose", action="store_true", help="print hypotheses, statements and every detail")
    claims_parser.add_argument("--budget", type=_positive_int, help="instances each search tries (default: the claim's own)")
    claims_parser.add_argument("--seed", type=int, default=0, help="seed of the counterexample searches (default 0)")
    args = parser.parse_args(argv)
    try:
        if args.command == "verify":
            with _reserved_stdout(args.json):
                return _verify(args)
        if args.command == "claims":
            return _claims(args)
        if args.command == "vectors":
            index = write_vectors(args.write, cases=conformance_cases(sizes=args.sizes))
            print(f"wrote {len(json.loads(index.read_text())['cases'])} cases to {args.write} (index: {index})")
            return 0
    except (MissingExtra, ValueError) as exc:  # a missing extra, bad arguments: say so, no traceback
        raise SystemExit(f"lmp {args.command}: {exc}") from None
    except BrokenPipeError:  # the reader went away (`lmp verify --list | head`): no traceback at exit either
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return 2  # pragma: no cover - argparse rejects unknown commands


_RESERVED: list = []  # where the JSON document goes while --json runs


@contextlib.contextmanager
def _reserved_stdout(reserve: bool):
    """With ``reserve``: until the end, ``sys.stdout`` and file descriptor 1 (when it is standard
    output's) point at standard error, and ``_emit`` writes to the real standard output (module docs)."""
    if not reserve:
        yield
        return
    target, private = sys.stdout, None
    try:
        at_fd = target.fileno() == 1
    except (AttributeError, OSError, ValueError):  # a captured stream (pytest, redirect_stdout)
        at_fd = False
    target.flush()
    if at_fd:
        private = os.dup(1)
        os.dup2(2, 1)
        target = os.fdopen(private, "w", closefd=False)
    _RESERVED.append(target)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        _RESERVED.pop()
        if private is not None:
            target.flush()
            os.dup2(private, 1)
            os.close(private)


def _emit(text: str) -> None:
    """Print the JSON document: to the reserved standard output if there is one."""
    print(text, file=_RESERVED[-1] if _RESERVED else sys.stdout, flush=True)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
