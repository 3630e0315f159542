"""Sweep speed: points per second of `hdae sweep` (Dask local cluster with 1 and 2 workers, and
--serial in one process) against a serial shell loop of `hdae solve` processes on the same grid.

Usage: PYTHONPATH=. python validation/benchmark_sweep.py [N_LR] [N_WD]   (default 3 x 4 points)

The grid is fig1 over train.lr x train.weight_decay with the settings of the README's phase
diagram (sample.thetas = [3.0], sample.n = 2000, theory.dt = 0.1, theory.nodes = 2048). Every
time is a whole-process wall time (cluster start-up and worker imports included). The sweep does
more per point than `hdae solve` (it also counts modes and computes the distance to the target).
On a shared machine the numbers are noisy: the load average is printed with them.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import arg  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SETTINGS = ["sample.thetas=[3.0]", "sample.n=2000", "theory.dt=0.1", "theory.nodes=2048"]


def load() -> str:
    return "load average %.2f %.2f %.2f" % os.getloadavg()


def hdae(*args, **kw):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    t = time.perf_counter()
    rc = subprocess.run([sys.executable, "-m", "cli.main", *args], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                        stderr=subprocess.PIPE, text=True, **kw)
    if rc.returncode not in (0, 3):  # 3: a diverged point (saved), as in the sweep
        raise SystemExit(f"hdae {args[0]} failed: {rc.stderr.strip()}")
    return time.perf_counter() - t


def main():
    n_lr, n_wd = arg(1, 3), arg(2, 4)
    lrs = np.geomspace(0.01, 10, n_lr)
    wds = np.linspace(0, 3, n_wd)
    grid = [f"train.lr=log:0.01:10:{n_lr}", f"train.weight_decay=lin:0:3:{n_wd}"]
    sets = sum((["--set", s] for s in SETTINGS), [])
    n = n_lr * n_wd
    print(f"fig1, {n_lr} x {n_wd} = {n} points (train.lr x train.weight_decay); {os.cpu_count()} cores")
    print(f"before: {load()}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        t = 0.0
        for lr in lrs:
            for wd in wds:
                t += hdae("solve", "--example", "fig1", *sets, "--set", f"train.lr={float(lr)!r}",
                          "--set", f"train.weight_decay={float(wd)!r}", "-q", "--force", "-o", f"{tmp}/p.h5")
        rows.append(("loop of `hdae solve` processes", t))
        for workers in (1, 2):
            t = hdae("sweep", "--example", "fig1", *sets, "--grid", grid[0], "--grid", grid[1], "--workers",
                     str(workers), "-q", "-o", f"{tmp}/w{workers}.h5")
            rows.append((f"hdae sweep, local Dask, {workers} worker{'s' if workers > 1 else ''}", t))
        t = hdae("sweep", "--example", "fig1", *sets, "--grid", grid[0], "--grid", grid[1], "--serial", "-q",
                 "-o", f"{tmp}/serial.h5")
        rows.append(("hdae sweep --serial (one process)", t))
    print(f"after:  {load()}\n")
    base = rows[0][1]
    print(f"{'':<42}{'wall s':>9}{'points/s':>10}{'speed-up':>10}")
    for name, t in rows:
        print(f"{name:<42}{t:>9.1f}{n / t:>10.3f}{base / t:>10.2f}")
    w1, w2 = rows[1][1], rows[2][1]
    print(f"\nscaling 1 -> 2 workers: x{w1 / w2:.2f}")


if __name__ == "__main__":
    main()
