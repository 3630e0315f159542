"""Theory speed: the integration of every example, many clusters, and the naive approach.

Usage: python validation/benchmark_solve.py [threads=auto] [naive=1]

threads=auto: the cores free now (hdae.parallel.free_cores, what the CLI does); a number forces it.

1. Per example: wall time of `solve` (training only, then with sampling) after compilation,
   and of the integration alone (:func:`hdae.theory.ode.integrate`) for the default example.
2. A 400-cluster problem (a circle of 400 weighted centroids, r = 2, tanh, one training time)
   solved to theta = 3 with RK4 dt = 0.05, on 1 and on ``threads`` threads: all clusters go
   through one numba kernel call per right-hand side (target: under 3 s on 2 cores).
3. The naive approach against hdae's, both against a converged reference (RK4 dt = 0.0125 with
   4x the nodes), on fig2 (tanh) and fig1 (ReLU) to theta = 3: naive = fresh Monte-Carlo
   samples for every Gaussian integral (2000 per right-hand side) with Euler steps of 0.01.
   Error = max over checkpoints and entries of |x - x_ref| / max|x_ref|, for Q, M and G.
The load average is printed: the machine is shared, so compare ratios taken in one run.
"""
from __future__ import annotations

import dataclasses
import os
import sys
import time

import numba
import numpy as np

import hdae
from hdae.config import ConfigError
from hdae.theory import quadrature, solve
from hdae.theory.ode import State, TrainingSetup, integrate, rhs
from hdae.theory.solve import initial_state

CIRCLE_400 = """
seed = 1
[target]
kind = "manifold"
d = 1000
manifold = "circle"
points = 400
scale = 2.0
covariance = { isotropic = 0.1 }
[model]
width = 2
activation = "tanh"
[init]
scale = 0.3
warm_norm = 0.3
[train]
lr = 0.2
weight_decay = 0.5
times = [0.5]
tau = 3.0
checkpoints = 7
[sample]
thetas = []
[theory]
integrator = "rk4"
dt = 0.05
"""


def timed(fn, repeat=3):
    fn()  # compile / warm caches
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def setup_of(problem, nodes=None):
    """(TrainingSetup, initial State, output thetas) as `solve` builds them (realised init)."""
    tr, th = problem.train, problem.theory
    reduced, states = initial_state(problem, "realised")
    r, T = problem.model.width, len(tr.times)
    nodes = nodes or quadrature.choose(TrainingSetup.integration_dim(r, T), problem.model.activation, th.quadrature,
                                       th.nodes)
    setup = TrainingSetup(reduced=reduced, activation=problem.model.activation, alphas=tr.interpolant.alpha(tr.times),
                          betas=tr.interpolant.beta(tr.times), omegas=tr.time_weights, lr=tr.lr,
                          weight_decay=tr.weight_decay, nodes=nodes)
    t_out = np.asarray(tr.checkpoints, dtype=float)
    return setup, states[0], t_out


def naive_solve(setup, state0, t_out, n_mc=2000, dt=0.01, seed=0):
    """Euler steps of ``dt`` with fresh Monte-Carlo nodes (``n_mc`` normal samples) at every step."""
    rng = np.random.default_rng(seed)
    y = state0.pack()
    shapes = state0.shapes
    k = setup.nodes.dim
    ys, theta = [y.copy()], t_out[0]
    for t1 in t_out[1:]:
        n = max(1, int(round((t1 - theta) / dt)))
        h = (t1 - theta) / n
        for _ in range(n):
            nodes = quadrature.Nodes(rng.standard_normal((n_mc, k)), np.full(n_mc, 1.0 / n_mc), "mc", n_mc)
            y = y + h * rhs(State.unpack(y, shapes), dataclasses.replace(setup, nodes=nodes)).pack()
        theta = t1
        ys.append(y.copy())
    return np.array(ys)


def errors(ys, ref, setup, shapes):
    out = {}
    agg = lambda y: State.unpack(y, shapes).aggregates(setup.reduced.s)  # noqa: E731
    for i, name in ((0, "Q"), (2, "M"), (3, "G")):
        a = np.array([agg(y)[i] for y in ys])
        e = np.array([agg(y)[i] for y in ref])
        out[name] = float(np.abs(a - e).max() / max(np.abs(e).max(), 1e-300))
    return out


def main():
    args = dict(a.split("=", 1) for a in sys.argv[1:] if "=" in a)
    from hdae.parallel import free_cores

    threads = free_cores() if args.get("threads", "auto") == "auto" else int(args["threads"])
    print(f"uptime: {os.popen('uptime').read().strip()}; numba threads available: {numba.config.NUMBA_NUM_THREADS}")
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))

    print(f"\n1. examples ({numba.get_num_threads()} threads)")
    print(f"{'example':<12}{'train s':>9}{'+sample s':>11}{'rhs':>6}{'nodes':>7}{'rule':>15}{'bins':>6}")
    for name in hdae.example_names():
        try:
            p = hdae.load_problem(example=name)
        except ConfigError as err:
            print(f"{name:<12} skipped ({err})")
            continue
        t_train, res = timed(lambda: solve(p.with_overrides("sample.thetas=[]")))
        t_all, _ = timed(lambda: solve(p), repeat=1)
        print(f"{name:<12}{t_train:>9.3f}{t_all:>11.3f}{res.attrs['n_rhs']:>6}{res.attrs['quadrature_nodes']:>7}"
              f"{res.attrs['quadrature']:>15}{res.attrs['n_bins']:>6}")
    p = hdae.load_problem(example=hdae.config.DEFAULT_EXAMPLE)
    setup, s0, t_out = setup_of(p)
    t_int, _ = timed(lambda: integrate(s0, setup, t_out, "rk4", p.theory.dt))
    print(f"default example ({hdae.config.DEFAULT_EXAMPLE}) integration alone: {t_int:.3f} s (target < 0.1 s)")

    print("\n2. 400 clusters, r = 2, tanh, one training time, RK4 dt = 0.05 to theta = 3")
    p400 = hdae.load_problem(CIRCLE_400)
    for n in sorted({1, threads}):
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
        t, res = timed(lambda: solve(p400), repeat=1)
        print(f"  {n} thread(s): {t:.2f} s  ({res.attrs['n_rhs']} right-hand sides, {res.attrs['quadrature_nodes']} "
              f"nodes x 400 clusters; target < 3 s on 2 cores)")
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))

    if args.get("naive", "1") != "1":
        return
    print("\n3. naive (fresh MC, 2000 samples per rhs, Euler dt = 0.01) vs hdae (defaults), against a converged "
          "reference (RK4 dt = 0.0125, 4x nodes)")
    print(f"{'problem':<8}{'hdae s':>8}{'naive s':>9}{'speed-up':>9}   {'hdae error (Q, M, G)':<28}{'naive error':<28}")
    for name in ("fig2", "fig1"):
        p = hdae.load_problem(example=name)
        setup, s0, t_out = setup_of(p)
        n = setup.nodes
        fine = (quadrature.gauss_hermite(n.dim, 2 * n.size) if n.rule == "gauss-hermite"
                else quadrature.sobol(n.dim, 4 * n.size))
        ref = integrate(s0, dataclasses.replace(setup, nodes=fine), t_out, "rk4", 0.0125).y
        t_h, sol = timed(lambda: integrate(s0, setup, t_out, "rk4", p.theory.dt))
        t_n, ys_naive = timed(lambda: naive_solve(setup, s0, t_out), repeat=1)
        eh, en = errors(sol.y, ref, setup, s0.shapes), errors(ys_naive, ref, setup, s0.shapes)
        fmt = lambda e: ", ".join(f"{e[k]:.1e}" for k in ("Q", "M", "G"))  # noqa: E731
        print(f"{name:<8}{t_h:>8.3f}{t_n:>9.2f}{t_n / t_h:>8.0f}x   {fmt(eh):<28}{fmt(en):<28}")


if __name__ == "__main__":
    main()
