"""``simulate``: realise a problem in d dimensions, train by online SGD, sample, return a Result.

With ``generations`` > 1 (model collapse, Remark 4.1), the student of generation g+1 is trained
on fresh samples of generation g's d-dimensional sampler (:class:`GeneratedData`), replica by
replica, and every generation is stored with today's layout plus its final weights.
"""
from __future__ import annotations

import os
import platform
import shutil
import sys
import time

import numpy as np

from .. import limits, schedules, targets
from ..schedules import checkpoint_steps
from ..config import Problem
from ..divergence import check_initial, exploded_each
from ..progress import progress_bar
from ..collapse import collapse_extras
from ..results import Result, SampleRecord, TrainRecord, combine_replicas
from .sampler import GeneratedData, sample_finite_d
from .sgd import MixtureSampler, OnlineSGD, _np_of, device_type, is_torch, namespace, summary_statistics

_MEMORY_BUDGET = 256 * 2**20  # bytes of pre-drawn noise per chunk


#: Tests only: run the torch implementation (the CUDA path) on CPU tensors, where no GPU is at hand.
_TORCH_ON_CPU = False


def _uses_torch(dev) -> bool:
    """Whether a run on ``dev`` holds torch tensors (on a device), rather than numpy arrays (CPU)."""
    return device_type(dev) != "cpu" or _TORCH_ON_CPU


def nvidia_driver_present() -> bool:
    """Whether this machine may have an NVIDIA GPU: the driver's /proc entry or ``nvidia-smi`` on PATH.
    Without either, CUDA cannot work and torch need not be imported to know it."""
    return os.path.exists("/proc/driver/nvidia") or shutil.which("nvidia-smi") is not None


def resolve_device(device: str = "auto") -> str:
    """The device to run on, 'cpu' or 'cuda[:i]': 'auto' -> CUDA when torch sees a GPU, else CPU;
    'cuda' without a GPU is an error. 'cpu', and 'auto' on a machine without an NVIDIA driver,
    decide without importing torch (the CPU path never needs it)."""
    device = str(device)
    if device == "cpu":
        return "cpu"
    if device == "auto":
        if not nvidia_driver_present():
            return "cpu"
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    import torch

    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda asked for, but torch sees no CUDA device")
    return str(dev)


def describe_device(dev) -> str:
    if device_type(dev) == "cuda":
        import torch

        return f"{dev} ({torch.cuda.get_device_name(torch.device(dev))})"
    from ..parallel import available_cores

    if "numba" in sys.modules:
        import numba

        threads = numba.get_num_threads()
    else:
        threads = int(os.environ.get("NUMBA_NUM_THREADS", available_cores()))
    return f"cpu ({platform.processor() or platform.machine()}, {threads} threads)"


class _Generation:
    """What one generation's statistics are measured against (numpy arrays on CPU, torch tensors on
    a device: the kind of the weights).

    eig (K, d), cents (K, d), basis (d, R): the original target (M and G always refer to the
    original centroids and observation space); for generation g >= 1 also the previous
    generation's final weights ``w_prev`` (n, d, r) and the W-perp variance ``S_prev`` (n,) of its
    sampler: then Omega is the generated target's w^T (S_prev Proj(W_prev-perp)) w/d (one cluster)
    and ``overlap`` = w^T w_prev/d."""

    def __init__(self, eig, cents, basis, w_prev=None, S_prev=None):
        self.eig, self.cents, self.basis = eig, cents, basis
        self.w_prev, self.S_prev = w_prev, S_prev

    def statistics(self, w, b) -> dict:
        stats = summary_statistics(w, b, self.eig, self.cents, self.basis)
        if self.w_prev is not None:
            xp, wrap = namespace(w, self.w_prev, self.S_prev)
            w, w_prev, S_prev, Q = (_np_of(a) if xp is np else a for a in (w, self.w_prev, self.S_prev, stats["Q"]))
            d = w.shape[1]
            C = xp.einsum("nia,nib->nab", w, w_prev) / d
            Qp = xp.linalg.pinv(xp.einsum("nia,nib->nab", w_prev, w_prev) / d, hermitian=True)
            in_w = C @ Qp @ C.swapaxes(1, 2)
            stats["Omega"] = wrap((S_prev[:, None, None] * (Q - in_w))[:, None])
            stats["overlap"] = wrap(C)
        return stats


def simulate(problem: Problem, d: int | None = None, replicas: int = 1, device: str = "auto",
             seed: int | None = None, progress: bool | None = False, sample: bool = True,
             generations: int | None = None, resume=None) -> Result:
    """Run the finite-d ground truth of ``problem``: SGD, then the sampler at ``sample.thetas``.

    Parameters
    ----------
    d : ambient dimension (default: ``target.d``); seed : overrides the problem's seed.
    replicas : independent runs batched into one computation (leading axis of every statistic).
    device : 'auto', 'cpu' or 'cuda'. progress : show a bar (None: when stderr is a tty).
    sample : run the generative sampler at the sampled training times.
    generations : number of generations (default ``generations.count``, 1): generation g+1 is
        trained on fresh samples of generation g's sampler (its final weights, at theta = tau).
    resume : a simulation Result (or its file) of the same problem with fewer generations: its
        generations are kept and the next ones trained from its last final weights. The random
        streams of the new generations are seeded from (seed, first new generation), so a resumed
        run is a valid run of the problem, but not bit-identical to an uninterrupted one.

    Returns a :class:`~hdae.results.Result` of kind 'simulation' (with one generation) or one whose
    ``generations`` hold one Result per generation. Every replica has its own status
    (:mod:`hdae.results`): a replica whose weights diverge is frozen, with a message naming the step
    and theta, its statistics NaN from there on, while the others run to the end; the result then
    has status 'diverged'. A generation with a stopped replica is the last one trained (its other
    replicas are complete): the next generation would have no sampler for that replica. The final
    weights (/final/w) of a stopped replica are its last finite weights.
    """
    overrides = {}
    if d is not None and d != problem.d:
        overrides["target.d"] = int(d)
    if seed is not None and seed != problem.seed:
        overrides["seed"] = int(seed)
    if generations is not None and generations != problem.generations.count:
        overrides["generations.count"] = int(generations)
    if overrides:
        problem = problem.with_overrides(**overrides)
    if replicas < 1:
        raise ValueError("replicas must be >= 1")
    limits.check_memory(limits.simulation_bytes(problem, replicas), "this simulation",
                        f"d = {problem.d}, replicas = {replicas}, sample.n = {problem.sample.n}")
    d, seed = problem.d, problem.seed
    dev = resolve_device(device)
    with_torch = _uses_torch(dev)
    dtype = problem.simulation.dtype
    t_start = time.perf_counter()

    realised = targets.realise(problem.target, problem.observation_basis, d)
    as_t = _array_maker(dev, dtype)
    eig, cents, basis = as_t(realised.eigenvalues), as_t(realised.centroids), as_t(realised.basis)
    # On CPU (numpy arrays, no torch): training data from a numpy PCG64 seeded with the seed (the SGD
    # kernel's fast draws), the sampler's noise from a second, independent one. On CUDA (torch
    # tensors): one torch generator for both.
    generator, data_rng = _generators(dev, seed)
    coeffs = schedules.sampler_coefficients(problem.train.interpolant, problem.sample.noise, problem.sample.grid)
    weights, means, covs = problem.target.projected(problem.observation_basis)
    common = dict(kind="simulation", config_text=problem.config_text, seed=seed, d=d, replica_axis=True,
                  target={"weights": weights, "means": means, "covariances": covs})

    def trained_on(w, b):
        """Training data and statistics of the generation after the one with final weights w, b."""
        S_prev = as_t(coeffs.orthogonal_variance_batch(_host(b))[:, -1])
        return GeneratedData(w, b, coeffs, problem.model.activation), _Generation(eig, cents, basis, w, S_prev)

    data, measure = MixtureSampler(realised, dev, dtype), _Generation(eig, cents, basis)
    copy = lambda a: a.clone() if is_torch(a) else a.copy()  # noqa: E731
    runs = []
    n_gen = problem.generations.count
    if resume is not None:
        runs = _resumed_generations(problem, resume, replicas, n_gen)
        data, measure = trained_on(as_t(runs[-1].final_w), as_t(runs[-1].final_b))
        generator, data_rng = _generators(dev, seed, len(runs))
    for g in range(len(runs), n_gen):
        t_gen = time.perf_counter()
        w0 = targets.initial_weights(problem.target, problem.init, problem.model.width, d, seed, replicas, g)
        label = f"simulate d={d} x{replicas}" + (f" gen {g}" if n_gen > 1 else "")
        train, samples, w, b, (rep_status, rep_message, theta_stop), n_steps = _train_and_sample(
            problem, data, measure, copy(as_t(w0)), copy(as_t(np.full(replicas, problem.model.skip))), generator,
            data_rng, coeffs, sample, progress, label)
        status, message = combine_replicas(rep_status, rep_message)
        if n_gen > 1 and message:
            message = f"generation {g}: {message}"
        runs.append(Result(**common, train=train, device=describe_device(dev), init_w=w0,
                           init_b=np.full(replicas, problem.model.skip), final_w=_host(w).copy(),
                           final_b=_host(b).copy(), sample=samples, status=status, message=message,
                           replica_status=rep_status, replica_message=rep_message, replica_theta_stop=theta_stop,
                           wall_time_s=time.perf_counter() - t_gen, attrs={"n_steps": n_steps, "generation": g}))
        if status != "success":  # a generation with a stopped replica ends the run (its others are complete)
            break
        data, measure = trained_on(copy(w), copy(b))
    attrs = {"dtype": problem.simulation.dtype, "lambda_avg": problem.target.average_eigenvalue(d)}
    if with_torch:
        import torch

        if device_type(dev) == "cuda":
            torch.cuda.synchronize(torch.device(dev))
        attrs["torch_version"] = torch.__version__
    else:
        import numba

        attrs.update(numpy_version=np.__version__, numba_version=numba.__version__)
    wall = time.perf_counter() - t_start
    if n_gen == 1:
        run = runs[0]
        run.wall_time_s, run.attrs = wall, {**attrs, "n_steps": run.attrs["n_steps"]}
        return run
    last = runs[-1]
    result = Result(**common, train=None, device=describe_device(dev), wall_time_s=wall, status=last.status,
                    message=last.message, generations=runs, attrs=attrs)
    result.extras.update(collapse_extras(result))
    return result


def _array_maker(dev, dtype: str):
    """Arrays of the run: numpy on CPU, torch tensors on a device."""
    if not _uses_torch(dev):
        return lambda a: np.array(a, dtype=dtype)  # a copy: never a view of the caller's array
    import torch

    return lambda a: torch.as_tensor(a, dtype=getattr(torch, dtype), device=dev)


def _generators(dev, seed: int, generation: int | None = None):
    """(sampler generator, training-data generator) for a run, or for the generations from
    ``generation`` on of a resumed one. CPU: two numpy Generators, the data's seeded with the seed
    (or (seed, generation)), the sampler's with the same entropy and spawn key (1,), so the streams
    are independent; CUDA: one torch generator for both."""
    entropy = seed if generation is None else [seed, generation]
    if not _uses_torch(dev):
        return (np.random.default_rng(np.random.SeedSequence(entropy, spawn_key=(1,))),
                np.random.default_rng(entropy))
    import torch

    state = seed if generation is None else int(np.random.SeedSequence(entropy).generate_state(1)[0])
    g = torch.Generator(device=dev).manual_seed(state)
    return g, g


def _host(a) -> np.ndarray:
    """A numpy array of ``a`` (itself, or a view of a CPU tensor, or a copy from the device)."""
    return a.detach().cpu().numpy() if is_torch(a) else np.asarray(a)


def _resumed_generations(problem: Problem, resume, replicas: int, n_gen: int) -> list:
    """The stored generations of ``resume`` (a Result or a file) to continue from, checked against the problem."""
    from pathlib import Path

    from ..config import ConfigError

    old = resume if isinstance(resume, Result) else Result.read(Path(resume))
    if old.kind != "simulation":
        raise ConfigError("resume", f"resume from a simulation file, not a {old.kind} file")
    mine, theirs = dict(problem.config), dict(old.problem.config)
    mine.pop("generations"), theirs.pop("generations", None)
    if mine != theirs:
        diff = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
        raise ConfigError("resume", f"the stored run solves another problem (differs in {', '.join(diff)})")
    runs = [old.generation(g) for g in range(old.n_generations)]
    if not all(r.ok for r in runs):
        raise ConfigError("resume", "the stored run diverged: nothing to continue from")
    if runs[-1].final_w is None:
        raise ConfigError("resume", "the stored run holds no final weights (/final/w)")
    if runs[-1].final_w.shape[0] != replicas:
        raise ConfigError("resume", f"the stored run has {runs[-1].final_w.shape[0]} replicas, {replicas} asked for")
    if len(runs) >= n_gen:
        raise ConfigError("generations", f"the stored run already holds {len(runs)} generation(s); ask for more")
    return runs


def generated_samples(result: Result, n: int, generation: int = -1, replica: int = 0, seed: int = 0,
                      device: str = "auto"):
    """``n`` fresh d-dimensional samples (n, d) of a stored generation's sampler (its final weights,
    the problem's sampling grid and eps), as a numpy array: more samples from any generation of a file."""
    problem = result.problem
    run = result.generation(generation % result.n_generations)
    if run.final_w is None:
        raise ValueError("the result holds no final weights (/final/w)")
    dev = resolve_device(device)
    as_t = _array_maker(dev, problem.simulation.dtype)
    w, b = as_t(run.final_w[replica:replica + 1]), as_t(run.final_b[replica:replica + 1])
    coeffs = schedules.sampler_coefficients(problem.train.interpolant, problem.sample.noise, problem.sample.grid)
    from .sampler import generate

    if not _uses_torch(dev):
        generator = np.random.default_rng(seed)
    else:
        import torch

        generator = torch.Generator(device=dev).manual_seed(seed)
    return _host(generate(w, b, coeffs, n, problem.model.activation, generator)[0])


def _train_and_sample(problem, data, measure, w, b, generator, data_rng, coeffs, sample, progress, label):
    """One generation: online SGD on ``data`` (drawn with ``data_rng``) from (w, b) in place,
    statistics at the checkpoints, samples (with ``generator``) at ``sample.thetas``.

    Every replica has its own status (:mod:`hdae.results`): one whose weights become non-finite,
    or whose statistics explode at a checkpoint, is frozen there (its statistics and samples after
    that are NaN, its w, b stay at its last state) while the others go on; replicas consume their
    draws regardless, so a replica's trajectory never depends on another's fate. Returns (train,
    samples, w, b, replicas = (status, message, theta_stop) arrays, steps done)."""
    tr = problem.train
    d = w.shape[1]
    replicas = w.shape[0]
    dev = w.device if is_torch(w) else "cpu"
    dtype = w.dtype
    copy = lambda a: a.clone() if is_torch(a) else a.copy()  # noqa: E731
    sgd = OnlineSGD(data, tr.interpolant.alpha(tr.times), tr.interpolant.beta(tr.times), tr.time_weights, tr.lr,
                    tr.weight_decay, problem.model.activation, dev, dtype)
    steps = checkpoint_steps(tr.checkpoints, d, tr.lr)
    sample_steps = set(checkpoint_steps(problem.sample.thetas, d, tr.lr).tolist()) if sample else set()
    chunk = max(1, min(problem.simulation.chunk, _MEMORY_BUDGET // (2 * replicas * d * np.dtype(sgd.dtype_name).itemsize)))
    bound = problem.theory.divergence
    theta_of = lambda step: 2 * tr.lr * step / d  # noqa: E731
    rep_status = np.full(replicas, "success", dtype=object)
    rep_message = np.full(replicas, "", dtype=object)
    theta_stop = np.full(replicas, np.nan)
    stopped = np.zeros(replicas, dtype=bool)
    records, snapshots = [], {}
    bar = progress_bar(int(steps[-1]), label, progress)
    done = 0
    try:
        for target_step in steps:
            if stopped.all():
                break
            failed = sgd.run_replicas(w, b, int(target_step - done), data_rng, chunk, skip=stopped)
            for i in np.flatnonzero(failed >= 0):
                step = done + int(failed[i]) + 1
                rep_status[i], theta_stop[i] = "diverged", theta_of(step)
                rep_message[i] = (f"SGD diverged at step {step} (theta = {theta_of(step):.6g}): non-finite weights; "
                                  f"eta = {tr.lr:g} may be too large")
            stopped |= failed >= 0
            bar.update(int(target_step - done))
            done = int(target_step)
            record = {k: _host(v) for k, v in measure.statistics(w, b).items()}
            if done == 0:  # out of range before any step: the input's scales, not a divergence
                check_initial(record, bound)
            # finite weights, exploding statistics: a divergence all the same
            for i, bad in enumerate(exploded_each(record, bound, replicas)):
                if bad is not None and not stopped[i]:
                    rep_status[i], theta_stop[i], stopped[i] = "diverged", theta_of(done), True
                    rep_message[i] = f"SGD diverged by step {done} (theta = {theta_of(done):.6g}): {bad}"
            for v in record.values():
                v[stopped] = np.nan
            records.append(record)
            if done in sample_steps:
                snapshots[done] = (copy(w), copy(b), stopped.copy())
    finally:
        bar.close()

    while len(records) > 1 and np.isnan(records[-1]["b"]).all():
        records.pop()  # checkpoints that no replica reached
    n_ok = len(records)
    stack = lambda k: np.stack([r[k] for r in records], axis=1) if records and k in records[0] else None  # noqa: E731
    train = TrainRecord(theta_of(steps[:n_ok]), *(stack(k) for k in ("Q", "Omega", "M", "G", "b")),
                        overlap=stack("overlap"))

    sample_record = None
    snapshots = {k: v for k, v in snapshots.items() if not v[2].all()}
    if snapshots:
        proj, lat = [], []
        for step in sorted(snapshots):  # every replica (the draws stay those of a run without stops)
            ws, bs, gone = snapshots[step]
            p, z = sample_finite_d(ws, bs, coeffs, problem.sample.n, measure.basis, problem.model.activation,
                                   generator, problem.simulation.sample_batch)
            p, z = _host(p), _host(z)
            p[gone], z[gone] = np.nan, np.nan
            proj.append(p)
            lat.append(z)
        sample_record = SampleRecord(theta=theta_of(np.array(sorted(snapshots))),
                                     projected=np.stack(proj, 1), Z=np.stack(lat, 1))
        for j, th in enumerate(sample_record.theta):
            gone = snapshots[sorted(snapshots)[j]][2]
            found = exploded_each({"generated samples": sample_record.projected[:, j], "Z": sample_record.Z[:, j]},
                                  bound, replicas)
            for i, bad in enumerate(found):
                if bad is not None and not gone[i] and rep_status[i] == "success":
                    rep_status[i], theta_stop[i] = "diverged", th
                    rep_message[i] = f"the sampler diverged at theta = {th:.6g}: {bad}"
    return train, sample_record, w, b, (rep_status, rep_message, theta_stop), int(done)
