"""Fig. 6: the summary statistics M, Q and b against training time theta, theory (dashed) over
the simulation replicas (solid: mean, band: min-max), three-cluster mixture, r = 2 tanh from a
warm start along the centroids. Checks: worst-replica relative deviation of Q and M (tolerance
at d = 1000 scaled by d^-1/2), b."""
from __future__ import annotations

from hdae import plotting

from .._common import Context, Outcome
from ._agree import simulate_and_solve, training_checks

FULL = {"d": 1000, "replicas": 8}
QUICK = {"d": 300, "replicas": 3}


def run(ctx: Context, name: str, title: str, example: str, tol=None, b_tol: float = 0.01) -> Outcome:
    size = QUICK if ctx.quick else FULL
    problem = ctx.problem(example, d=size["d"])
    out = Outcome(name, title)
    out.settings = f"example `{example}`; d = {problem.d}, {size['replicas']} replicas, seed {problem.seed}"
    sim, th, t_sim, t_th = simulate_and_solve(problem, size["replicas"], sample=False)
    out.notes.append(f"simulate {t_sim:.1f} s, solve {t_th:.1f} s")
    training_checks(out, th, sim, {**(tol or {"Q": 0.25, "M": 0.25}), "b": b_tol})
    fig = plotting.plot_training(th, sim, stats=("M", "Q", "b"), ncols=3,
                                 title=f"{title}: theory (dashed) vs simulation d = {sim.d} (solid, "
                                       f"{sim.n_replicas} replicas)")
    ctx.figure(out, fig, name, f"{title}: theory (dashed, mean of the trajectories started from each replica's w_0) "
                               f"and simulation (solid: replica mean, band: min-max over replicas)")
    return out
