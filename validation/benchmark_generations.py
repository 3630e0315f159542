"""Model-collapse speed and accuracy of the theory: one generation on a discretised generated target.

Usage: python validation/benchmark_generations.py [points=400] [threads=0 (keep numba's default)]
       [examples=fig1,gaussian_decay,fig2]

Per example (fig1: ReLU r = 4, Sobol nodes; gaussian_decay and fig2: tanh r = 2, Gauss-Hermite),
from the d -> infinity start: generation 0 is solved once, then generation 1 is solved from its
generated target with ``points`` k-means points (target of issue 14: a 400-point generation
under 3 s on a 2-core CPU). Printed per example: the time to build the target (latent samples +
k-means), the time to integrate generation 1 (training only, after compilation), and the change
of its final Q, G and overlap when the number of points is halved and doubled (relative to
scale): the discretisation error at this number of points; and when the quadrature nodes are halved
and quadrupled (Sobol points, or Gauss-Hermite points per dimension): the quadrature error. The load average is printed: the
machine may be shared, so read the numbers with it.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's hdae, not an installed one

import numba  # noqa: E402
import numpy as np  # noqa: E402

import hdae  # noqa: E402
from hdae.theory import quadrature  # noqa: E402
from hdae.theory.ode import TrainingSetup  # noqa: E402
from hdae.theory.solve import _solve_generation, generated_target, generation_start  # noqa: E402


def _one(problem, th0, points, node_factor=1.0):
    p = problem.with_overrides(**{"generations.points": points, "generations.count": 2})
    t0 = time.perf_counter()
    gen = generated_target(p, th0.train, 0, 0, None)
    t_target = time.perf_counter() - t0
    start = generation_start(p, [gen], 1, None, "limit")
    tr = p.train
    nodes = quadrature.choose(TrainingSetup.integration_dim(p.model.width, len(tr.times)), p.model.activation,
                              p.theory.quadrature, p.theory.nodes)
    if node_factor != 1.0:  # the same rule with a multiple of the points (per dimension for Gauss-Hermite)
        nodes = quadrature.choose(nodes.dim, p.model.activation, nodes.rule, max(2, int(nodes.size * node_factor)))
    t0 = time.perf_counter()
    run = _solve_generation(p, start, nodes, tr.checkpoints, [], 1, False, 2)
    t_solve = time.perf_counter() - t0
    final = np.concatenate([run.train.Q[0, -1].ravel(), run.train.G[0, -1].ravel(), run.train.overlap[0, -1].ravel()])
    return t_target, t_solve, final, gen.n_clusters


def main(points: int = 400, threads: int = 0, names=("fig1", "gaussian_decay", "fig2")):
    if threads:
        numba.set_num_threads(threads)
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; numba threads {numba.get_num_threads()}")
    print(f"{'example':<16}{'J':>6}{'nodes':>7}{'target s':>10}{'gen-1 solve s':>15}{'|J/2 - J|':>12}{'|2J - J|':>11}"
          f"{'|N/2 - N|':>11}{'|4N - N|':>11}")
    for name in names:
        problem = hdae.load_problem(example=name, overrides=["theory.init=limit"])
        th0 = hdae.solve(problem, sample=False)
        _one(problem, th0, 16)  # compile
        tt, ts, ref, J = _one(problem, th0, points)
        _, _, half, _ = _one(problem, th0, points // 2)
        _, _, double, _ = _one(problem, th0, 2 * points)
        _, _, nhalf, _ = _one(problem, th0, points, 0.5)
        _, _, nfour, _ = _one(problem, th0, points, 4.0)
        scale = np.abs(ref).max()
        n_nodes = len(quadrature.choose(TrainingSetup.integration_dim(problem.model.width, len(problem.train.times)),
                                        problem.model.activation, problem.theory.quadrature,
                                        problem.theory.nodes).weights)
        print(f"{name:<16}{J:>6}{n_nodes:>7}{tt:>10.2f}{ts:>15.2f}{np.abs(half - ref).max() / scale:>12.2e}"
              f"{np.abs(double - ref).max() / scale:>11.2e}{np.abs(nhalf - ref).max() / scale:>11.2e}"
              f"{np.abs(nfour - ref).max() / scale:>11.2e}", flush=True)


if __name__ == "__main__":
    args = dict(a.split("=") for a in sys.argv[1:])
    main(int(args.get("points", 400)), int(args.get("threads", 0)),
         tuple(args.get("examples", "fig1,gaussian_decay,fig2").split(",")))
