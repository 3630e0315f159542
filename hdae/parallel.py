"""Thread counts from the cores actually free, for numba and torch.

Fine-grained parallel loops collapse when other processes hold the cores (every parallel
region waits for its slowest, descheduled thread), so hdae asks for no more threads than
there are idle cores, and parallelises coarsely (replicas, clusters) inside its kernels.
"""
from __future__ import annotations

import os
import sys


def available_cores() -> int:
    """Cores this process may run on (its affinity mask, else the CPU count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def free_cores() -> int:
    """Cores not busy now: available cores minus the 1-minute load average (rounded), at least 1."""
    cores = available_cores()
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        load = 0.0
    return max(1, min(cores, int(cores - load + 0.5)))


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
