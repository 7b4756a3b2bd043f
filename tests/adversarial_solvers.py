"""Solvers that try to fool the conformance kit or take it over, for tests/test_kit_isolation.py.

Each is a weight function ``fn(losses, p, gamma, tau)``, importable by path (so that both
``check_solver(..., isolate=True)`` and ``lmp verify --solver tests.adversarial_solvers:NAME`` run
it), and wrong or hostile in one way the kit must see through.
"""

import os
import signal
import sys
import threading
import time

import numpy as np

from solvers.numpy import lmp_weights

# --- wrong answers that passed ------------------------------------------------------------------


def zeros_from_3001_to_65535(l, p, g, t):
    """Right up to 3,000 losses and from 65,536 on; all zero in between (no corpus pool there)."""
    return np.zeros_like(l) if 3000 < l.size < 65536 else lmp_weights(l, p, g, t)


def zeros_above_2_16(l, p, g, t):
    """Right up to 2^16 losses, all zero above (the large pools are not in the default run)."""
    return np.zeros_like(l) if l.size > 2**16 else lmp_weights(l, p, g, t)


def negative_weights_on_negative_losses(l, p, g, t):
    """The canonical weights, and a weight just inside the negativity tolerance on every negative loss:
    the value rises, and the literal norm ||w||_p exceeds gamma when there are many such losses."""
    w = lmp_weights(l, p, g, t).copy()
    w[l < 0] = -0.99e-10 * min(g, t)
    return w


def tolerances_rewritten(l, p, g, t):
    """Rebinds the judge's tolerances to 10 (on old main ``verdict.TOLERANCES.update`` did it in place;
    the mapping is read-only now), then answers all zeros: only a worker keeps this from the judge."""
    from lmp_theory.testing import kit, verdict

    kit.TOLERANCES = verdict.TOLERANCES = {np.dtype(np.float64): 10.0, np.dtype(np.float32): 10.0}
    return np.zeros_like(l)


def mutates_losses(l, p, g, t):
    """The right weights, but the caller's losses sorted in place."""
    w = lmp_weights(l, p, g, t)
    l.sort()
    return w


# --- taking the judge over ------------------------------------------------------------------------


def exits_with_0(l, p, g, t):
    """Ends the process with status 0: on old main, `lmp verify` printed nothing and reported success."""
    sys.stdout.flush()
    os._exit(0)


def disarms_the_alarm(l, p, g, t):
    """Cancels the kit's SIGALRM timer, then takes 3 s."""
    if hasattr(signal, "setitimer"):
        signal.setitimer(signal.ITIMER_REAL, 0)
    time.sleep(3)
    return lmp_weights(l, p, g, t)


def swallows_the_interrupt(l, p, g, t):
    """Catches whatever interrupts it (BaseException included) and keeps going for 3 s."""
    end = time.monotonic() + 3
    while time.monotonic() < end:
        try:
            time.sleep(end - time.monotonic())
        except BaseException:  # noqa: BLE001  (the point of this solver)
            pass
    return lmp_weights(l, p, g, t)


def generator_exit(l, p, g, t):
    raise GeneratorExit("not an Exception")


class Escape(BaseException):
    """A BaseException of the solver's own."""


def base_exception(l, p, g, t):
    raise Escape("escaped the except Exception clauses")


def numpy_errors_raise(l, p, g, t):
    """Right, but leaves NumPy raising on every floating-point error (on old main, the judge's own)."""
    w = lmp_weights(l, p, g, t)
    np.seterr(all="raise")
    return w


def forks(l, p, g, t):
    """Right, but forks the process it runs in (the copy returns too)."""
    os.fork()
    return lmp_weights(l, p, g, t)


def leaves_a_thread(l, p, g, t):
    """Right, but leaves a non-daemon thread that sleeps for a minute."""
    threading.Thread(target=time.sleep, args=(60,), daemon=False).start()
    return lmp_weights(l, p, g, t)


def writes_to_fd_1(l, p, g, t):
    """Right, but writes to file descriptor 1 directly and from a thread (it used to corrupt --json)."""
    os.write(1, b"{not json\n")
    printer = threading.Thread(target=print, args=("from a thread",))
    printer.start()
    printer.join()
    return lmp_weights(l, p, g, t)


def floods_output(l, p, g, t):
    """Right, but prints 100 kB on every call."""
    print("x" * 100_000)
    return lmp_weights(l, p, g, t)


def slow_first_import(l, p, g, t):
    """Right, but the first call ever takes 2 s, as a cold import does (``LMP_SLOW_IMPORT_MARKER`` names
    the file that marks it done): a time limit that fires inside it must not break the cases after it
    (in-process, a half-done ``import torch`` did)."""
    marker = os.environ["LMP_SLOW_IMPORT_MARKER"]
    if not os.path.exists(marker):  # a cold start (a cache written, a kernel compiled): slow once
        open(marker, "w").close()
        time.sleep(2)
    return lmp_weights(l, p, g, t)


def wrong_at_2_mod_5_from_37(l, p, g, t):
    """Loses 1 % of the weights for pools of at least 37 losses with n = 2 mod 5."""
    w = lmp_weights(l, p, g, t)
    return w * 0.99 if l.size >= 37 and l.size % 5 == 2 else w
