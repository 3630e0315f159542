"""The paper's Figs. 1, 2, 3 (generated densities) and 6 (training) with theory over a d = 1000
simulation, into validation/out/ (fig1.png is also copied to validation/figures/ for the README).

Usage: python validation/paper_figures.py [replicas=2]
Reuses validation/out/<name>_{sim,theory}.h5 written by agreement.py when present.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import hdae
from hdae import plotting
from hdae.simulation import simulate
from hdae.theory import solve

from _common import OUT, arg

FIGURES = Path(__file__).resolve().parent / "figures"


def results(name: str, replicas: int):
    sim_path, th_path = OUT / f"{name}_sim.h5", OUT / f"{name}_theory.h5"
    if sim_path.exists() and th_path.exists():
        return hdae.read(th_path), hdae.read(sim_path)
    sim = simulate(hdae.load_problem(example=name), replicas=replicas)
    th = solve(init_from=sim)
    sim.write(sim_path, force=True)
    th.write(th_path, force=True)
    return th, sim


def main():
    replicas = arg(1, 2)
    OUT.mkdir(exist_ok=True)
    FIGURES.mkdir(exist_ok=True)
    for name, what in (("fig1", "density"), ("fig2", "density"), ("fig3", "density"), ("fig6", "training"),
                       ("fig1", "training")):
        th, sim = results(name, replicas)
        path = plotting.plot_file(th, sim, OUT / f"{name}_{what}.png", what)
        print(f"wrote {path}")
    shutil.copy(OUT / "fig1_density.png", FIGURES / "fig1.png")
    print(f"copied {FIGURES / 'fig1.png'}")


if __name__ == "__main__":
    main()
