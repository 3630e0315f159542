"""Model-collapse speed and accuracy of the theory: one generation on a discretised generated target.

Usage: python validation/benchmark_generations.py [points=400] [threads=0 (keep numba's default)]

Per example (fig1: ReLU r = 4, Sobol nodes; gaussian_decay and fig2: tanh r = 2, Gauss-Hermite),
from the d -> infinity start: generation 0 is solved once, then generation 1 is solved from its
generated target with ``points`` k-means points (target of issue 14: a 400-point generation
under 3 s on a 2-core CPU). Printed per example: the time to build the target (latent samples +
k-means), the time to integrate generation 1 (training only, after compilation), and the change
of its final Q, G and overlap when the number of points is halved and doubled (relative to
scale): the discretisation error at this number of points. The load average is printed: the
machine may be shared, so read the numbers with it.
"""
from __future__ import annotations

import os
import sys
import time

import numba
import numpy as np

import hdae
from hdae.theory import quadrature
from hdae.theory.ode import TrainingSetup
from hdae.theory.solve import _solve_generation, generated_target, generation_start


def _one(problem, th0, points):
    p = problem.with_overrides(**{"generations.points": points, "generations.count": 2})
    t0 = time.perf_counter()
    gen = generated_target(p, th0.train, 0, 0, None)
    t_target = time.perf_counter() - t0
    start = generation_start(p, [gen], 1, None, "limit")
    tr = p.train
    nodes = quadrature.choose(TrainingSetup.integration_dim(p.model.width, len(tr.times)), p.model.activation,
                              p.theory.quadrature, p.theory.nodes)
    t0 = time.perf_counter()
    run = _solve_generation(p, start, nodes, tr.checkpoints, [], 1, False, 2)
    t_solve = time.perf_counter() - t0
    final = np.concatenate([run.train.Q[0, -1].ravel(), run.train.G[0, -1].ravel(), run.train.overlap[0, -1].ravel()])
    return t_target, t_solve, final, gen.n_clusters


def main(points: int = 400, threads: int = 0):
    if threads:
        numba.set_num_threads(threads)
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; numba threads {numba.get_num_threads()}")
    print(f"{'example':<16}{'J':>6}{'target s':>10}{'gen-1 solve s':>15}{'|J/2 - J|':>12}{'|2J - J|':>11}")
    for name in ("fig1", "gaussian_decay", "fig2"):
        problem = hdae.load_problem(example=name, overrides=["theory.init=limit"])
        th0 = hdae.solve(problem, sample=False)
        _one(problem, th0, 16)  # compile
        tt, ts, ref, J = _one(problem, th0, points)
        _, _, half, _ = _one(problem, th0, points // 2)
        _, _, double, _ = _one(problem, th0, 2 * points)
        scale = np.abs(ref).max()
        print(f"{name:<16}{J:>6}{tt:>10.2f}{ts:>15.2f}{np.abs(half - ref).max() / scale:>12.2e}"
              f"{np.abs(double - ref).max() / scale:>11.2e}")


if __name__ == "__main__":
    args = dict(a.split("=") for a in sys.argv[1:])
    main(int(args.get("points", 400)), int(args.get("threads", 0)))
