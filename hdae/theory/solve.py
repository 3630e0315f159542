"""``solve``: the theory of a problem (Result 2.1 training ODEs, then the generated density)."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .. import limits, schedules, targets
from ..config import ConfigError, Problem
from ..divergence import check_initial, exploded
from ..progress import progress_bar
from ..results import Result, SampleRecord, TrainRecord, checkpoint_index
from . import quadrature, transport
from .ode import State, TrainingSetup, integrate


def _snapped_thetas(thetas, d: int, lr: float) -> np.ndarray:
    """Training times the finite-d SGD actually reaches (those of ``simulate``)."""
    return 2 * lr * schedules.checkpoint_steps(thetas, d, lr) / d


def initial_state(problem: Problem, mode: str, d: int | None = None, w0=None, b0=None):
    """Reduced target and initial per-bin statistics.

    mode 'limit': the d -> infinity statistics of the problem's initialisation;
    'realised': the statistics of explicit weights ``w0`` (replicas, d, r) (default: the w_0
    that ``simulate`` draws for the problem's d and seed), bins at that finite d.
    Returns (reduced, [State per replica]).
    """
    tgt, basis = problem.target, problem.observation_basis
    b_init = problem.model.skip if b0 is None else None
    if mode == "limit":
        reduced, _ = targets.reduce(tgt, basis, None, problem.theory.spectral_bins)
        q, m, g = targets.limit_initial_statistics(reduced, tgt, problem.init, problem.model.width, basis)
        return reduced, [State(q, m, g, float(b_init))]
    d = problem.d if d is None else d
    limits.check_memory(limits.realised_start_bytes(problem, d, 1 if w0 is None else len(w0)),
                        "the theory's finite-d start", f"d = {d}; theory.init = 'limit' needs none")
    if w0 is None:
        w0 = targets.initial_weights(tgt, problem.init, problem.model.width, d, problem.seed, 1)
    if w0.shape[1:] != (d, problem.model.width):
        raise ConfigError("init", f"initial weights of shape {w0.shape[1:]} do not fit d = {d}, r = {problem.model.width}")
    reduced, merge = targets.reduce(tgt, basis, d, problem.theory.spectral_bins)
    realised = targets.realise(tgt, basis, d)
    q, m, g = targets.realised_statistics(np.asarray(w0, dtype=float), realised, merge, reduced.n_bins)
    bs = np.full(len(w0), problem.model.skip) if b0 is None else np.asarray(b0, dtype=float).reshape(-1)
    return reduced, [State(q[i], m[i], g[i], float(bs[i])) for i in range(len(w0))]


def generated_density(problem: Problem, train: TrainRecord, thetas, seed: int) -> SampleRecord:
    """Theory samples of the generated density at training times ``thetas`` (each must be one
    of ``train.theta``): Z from the r-dim recursion, S, and E^T X by Corollary 2.3."""
    coeffs = schedules.sampler_coefficients(problem.train.interpolant, problem.sample.noise, problem.sample.grid)
    idx = [checkpoint_index(train.theta, th) for th in thetas]
    if any(i is None for i in idx):
        raise ValueError("every sampled training time must be a checkpoint")
    n_rep = train.Q.shape[0]
    proj = np.empty((n_rep, len(idx), problem.sample.n, train.G.shape[-1]))
    Z = np.empty((n_rep, len(idx), problem.sample.n, train.Q.shape[-1]))
    S = np.empty((n_rep, len(idx)))
    for rep in range(n_rep):
        for j, i in enumerate(idx):
            rng = np.random.default_rng([seed, 7, rep, j])
            proj[rep, j], Z[rep, j], S[rep, j] = transport.generated_samples(
                train.Q[rep, i], train.G[rep, i], float(train.b[rep, i]), coeffs, problem.sample.n,
                problem.model.activation, rng)
    record = SampleRecord(theta=train.theta[idx], projected=proj, Z=Z, S=S)
    if problem.sample.density_grid > 0:
        _density_on_grid(record, train, idx, problem.sample.density_grid)
    return record


def _density_on_grid(record: SampleRecord, train: TrainRecord, idx, n_grid: int, max_components: int = 2000):
    """The projected density (Corollary 2.3) of the first two observation coordinates on an
    n_grid x n_grid grid spanning the samples' range +- 3 of the Gaussian part's std."""
    n_rep, n_s = record.S.shape
    dens = np.empty((n_rep, n_s, n_grid, n_grid))
    gx = np.empty((n_rep, n_s, n_grid))
    gy = np.empty((n_rep, n_s, n_grid))
    for rep in range(n_rep):
        for j, i in enumerate(idx):
            law = transport.projected_law(record.Z[rep, j], train.Q[rep, i], train.G[rep, i], record.S[rep, j])
            law = law.marginal(2, max_components)
            pts = record.projected[rep, j][:, :2]
            pad = 3 * np.sqrt(np.clip(np.diag(law.cov), 1e-12, None))
            lo, hi = pts.min(0) - pad, pts.max(0) + pad
            gx[rep, j], gy[rep, j] = np.linspace(lo[0], hi[0], n_grid), np.linspace(lo[1], hi[1], n_grid)
            mesh = np.stack(np.meshgrid(gx[rep, j], gy[rep, j], indexing="ij"), -1).reshape(-1, 2)
            dens[rep, j] = law.density(mesh).reshape(n_grid, n_grid)
    record.density, record.density_x, record.density_y = dens, gx, gy


def solve(problem: Problem | None = None, init_from=None, progress: bool | None = False,
          sample: bool = True) -> Result:
    """Integrate the summary-statistic ODEs of ``problem`` and return a 'theory' Result.

    Parameters
    ----------
    problem : the problem (default: the one stored in ``init_from``).
    init_from : a simulation :class:`~hdae.results.Result` or its file path: the theory starts
        from each replica's exact initial weights and reports at the simulation's checkpoints
        (one trajectory per replica). Without it, ``problem.theory.init`` chooses between
        'realised' (the w_0 that ``simulate`` draws at the problem's d and seed; checkpoints
        snapped to SGD steps as in ``simulate``) and 'limit' (d -> infinity).
    progress : show a bar (None: when stderr is a tty).
    sample : also compute the generated density at ``sample.thetas`` (Result 2.2, Corollary 2.3).
    """
    t_start = time.perf_counter()
    sim = None
    if init_from is not None:
        sim = init_from if isinstance(init_from, Result) else Result.read(Path(init_from))
        if sim.init_w is None:
            raise ConfigError("init_from", "the file holds no initial weights (/init/w)")
        if problem is None:
            problem = sim.problem
        else:
            if problem.d != sim.d:
                problem = problem.with_overrides(**{"target.d": sim.d})
            sim_config = sim.problem.config
            for section in ("target", "model", "init", "observation"):
                if problem.config[section] != sim_config[section]:
                    raise ConfigError(section, "differs from the simulation's problem given to start from "
                                               "(only [train], [sample], [theory] may differ)")
    if problem is None:
        raise ConfigError("problem", "give a problem or a simulation to start from")
    th, tr = problem.theory, problem.train
    sample_thetas = []
    if sim is not None:
        reduced, states = initial_state(problem, "realised", sim.d, sim.init_w, sim.init_b)
        t_out = sim.train.theta
        sample_thetas = sim.sample.theta if sim.sample is not None else _snapped_thetas(
            problem.sample.thetas, sim.d, tr.lr)
        if t_out[0] != 0.0:
            raise ConfigError("init_from", "the simulation's first checkpoint is not theta = 0")
        init_desc = "simulation initial weights"
    elif th.init == "realised":
        reduced, states = initial_state(problem, "realised")
        t_out = _snapped_thetas(tr.checkpoints, problem.d, tr.lr)
        sample_thetas = _snapped_thetas(problem.sample.thetas, problem.d, tr.lr)
        init_desc = f"realised w_0 (d = {problem.d}, seed = {problem.seed})"
    else:
        reduced, states = initial_state(problem, "limit")
        t_out = tr.checkpoints
        sample_thetas = problem.sample.thetas
        init_desc = "d -> infinity limit of the initialisation"

    r, T = problem.model.width, len(tr.times)
    nodes = quadrature.choose(TrainingSetup.integration_dim(r, T), problem.model.activation, th.quadrature, th.nodes)
    limits.check_memory(limits.theory_bytes(problem, len(states), len(nodes.weights), nodes.dim), "this theory",
                        f"{len(nodes.weights)} quadrature nodes, {len(states)} trajectories, sample.n = {problem.sample.n}")
    setup = TrainingSetup(reduced=reduced, activation=problem.model.activation, alphas=tr.interpolant.alpha(tr.times),
                          betas=tr.interpolant.beta(tr.times), omegas=tr.time_weights, lr=tr.lr,
                          weight_decay=tr.weight_decay, nodes=nodes)

    for st in states:  # out of range before any step: the input's scales, not a divergence
        check_initial({"q": st.q, "m": st.m, "g": st.g, "b": st.b}, th.divergence)
    n_rep = len(states)
    bar = progress_bar(n_rep * (len(t_out) - 1), f"solve x{n_rep}", progress)
    trajectories, status, message, n_rhs = [], "success", "", 0
    try:
        for state0 in states:
            sol = integrate(state0, setup, t_out, th.integrator, th.dt, th.rtol, th.atol, th.divergence,
                            callback=lambda t: bar.update(1))
            n_rhs += sol.n_rhs
            trajectories.append([State.unpack(y, state0.shapes) for y in sol.y])
            if not sol.ok:
                status, message = "diverged" if sol.status == 1 else "failed", sol.message
                break
    finally:
        bar.close()

    n_ok = min(len(tj) for tj in trajectories)
    trajectories = [tj[:n_ok] for tj in trajectories]
    agg = [[st.aggregates(reduced.s) for st in tj] for tj in trajectories]
    pick = lambda i: np.array([[a[i] for a in row] for row in agg])  # noqa: E731
    b = np.array([[st.b for st in tj] for tj in trajectories])
    train = TrainRecord(np.asarray(t_out[:n_ok]), pick(0), pick(1), pick(2), pick(3), b)
    extras = {
        "bins_p": reduced.p, "bins_s": reduced.s, "bins_label": np.array(reduced.labels, dtype="S"),
        "bins_q": np.array([[st.q for st in tj] for tj in trajectories]),
        "bins_m": np.array([[st.m for st in tj] for tj in trajectories]),
        "bins_g": np.array([[st.g for st in tj] for tj in trajectories]),
    }
    sample_thetas = [th for th in sample_thetas if th <= train.theta[-1] + 1e-12]
    sample_record = generated_density(problem, train, sample_thetas, problem.seed) if sample and sample_thetas else None
    bad = sample_record and exploded({"generated samples": sample_record.projected, "Z": sample_record.Z,
                                      "S": sample_record.S}, problem.theory.divergence)
    if bad and status == "success":
        status, message = "diverged", f"the generative transport diverged: {bad}"
    weights, means, covs = problem.target.projected(problem.observation_basis)
    return Result(kind="theory", config_text=problem.config_text, seed=problem.seed, d=problem.d, train=train,
                  device="cpu (numba)", wall_time_s=time.perf_counter() - t_start,
                  sample=sample_record, target={"weights": weights, "means": means, "covariances": covs},
                  status=status, message=message, replica_axis=n_rep > 1, extras=extras,
                  attrs={"init": init_desc, "quadrature": nodes.rule, "quadrature_size": nodes.size,
                         "quadrature_nodes": len(nodes.weights), "integrator": th.integrator, "dt": th.dt,
                         "n_rhs": n_rhs, "lambda_avg": reduced.average_eigenvalue, "n_bins": reduced.n_bins})
