"""Theory speed: the integration of every example, many clusters, and the naive approach.

Usage: python validation/benchmark_solve.py [threads=auto] [naive=1] [sections=1,2,3]

threads=auto: the cores free now (hdae.parallel.free_cores, what the CLI does); a number forces it.

1. Per example: wall time of `solve` (training only, then with sampling) after compilation,
   and of the integration alone (:func:`hdae.theory.ode.integrate`) for the default example.
2. A 400-cluster problem (a circle of 400 weighted centroids, r = 2, tanh, one training time)
   solved to theta = 3 with RK4 dt = 0.05, on 1 and on ``threads`` threads: all clusters go
   through one numba kernel call per right-hand side (target: under 3 s on 2 cores).
3. The naive approach against hdae's, both against a converged reference (RK4 dt / 4, twice the
   Gauss-Hermite points or 2^15 Sobol points), on fig2 (tanh) and fig1 (ReLU) over their tau:
   naive = validation/naive_ode.py (plain numpy written from the derivation note, fresh Monte-Carlo
   samples, 2000 for every Gaussian integral of every right-hand side, Euler steps of 0.01);
   hdae with its defaults and with a cheaper setting (fewer nodes, RK4 dt 0.1) whose error is still
   below the naive one's: the speed-up at a smaller error (target: >= 300x).
   Error = max over checkpoints and entries of |x - x_ref| / max|x_ref|, for Q, M and G.
The load average is printed: the machine is shared, so compare ratios taken in one run.
"""
from __future__ import annotations

import dataclasses
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's hdae, not an installed one

import numba  # noqa: E402
import numpy as np  # noqa: E402

import hdae  # noqa: E402
from hdae.config import ConfigError  # noqa: E402
from hdae.theory import quadrature, solve  # noqa: E402
from hdae.theory.ode import State, TrainingSetup, integrate  # noqa: E402
from hdae.theory.solve import initial_state  # noqa: E402
from validation import naive_ode  # noqa: E402

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
    """Best of ``repeat`` timed calls after one untimed (compilation, caches); repeat=0: one timed call."""
    if repeat == 0:
        t = time.perf_counter()
        out = fn()
        return time.perf_counter() - t, out
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
    """validation/naive_ode.py: plain numpy, fresh Monte-Carlo samples (``n_mc``) for every Gaussian
    integral of every right-hand side, Euler steps of ``dt``; returns packed states at ``t_out``."""
    out = naive_ode.naive_solve(state0.q, state0.m, state0.g, state0.b, setup.reduced, setup.activation,
                                setup.alphas, setup.betas, setup.omegas, setup.lr, setup.weight_decay, t_out,
                                np.random.default_rng(seed), n_mc, dt)
    return np.array([State(q, m, g, b).pack() for q, m, g, b in out])


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
    sections = set(args.get("sections", "1,2,3").split(","))
    if "1" in sections:
        section_examples()
    if "2" in sections:
        section_clusters(threads)
    if "3" in sections and args.get("naive", "1") == "1":
        section_naive()


def section_examples():
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



def section_clusters(threads):
    print("\n2. 400 clusters, r = 2, tanh, one training time, RK4 dt = 0.05 to theta = 3")
    p400 = hdae.load_problem(CIRCLE_400)
    for n in sorted({1, threads}):
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
        t, res = timed(lambda: solve(p400), repeat=1)
        print(f"  {n} thread(s): {t:.2f} s  ({res.attrs['n_rhs']} right-hand sides, {res.attrs['quadrature_nodes']} "
              f"nodes x 400 clusters; target < 3 s on 2 cores)")
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))


def section_naive():
    print("\n3. naive (validation/naive_ode.py: plain numpy, fresh Monte-Carlo samples, 2000 per Gaussian "
          "integral, Euler dt = 0.01) vs hdae, against a converged reference (RK4 dt/4, GH 2x points or "
          "Sobol 2^15 points); hdae: its defaults, and a cheaper setting whose error is still below the naive one's")
    print(f"{'problem':<8}{'method':<34}{'time s':>9}{'error Q, M, G':>28}{'max err':>9}{'speed-up':>10}")
    for name, cheap in (("fig2", ("gauss-hermite", 8, 0.1)), ("fig1", ("sobol", 64, 0.1))):
        p = hdae.load_problem(example=name)
        setup, s0, t_out = setup_of(p)
        n = setup.nodes
        fine = (quadrature.gauss_hermite(n.dim, 2 * n.size) if n.rule == "gauss-hermite"
                else quadrature.sobol(n.dim, 2**15))
        ref = integrate(s0, dataclasses.replace(setup, nodes=fine), t_out, "rk4", p.theory.dt / 4).y
        t_n, ys_naive = timed(lambda: naive_solve(setup, s0, t_out), repeat=0)
        en = errors(ys_naive, ref, setup, s0.shapes)
        rows = [("naive", t_n, en)]
        cheap_nodes = (quadrature.gauss_hermite(n.dim, cheap[1]) if cheap[0] == "gauss-hermite"
                       else quadrature.sobol(n.dim, cheap[1]))
        for label, nodes, dt in ((f"hdae defaults ({len(n.weights)} nodes, dt {p.theory.dt:g})", n, p.theory.dt),
                                 (f"hdae {len(cheap_nodes.weights)} nodes, dt {cheap[2]:g}", cheap_nodes, cheap[2])):
            st = dataclasses.replace(setup, nodes=nodes)
            t_h, sol = timed(lambda: integrate(s0, st, t_out, "rk4", dt), repeat=5)
            rows.append((label, t_h, errors(sol.y, ref, setup, s0.shapes)))
        for label, t, e in rows:
            worst = max(e.values())
            ratio = "" if label == "naive" else (f"{t_n / t:>9.0f}x" if worst < max(en.values()) else "  (error!)")
            print(f"{name:<8}{label:<34}{t:>9.3f}{', '.join(f'{e[k]:.1e}' for k in ('Q', 'M', 'G')):>28}"
                  f"{worst:>9.1e}{ratio:>10}")


if __name__ == "__main__":
    main()
