"""Thread counts from the cores actually free, for numba and torch.

Fine-grained parallel loops collapse when other processes hold the cores (every parallel
region waits for its slowest, descheduled thread), so hdae asks for no more threads than
there are idle cores, and parallelises coarsely (replicas, clusters) inside its kernels.
"""
from __future__ import annotations

import os
import sys
import time


def available_cores() -> int:
    """Cores this process may run on (its affinity mask, else the CPU count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def busy_cores() -> float:
    """How many cores other work takes now: the runnable tasks of the system (/proc/loadavg's
    fourth field) other than this process, where Linux gives it; else the 1-minute load average.
    The instantaneous count follows the machine at once: the load average lags by a minute, so
    a process started just after a burst of work (a test run, the previous command) found no free
    core on an idle machine and ran single-threaded."""
    try:
        running = []
        for k in range(5):  # the least of five reads 2 ms apart: a task that merely woke up is not load
            with open("/proc/loadavg") as f:
                running.append(int(f.read().split()[3].split("/")[0]))
            if k < 4:
                time.sleep(0.002)
        return float(max(0, min(running) - _own_running_threads()))
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return 0.0


def _own_running_threads() -> int:
    """This process's runnable threads (numpy's BLAS pool may be awake just after import), at least 1."""
    count = 0
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                count += f.read().rsplit(")", 1)[1].split()[0] == "R"
        except OSError:
            pass
    return max(1, count)


def free_cores() -> int:
    """Cores not busy now: available cores minus :func:`busy_cores` (rounded), at least 1."""
    cores = available_cores()
    return max(1, min(cores, int(cores - busy_cores() + 0.5)))


def set_threads(n: int | None = None) -> int:
    """Use ``n`` threads (None: :func:`free_cores`) in numba and torch; returns the count.

    Libraries not imported yet get it through their environment variables (read at import,
    so a command that never imports torch never pays for it); imported ones are set directly."""
    if n is not None and n < 1:
        raise ValueError(f"threads must be >= 1, got {n}")
    n = min(int(n), available_cores()) if n is not None else free_cores()
    if "numba" in sys.modules:
        import numba

        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    else:
        os.environ["NUMBA_NUM_THREADS"] = str(n)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(n)
    if "torch" in sys.modules:
        import torch

        torch.set_num_threads(n)
    return n
