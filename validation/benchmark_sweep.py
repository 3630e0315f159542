"""Sweep speed: points per second of `hdae sweep` (Dask local cluster with 1 and 2 workers, and
--serial in one process) against a serial shell loop of `hdae solve` processes on the same grid.

Usage: PYTHONPATH=. python validation/benchmark_sweep.py [N_LR] [N_WD]   (default 3 x 4 points)
       PYTHONPATH=. python validation/benchmark_sweep.py many [REFERENCE_CHECKOUT]

`many`: many solves in one process (issue 15): a theory-only fig2 sweep of 8 x 8 points
(train.lr=log:0.02:0.5:8 x train.weight_decay=lin:0.1:2:8, --no-sample) as whole `hdae sweep
--serial` processes, one point per solve (--chunk 1) against the default chunks (the points'
integrations batched by hdae.theory.solve_many), and, if given, REFERENCE_CHECKOUT's hdae (e.g. the
commit before solve_many); then in this process, a loop of `solve` against one `solve_many` on the
same 64 problems (best of 3, after a warm-up). The stored numbers of every run are compared.

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


MANY_GRID = ["--grid", "train.lr=log:0.02:0.5:8", "--grid", "train.weight_decay=lin:0.1:2:8"]


def _stored(path):
    import h5py

    with h5py.File(path, "r") as f:
        out = {}
        f.visititems(lambda n, o: out.__setitem__(n, o[()]) if isinstance(o, h5py.Dataset)
                     and "wall_time" not in n and "worker" not in n else None)
    return out


def _same(a, b) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k], equal_nan=a[k].dtype.kind == "f") for k in a)


def many(reference: str | None):
    import warnings

    from hdae import load_problem, sweep
    from hdae.theory import solve, solve_many

    print(f"fig2, 8 x 8 = 64 points, theory only (train.lr x train.weight_decay, --no-sample); "
          f"{os.cpu_count()} cores")
    print(f"before: {load()}")
    rows, stored = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        base = ["sweep", "--example", "fig2", *MANY_GRID, "--no-sample", "--serial", "-q", "--force"]
        hdae(*base, "-o", f"{tmp}/warm.h5")  # compile caches
        if reference:
            env = dict(os.environ, PYTHONPATH=str(reference))
            t = time.perf_counter()
            subprocess.run([sys.executable, "-m", "cli.main", *base, "-o", f"{tmp}/ref.h5"], cwd=reference, env=env,
                           check=True, stdout=subprocess.DEVNULL)
            rows.append((f"hdae sweep --serial, {Path(reference).name}", time.perf_counter() - t))
            stored["ref"] = _stored(f"{tmp}/ref.h5")
        rows.append(("hdae sweep --serial --chunk 1", hdae(*base, "--chunk", "1", "-o", f"{tmp}/one.h5")))
        stored["one"] = _stored(f"{tmp}/one.h5")
        rows.append(("hdae sweep --serial (default chunks)", hdae(*base, "-o", f"{tmp}/chunks.h5")))
        stored["chunks"] = _stored(f"{tmp}/chunks.h5")
    spec = sweep.make_spec(example="fig2", grid=[MANY_GRID[1], MANY_GRID[3]], sample=False)
    problems = [load_problem(p.config) for p in sweep.plan(spec)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        solve_many(problems[:2], sample=False)
        loop, batch = [], []
        for _ in range(3):
            t = time.perf_counter()
            alone = [solve(p, sample=False) for p in problems]
            loop.append(time.perf_counter() - t)
            t = time.perf_counter()
            together = solve_many(problems, sample=False)
            batch.append(time.perf_counter() - t)
    equal = all(np.array_equal(getattr(a.train, k), getattr(b.train, k), equal_nan=True)
                for a, b in zip(alone, together) for k in ("Q", "M", "G", "b"))
    print(f"after:  {load()}\n")
    print(f"{'whole processes':<42}{'wall s':>9}{'points/s':>10}{'speed-up':>10}")
    for name, t in rows:
        print(f"{name:<42}{t:>9.2f}{64 / t:>10.1f}{rows[0][1] / t:>10.2f}")
    print(f"\n{'in one process (best of 3)':<42}{'wall s':>9}{'points/s':>10}{'speed-up':>10}")
    print(f"{'loop of solve':<42}{min(loop):>9.3f}{64 / min(loop):>10.1f}{1:>10.2f}")
    print(f"{'solve_many':<42}{min(batch):>9.3f}{64 / min(batch):>10.1f}{min(loop) / min(batch):>10.2f}")
    print(f"\nstored numbers equal: chunks vs chunk 1: {_same(stored['chunks'], stored['one'])}"
          + (f", vs reference: {_same(stored['chunks'], stored['ref'])}" if reference else "")
          + f"; solve_many vs solve: {equal}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "many":
        many(sys.argv[2] if len(sys.argv) > 2 else None)
    else:
        main()
