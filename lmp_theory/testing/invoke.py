"""Calling code under test in the judge's own process (the in-process mode), and loading it.

``call`` runs ``fn(*args)`` with its ``sys.stdout`` and ``sys.stderr`` captured (at most
``OUTPUT_LIMIT`` characters kept), a time limit, and every way out turned into a record: a return
value, an exception (any ``BaseException``: ``SystemExit`` from ``sys.exit``, ``GeneratorExit``...),
or the time limit running out. Only ``KeyboardInterrupt`` passes through, so that a person can
still stop a run. NumPy's error state is restored after the call.

The time limit uses ``SIGALRM`` in the main thread on POSIX systems, which interrupts Python
code (loops, ``time.sleep``) and is cleared or restored afterwards (an outer alarm, such as
pytest-timeout's, keeps running). Elsewhere the call runs in a daemon thread that is abandoned
when the limit passes.

What the in-process mode does NOT protect against (``worker.Worker`` does, by running the code in
a process of its own): code that ends the process (``os._exit``, a segfault), forks it, changes or
swallows the alarm (``signal.setitimer``), blocks in C code past the limit, leaves threads running,
writes to file descriptors 1 and 2 directly, or rewrites the kit itself (its modules, its oracle).
It is there for debuggers and for GPU tensors that cannot leave the process.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import math
import signal
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

__all__ = ["Call", "OUTPUT_LIMIT", "call", "check_spec", "check_time_limit", "describe", "import_path", "kept", "load_function", "mutation"]

OUTPUT_LIMIT = 8192  # characters of captured output kept per call


@dataclass(frozen=True)
class Call:
    """What one call did: ``value`` (if it returned), else the kit ``status`` it earns (``"raised"``,
    ``"timeout"``, ``"crashed"``, ``"mutates-input"``, ``"wrong-type"``) with ``error`` saying why; the
    captured ``output`` (bounded) and the wall time in ``seconds``."""

    value: Any = None
    error: str = ""
    status: str = ""
    output: str = ""
    seconds: float = 0.0

    @property
    def timed_out(self) -> bool:
        return self.status == "timeout"

    @property
    def returned(self) -> bool:
        return not self.status


class _TimeLimit(BaseException):
    """Raised inside the code under test when its time is up (a BaseException: ``except Exception``
    in that code does not swallow it)."""


def call(fn: Callable, *args, time_limit: float | None = None) -> Call:
    """Run ``fn(*args)`` and record what happened (see the module docs). ``time_limit`` in seconds;
    ``None`` or ``inf``: no limit."""
    limit = check_time_limit(time_limit)
    out, err = _Bounded(), _Bounded()
    started = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), np.errstate(**np.geterr()):
        if limit is not None and threading.current_thread() is not threading.main_thread() \
                or limit is not None and not hasattr(signal, "setitimer"):
            value, error, timed_out = _in_thread(fn, args, limit)
        else:
            value, error, timed_out = _with_alarm(fn, args, limit)
    status = "timeout" if timed_out else "raised" if error else ""
    return Call(value, error, status, out.text() + err.text(), time.perf_counter() - started)


class _Bounded(io.StringIO):
    """A text stream that keeps its first ``OUTPUT_LIMIT`` characters and counts the rest."""

    def __init__(self):
        super().__init__()
        self.dropped = 0

    def write(self, text) -> int:
        room = OUTPUT_LIMIT - self.tell()
        if len(text) > room:
            self.dropped += len(text) - max(room, 0)
            text = text[:max(room, 0)]
        super().write(text)
        return len(text) + self.dropped

    def text(self) -> str:
        return kept(self.getvalue(), self.dropped)


def kept(text: str, dropped: int) -> str:
    """Captured output as reported: what was kept, and how much more was not."""
    return text + (f"\n[... {dropped} more characters of output not kept]\n" if dropped else "")


def describe(exc: BaseException) -> str:
    """``"Type: message"`` of an exception raised by code under test (``sys.exit`` said as such)."""
    if isinstance(exc, SystemExit):
        return f"SystemExit: the code under test called sys.exit({exc.code!r})"
    try:
        return f"{type(exc).__name__}: {exc}"
    except BaseException:  # noqa: BLE001  (an exception whose str() raises)
        return f"{type(exc).__name__}: <its message could not be printed>"


def mutation(before: np.ndarray, after: np.ndarray) -> str:
    """Why ``after`` (the losses handed to the code) is not ``before`` any more; "" if unchanged."""
    if after.shape == before.shape and np.array_equal(after, before, equal_nan=True):
        return ""
    changed = int(np.count_nonzero(after != before)) if after.shape == before.shape else after.size
    return f"the code under test changed the losses it was given ({changed} of {before.size} entries)"


def _with_alarm(fn, args, limit):
    try:
        with _alarm(limit):
            return fn(*args), "", False
    except _TimeLimit:
        return None, "", True
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001  (the kit reports what any code does)
        return None, describe(exc), False


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
            box["error"] = describe(exc)

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


def check_time_limit(time_limit) -> float | None:
    """Seconds as a float, or None for no limit (``None`` or ``inf``); ``ValueError`` otherwise."""
    if time_limit is None or isinstance(time_limit, bool) or not isinstance(time_limit, (int, float)) \
            or not time_limit > 0:
        if time_limit is None:
            return None
        raise ValueError(f"time_limit must be a number of seconds > 0 (inf: no limit) or None, got {time_limit!r}")
    return None if math.isinf(time_limit) else float(time_limit)


def load_function(spec: str, option: str = "--solver") -> Callable:
    """``package.module:function`` -> the function (the current directory importable); ``ValueError``
    saying what is wrong otherwise. In the CLI only the worker process calls it: loading is running."""
    module_name, sep, attr = check_spec(spec, option).partition(":")
    if "" not in sys.path:
        sys.path.insert(0, "")
    try:
        obj = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001  (a module that fails or exits on import)
        raise ValueError(f"cannot load {spec!r}: {describe(exc)}") from None
    if not callable(obj):
        raise ValueError(f"{spec!r} is not callable")
    return obj


def check_spec(spec: str, option: str = "--solver") -> str:
    """``spec`` if it looks like ``package.module:function``; ``ValueError`` naming ``option`` otherwise."""
    module_name, sep, attr = str(spec).partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"{option} must look like package.module:function, got {spec!r}")
    return spec
