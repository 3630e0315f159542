"""Speed of the CPU online-SGD kernel: microseconds per step of `hdae.simulation.kernels.sgd_steps`.

Usage: NUMBA_NUM_THREADS=1 PYTHONPATH=. python validation/benchmark_kernel.py [REFERENCE_CHECKOUT] [rounds=N]

One replica, a chunk of 256 steps on pre-drawn N(0, 1) data (x0, x1 of shape (256, 1, d), 40 MB at
d = 10000: as in `OnlineSGD.run`, the chunk does not fit in cache), tanh, two training times; w_0
with columns of norm ~ sqrt(d) and a small learning rate, so that no step diverges (checked).
Per (d, r) the best of ``rounds`` chunks (default 15) after a warm-up chunk, divided by 256.

With REFERENCE_CHECKOUT (a directory holding another version's ``hdae`` package, e.g. from
`git archive <commit> hdae | tar -x -C DIR`) that package is imported too, as ``hdae_reference``,
and its kernel is timed on the same data, its chunks alternating with this checkout's (so that
the load of the shared machine, which drifts, weighs on both alike); the table then has both and
the ratio reference/this. Set NUMBA_NUM_THREADS=1 (the kernel parallelises over replicas only;
with one replica a second thread only adds noise). The load average is printed with the table.
"""
from __future__ import annotations

import importlib.util
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hdae import activations  # noqa: E402
from hdae.simulation import kernels  # noqa: E402

SIZES = [(d, r) for d in (2000, 10000) for r in (1, 2, 4, 8)]
STEPS = 256


def reference_kernels(root: Path):
    """``hdae.simulation.kernels`` of the package in ``root``/hdae, imported as ``hdae_reference``."""
    spec = importlib.util.spec_from_file_location("hdae_reference", root / "hdae" / "__init__.py",
                                                  submodule_search_locations=[str(root / "hdae")])
    pkg = importlib.util.module_from_spec(spec)
    sys.modules["hdae_reference"] = pkg
    spec.loader.exec_module(pkg)
    return importlib.import_module("hdae_reference.simulation.kernels")


def _state(kernel, r, d):
    """The state arguments that this version of ``sgd_steps`` takes after ``failed`` (none before
    the gram recursion; gram, then also the scratch w^T, after)."""
    names = kernel.py_func.__code__.co_varnames[:kernel.py_func.__code__.co_argcount]
    return tuple(a for name, a in (("gram", np.full((1, r, r), np.nan)), ("work", np.empty((1, 2 * r, d))))
                 if name in names)


def main():
    opts = dict(a.split("=", 1) for a in sys.argv[1:] if "=" in a)
    args = [a for a in sys.argv[1:] if "=" not in a]
    rounds = int(opts.get("rounds", 15))
    versions = {"this": kernels}
    if args:
        versions["reference"] = reference_kernels(Path(args[0]).resolve())
    print(f"kernels.sgd_steps, one replica, {STEPS} steps a chunk, best of {rounds} chunks; "
          f"NUMBA_NUM_THREADS={os.environ.get('NUMBA_NUM_THREADS', '(unset)')}")
    print("load average %.2f %.2f %.2f" % os.getloadavg())
    head = f"{'d':>6} {'r':>3} {'us/step':>9}"
    if len(versions) > 1:
        head += f" {'reference':>10} {'ref/this':>9}"
    print(head, flush=True)
    act = activations.code("tanh")
    alphas, betas, omegas = np.array([0.3, 0.8]), np.array([0.7, 0.4]), np.array([0.5, 0.5])
    for d, r in SIZES:
        rng = np.random.default_rng(d + r)
        w0 = rng.standard_normal((1, d, r))
        x0 = rng.standard_normal((STEPS, 1, d))
        x1 = rng.standard_normal((STEPS, 1, d))
        skip, failed = np.zeros(1, bool), np.zeros(1, np.int64)
        best = {name: np.inf for name in versions}
        for k in range(rounds + 1):  # the first: compile / warm-up
            for name, mod in versions.items():
                w, b = w0.copy(), np.array([0.1])
                t = time.perf_counter()
                state = _state(mod.sgd_steps, r, d)
                mod.sgd_steps(w, b, x0, x1, alphas, betas, omegas, 0.05, 0.1, act, STEPS, skip, failed, *state)
                dt = time.perf_counter() - t
                if failed[0] != -1 or not np.isfinite(w).all():
                    raise SystemExit(f"d = {d}, r = {r}: the benchmark run diverged ({name})")
                if k:
                    best[name] = min(best[name], dt / STEPS * 1e6)
        line = f"{d:>6} {r:>3} {best['this']:>9.2f}"
        if len(versions) > 1:
            line += f" {best['reference']:>10.2f} {best['reference'] / best['this']:>9.2f}"
        print(line, flush=True)
    print("load average %.2f %.2f %.2f" % os.getloadavg())


if __name__ == "__main__":
    main()
