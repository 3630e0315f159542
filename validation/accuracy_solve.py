"""Accuracy of the default numerical settings: every shipped example against a converged solve.

Usage: python validation/accuracy_solve.py [tol=1e-3]

For each example, `solve` with the defaults (theory.dt, theory.quadrature = auto) and with a
converged setting (dt / 4; Gauss-Hermite with twice the points per dimension, or Sobol with 8x
the points); prints the deviation max |x - x_ref| / max |x_ref| over all checkpoints and entries,
for Q, M, G and b, and whether every one is below ``tol`` (the target: 1e-3 of scale).
"""
from __future__ import annotations

import sys
import time

import numpy as np

import hdae
from hdae.config import ConfigError
from hdae.theory import solve


def deviation(a, b) -> float:
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-300))


def main():
    args = dict(a.split("=", 1) for a in sys.argv[1:] if "=" in a)
    tol = float(args.get("tol", 1e-3))
    print(f"{'example':<12}{'rule':>14}{'nodes':>7}{'dt':>6} | {'Q':>8}{'M':>9}{'G':>9}{'b':>9} | {'ok':>3}{'s':>6}")
    all_ok = True
    for name in hdae.example_names():
        try:
            p = hdae.load_problem(example=name).with_overrides("sample.thetas=[]")
        except ConfigError as err:
            print(f"{name:<12} skipped ({err})")
            continue
        t = time.perf_counter()
        res = solve(p)
        el = time.perf_counter() - t
        rule, size = res.attrs["quadrature"], int(res.attrs["quadrature_size"])
        fine_size = 2 * size if rule == "gauss-hermite" else 8 * size
        ref = solve(p.with_overrides(f'theory.quadrature="{rule}"', f"theory.nodes={fine_size}",
                                     f"theory.dt={p.theory.dt / 4!r}"))
        devs = [deviation(getattr(res.train, k), getattr(ref.train, k)) for k in ("Q", "M", "G", "b")]
        ok = max(devs) < tol
        all_ok &= ok
        print(f"{name:<12}{rule:>14}{res.attrs['quadrature_nodes']:>7}{p.theory.dt:>6.3g} | "
              + "".join(f"{v:>9.1e}" for v in devs) + f" | {'yes' if ok else 'NO':>3}{el:>6.2f}")
    print(f"\nall examples within {tol:g} of scale: {'yes' if all_ok else 'NO'}")


if __name__ == "__main__":
    main()
