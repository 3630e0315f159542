"""Figs. 3 and 4: the Gaussian with the covariance of MNIST sevens (d = 784), r = 2 tanh DAE.

Fig. 3: the generated density in the top-2 principal plane across training times (theory
contours over the simulation's histogram). Fig. 4: generated images from ONE common initial
noise X_0 across training times: the d-dim samples X (``hdae.simulation.sampler.generate``)
drawn as 28 x 28 images (pixels = 300 (V X + mean), V the principal eigenbasis the target lives
in), their projection on the top-2 principal plane, and the theory's prediction of that
projection for the same noise: Z follows the r-dim recursion of Result B.1 from Z_0 = w^T X_0/sqrt d
(w: the simulation's weights at that time) with the theory's Q and b, and

    E^T X_T = G^T Q^+ Z_T + c_T (E^T X_0 - G^T Q^+ Z_0),   c_T = prod_k (1 + dt_k A_k)

(eps = 0: the part of X orthogonal to the weights is only rescaled), with the theory's G.

This problem learns its principal directions from an unstable O(d^-1/2) start, which amplifies
finite-d noise: the training checks compare replica means against the replicas' standard error,
and b (which follows the average eigenvalue) directly.
"""
from __future__ import annotations

import numpy as np
import torch

from hdae import plotting, schedules, targets
from hdae.simulation.sampler import generate
from hdae.theory import transport
from hdae.theory.linalg import pinv_sym

from .._common import Context, Outcome, mnist_missing, se_tolerance, fmt, md_table
from ._agree import sample_checks, simulate_and_solve, spread_ratio, training_checks
from ._sgd import RealImages, train

FULL = {"replicas": 8, "n": 4000, "paths": 256}
QUICK = {"replicas": 3, "n": 1000, "paths": 64}


def gaussian_run(ctx: Context, sample: bool = True):
    """(problem, simulation, theory, seconds simulating, seconds solving) of the MNIST-sevens
    Gaussian at this run's size; shared with Fig. 7 (the same training) through ``ctx.cache``."""
    size = QUICK if ctx.quick else FULL
    problem = ctx.problem("fig3", overrides=[f"sample.n={size['n']}"])
    return (problem, *simulate_and_solve(problem, size["replicas"], sample=sample, cache=ctx.cache))


def run(ctx: Context, name: str, title: str, b_tol: float = 0.02, se_tol: float | None = None,
        path_tol: float = 0.35,
        ratio_tol: float | None = None) -> Outcome:
    size = QUICK if ctx.quick else FULL
    out = Outcome(name, title)
    if mnist_missing(out):
        return out
    problem, sim, th, t_sim, t_th = gaussian_run(ctx)
    out.settings = (f"example `fig3` (MNIST sevens from {problem.config['target']['data_dir']}, pixels/300, centered); "
                    f"d = {problem.d}, {size['replicas']} replicas, {problem.sample.n} samples per time, "
                    f"{size['paths']} common-noise paths for Fig. 4, seed {problem.seed}")
    out.notes.append(f"simulate {t_sim:.1f} s, solve {t_th:.1f} s")
    training_checks(out, th, sim, {"b": b_tol})
    se_tol = se_tol or se_tolerance(sim.n_replicas)
    for stat in ("Q", "G"):
        out.check(f"{stat}: |theory mean - simulation mean| / standard error of the simulation mean (max)",
                  spread_ratio(th, sim, stat), se_tol,
                  note=f"{sim.n_replicas} replicas; unstable start: held to the replicas' own spread")
    sample_checks(out, th, sim, ratio_tol or np.inf, checks=False)  # compared through their variance, below
    var_th = th.sample.projected.var(2).mean(0)  # (n_s, R): variance along each principal direction
    var_sm = sim.sample.projected.var(2).mean(0)
    sd_sm = sim.sample.projected.var(2).std(0, ddof=1) / np.sqrt(sim.n_replicas)
    body = [[fmt(t), fmt(var_sm[j, 0]), fmt(var_th[j, 0]), fmt(var_sm[j, 1]), fmt(var_th[j, 1])]
            for j, t in enumerate(sim.sample.theta)]
    out.table("Generated variance along the principal directions (replica means)",
              md_table(["theta", "sim var x1", "theory var x1", "sim var x2", "theory var x2"], body))
    dev = np.abs(var_th - var_sm) / np.maximum(sd_sm, 1e-3 * var_sm.max())
    out.check("generated variance per principal direction: |theory - sim| / standard error (max over theta)",
              float(dev.max()), se_tol)
    # the replica whose second principal direction has grown most by the last time (the paper's
    # Fig. 3 shows that escape; when it happens depends on the random start)
    rep = int(np.argmax(np.abs(sim.train.G[:, -1, :, 1]).max(1)))
    fig = plotting.plot_densities(th, sim, replica=rep, ncols=3,
                                  title=f"Fig. 3: MNIST-sevens Gaussian in its top-2 principal plane; theory (blue) "
                                        f"over simulation d = {sim.d} (orange), target (green)")
    ctx.figure(out, fig, "fig3", f"Fig. 3: generated density in the top-2 principal plane of the MNIST-sevens "
                                 f"Gaussian, per training time tau: simulation replica {rep} of {sim.n_replicas} (the one "
                                 f"whose second principal direction has grown most) and the theory trajectory from its "
                                 f"w_0")
    _fig4(ctx, out, problem, th, size["paths"], path_tol)
    return out


def _theory_projection(Q, G, b, coeffs, activation, z0, e0):
    """E^T X_T predicted for initial noise with Z_0 = z0 (n, r) and E^T X_0 = e0 (n, R)."""
    zT = transport.sample_latent(Q, b, coeffs, len(z0), activation, np.random.default_rng(0), z0=z0)
    QpG = pinv_sym(Q) @ G
    c = float(np.prod(1.0 + coeffs.dt * coeffs.drift_scale(b)))
    return zT @ QpG + c * (e0 - z0 @ QpG)


def _fig4(ctx, out, problem, th, n_paths: int, path_tol: float):
    thetas = problem.sample.thetas
    images = targets.load_mnist_digit(targets.resolve_data_dir(problem.config["target"]["data_dir"]),
                                      problem.config["target"]["digit"])
    data = RealImages(images, problem.config["target"]["pixel_scale"])
    tr = train(problem, replicas=1, snapshot_thetas=thetas)  # replica 0's w_0: paired with theory trajectory 0
    coeffs = schedules.sampler_coefficients(problem.train.interpolant, problem.sample.noise, problem.sample.grid)
    basis = torch.as_tensor(tr.realised.basis)
    rows, pics = [], []
    for theta in thetas:
        step = int(np.rint(theta * problem.d / (2 * problem.train.lr)))
        w, b = tr.snapshots[step]
        # the same X_0 at every training time: the sampler's first draw from a generator seeded alike
        x0 = torch.randn((1, n_paths, problem.d), generator=torch.Generator().manual_seed(problem.seed + 1000),
                         dtype=w.dtype)
        X = generate(w, b, coeffs, n_paths, problem.model.activation,
                     torch.Generator().manual_seed(problem.seed + 1000))
        proj = X @ basis
        z0 = (x0[0] @ w[0] / np.sqrt(problem.d)).numpy()
        e0 = (x0[0] @ basis).numpy()
        i = int(np.argmin(np.abs(th.train.theta - theta)))
        pred = _theory_projection(th.train.Q[0, i], th.train.G[0, i], float(th.train.b[0, i]), coeffs,
                                  problem.model.activation, z0, e0)
        ysim = proj[0].numpy()
        rel = float(np.sqrt(((pred - ysim) ** 2).sum(1).mean() / (ysim ** 2).sum(1).mean()))
        rows.append([fmt(theta), fmt(float(np.sqrt((ysim ** 2).sum(1).mean()))), fmt(rel)])
        out.check(f"Fig. 4, tau = {theta:g}: pathwise rms |theory - sim| projection / rms sim projection", rel,
                  path_tol, note=f"{n_paths} common noises")
        x = X[0, 0].numpy()
        e = tr.realised.basis
        pics.append((theta, data.to_pixels(x), data.to_pixels(x) - data.to_pixels(0 * x),
                     data.to_pixels(e @ ysim[0]) - data.to_pixels(0 * x), data.to_pixels(e @ pred[0]) - data.to_pixels(0 * x)))
    out.table("Fig. 4: generated projections from common initial noise, theory vs simulation (pathwise)",
              md_table(["theta", "rms sim projection", "relative rms deviation"], rows))
    _draw_images(ctx, out, pics)


def _draw_images(ctx, out, pics):
    from matplotlib.figure import Figure

    labels = ("simulation X\n+ mean seven", "simulation X\n(centered)", "simulation:\ntop-2 PC projection",
              "theory:\ntop-2 PC projection")
    fig = Figure(figsize=(1.55 * len(pics) + 1.4, 7.0), layout="constrained")
    axes = fig.subplots(4, len(pics), squeeze=False)
    v = max(float(np.abs(p[2]).max()) for p in pics)
    for j, (theta, *imgs) in enumerate(pics):
        for i, img in enumerate(imgs):
            ax = axes[i, j]
            if i == 0:
                im0 = ax.imshow(np.clip(img, 0, 255).reshape(28, 28), cmap="gray_r", vmin=0, vmax=255)
                ax.set_title(rf"$\theta$ = {theta:g}")
            else:
                im1 = ax.imshow(img.reshape(28, 28), cmap="RdBu_r", vmin=-v, vmax=v)
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(labels[i], fontsize=8.5)
    fig.colorbar(im0, ax=axes[0, :], shrink=0.8, label="pixel")
    fig.colorbar(im1, ax=axes[1:, :], shrink=0.6, label="pixel - mean seven")
    fig.suptitle("Fig. 4: generated sevens from one common initial noise across training times", fontsize=11)
    ctx.figure(out, fig, "fig4", "Fig. 4: one generated sample (the same X_0 at every training time): the d-dim image "
                                 "with the mean seven added back (top), centered (second row), its projection on the "
                                 "top-2 principal plane (third) and the theory's prediction of that projection for the "
                                 "same noise (bottom)")
