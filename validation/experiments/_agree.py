"""Theory-vs-simulation comparisons shared by the experiments: run both from the same w_0,
turn ``hdae.compare_training`` / ``compare_samples`` into report tables and tolerance checks."""
from __future__ import annotations

import time
from dataclasses import dataclass

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


SPLITS = 4  # random half-splits averaged in every distance and floor (see ``sample_agreement``)


@dataclass(frozen=True)
class SampleRow:
    """Generated samples of one replica at one training time theta (see :func:`sample_agreement`)."""

    theta: float
    replica: int
    mean_dev: float  # max |mean difference|, theory vs simulation
    cov_dev: float  # max |covariance difference| (entrywise)
    cov_scale: float  # largest |entry| of the simulation covariance
    distance: float  # energy distance theory vs simulation (mean over splits)
    floor: float  # sampling floor: simulation half vs half (mean over splits)
    transport: float  # transport at the simulation's own Q, G, b vs simulation (mean over splits)
    propagated: float  # floor with the finite-d fluctuation of the statistics propagated (nan: not computed)

    @property
    def ratio(self) -> float:
        return self.distance / self.floor

    @property
    def transport_ratio(self) -> float:
        return self.transport / self.floor

    @property
    def propagated_ratio(self) -> float:
        return self.distance / self.propagated


def _statistics(result, theta: float):
    """(Q, G, b) of every replica at checkpoint ``theta``."""
    from hdae.results import checkpoint_index

    i = checkpoint_index(result.train.theta, theta)
    return result.train.Q[:, i], result.train.G[:, i], result.train.b[:, i]


def sample_agreement(th, sim, splits: int = SPLITS, max_samples: int = 2000, propagate: bool = True,
                     seed: int = 0) -> list:
    """Theory against simulation samples, replica by replica, at every sampled theta: a list of
    :class:`SampleRow`. Every energy distance is between two samples of ``h = min(n/2, max_samples)``
    points and is the mean over ``splits`` random half-splits of the simulation's samples, the
    theory's side drawn afresh for each (its transport is cheap to redraw; the first split uses
    the stored theory samples): one split's floor is a single draw with a 30-50% relative spread,
    so a ratio over it has a heavy upper tail.

    * ``floor``: simulation half A vs half B (sampling noise alone);
    * ``distance``: theory subsample vs A;
    * ``transport``: the theory's transport (Result 2.2, Corollary 2.3) run with the SIMULATION's own
      Q, G, b at that checkpoint, vs A. The transport is exact in distribution at any d given the
      weights, so this isolates it from the training dynamics: its ratio to the floor is ~1;
    * ``propagated``: the floor of ``distance`` when the simulation's statistics fluctuate around the
      theory's by the finite-d amount. With delta_j = (Q, G, b)_sim,j - (Q, G, b)_theory,j of replica j,
      centred over the replicas (the systematic part, which the check must catch, is removed) and
      scaled by sqrt(n/(n-1)), ``propagated`` of replica i is the rms over j != i (``splits``/2 draws
      each) of E_ij, the distance between fresh samples of the transport at replica i's theory
      statistics and at those plus delta_j.
      Under "theory right up to finite-d fluctuations" E[distance^2] = E[E_ij^2]: nothing is picked.
      The generated law can amplify the statistics' O(d^-1/2) fluctuations enormously (eps > 0 with an
      Euler step beyond its stability limit), which the sampling floor alone ignores.
    """
    from hdae.compare import common_checkpoints, energy_distance
    from hdae.schedules import sampler_coefficients
    from hdae.theory import transport

    problem = sim.problem
    coeffs = sampler_coefficients(problem.train.interpolant, problem.sample.noise, problem.sample.grid)
    act = problem.model.activation
    it, is_ = common_checkpoints(th.sample.theta, sim.sample.theta)
    rng = np.random.default_rng(seed)
    rows = []
    for i_t, i_s in zip(it, is_):
        theta = float(sim.sample.theta[i_s])
        Qs, Gs, bs = _statistics(sim, theta)
        Qt, Gt, bt = _statistics(th, theta)
        n_rep = Qs.shape[0]
        if Qt.shape[0] == 1 and n_rep > 1:
            Qt, Gt, bt = (np.broadcast_to(a, (n_rep,) + a.shape[1:]) for a in (Qt, Gt, bt))
        deltas = [Qs - Qt, Gs - Gt, bs - bt]
        centred = [(x - x.mean(0)) * np.sqrt(n_rep / (n_rep - 1)) for x in deltas] if n_rep > 1 else None
        for rep in range(n_rep):
            s = sim.sample.projected[rep, i_s]
            a = th.sample.projected[rep if th.sample.projected.shape[0] > 1 else 0, i_t]
            n, h = len(s), min(len(s) // 2, max_samples)

            def draw(Q, G, b):  # h fresh samples of the theory's transport at these statistics
                return transport.generated_samples(Q, G, float(b), coeffs, h, act, rng)[0]

            dist, floor, trans = [], [], []
            for k in range(splits):
                perm = rng.permutation(n)
                sa, sb = s[perm[:h]], s[perm[h:2 * h]]
                floor.append(energy_distance(sa, sb))
                # the stored theory samples, then fresh draws of the same transport (the simulation's
                # samples are one d-dim draw; the theory's cost nothing to redraw)
                ta = a[rng.permutation(len(a))[:h]] if k == 0 else draw(Qt[rep], Gt[rep], bt[rep])
                dist.append(energy_distance(ta, sa))
                trans.append(energy_distance(draw(Qs[rep], Gs[rep], bs[rep]), sa))
            prop = float("nan")
            if propagate and centred is not None:
                e2 = []
                for j in range(n_rep):
                    for _ in range(max(1, splits // 2) if j != rep else 0):
                        u = draw(Qt[rep] + centred[0][j], Gt[rep] + centred[1][j], bt[rep] + centred[2][j])
                        if np.all(np.isfinite(u)):
                            e2.append(energy_distance(u, draw(Qt[rep], Gt[rep], bt[rep])) ** 2)
                prop = float(np.sqrt(np.mean(e2))) if e2 else float("nan")
            rows.append(SampleRow(theta, rep, float(np.abs(a.mean(0) - s.mean(0)).max()),
                                  float(np.abs(np.cov(a.T) - np.cov(s.T)).max()), float(np.abs(np.cov(s.T)).max()),
                                  float(np.mean(dist)), float(np.mean(floor)), float(np.mean(trans)), prop))
    return rows


def comparison_table(rows) -> str:
    """Rows of ``hdae.compare_samples`` (worst replica per theta; one split's floor)."""
    body = [[fmt(r.theta), fmt(r.mean_dev), fmt(r.cov_dev), fmt(r.cov_scale), fmt(r.distance), fmt(r.floor),
             f"{r.ratio:.2f}"] for r in rows]
    return md_table(["theta", "mean dev", "cov dev", "cov scale", "energy distance", "noise floor",
                     "distance / floor"], body)


def sample_table(rows) -> str:
    body = [[fmt(r.theta), str(r.replica), fmt(r.mean_dev), fmt(r.cov_dev), fmt(r.cov_scale), fmt(r.distance),
             fmt(r.floor), f"{r.ratio:.2f}", f"{r.transport_ratio:.2f}", fmt(r.propagated),
             "n/a" if np.isnan(r.propagated) else f"{r.propagated_ratio:.2f}"] for r in rows]
    return md_table(["theta", "replica", "mean dev", "cov dev", "cov scale", "energy distance", "sampling floor",
                     "distance / sampling floor", "transport at sim statistics / sampling floor",
                     "propagated floor", "distance / propagated floor"], body)


def sample_checks(out: Outcome, th, sim, ratio_tol: float, cov_tol: float | None = None, label: str = "",
                  checks: bool = True):
    """Generated samples at every sampled time, replica by replica (:func:`sample_agreement`), two
    checks against ``ratio_tol``:

    * transport: the theory's transport at the simulation's own statistics vs the simulation's
      samples, over the sampling floor (exact at any d: tests Result 2.2 / Corollary 2.3 and the
      shared discrete scheme, free of the training deviations);
    * end to end: theory vs simulation, over the propagated floor (sampling noise plus the finite-d
      fluctuation of the statistics, carried through the transport; computed from the replicas).

    With ``cov_tol``, also the covariance deviation within that fraction of the covariance scale.
    ``checks=False``: the table only (no propagated floor)."""
    rows = sample_agreement(th, sim, propagate=checks)
    out.table(f"Generated samples{label}: projections on the observation space, per replica (energy distances: "
              f"mean over {SPLITS} random half-splits)", sample_table(rows))
    if not checks:
        return rows
    lab = label.strip(' ,:')
    worst = max(rows, key=lambda r: r.transport_ratio)
    out.check(f"{lab} samples: transport at the simulation's statistics, energy distance / sampling floor "
              f"(worst: theta = {worst.theta:.3g}, replica {worst.replica})".strip(), worst.transport_ratio, ratio_tol,
              note="exact at any d")
    with_prop = [r for r in rows if np.isfinite(r.propagated)]
    if with_prop:
        worst = max(with_prop, key=lambda r: r.propagated_ratio)
        out.check(f"{lab} samples: theory vs simulation, energy distance / propagated floor "
                  f"(worst: theta = {worst.theta:.3g}, replica {worst.replica})".strip(), worst.propagated_ratio,
                  ratio_tol, note="floor: sampling noise + finite-d fluctuation of Q, G, b through the transport")
    else:  # one replica: no fluctuation estimate, the sampling floor alone
        worst = max(rows, key=lambda r: r.ratio)
        out.check(f"{lab} samples: energy distance / sampling floor (worst: theta = {worst.theta:.3g})".strip(),
                  worst.ratio, ratio_tol)
    if cov_tol is not None:
        rel = max(r.cov_dev / r.cov_scale for r in rows)
        out.check(f"{lab} samples: covariance deviation / scale (worst theta)".strip(), rel, cov_tol)
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
