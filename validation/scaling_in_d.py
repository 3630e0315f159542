"""The theory-simulation gap against d: it shrinks like d^(-1/2) for Q, M, G (b: like 1/d).

Usage: python validation/scaling_in_d.py [example=fig2] [replicas=6] [d_list=500,1000,2000,4000,8000]
For each d, the simulation runs `replicas` independent replicas; the theory follows each from its
own w_0. Printed: per d the median over replicas of the relative deviation (max over checkpoints
and components, over the statistic's scale), then the fitted log-log exponent per statistic.
"""
from __future__ import annotations

import sys
import time

import numpy as np

import hdae
from hdae.simulation import simulate
from hdae.theory import solve

from _common import arg, fit_exponent, relative_deviation

STATS = ("Q", "M", "G", "b")


def main():
    example, replicas = arg(1, "fig2"), arg(2, 6)
    ds = [int(x) for x in (sys.argv[3] if len(sys.argv) > 3 else "500,1000,2000,4000,8000").split(",")]
    table = {s: [] for s in STATS}
    print(f"example {example}, {replicas} replicas per d")
    print(f"{'d':>6}" + "".join(f"{s:>10}" for s in STATS) + f"{'sim s':>9}")
    for d in ds:
        problem = hdae.load_problem(example=example, d=d)
        t0 = time.perf_counter()
        sim = simulate(problem, replicas=replicas, sample=False)
        elapsed = time.perf_counter() - t0
        th = solve(init_from=sim, sample=False)
        row = []
        for s in STATS:
            med = float(np.median(relative_deviation(th, sim, s)))
            table[s].append(med)
            row.append(med)
        print(f"{d:>6}" + "".join(f"{v:>10.4f}" for v in row) + f"{elapsed:>9.1f}", flush=True)
    print("fitted exponent of d: " + ", ".join(f"{s} {fit_exponent(ds, table[s]):+.2f}" for s in STATS))


if __name__ == "__main__":
    main()
