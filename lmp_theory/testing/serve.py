"""The worker side of the protocol for Python code: answer problems with ``fn`` until told to stop.

``python -m lmp_theory.testing.serve MODULE:FUNCTION [--batched] [--torch --device D]`` loads the
function (so the judge never imports the code it judges) and serves it; ``Worker.for_function``
forks the judge and runs ``serve`` in the child. Either way the code under test sees a process
of its own: its file descriptors 0 and 1 are not the protocol's (0 reads ``/dev/null``, 1 joins
the captured standard error), so neither ``print``, ``os.write(1, ...)`` nor reading standard
input can reach the frames. NumPy's error state is restored after every call. What it returns is
converted here (``verdict.as_weights``); anything
that is not real weights goes back as a ``wrong-type`` message, an exception as ``raised``, and
losses changed in place as ``mutates-input``. A fork of the worker made by the code exits at once.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, NoReturn

import numpy as np

from .invoke import describe, load_function, mutation
from .protocol import encode, message, read_frame

__all__ = ["serve", "main"]


def serve(fn: Callable, ready: str = "ready") -> NoReturn:
    """Answer every problem on file descriptor 0 with ``fn``'s weights on file descriptor 1 (see
    the module docs); ``ready`` is the first frame sent. Exits when the input closes."""
    channel_in, channel_out = os.dup(0), os.dup(1)
    quiet = os.open(os.devnull, os.O_RDONLY)
    os.dup2(quiet, 0)
    os.dup2(2, 1)  # the code's standard output joins its standard error: the captured output
    sys.stdout = open(1, "w", buffering=1, closefd=False, errors="replace")  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, closefd=False, errors="replace")  # noqa: SIM115
    requests = os.fdopen(channel_in, "rb")
    me = os.getpid()
    _send(channel_out, message("ready", ready))
    while True:
        losses, params = read_frame(requests), read_frame(requests)
        if losses is None or params is None:
            os._exit(0)  # not sys.exit: threads the code left running do not keep the worker alive
        reply = answer(fn, losses, params)
        if os.getpid() != me:
            os._exit(0)  # the code forked the worker: only the worker itself answers
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()  # before the answer, so that the judge finds the output with it
            except BaseException:  # noqa: BLE001  (the code may have closed or replaced them)
                pass
        _send(channel_out, reply)


def answer(fn: Callable, losses: np.ndarray, params: np.ndarray) -> bytes:
    """The reply frame to one problem."""
    from .verdict import as_weights  # here, not at the top: the judge's module is not the worker's API

    before = losses.copy()
    try:
        p, gamma, tau = (float(x) for x in np.asarray(params, dtype=np.float64).reshape(3))
        with np.errstate(**np.geterr()):  # each call starts from the same NumPy error state, as in-process
            result = fn(losses, p, gamma, tau)
        weights, why = as_weights(result)
        reply = message("wrong-type", why) if weights is None else encode(weights)
    except BaseException as exc:  # noqa: BLE001  (everything the code does is reported)
        reply = message("raised", describe(exc))
    changed = mutation(before, losses)
    return message("mutates-input", changed) if changed else reply


def _send(fd: int, frame: bytes) -> None:
    view = memoryview(frame)
    while view:
        try:
            view = view[os.write(fd, view):]
        except OSError:
            os._exit(0)  # the judge went away


def main(argv: list[str] | None = None) -> NoReturn:
    parser = argparse.ArgumentParser(prog="python -m lmp_theory.testing.serve",
                                     description="serve a weight function over the worker protocol")
    parser.add_argument("solver", metavar="MODULE:FUNCTION")
    parser.add_argument("--batched", action="store_true", help="fn takes (..., n) batches")
    parser.add_argument("--torch", action="store_true", help="fn takes and returns tensors")
    parser.add_argument("--device", default="cpu", help="with --torch: the tensors' device")
    args = parser.parse_args(argv)
    try:
        fn = load_function(args.solver)
        if args.batched:
            from .kit import batched

            fn = batched(fn)
        if args.torch:
            from .kit import torch_solver

            fn = torch_solver(fn, device=args.device)
    except BaseException as exc:  # noqa: BLE001  (a module that fails, exits or lacks the extra)
        text = str(exc) if isinstance(exc, ValueError) else describe(exc)
        os.write(1, message("cannot-load", text))
        os._exit(3)
    serve(fn, ready=args.solver)


if __name__ == "__main__":  # pragma: no cover
    main()
