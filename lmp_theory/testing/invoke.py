"""Calling code under test so that nothing it does can take the kit down with it.

``call`` runs ``fn(*args)`` with its stdout and stderr captured, a time limit, and every way
out turned into a record: a return value, an exception (``SystemExit`` from ``sys.exit``
included), or the time limit running out. Only ``KeyboardInterrupt`` passes through, so that a
person can still stop a run.

The time limit uses ``SIGALRM`` in the main thread on POSIX systems, which interrupts Python
code (loops, ``time.sleep``) and is cleared or restored afterwards (an outer alarm, such as
pytest-timeout's, keeps running). Elsewhere the call runs in a daemon thread that is abandoned
when the limit passes.
"""

from __future__ import annotations

import contextlib
import io
import math
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

__all__ = ["Call", "call", "import_path"]


@dataclass(frozen=True)
class Call:
    """What one call did: ``value`` (if it returned), ``error`` (``"Type: message"`` if it raised),
    ``timed_out``, the captured ``output`` (stdout then stderr) and its wall time in ``seconds``."""

    value: Any = None
    error: str = ""
    timed_out: bool = False
    output: str = ""
    seconds: float = 0.0

    @property
    def returned(self) -> bool:
        return not self.error and not self.timed_out


class _TimeLimit(BaseException):
    """Raised inside the code under test when its time is up (a BaseException: ``except Exception``
    in that code does not swallow it)."""


def call(fn: Callable, *args, time_limit: float | None = None) -> Call:
    """Run ``fn(*args)`` and record what happened (see the module docs). ``time_limit`` in seconds;
    ``None`` or ``inf``: no limit."""
    if time_limit is not None and not (isinstance(time_limit, (int, float)) and time_limit > 0):
        raise ValueError(f"time_limit must be a number of seconds > 0 (inf: no limit) or None, got {time_limit!r}")
    limit = None if time_limit is None or math.isinf(time_limit) else float(time_limit)
    out, err = io.StringIO(), io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        if limit is not None and threading.current_thread() is not threading.main_thread() \
                or limit is not None and not hasattr(signal, "setitimer"):
            value, error, timed_out = _in_thread(fn, args, limit)
        else:
            value, error, timed_out = _with_alarm(fn, args, limit)
    return Call(value, error, timed_out, out.getvalue() + err.getvalue(), time.perf_counter() - started)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SystemExit):
        return f"SystemExit: the code under test called sys.exit({exc.code!r})"
    return f"{type(exc).__name__}: {exc}"


def _with_alarm(fn, args, limit):
    try:
        with _alarm(limit):
            return fn(*args), "", False
    except _TimeLimit:
        return None, "", True
    except (Exception, SystemExit) as exc:  # noqa: BLE001  (the kit reports what any code does)
        return None, _describe(exc), False


@contextlib.contextmanager
def _alarm(limit):
    if limit is None:
        yield
        return

    def expire(signum, frame):
        raise _TimeLimit()

    previous = signal.signal(signal.SIGALRM, expire)
    outer_remaining, outer_interval = signal.setitimer(signal.ITIMER_REAL, limit)
    started = time.monotonic()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer_remaining > 0:  # an outer alarm was pending: let it go off when it would have
            left = max(outer_remaining - (time.monotonic() - started), 1e-3)
            signal.setitimer(signal.ITIMER_REAL, left, outer_interval)


def _in_thread(fn, args, limit):
    box: dict = {}

    def run():
        try:
            box["value"] = fn(*args)
        except BaseException as exc:  # noqa: BLE001  (reported, including SystemExit)
            box["error"] = _describe(exc)

    worker = threading.Thread(target=run, daemon=True, name="lmp-kit-call")
    worker.start()
    worker.join(limit)
    if worker.is_alive():  # abandoned: a daemon thread does not keep the process alive
        return None, "", True
    return box.get("value"), box.get("error", ""), False


def import_path(fn: Callable) -> tuple[str, str] | None:
    """``(module, qualname)`` under which ``fn`` can be imported again, or None (a lambda, a local
    function, an adapter's closure, or code run as ``__main__``)."""
    module, qualname = getattr(fn, "__module__", None), getattr(fn, "__qualname__", "")
    if not module or module == "__main__" or not qualname or "<" in qualname or "(" in qualname:
        return None
    return module, qualname
