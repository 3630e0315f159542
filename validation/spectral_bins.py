"""Accuracy of a binned spectrum: the MNIST-sevens example with its 782 bulk eigenvalues merged into
fewer bins (equal-width eigenvalue intervals, mass-weighted mean eigenvalue; Lambda is kept exactly).
In the d -> infinity limit this problem has G = 0 (its spikes start, and stay, exactly at 0).

Usage: python validation/spectral_bins.py
Prints, per number of bins, the max deviation of Q, G and b from the exact spectrum (relative to
scale) and the solve time, in the d -> infinity limit and at the realised d = 784.
"""
from __future__ import annotations

import time

import numpy as np

import hdae
from hdae.theory import solve


def main():
    for mode in ("limit", "realised"):
        base = hdae.load_problem(example="fig3", overrides=[f'theory.init="{mode}"', "sample.thetas=[]",
                                                           "train.tau=2.5"])
        exact = solve(base)
        print(f"{mode}: exact spectrum, {exact.attrs['n_bins']} bins")
        print(f"{'bins':>6}{'Q':>10}{'G':>10}{'b':>10}{'time s':>9}")
        for n in (5, 10, 25, 50, 100, 200, 400, 0):
            p = base.with_overrides(f"theory.spectral_bins={n}")
            t = time.perf_counter()
            r = solve(p)
            el = time.perf_counter() - t
            dev = [np.abs(getattr(r.train, k) - getattr(exact.train, k)).max() / max(np.abs(getattr(exact.train, k)).max(),
                                                                                    1e-300) for k in ("Q", "G", "b")]
            print(f"{r.attrs['n_bins'] - 2:>6}" + "".join(f"{v:>10.2e}" for v in dev) + f"{el:>9.3f}")


if __name__ == "__main__":
    main()
