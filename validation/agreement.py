"""Theory vs simulation for every shipped example at d = 1000 (MNIST only when the data is present).

Usage: python validation/agreement.py [replicas=4] [d=1000]
The theory starts from each replica's exact w_0; the table gives, per statistic, the worst
replica's max deviation, the statistic's scale, the replicas' spread (std around their mean)
and the deviation of the replica means (the systematic part, which should be at the noise level).
"""
from __future__ import annotations

import time

import hdae
from hdae import compare
from hdae.config import ConfigError
from hdae.simulation import simulate
from hdae.theory import solve

from _common import OUT, arg


def main():
    replicas, d = arg(1, 4), arg(2, 1000)
    OUT.mkdir(exist_ok=True)
    for name in hdae.example_names():
        try:
            problem = hdae.load_problem(example=name, d=d if name != "fig3" else None)
        except ConfigError as err:
            print(f"== {name}: skipped ({err})")
            continue
        t0 = time.perf_counter()
        sim = simulate(problem, replicas=replicas)
        t1 = time.perf_counter()
        th = solve(init_from=sim)
        t2 = time.perf_counter()
        sim.write(OUT / f"{name}_sim.h5", force=True)
        th.write(OUT / f"{name}_theory.h5", force=True)
        print(f"== {name}: d = {sim.d}, {replicas} replicas; simulate {t1 - t0:.1f} s, solve {t2 - t1:.2f} s")
        rows = compare.compare_training(th, sim)
        print(compare.format_training(rows))
        if th.sample is not None:
            print(compare.format_samples(compare.compare_samples(th, sim)))
        print()


if __name__ == "__main__":
    main()
