"""Theory-vs-simulation comparisons shared by the experiments: run both from the same w_0,
turn ``hdae.compare_training`` / ``compare_samples`` into report tables and tolerance checks."""
from __future__ import annotations

import time

import numpy as np

import hdae

from .._common import Outcome, fmt, md_table, scaled_tolerance


def simulate_and_solve(problem, replicas: int, sample: bool = True, cache: dict | None = None):
    """(simulation, theory, seconds simulating, seconds solving); the theory starts from each
    replica's exact initial weights. With ``cache``, a run of the same problem and replicas (with
    samples, when ``sample``) is reused: the training part of a simulation does not depend on
    whether it samples afterwards."""
    key = (problem.config_text, replicas)
    if cache is not None and key in cache and (cache[key][0].sample is not None or not sample):
        return (*cache[key][:2], 0.0, 0.0)
    t0 = time.perf_counter()
    sim = hdae.simulate(problem, replicas=replicas, sample=sample)
    t1 = time.perf_counter()
    if not sim.ok:
        raise RuntimeError(f"simulation failed: {sim.message}")
    th = hdae.solve(init_from=sim, sample=sample)
    t2 = time.perf_counter()
    if not th.ok:
        raise RuntimeError(f"theory failed: {th.message}")
    if cache is not None:
        cache[key] = (sim, th)
    return sim, th, t1 - t0, t2 - t1


def training_table(rows) -> str:
    body = []
    for r in rows:
        body.append([r.name, fmt(r.max_dev), fmt(r.scale), "n/a" if r.scale == 0 else f"{r.relative:.2%}",
                     fmt(r.spread), fmt(r.mean_dev)])
    return md_table(["statistic", "max abs dev (worst replica)", "scale", "relative", "sim replica spread (std)",
                     "dev of replica means"], body)


def training_checks(out: Outcome, th, sim, tol_1000: dict, label: str = ""):
    """Table of every statistic, and one check per statistic in ``tol_1000``: the worst
    replica's relative deviation (max over checkpoints and entries, over the simulation's
    scale) within the tolerance stated at d = 1000, scaled to the simulation's d by d^-1/2."""
    rows = {r.name: r for r in hdae.compare_training(th, sim)}
    out.table(f"Training statistics{label}: theory vs simulation (d = {sim.d}, {sim.n_replicas} replicas)",
              training_table(rows.values()))
    for name, tol in tol_1000.items():
        t = scaled_tolerance(tol, sim.d)
        out.check(f"{label.strip(' ,:')} {name}: worst-replica relative deviation".strip(), rows[name].relative, t,
                  note=f"{tol:.3g} at d = 1000, x (1000/d)^1/2")
    return rows


def sample_table(rows) -> str:
    body = [[fmt(r.theta), fmt(r.mean_dev), fmt(r.cov_dev), fmt(r.cov_scale), fmt(r.distance), fmt(r.floor),
             f"{r.ratio:.2f}"] for r in rows]
    return md_table(["theta", "mean dev", "cov dev", "cov scale", "energy distance", "noise floor",
                     "distance / floor"], body)


def sample_checks(out: Outcome, th, sim, ratio_tol: float, cov_tol: float | None = None, label: str = ""):
    """Generated samples at every sampled time: energy distance theory-simulation within
    ``ratio_tol`` times the simulation's own two-half noise floor (worst replica), and, when
    ``cov_tol`` is given, covariance deviation within that fraction of the covariance scale."""
    rows = hdae.compare_samples(th, sim)
    out.table(f"Generated samples{label}: projections on the observation space", sample_table(rows))
    worst = max(rows, key=lambda r: r.ratio)
    out.check(f"{label.strip(' ,:')} samples: energy distance / noise floor (worst theta = {worst.theta:.3g})".strip(),
              worst.ratio, ratio_tol)
    if cov_tol is not None:
        rel = max(r.cov_dev / r.cov_scale for r in rows)
        out.check(f"{label.strip(' ,:')} samples: covariance deviation / scale (worst theta)".strip(), rel, cov_tol)
    return rows


def spread_ratio(th, sim, name: str) -> float:
    """Deviation of the replica means (theory mean over its trajectories vs simulation mean),
    over the standard error of the simulation mean (replica std / sqrt(n)), max over entries
    and checkpoints where the spread is resolvable (std > 1e-3 of scale)."""
    from hdae.compare import common_checkpoints

    it, is_ = common_checkpoints(th.train.theta, sim.train.theta)
    a = np.asarray(getattr(th.train, name))[:, it]
    b = np.asarray(getattr(sim.train, name))[:, is_]
    n = b.shape[0]
    se = b.std(0, ddof=1) / np.sqrt(n)
    floor = 1e-3 * np.abs(b).max()
    dev = np.abs(a.mean(0) - b.mean(0))
    return float(np.max(dev / np.maximum(se, floor)))
