"""Theory speed: wall time of `solve` per example after compilation, its independence of d,
and peak Python memory. Usage: python validation/benchmark_solve.py"""
from __future__ import annotations

import time
import tracemalloc

import hdae
from hdae.config import ConfigError
from hdae.theory import solve


def timed(problem, repeat=3):
    solve(problem)  # compile / warm caches
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        res = solve(problem)
        best = min(best, time.perf_counter() - t)
    return best, res


def main():
    print(f"{'example':<12}{'train s':>9}{'+sample s':>11}{'rhs':>6}{'nodes':>7}{'rule':>15}{'bins':>6}")
    for name in hdae.example_names():
        try:
            p = hdae.load_problem(example=name)
        except ConfigError as err:
            print(f"{name:<12} skipped ({err})")
            continue
        t_train, res = timed(p.with_overrides("sample.thetas=[]"))
        t_all, _ = timed(p, repeat=1)
        print(f"{name:<12}{t_train:>9.3f}{t_all:>11.3f}{res.attrs['n_rhs']:>6}{res.attrs['quadrature_nodes']:>7}"
              f"{res.attrs['quadrature']:>15}{res.attrs['n_bins']:>6}")
    base = hdae.load_problem(example="fig1").with_overrides("sample.thetas=[]", "train.tau=3.0")
    print("\nfig1 to theta = 3 against d (realised initial statistics; the limit has no d at all):")
    for d in (1000, 8000, 64000):
        t, _ = timed(base.with_overrides(f"target.d={d}"))
        print(f"  d = {d:>6}: {t:.3f} s")
    t, _ = timed(base.with_overrides('theory.init="limit"'))
    print(f"  d -> inf  : {t:.3f} s")
    tracemalloc.start()
    solve(base)
    peak = tracemalloc.get_traced_memory()[1]
    print(f"peak traced memory of one fig1 solve: {peak / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
