"""``simulate``: realise a problem in d dimensions, train by online SGD, sample, return a Result."""
from __future__ import annotations

import platform
import time

import numpy as np
import torch

from .. import limits, schedules, targets
from ..schedules import checkpoint_steps
from ..config import Problem
from ..divergence import check_initial, exploded
from ..progress import progress_bar
from ..results import Result, SampleRecord, TrainRecord
from .sampler import sample_finite_d
from .sgd import MixtureSampler, OnlineSGD, summary_statistics

_MEMORY_BUDGET = 256 * 2**20  # bytes of pre-drawn noise per chunk


def resolve_device(device: str = "auto") -> torch.device:
    """'auto' -> CUDA when present, else CPU; 'cuda' without a GPU is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda asked for, but torch sees no CUDA device")
    return dev


def describe_device(dev: torch.device) -> str:
    if dev.type == "cuda":
        return f"{dev} ({torch.cuda.get_device_name(dev)})"
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def simulate(problem: Problem, d: int | None = None, replicas: int = 1, device: str = "auto",
             seed: int | None = None, progress: bool | None = False, sample: bool = True) -> Result:
    """Run the finite-d ground truth of ``problem``: SGD, then the sampler at ``sample.thetas``.

    Parameters
    ----------
    d : ambient dimension (default: ``target.d``); seed : overrides the problem's seed.
    replicas : independent runs batched into one computation (leading axis of every statistic).
    device : 'auto', 'cpu' or 'cuda'. progress : show a bar (None: when stderr is a tty).
    sample : run the generative sampler at the sampled training times.

    Returns a :class:`~hdae.results.Result` of kind 'simulation'. If the weights diverge, the
    result has status 'diverged', a message naming the step and theta, and the checkpoints
    computed before.
    """
    overrides = {}
    if d is not None and d != problem.d:
        overrides["target.d"] = int(d)
    if seed is not None and seed != problem.seed:
        overrides["seed"] = int(seed)
    if overrides:
        problem = problem.with_overrides(**overrides)
    if replicas < 1:
        raise ValueError("replicas must be >= 1")
    limits.check_memory(limits.simulation_bytes(problem, replicas), "this simulation",
                        f"d = {problem.d}, replicas = {replicas}, sample.n = {problem.sample.n}")
    d, seed = problem.d, problem.seed
    dev = resolve_device(device)
    dtype = getattr(torch, problem.simulation.dtype)
    t_start = time.perf_counter()

    realised = targets.realise(problem.target, problem.observation_basis, d)
    w0 = targets.initial_weights(problem.target, problem.init, problem.model.width, d, seed, replicas)
    b0 = np.full(replicas, problem.model.skip)
    tr = problem.train
    sgd = OnlineSGD(MixtureSampler(realised, dev, dtype), tr.interpolant.alpha(tr.times), tr.interpolant.beta(tr.times),
                    tr.time_weights, tr.lr, tr.weight_decay, problem.model.activation, dev, dtype)
    generator = torch.Generator(device=dev).manual_seed(seed)

    as_t = lambda a: torch.as_tensor(a, dtype=dtype, device=dev)  # noqa: E731
    eig, cents, basis = as_t(realised.eigenvalues), as_t(realised.centroids), as_t(realised.basis)
    w, b = as_t(w0).clone(), as_t(b0).clone()

    steps = checkpoint_steps(tr.checkpoints, d, tr.lr)
    sample_steps = set(checkpoint_steps(problem.sample.thetas, d, tr.lr).tolist()) if sample else set()
    chunk = max(1, min(problem.simulation.chunk, _MEMORY_BUDGET // (2 * replicas * d * w.element_size())))
    records, snapshots = [], {}
    status, message = "success", ""
    bar = progress_bar(int(steps[-1]), f"simulate d={d} x{replicas}", progress)
    done = 0
    try:
        for target_step in steps:
            failed = sgd.run(w, b, int(target_step - done), generator, chunk)
            if failed is not None:
                step = done + failed + 1
                status = "diverged"
                message = (f"SGD diverged at step {step} (theta = {2 * tr.lr * step / d:.6g}): non-finite weights; "
                           f"eta = {tr.lr:g} may be too large")
                break
            bar.update(int(target_step - done))
            done = int(target_step)
            records.append({k: v.cpu().numpy() for k, v in summary_statistics(w, b, eig, cents, basis).items()})
            if done == 0:  # out of range before any step: the input's scales, not a divergence
                check_initial(records[-1], problem.theory.divergence)
            bad = exploded(records[-1], problem.theory.divergence)
            if bad is not None:  # finite weights, exploding statistics: a divergence all the same
                if len(records) > 1:
                    records.pop()
                status, message = "diverged", f"SGD diverged by step {done} (theta = {2 * tr.lr * done / d:.6g}): {bad}"
                break
            if done in sample_steps:
                snapshots[done] = (w.clone(), b.clone())
    finally:
        bar.close()

    n_ok = len(records)
    stack = lambda k: np.stack([r[k] for r in records], axis=1) if records else None  # noqa: E731
    theta = 2 * tr.lr * steps[:n_ok] / d
    train = TrainRecord(theta, *(stack(k) for k in ("Q", "Omega", "M", "G", "b")))

    sample_record = None
    if snapshots:
        coeffs = schedules.sampler_coefficients(tr.interpolant, problem.sample.noise, problem.sample.grid)
        proj, lat = [], []
        for step in sorted(snapshots):
            ws, bs = snapshots[step]
            p, z = sample_finite_d(ws, bs, coeffs, problem.sample.n, basis, problem.model.activation, generator,
                                   problem.simulation.sample_batch)
            proj.append(p.cpu().numpy())
            lat.append(z.cpu().numpy())
        sample_record = SampleRecord(theta=2 * tr.lr * np.array(sorted(snapshots)) / d,
                                     projected=np.stack(proj, 1), Z=np.stack(lat, 1))
        bad = exploded({"generated samples": sample_record.projected, "Z": sample_record.Z}, problem.theory.divergence)
        if bad is not None and status == "success":
            status, message = "diverged", f"the sampler diverged: {bad}"
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    weights, means, covs = problem.target.projected(problem.observation_basis)
    return Result(kind="simulation", config_text=problem.config_text, seed=seed, d=d, train=train,
                  device=describe_device(dev), wall_time_s=time.perf_counter() - t_start, init_w=w0, init_b=b0,
                  sample=sample_record, target={"weights": weights, "means": means, "covariances": covs},
                  status=status, message=message, replica_axis=True,
                  attrs={"n_steps": int(done), "dtype": problem.simulation.dtype,
                         "lambda_avg": problem.target.average_eigenvalue(d), "torch_version": torch.__version__})
