"""Generated densities across training times (paper Figs. 1 and 2, and the beyond-the-paper
cases): theory (Corollary 2.3) contours over the simulation's histogram, training statistics
and two-sample distances against the sampling-noise floor.

The simulation runs ``replicas`` independent replicas; the theory follows each from its exact
w_0 (``hdae.solve(init_from=sim)``). Checks: per statistic, the worst replica's deviation
relative to scale (tolerance stated at d = 1000, scaled by d^-1/2); b; and the energy distance
of the projected samples, theory vs simulation, over the simulation's own two-half floor.
"""
from __future__ import annotations

from hdae import plotting

from .._common import Context, Outcome
from ._agree import sample_checks, simulate_and_solve, training_checks

FULL = {"d": 1000, "replicas": 4, "n": 4000}
QUICK = {"d": 300, "replicas": 2, "n": 1000}


def run(ctx: Context, name: str, title: str, example: str, overrides=(), quick_overrides=(), tol=None,
        b_tol: float = 0.01,
        ratio_tol: float = 3.0, cov_tol: float | None = None, training_plot: bool = False,
        caption: str = "") -> Outcome:
    size = QUICK if ctx.quick else FULL
    if isinstance(ratio_tol, (tuple, list)):  # (quick, full)
        ratio_tol = ratio_tol[0] if ctx.quick else ratio_tol[1]
    overrides = [*overrides, *(quick_overrides if ctx.quick else ())]
    problem = ctx.problem(example, d=size["d"], overrides=[f"sample.n={size['n']}", *overrides])
    out = Outcome(name, title)
    out.settings = (f"example `{example}`" + (f" with `{'`, `'.join(overrides)}`" if overrides else "")
                    + f"; d = {problem.d}, {size['replicas']} replicas, {problem.sample.n} samples per time, "
                      f"seed {problem.seed}")
    sim, th, t_sim, t_th = simulate_and_solve(problem, size["replicas"])
    out.notes.append(f"simulate {t_sim:.1f} s, solve {t_th:.1f} s")
    tol = tol or {"Q": 0.06, "M": 0.06, "G": 0.06}
    training_checks(out, th, sim, {**tol, "b": b_tol})
    sample_checks(out, th, sim, ratio_tol, cov_tol)
    fig = plotting.plot_densities(th, sim, replica=0, ncols=min(4, len(sim.sample.theta)),
                                  title=f"{title}: theory (blue contours) over simulation d = {sim.d} (orange), "
                                        f"target (green)")
    ctx.figure(out, fig, name, caption or f"{title}: generated density projected on the observation space, "
                                           f"one panel per training time tau")
    if training_plot:
        fig = plotting.plot_training(th, sim, stats=("M", "Q", "b"), ncols=3,
                                     title=f"{title}: summary statistics, theory (dashed) vs simulation (solid)")
        ctx.figure(out, fig, f"{name}_training", f"{title}: summary statistics against training time")
    return out
