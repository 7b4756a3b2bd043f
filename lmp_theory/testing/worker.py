"""The code under test in a process of its own: the judge's side of the worker protocol.

A ``Worker`` runs the implementation in a child process that shares nothing with the judge but
two pipes of ``.npy`` frames (``protocol``) and a third for its output. Whatever the code does,
the judge's tolerances, oracle and report are out of its reach, and every way a call can end is
a record (``invoke.Call``):

* the time limit is enforced from outside: past it the worker's whole process group is killed
  (``timeout``), whatever the code did to its signals or wherever it is blocked;
* a worker that exits, crashes or breaks the protocol mid-call gives ``crashed``, with its exit
  status or signal and what it printed;
* after either, the next call starts a fresh worker; threads and processes the code left behind
  die with the worker's process group when the worker is closed;
* its standard output and error are read at the file-descriptor level, at most ``OUTPUT_LIMIT``
  bytes kept per call.

Three ways to start one: ``Worker.for_function(fn)`` forks the judge (POSIX; ``fn`` needs no
import path), ``Worker.for_spec("module:function")`` starts a fresh interpreter that imports the
code itself (``lmp verify --solver`` always does this), ``Worker.for_command("CMD")`` runs any
program that speaks the protocol (``lmp verify --exec``).
"""

from __future__ import annotations

import os
import select
import shlex
import signal
import subprocess
import sys
import time
from typing import Callable

import numpy as np

from .invoke import OUTPUT_LIMIT, Call, check_time_limit
from .protocol import REPLY_STATUSES, ProtocolError, decode, encode, frame_length

__all__ = ["START_LIMIT", "Worker", "WorkerError"]

START_LIMIT = 120.0  # seconds a Python worker may take to import its code and say it is ready
_OPEN_FDS: set[int] = set()  # every worker's pipe ends: a forked worker closes the others'


class WorkerError(RuntimeError):
    """The worker could not be started (the code does not load, or the program does not run)."""


class _Process:
    """A started worker: its pid (also its process group) and the judge's ends of its pipes."""

    def __init__(self, pid: int, stdin: int, stdout: int, stderr: int, popen: subprocess.Popen | None = None):
        self.pid, self.stdin, self.stdout, self.stderr, self.popen = pid, stdin, stdout, stderr, popen
        self.ended = ""
        for fd in (stdin, stdout, stderr):
            os.set_blocking(fd, False)
            _OPEN_FDS.add(fd)

    def exit_status(self, wait: float) -> str:
        """How the process ended ("exited with status 0", "was killed by signal SIGSEGV"), waiting up
        to ``wait`` seconds; "" if it is still running."""
        deadline = time.monotonic() + wait
        while not self.ended:
            if self.popen is not None:
                code = self.popen.poll()
            else:
                done, status = os.waitpid(self.pid, os.WNOHANG)
                code = None if not done else -os.WTERMSIG(status) if os.WIFSIGNALED(status) \
                    else os.WEXITSTATUS(status)
            if code is not None:
                self.ended = f"exited with status {code}" if code >= 0 else \
                    f"was killed by signal {signal.Signals(-code).name}"
            elif time.monotonic() >= deadline:
                return ""
            else:
                time.sleep(0.005)
        return self.ended

    def kill(self) -> None:
        """Kill the worker's process group (the worker, its threads and any process it started)."""
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.exit_status(wait=5.0)
        for fd in (self.stdin, self.stdout, self.stderr):
            _OPEN_FDS.discard(fd)
            os.close(fd)


class Worker:
    """A child process that answers problems for the judge (see the module docs).

    Use as a context manager, or call ``close``; ``call`` starts the worker when needed. ``label``
    names the code; ``spec`` is its ``module:function`` when the worker serves that function as is.
    """

    def __init__(self, start: Callable[[], _Process], label: str, *, handshake: bool, spec: str | None = None,
                 output_limit: int = OUTPUT_LIMIT, start_limit: float = START_LIMIT):
        self._start, self.label, self._handshake, self.spec = start, label, handshake, spec
        self.output_limit, self.start_limit = output_limit, start_limit
        self._process: _Process | None = None
        self._loading = False  # started, its "ready" frame not read yet
        self._output = bytearray()
        self._dropped = 0
        self.restarts = 0

    @classmethod
    def for_function(cls, fn: Callable, **kwargs) -> "Worker":
        """Fork the judge and serve ``fn`` in the child (POSIX only)."""
        if not hasattr(os, "fork"):
            raise ValueError("isolate=True needs os.fork (POSIX); on this system run the code through "
                             "`lmp verify --solver module:function`, which starts a fresh interpreter")
        return cls(lambda: _fork(fn), getattr(fn, "__qualname__", repr(fn)), handshake=True, **kwargs)

    @classmethod
    def for_spec(cls, spec: str, *, batched: bool = False, torch: bool = False, device: str = "cpu",
                 **kwargs) -> "Worker":
        """A fresh interpreter that imports ``module:function`` itself and serves it."""
        argv = [sys.executable, "-m", "lmp_theory.testing.serve", spec] + (["--batched"] if batched else []) \
            + (["--torch", "--device", device] if torch else [])
        return cls(lambda: _spawn(argv), spec, handshake=True, spec=None if batched or torch else spec, **kwargs)

    @classmethod
    def for_command(cls, command: str, **kwargs) -> "Worker":
        """Any program that speaks the protocol, run by the shell (``lmp verify --exec``)."""
        if not str(command).strip():
            raise ValueError(f"the command must be a non-empty shell command line, got {command!r}")
        return cls(lambda: _spawn(command, shell=True), command, handshake=False, **kwargs)

    def __enter__(self) -> "Worker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self, *, wait: bool = True) -> None:
        """Start the worker and, for Python code, wait until it has loaded; ``WorkerError`` if it does
        not come up. With ``wait=False`` the judge goes on while the code loads, and ``wait_ready``
        (or the first call) does the waiting."""
        self.close()
        self._process = self._start()
        self._loading = self._handshake
        if wait:
            self.wait_ready()

    def wait_ready(self) -> None:
        """Wait until a started worker's code has loaded (see ``start``)."""
        if not self._loading:
            return
        self._loading = False
        reply, problem = self._exchange(b"", time.monotonic() + self.start_limit, 1 << 20)
        text = str(reply) if reply is not None and reply.dtype.kind == "U" else ""
        if text.startswith("ready: "):
            self._take_output()  # what importing the code printed belongs to no case
            return
        output = self._take_output()
        status = self._process.exit_status(wait=1.0)
        self.close()
        why = text.partition(": ")[2] if text.startswith("cannot-load: ") else \
            problem or f"the worker {status or 'did not say it was ready'}"
        raise WorkerError(why + (f"\n{output.rstrip()}" if output.strip() else ""))

    def close(self) -> None:
        """Stop the worker: its input closed, then its process group killed."""
        self._loading = False
        if self._process is None:
            return
        process, self._process = self._process, None
        os.close(process.stdin)
        _OPEN_FDS.discard(process.stdin)
        process.stdin = os.open(os.devnull, os.O_RDONLY)  # closed again by kill
        process.exit_status(wait=2.0)
        process.kill()

    def call(self, losses: np.ndarray, p: float, gamma: float, tau: float, *,
             time_limit: float | None = None) -> Call:
        """Ask the worker for the weights of one problem (see the module docs)."""
        limit = check_time_limit(time_limit)
        if self._process is None:
            self.start()
        self.wait_ready()
        request = encode(np.ascontiguousarray(losses)) + encode(np.array([p, gamma, tau], dtype=np.float64))
        started = time.perf_counter()
        deadline = None if limit is None else time.monotonic() + limit
        reply, problem = self._exchange(request, deadline, max(1 << 20, 16 * losses.size + 4096))
        seconds = time.perf_counter() - started
        if problem == "timeout":
            self._restart_later()
            return Call(status="timeout", output=self._take_output(), seconds=seconds,
                        error=f"no answer within the time limit of {limit:g} s; the worker was killed")
        if problem:
            status = self._process.exit_status(wait=1.0) if problem == "eof" else ""
            why = f"the worker {status or 'closed its output'} during the call" if problem == "eof" else problem
            self._restart_later()
            return Call(status="crashed", error=why, output=self._take_output(), seconds=seconds)
        output = self._take_output()
        if reply.dtype.kind == "U":
            status, _, text = str(reply).partition(": ")
            if status in REPLY_STATUSES:
                return Call(status=status, error=text, output=output, seconds=seconds)
            self._restart_later()
            return Call(status="crashed", error=f"the worker answered with the text {str(reply)[:200]!r}",
                        output=output, seconds=seconds)
        return Call(value=reply, output=output, seconds=seconds)

    def _restart_later(self) -> None:
        self.restarts += 1
        if self._process is not None:
            self._process.kill()
            self._process = None

    def _exchange(self, request: bytes, deadline: float | None, max_bytes: int):
        """Send ``request``, read one reply frame: ``(array, "")`` or ``(None, problem)`` with
        problem ``"timeout"``, ``"eof"`` or what was wrong with the reply."""
        process, pending, received, total = self._process, memoryview(request), bytearray(), None
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return None, "timeout"
            writers = [process.stdin] if pending else []
            readable, writable, _ = select.select([process.stdout, process.stderr], writers, [], remaining)
            if writable:
                try:
                    pending = pending[os.write(process.stdin, pending[:1 << 16]):]
                except BlockingIOError:
                    pass
                except BrokenPipeError:
                    pending = memoryview(b"")  # it stopped reading: its output says how it ended
            if process.stderr in readable:
                self._keep(_read_some(process.stderr) or b"")
            if process.stdout in readable:
                chunk = _read_some(process.stdout)
                if chunk == b"":
                    return None, "eof"
                received += chunk or b""
                try:
                    if total is None:
                        total = frame_length(bytes(received), max_bytes)  # until its header is in
                    if total is not None and len(received) >= total:
                        if len(received) > total:
                            raise ProtocolError(f"{len(received) - total} bytes on its standard output after "
                                                "its answer")
                        return decode(received), ""
                except ProtocolError as exc:
                    return None, f"the worker broke the protocol: {exc}"

    def _keep(self, chunk: bytes) -> None:
        room = self.output_limit - len(self._output)
        self._output += chunk[:max(room, 0)]
        self._dropped += max(len(chunk) - max(room, 0), 0)

    def _take_output(self) -> str:
        """The output captured since the last call (what is already in the pipe included)."""
        if self._process is not None:
            while select.select([self._process.stderr], [], [], 0)[0]:
                chunk = _read_some(self._process.stderr)
                if not chunk:  # the end, or nothing after all
                    break
                self._keep(chunk)
        text = self._output.decode("utf-8", errors="replace")
        if self._dropped:
            text += f"\n[... {self._dropped} more bytes of output not kept]\n"
        self._output, self._dropped = bytearray(), 0
        return text


def _read_some(fd: int) -> bytes | None:
    """What is in the pipe now: bytes, ``b""`` at its end, None if nothing after all."""
    try:
        return os.read(fd, 1 << 20)
    except BlockingIOError:
        return None
    except OSError:
        return b""


def _spawn(argv, shell: bool = False) -> _Process:
    try:
        popen = subprocess.Popen(argv, shell=shell, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, start_new_session=True, bufsize=0)
    except OSError as exc:
        raise WorkerError(f"cannot start {shlex.join(argv) if not shell else argv}: {exc}") from None
    fds = [os.dup(stream.fileno()) for stream in (popen.stdin, popen.stdout, popen.stderr)]
    for stream in (popen.stdin, popen.stdout, popen.stderr):
        stream.close()
    return _Process(popen.pid, *fds, popen=popen)


def _fork(fn: Callable) -> _Process:
    from .serve import serve

    pipes = [os.pipe() for _ in range(3)]  # (read, write) for its stdin, stdout, stderr
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the worker
        try:
            os.setsid()
            for fd in list(_OPEN_FDS):
                os.close(fd)
            os.dup2(pipes[0][0], 0)
            os.dup2(pipes[1][1], 1)
            os.dup2(pipes[2][1], 2)
            for fd in {fd for pair in pipes for fd in pair}:
                os.close(fd)
            serve(fn, ready=getattr(fn, "__qualname__", "fn"))
        finally:
            os._exit(70)
    for fd in (pipes[0][0], pipes[1][1], pipes[2][1]):
        os.close(fd)
    return _Process(pid, pipes[0][1], pipes[1][0], pipes[2][0])
