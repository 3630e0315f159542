"""``solve``: the theory of a problem (Result 2.1 training ODEs, then the generated density)."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import limits, schedules, targets
from ..collapse import collapse_extras
from ..config import ConfigError, Problem
from ..divergence import check_initial, exploded_each
from ..generated import GeneratedTarget, discretise
from ..progress import progress_bar
from ..results import Result, SampleRecord, TrainRecord, checkpoint_index, combine_replicas
from . import quadrature, transport
from .linalg import sym_sqrt
from .ode import State, TrainingSetup, integrate_batch


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


def generated_density(problem: Problem, train: TrainRecord, thetas, seed: int, generation: int = 0) -> SampleRecord:
    """Theory samples of the generated density at training times ``thetas`` (each must be one
    of ``train.theta``): Z from the r-dim recursion, S, and E^T X by Corollary 2.3. A replica whose
    trajectory stopped before a sampled time (NaN statistics there) gets NaN samples; the others'
    samples do not depend on it (each replica has its own random stream)."""
    coeffs = schedules.sampler_coefficients(problem.train.interpolant, problem.sample.noise, problem.sample.grid)
    idx = [checkpoint_index(train.theta, th) for th in thetas]
    if any(i is None for i in idx):
        raise ValueError("every sampled training time must be a checkpoint")
    n_rep = train.Q.shape[0]
    proj = np.full((n_rep, len(idx), problem.sample.n, train.G.shape[-1]), np.nan)
    Z = np.full((n_rep, len(idx), problem.sample.n, train.Q.shape[-1]), np.nan)
    S = np.full((n_rep, len(idx)), np.nan)
    for rep in range(n_rep):
        for j, i in enumerate(idx):
            if not np.isfinite(train.b[rep, i]):  # this replica stopped before
                continue
            rng = np.random.default_rng([seed, 7, rep, j] if generation == 0 else [seed, 7, rep, j, generation])
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
    dens = np.full((n_rep, n_s, n_grid, n_grid), np.nan)
    gx = np.full((n_rep, n_s, n_grid), np.nan)
    gy = np.full((n_rep, n_s, n_grid), np.nan)
    for rep in range(n_rep):
        for j, i in enumerate(idx):
            if not np.isfinite(record.S[rep, j]):  # a replica that stopped before
                continue
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
          sample: bool = True, generations: int | None = None) -> Result:
    """Integrate the summary-statistic ODEs of ``problem`` and return a 'theory' Result.

    Parameters
    ----------
    problem : the problem (default: the one stored in ``init_from``).
    init_from : a simulation :class:`~hdae.results.Result` or its file path: the theory starts
        from each replica's exact initial weights and reports at the simulation's checkpoints
        (one trajectory per replica, all integrated together, each with its own status: a replica
        that diverges stops with NaN statistics from there on, the others go on). Without it,
        ``problem.theory.init`` chooses between 'realised' (the w_0 that ``simulate`` draws at the
        problem's d and seed; checkpoints snapped to SGD steps as in ``simulate``) and 'limit'
        (d -> infinity).
    progress : show a bar (None: when stderr is a tty).
    sample : also compute the generated density at ``sample.thetas`` (Result 2.2, Corollary 2.3).
    generations : number of generations (default: the simulation's, else ``generations.count``).
        Generation g+1's target is the density generation g generates at theta = tau, its law of Z
        discretised into weighted points (derivation note section 7, :mod:`hdae.generated`); with
        ``init_from`` each generation's student starts from the simulation's w_0 of that generation
        and its overlap with the simulation's previous weights, and (``generations.chain``,
        default "simulation") its target is what the simulation's previous generation generates,
        computed by the theory from that generation's final statistics: every generation is then
        predicted from the simulation's actual starting point, as generation 0 is. With chain =
        "theory" the targets come from the theory's own previous generation (the pure prediction,
        in which O(d^-1/2) symmetry breaking of one generation is not followed by the next).
    """
    t_start = time.perf_counter()
    plan = _plan(problem, init_from, generations)
    problem, sim, n_gen = plan.problem, plan.sim, plan.n_gen
    runs = []
    for g in range(n_gen):
        t_gen = time.perf_counter()
        if g == 0:
            start = _first_start(plan)
        else:
            if sim is not None and problem.generations.chain == "simulation":
                previous = _simulation_targets(problem, sim, g)
            else:
                previous = [generated_target(problem, runs[-1].train, rep, g - 1, red.d)
                            for rep, (red, _, _) in enumerate(start)]
            start = generation_start(problem, previous, g, sim, problem.theory.init)
        _check_start(plan, start)
        run = _solve_generation(problem, start, plan.nodes, plan.t_out, plan.sample_thetas if sample else [], g,
                                progress, n_gen)
        run.wall_time_s = time.perf_counter() - t_gen
        run.attrs.update(_run_attrs(plan))
        runs.append(run)
        if not run.ok:
            break
    if n_gen == 1:
        runs[0].wall_time_s = time.perf_counter() - t_start
        runs[0].attrs.pop("generation")
        return runs[0]
    weights, means, covs = problem.target.projected(problem.observation_basis)
    result = Result(kind="theory", config_text=problem.config_text, seed=problem.seed, d=problem.d, train=None,
                    device="cpu (numba)", wall_time_s=time.perf_counter() - t_start,
                    target={"weights": weights, "means": means, "covariances": covs}, status=runs[-1].status,
                    message=runs[-1].message, replica_axis=runs[0].replica_axis, generations=runs,
                    attrs={"init": plan.init_desc})
    result.extras.update(collapse_extras(result))
    return result


@dataclass
class _Plan:
    """What ``solve`` settles before integrating: the problem (with its generations count), the
    simulation started from (or None), output and sampled times, the quadrature nodes."""

    problem: Problem
    sim: Result | None
    n_gen: int
    t_out: np.ndarray
    sample_thetas: list
    init_desc: str
    nodes: object


def _plan(problem, init_from, generations) -> _Plan:
    sim = None
    if init_from is not None:
        sim = init_from if isinstance(init_from, Result) else Result.read(Path(init_from))
        if sim.generation(0).init_w is None:
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
    n_gen = generations if generations is not None else (sim.n_generations if sim is not None
                                                         else problem.generations.count)
    if sim is not None and n_gen > sim.n_generations:
        raise ConfigError("generations", f"the simulation holds {sim.n_generations} generation(s), {n_gen} asked for")
    if n_gen != problem.generations.count:
        problem = problem.with_overrides(**{"generations.count": int(n_gen)})
    if n_gen > 1 and sim is not None and sim.generation(0).final_w is None:
        raise ConfigError("init_from", "the file holds no final weights (/final/w): simulate it again")

    th, tr = problem.theory, problem.train
    if sim is not None:
        t_out = sim.generation(0).train.theta
        if t_out[0] != 0.0:
            raise ConfigError("init_from", "the simulation's first checkpoint is not theta = 0")
        sim0 = sim.generation(0)
        sample_thetas = sim0.sample.theta if sim0.sample is not None else _snapped_thetas(
            problem.sample.thetas, sim.d, tr.lr)
        init_desc = "simulation initial weights"
    elif th.init == "realised":
        t_out = _snapped_thetas(tr.checkpoints, problem.d, tr.lr)
        sample_thetas = _snapped_thetas(problem.sample.thetas, problem.d, tr.lr)
        init_desc = f"realised w_0 (d = {problem.d}, seed = {problem.seed})"
    else:
        t_out = tr.checkpoints
        sample_thetas = problem.sample.thetas
        init_desc = "d -> infinity limit of the initialisation"
    r, T = problem.model.width, len(tr.times)
    nodes = quadrature.choose(TrainingSetup.integration_dim(r, T), problem.model.activation, th.quadrature, th.nodes)
    return _Plan(problem, sim, int(n_gen), t_out, sample_thetas, init_desc, nodes)


def _first_start(plan: _Plan) -> list:
    """Generation 0's [(reduced target, State, None)] per replica."""
    problem, sim = plan.problem, plan.sim
    if sim is not None:
        sim0 = sim.generation(0)
        reduced, states = initial_state(problem, "realised", sim.d, sim0.init_w, sim0.init_b)
    else:
        reduced, states = initial_state(problem, problem.theory.init)
    return [(reduced, st, None) for st in states]


def _check_start(plan: _Plan, start):
    problem, nodes = plan.problem, plan.nodes
    limits.check_memory(limits.theory_bytes(problem, len(start), len(nodes.weights), nodes.dim), "this theory",
                        f"{len(nodes.weights)} quadrature nodes, {len(start)} trajectories, "
                        f"sample.n = {problem.sample.n}")
    for _, st, _ in start:  # out of range before any step: the input's scales, not a divergence
        check_initial({"q": st.q, "m": st.m, "g": st.g, "b": st.b}, problem.theory.divergence)


def _run_attrs(plan: _Plan) -> dict:
    th, nodes = plan.problem.theory, plan.nodes
    return {"init": plan.init_desc, "quadrature": nodes.rule, "quadrature_size": nodes.size,
            "quadrature_nodes": len(nodes.weights), "integrator": th.integrator, "dt": th.dt}


def _batch_key(plan: _Plan):
    """Problems with equal keys can be integrated together by one ``integrate_batch`` (the same width,
    activation, training times and interpolant, nodes; fixed-step RK4; one generation, no simulation
    to start from): None for a problem ``solve_many`` hands to ``solve``. Output times, dt, lr, weight
    decay, divergence bound and targets may differ."""
    p = plan.problem
    if plan.n_gen != 1 or plan.sim is not None or p.theory.integrator != "rk4":
        return None
    tr, nodes = p.train, plan.nodes
    return (p.model.width, p.model.activation, np.asarray(tr.interpolant.alpha(tr.times), float).tobytes(),
            np.asarray(tr.interpolant.beta(tr.times), float).tobytes(), np.asarray(tr.time_weights, float).tobytes(),
            nodes.rule, nodes.size, np.asarray(nodes.points).shape, hash(np.asarray(nodes.points).tobytes()),
            hash(np.asarray(nodes.weights).tobytes()))


def solve_many(problems, sample: bool = True, progress: bool | None = False, errors: str = "raise") -> list:
    """:func:`solve` of several problems in one process: problems whose integrations are compatible
    (:func:`_batch_key`: e.g. the points of a sweep over lr, weight decay, tau, the target) go through
    :func:`~hdae.theory.ode.integrate_batch` together, every trajectory with its own output times,
    steps and status; the others (several generations, the adaptive integrator) are solved one by one.
    Each Result equals ``solve(problem, sample=sample)`` (its wall time: its own preparation and
    sampling plus its share of the shared integration).

    errors: 'raise' (the first problem's exception, as a loop of ``solve`` would) or 'return' (the
    exception object in that problem's place; the others are computed). An exception inside a shared
    integration makes its problems be solved again one by one, so that it reaches only its own problem.
    """
    if errors not in ("raise", "return"):
        raise ValueError("errors must be 'raise' or 'return'")
    problems = list(problems)
    out: list = [None] * len(problems)

    def alone(i):
        try:
            out[i] = solve(problems[i], progress=progress, sample=sample)
        except Exception as err:  # noqa: BLE001 -- per problem, see errors
            if errors == "raise":
                raise
            out[i] = err

    groups: dict = {}
    single = []
    for i, problem in enumerate(problems):
        t0 = time.perf_counter()
        try:
            plan = _plan(problem, None, None)
            key = _batch_key(plan)
            if key is None:
                single.append(i)
                continue
            start = _first_start(plan)
            _check_start(plan, start)
        except Exception as err:  # noqa: BLE001
            if errors == "raise":
                raise
            out[i] = err
            continue
        groups.setdefault(key, []).append((i, plan, start, time.perf_counter() - t0))
    total = sum(len(start) * (len(plan.t_out) - 1) for members in groups.values() for _, plan, start, _ in members)
    bar = progress_bar(total, f"solve {len(problems)} problems", progress)
    try:
        for members in groups.values():
            t0 = time.perf_counter()
            try:
                sols = _integrate_jobs([(plan.problem, start, plan.nodes, plan.t_out) for _, plan, start, _ in members],
                                       lambda t: bar.update(1))
            except Exception:  # noqa: BLE001 -- find whose it is: one by one
                for i, _, _, _ in members:
                    alone(i)
                continue
            share = (time.perf_counter() - t0) / len(members)
            for (i, plan, start, t_prep), job_sols in zip(members, sols):
                t1 = time.perf_counter()
                try:
                    run = _generation_result(plan.problem, start, job_sols, plan.t_out,
                                             plan.sample_thetas if sample else [], 0, 1)
                except Exception as err:  # noqa: BLE001
                    if errors == "raise":
                        raise
                    out[i] = err
                    continue
                run.attrs.update(_run_attrs(plan))
                run.attrs.pop("generation")
                run.wall_time_s = t_prep + share + time.perf_counter() - t1
                out[i] = run
    finally:
        bar.close()
    for i in single:
        alone(i)
    return out


def _integrate_jobs(jobs, callback) -> list:
    """Integrate the trajectories of several jobs [(problem, start, nodes, t_out)] together (one
    ``integrate_batch``; each problem's own output times, dt and divergence bound); returns each job's
    [ODESolution] per replica. The jobs must share what ``integrate_batch`` requires (see
    :func:`_batch_key`); with one job, any integrator."""
    states, setups, t_outs, dts, bounds = [], [], [], [], []
    for problem, start, nodes, t_out in jobs:
        tr, th = problem.train, problem.theory
        for reduced, st, _ in start:
            states.append(st)
            setups.append(TrainingSetup(reduced=reduced, activation=problem.model.activation,
                                        alphas=tr.interpolant.alpha(tr.times), betas=tr.interpolant.beta(tr.times),
                                        omegas=tr.time_weights, lr=tr.lr, weight_decay=tr.weight_decay, nodes=nodes))
            t_outs.append(np.asarray(t_out, dtype=float))
            dts.append(th.dt)
            bounds.append(th.divergence)
    th = jobs[0][0].theory
    if len(jobs) > 1 and any(p.theory.integrator != "rk4" for p, _, _, _ in jobs):
        raise ValueError("only fixed-step 'rk4' integrations can be batched across problems")
    sols = integrate_batch(states, setups, t_outs, th.integrator, dts, th.rtol, th.atol, bounds, callback=callback)
    out, at = [], 0
    for _, start, _, _ in jobs:
        out.append(sols[at:at + len(start)])
        at += len(start)
    return out


def _solve_generation(problem, start, nodes, t_out, sample_thetas, g, progress, n_gen):
    """Integrate one generation from ``start`` = [(reduced target, State, GeneratedTarget or None)] per
    replica, all replicas together (:func:`~hdae.theory.ode.integrate_batch`), each with its own status:
    a replica that diverges stops there (its statistics NaN from then on) and the others go on.
    Returns the Result of this generation."""
    n_rep = len(start)
    label = f"solve x{n_rep}" + (f" gen {g}" if n_gen > 1 else "")
    bar = progress_bar(n_rep * (len(t_out) - 1), label, progress)
    try:
        sols = _integrate_jobs([(problem, start, nodes, t_out)], lambda t: bar.update(1))[0]
    finally:
        bar.close()
    return _generation_result(problem, start, sols, t_out, sample_thetas, g, n_gen)


def _generation_result(problem, start, sols, t_out, sample_thetas, g, n_gen):
    """The Result of one generation of ``problem`` from its replicas' ODE solutions ``sols``: statistics,
    per-replica status, the generated density at ``sample_thetas``."""
    n_rep = len(start)
    n_rhs = max(sol.n_rhs for sol in sols)
    rep_status = np.array(["success" if sol.ok else "diverged" if sol.status == 1 else "failed" for sol in sols],
                          dtype=object)
    rep_message = np.array([sol.message for sol in sols], dtype=object)
    theta_stop = np.array([np.nan if sol.ok else sol.theta_fail for sol in sols], dtype=float)

    n_ok = max(len(sol.y) for sol in sols)  # checkpoints reached by some replica; NaN for the others
    trajectories = []
    for sol, (_, state0, _) in zip(sols, start):
        y = np.full((n_ok, sol.y.shape[1]), np.nan)
        y[:len(sol.y)] = sol.y
        trajectories.append([State.unpack(row, state0.shapes) for row in y])
    reduceds = [red for red, _, _ in start]
    agg = [[st.aggregates(red.s) for st in tj] for tj, red in zip(trajectories, reduceds)]
    pick = lambda i: np.array([[a[i] for a in row] for row in agg])  # noqa: E731
    b = np.array([[st.b for st in tj] for tj in trajectories])
    Q, Omega, M, G = pick(0), pick(1), pick(2), pick(3)
    overlap = None
    if g > 0:
        # the generated target's clusters share one covariance: keep one Omega; M refers to the original
        # centroids through the observation space (exact when they lie in it, as for every shipped example)
        Omega = Omega[:, :, :1]
        M = G @ (problem.target.centroids @ problem.observation_basis).T
        overlap = np.array([[gen.overlap_from_bins(st.m[0], basis_Q) for st in tj]
                            for tj, (_, _, (gen, basis_Q)) in zip(trajectories, start)])
    train = TrainRecord(np.asarray(t_out[:n_ok]), Q, Omega, M, G, b, overlap=overlap)
    extras = {"bins_p": reduceds[0].p, "bins_s": reduceds[0].s,
              "bins_label": np.array(reduceds[0].labels, dtype="S"),
              "bins_q": np.array([[st.q for st in tj] for tj in trajectories])}
    if g == 0:  # the generated targets' m (r x J per bin) are stored through their points instead
        extras["bins_m"] = np.array([[st.m for st in tj] for tj in trajectories])
        extras["bins_g"] = np.array([[st.g for st in tj] for tj in trajectories])
    else:
        extras.update(_target_extras([gen for _, _, (gen, _) in start]))
    sample_thetas = [t for t in sample_thetas if t <= train.theta[-1] + 1e-12]
    sample_record = generated_density(problem, train, sample_thetas, problem.seed, g) if sample_thetas else None
    if sample_record is not None:
        for j, th_j in enumerate(sample_record.theta):
            found = exploded_each({"generated samples": sample_record.projected[:, j], "Z": sample_record.Z[:, j],
                                   "S": sample_record.S[:, j]}, problem.theory.divergence, n_rep)
            for i, bad in enumerate(found):
                reached = np.isfinite(train.b[i, checkpoint_index(train.theta, th_j)])
                if bad is not None and reached and rep_status[i] == "success":
                    rep_status[i], theta_stop[i] = "diverged", th_j
                    rep_message[i] = f"the generative transport diverged at theta = {th_j:.6g}: {bad}"
    status, message = combine_replicas(rep_status, rep_message)
    if n_gen > 1 and message:
        message = f"generation {g}: {message}"
    weights, means, covs = problem.target.projected(problem.observation_basis)
    result = Result(kind="theory", config_text=problem.config_text, seed=problem.seed, d=problem.d, train=train,
                    device="cpu (numba)", sample=sample_record,
                    target={"weights": weights, "means": means, "covariances": covs}, status=status,
                    message=message, replica_status=rep_status, replica_message=rep_message,
                    replica_theta_stop=theta_stop, replica_axis=n_rep > 1, extras=extras,
                    attrs={"n_rhs": n_rhs, "lambda_avg": reduceds[0].average_eigenvalue,
                           "n_bins": reduceds[0].n_bins, "generation": g})
    return result


def _target_extras(gens) -> dict:
    """The discretised targets of a generation (one per replica), padded to a common number of points."""
    J = max(t.n_clusters for t in gens)
    pts = np.zeros((len(gens), J, gens[0].width))
    wts = np.zeros((len(gens), J))
    for i, t in enumerate(gens):
        pts[i, :t.n_clusters], wts[i, :t.n_clusters] = t.points, t.weights
    return {"target_points": pts, "target_weights": wts, "target_S": np.array([t.S for t in gens]),
            "target_Q": np.array([t.Q for t in gens]), "target_G": np.array([t.G for t in gens])}


def generated_target(problem: Problem, train: TrainRecord, rep: int, g: int, d) -> GeneratedTarget:
    """The target of generation g+1: what replica ``rep`` of generation g generates at its last
    checkpoint, the law of Z discretised into ``generations.points`` weighted points."""
    return target_from_statistics(problem, train.Q[rep, -1], train.G[rep, -1], float(train.b[rep, -1]), rep, g, d)


def target_from_statistics(problem: Problem, Q, G, b: float, rep: int, g: int, d) -> GeneratedTarget:
    """The density generated by weights with statistics Q (r, r), G (r, R) and skip connection b
    (generation g, replica ``rep``), as the next generation's target: Z from the r-dim recursion,
    discretised into ``generations.points`` weighted points (derivation note section 7)."""
    gs = problem.generations
    coeffs = schedules.sampler_coefficients(problem.train.interpolant, problem.sample.noise, problem.sample.grid)
    rng = np.random.default_rng([problem.seed, 11, g, rep])
    Z = transport.sample_latent(Q, b, coeffs, gs.latent_samples, problem.model.activation, rng)
    if not np.all(np.isfinite(Z)):
        raise FloatingPointError(f"generation {g}: the generated samples are not finite (b = {b:.4g})")
    points, weights = discretise(Z, gs.points, gs.discretisation, seed=problem.seed + 7919 * (g + 1))
    return GeneratedTarget(points=points, weights=weights, Q=Q, G=G, S=float(coeffs.orthogonal_variance(b)[-1]), d=d)


def _simulation_targets(problem: Problem, sim: Result, g: int) -> list:
    """Generation g's targets (one per replica) as the simulation's generation g-1 generates them: from
    the statistics of its final weights (``generations.chain = "simulation"``)."""
    prev = sim.generation(g - 1)
    E = targets.realise(problem.target, problem.observation_basis, sim.d).basis
    out = []
    for rep, (w, b) in enumerate(zip(prev.final_w, prev.final_b)):
        Q, G = w.T @ w / sim.d, w.T @ E / np.sqrt(sim.d)
        out.append(target_from_statistics(problem, Q, G, float(b), rep, g - 1, sim.d))
    return out


def generation_start(problem: Problem, targets_: list, g: int, sim, mode: str):
    """Reduced targets and initial states of generation g >= 1, one per replica.

    With a simulation: the student's exact Q', G' from the simulation's w_0 of generation g and its
    overlap C = w'^T w_prev/d with the simulation's final weights of generation g-1 (whose Q, G
    define W). Without: the problem's initialisation ('realised': w_0 drawn as ``simulate`` does for
    generation g, C's random part drawn from its Gaussian law; 'limit': C from the warm start only),
    with w_prev's latent coordinates taken from its observation overlaps G (exact when the
    observation space spans the latent directions)."""
    init, basis = problem.init, problem.observation_basis
    width, k = problem.model.width, problem.target.latent_dim
    d = sim.d if sim is not None else problem.d
    E = targets.realise(problem.target, basis, d).basis if (sim is not None or mode == "realised") else None
    out = []
    for rep, gen in enumerate(targets_):
        reduced = gen.reduce()
        b0 = problem.model.skip
        Q_basis = G_basis = None
        if sim is not None:
            cur, prev = sim.generation(g), sim.generation(g - 1)
            w0, wp = cur.init_w[rep], prev.final_w[rep]
            Qs, Gs, C = w0.T @ w0 / d, w0.T @ E / np.sqrt(d), w0.T @ wp / d
            Q_basis, G_basis = wp.T @ wp / d, wp.T @ E / np.sqrt(d)
            b0 = float(cur.init_b[rep])
        else:
            if mode == "realised":
                w0 = targets.initial_weights(problem.target, init, width, d, problem.seed, 1, g)[0]
                Qs, Gs = w0.T @ w0 / d, w0.T @ E / np.sqrt(d)
                latent = w0[:k] / np.sqrt(d)
                rest = gen.Q - gen.G @ gen.G.T  # Gram of w_prev outside the observation space (times 1/d)
                rng = np.random.default_rng([problem.seed, 13, g, rep])
                C_random = init.scale / np.sqrt(d) * rng.standard_normal((width, width)) @ sym_sqrt(rest)
            else:
                red0, _ = targets.reduce(problem.target, basis, None, 0)
                q, _, g0 = targets.limit_initial_statistics(red0, problem.target, init, width, basis)
                Qs, Gs = q.sum(0), g0.sum(0)
                latent = (init.warm_norm * targets.warm_units(problem.target, init, width) if init.warm_norm > 0
                          else np.zeros((k, width)))
                C_random = 0.0
            C = latent.T @ basis @ gen.G.T + C_random
        q, m, gg = gen.student_bins(Qs, Gs, C, Q_basis, G_basis)
        out.append((reduced, State(q, m, gg, float(b0)), (gen, gen.Q if Q_basis is None else Q_basis)))
    return out

