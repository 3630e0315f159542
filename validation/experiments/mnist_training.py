"""Fig. 7: Q, G and b against training time for MNIST sevens (d = 784, r = 2 tanh, random start):
the theory (Result 2.1, dashed) for the Gaussian with the sevens' covariance, a simulation trained
on that Gaussian (solid), and a simulation trained on the REAL sevens (dotted), cycled through the
images in the Gaussian target's principal-eigenbasis coordinates (``_sgd.RealImages``), from
the same initial weights.

The random start breaks the symmetries w_a -> -w_a and a <-> b differently in each replica, so
the real-vs-Gaussian gap is measured on invariants: the eigenvalues of Q, the singular values
of G (overlaps with the top-2 principal directions) and b, replica means, max over theta, over
the statistic's scale, and in units of the Gaussian replicas' standard error.
"""
from __future__ import annotations

import numpy as np

from hdae import plotting, targets

from .._common import Context, Outcome, mnist_missing, se_tolerance, fmt, md_table
from ._agree import spread_ratio, training_checks
from .mnist_images import gaussian_run
from ._sgd import RealImages, train



def invariants(Q, G, b) -> dict:
    """Sign- and permutation-invariant summaries, arrays (n_rep, n_ckpt, ...)."""
    return {"eig Q": np.linalg.eigvalsh(Q)[..., ::-1], "sv G": np.linalg.svd(G, compute_uv=False), "b": b[..., None]}


def run(ctx: Context, name: str, title: str, b_tol: float = 0.02, se_tol: float | None = None,
        real_b_tol: float = 0.05, real_tol: float = 0.5) -> Outcome:
    out = Outcome(name, title)
    if mnist_missing(out):
        return out
    problem, sim, th, t_sim, t_th = gaussian_run(ctx, sample=False)
    cfg = problem.config["target"]
    out.settings = (f"example `fig3` (MNIST sevens, {cfg['data_dir']}); d = {problem.d}, {sim.n_replicas} replicas "
                    f"of each simulation, seed {problem.seed}")
    images = targets.load_mnist_digit(targets.resolve_data_dir(cfg["data_dir"]), cfg["digit"])
    data = RealImages(images, cfg["pixel_scale"])
    real = train(problem, replicas=sim.n_replicas, target=data)
    out.notes.append(("Gaussian simulation and theory shared with fig3_4; " if t_sim == 0 else "")
                     + f"simulate {t_sim:.1f} s, solve {t_th:.1f} s; real-data SGD over {data.n} sevens "
                     f"({real.theta[-1] * problem.d / (2 * problem.train.lr) / data.n:.1f} epochs)")
    training_checks(out, th, sim, {"b": b_tol}, label=" (Gaussian target)")
    se_tol = se_tol or se_tolerance(sim.n_replicas)
    for stat in ("Q", "G"):
        out.check(f"Gaussian: {stat} |theory mean - sim mean| / standard error (max)", spread_ratio(th, sim, stat),
                  se_tol, note=f"{sim.n_replicas} replicas; unstable start")
    # the real-data gap, on invariants
    inv_g = invariants(sim.train.Q, sim.train.G, sim.train.b)
    inv_r = invariants(real.stats["Q"], real.stats["G"], real.stats["b"])
    inv_t = invariants(th.train.Q, th.train.G, th.train.b)
    rows = []
    gaps = {}
    for k in inv_g:
        g, r, t = inv_g[k], inv_r[k], inv_t[k]
        scale = np.abs(g).max()
        se = g.std(0, ddof=1) / np.sqrt(g.shape[0])
        se_r = r.std(0, ddof=1) / np.sqrt(r.shape[0])
        gap = np.abs(r.mean(0) - g.mean(0))
        gaps[k] = float(gap.max() / scale)
        rows.append([k, fmt(scale), f"{gap.max() / scale:.2%}",
                     fmt(float((gap / np.maximum(np.hypot(se, se_r), 1e-3 * scale)).max())),
                     f"{np.abs(t.mean(0) - g.mean(0)).max() / scale:.2%}"])
    out.table("Real sevens vs their Gaussian equivalent (replica means, max over theta)",
              md_table(["invariant", "scale", "gap real-Gaussian / scale", "gap / combined standard error",
                        "for reference: theory-Gaussian / scale"], rows))
    out.check("real vs Gaussian data: b gap / scale", gaps["b"], real_b_tol,
              note="b follows the average eigenvalue, which the two targets share")
    out.check("real vs Gaussian data: largest gap of eig Q, sv G / scale", max(gaps["eig Q"], gaps["sv G"]), real_tol,
              note="a measured property of real data, not a theory error: bound from the measured gap")
    _figure(ctx, out, th, sim, real, title)
    return out


def _figure(ctx, out, th, sim, real, title):
    from matplotlib.lines import Line2D

    fig = plotting.plot_training(th, sim, stats=("Q", "G", "b"), ncols=3,
                                 title=f"{title}: theory (dashed), Gaussian simulation (solid), real sevens (dotted); "
                                       f"d = {sim.d}")
    axes = [ax for ax in fig.axes if ax.get_visible()][:3]
    for ax, stat in zip(axes, ("Q", "G", "b")):
        y = real.stats[stat].mean(0)
        if stat == "b":
            ax.plot(real.theta, y, ls=":", lw=2.2, color=plotting.PALETTE[0])
            continue
        for k, ((a, c), _) in enumerate(plotting._entries(stat, y.shape[1:])):
            ax.plot(real.theta, y[:, a, c], ls=":", lw=2.2, color=plotting.PALETTE[k % len(plotting.PALETTE)])
    fig.legends[-1].remove()
    fig.legend(handles=[Line2D([], [], color="0.2", lw=2.2, alpha=0.75, label=f"Gaussian simulation (mean of "
                                                                                f"{sim.n_replicas}, band min-max)"),
                        Line2D([], [], color="0.2", lw=2.2, ls=":", label="real sevens (mean)"),
                        Line2D([], [], color="0.2", lw=1.3, ls=(0, (4, 2.5)), label="theory (mean)")],
               loc="outside lower center", ncol=3, frameon=False)
    ctx.figure(out, fig, "fig7", f"{title}: replica means; entries of Q and G change sign with the units' random "
                                 f"symmetry breaking, so the gap is quantified on invariants (table)")
