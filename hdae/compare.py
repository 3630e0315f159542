"""Theory versus simulation: deviations of the summary statistics and of the generated samples."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from .results import TRAIN_OPTIONAL, TRAIN_STATS, Result, checkpoint_index


@dataclass(frozen=True)
class StatisticComparison:
    """One statistic over the common checkpoints.

    max_dev: max |theory - simulation| (per replica pair, or theory against every simulation
    replica); scale: max |simulation|; spread: the simulation replicas' standard deviation
    around their mean (max over checkpoints and components; NaN with one replica);
    mean_dev: max |theory mean - simulation mean| (the replica-averaged, systematic part);
    checkpoints: how many common checkpoints entered (those where at least one compared replica
    holds finite values in both files; a replica that stopped is compared only where it does).
    A statistic without any such checkpoint has NaN deviations, which no tolerance accepts.
    """

    name: str
    max_dev: float
    scale: float
    spread: float
    mean_dev: float
    checkpoints: int | None = None

    @property
    def relative(self) -> float:
        return self.max_dev / self.scale if self.scale > 0 else float("nan")


def common_checkpoints(a: np.ndarray, b: np.ndarray, rtol: float = 1e-9):
    """Index pairs (i, j) with a[i] == b[j] up to ``rtol``."""
    pairs = [(i, checkpoint_index(b, t, rtol)) for i, t in enumerate(a)]
    pairs = [(i, j) for i, j in pairs if j is not None]
    return np.array([i for i, _ in pairs], dtype=int), np.array([j for _, j in pairs], dtype=int)


# ----------------------------------------------------------------------------- same problem?
# What a theory may legally differ in from the simulation it is compared with: how long and where it
# reports (train.tau, train.checkpoints), how many samples it draws and where (sample.n, sample.thetas,
# sample.density_grid), its numerics ([theory], [simulation], [generations]: the theory may follow fewer
# generations, with its own discretisation) and labels (name, description). With
# theory.init = "limit" (the d -> infinity theory) also target.d and seed. Everything else defines the
# problem: target, model, init, observation, the rest of [train] (lr, weight_decay, times, schedule...)
# and of [sample] (steps, t_end, eps, eps_schedule).
MAY_DIFFER = {"name", "description", "theory", "simulation", "train.tau", "train.checkpoints", "sample.n",
              "sample.thetas", "sample.density_grid", "generations"}
MAY_DIFFER_IN_THE_LIMIT = {"target.d", "seed"}


def _flatten(cfg: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in cfg.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and key != "target.covariance":
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def problem_mismatches(theory: Result, simulation: Result) -> list[str]:
    """Keys of the stored problems that differ where a theory and a simulation must agree (see
    ``MAY_DIFFER``), as 'key (theory value vs simulation value)'; empty when comparable."""
    from .tomlio import loads

    a, b = _flatten(loads(theory.config_text)), _flatten(loads(simulation.config_text))
    allowed = set(MAY_DIFFER)
    if a.get("theory.init") == "limit":
        allowed |= MAY_DIFFER_IN_THE_LIMIT
    out = []
    for key in sorted(set(a) | set(b)):
        if key in allowed or key.split(".")[0] in allowed:
            continue
        if a.get(key) != b.get(key):
            out.append(f"{key} ({_short(a.get(key))} vs {_short(b.get(key))})")
    return out


def _short(v) -> str:
    text = repr(v)
    return text if len(text) <= 30 else text[:27] + "..."


def check_comparable(theory: Result, simulation: Result, allow_mismatch: bool = False):
    """Raise ValueError (one line) unless ``theory`` is a theory result and ``simulation`` a
    simulation result of the same problem (:func:`problem_mismatches`; skipped with
    ``allow_mismatch``)."""
    kinds = (theory.kind, simulation.kind)
    if kinds == ("simulation", "theory"):
        raise ValueError("the arguments are swapped: give the theory file first, then the simulation file")
    if kinds != ("theory", "simulation"):
        raise ValueError(f"compare takes a theory file and a simulation file, got a {kinds[0]} and a {kinds[1]} file")
    if not allow_mismatch:
        bad = problem_mismatches(theory, simulation)
        if bad:
            raise ValueError(f"the files solve different problems: {'; '.join(bad[:3])}"
                             f"{f' and {len(bad) - 3} more' if len(bad) > 3 else ''} (--allow-mismatch compares anyway)")


def _pair_status(theory: Result, simulation: Result):
    """Per simulation replica: (theory ok, simulation ok), the single theory trajectory repeated."""
    n_s, n_t = simulation.n_replicas, theory.n_replicas
    if n_t not in (1, n_s):
        raise ValueError(f"cannot pair {n_t} theory trajectories with {n_s} simulation replicas")
    th_ok = theory.replica_ok if n_t == n_s else np.repeat(theory.replica_ok, n_s)
    return th_ok, simulation.replica_ok


def compared_replicas(theory: Result, simulation: Result) -> tuple[np.ndarray, list[str]]:
    """The simulation replicas to compare (theory trajectory i with replica i, or the single theory
    trajectory with each): those that succeeded in both files (per-replica status, :mod:`hdae.results`),
    and one line per replica left out saying why. When no replica succeeded in both, every replica is
    compared, each over the checkpoints where both files hold finite values, and the lines say so."""
    th_ok, sm_ok = _pair_status(theory, simulation)
    paired = theory.n_replicas == simulation.n_replicas
    keep = th_ok & sm_ok
    notes = []
    for i in np.flatnonzero(~keep):
        sides = (("theory", theory, th_ok[i], i if paired else 0), ("simulation", simulation, sm_ok[i], i))
        why = [f"{kind} {res.replica_status[j]}: {res.replica_message[j]}" for kind, res, ok, j in sides if not ok]
        notes.append(f"replica {i} " + ("left out" if keep.any() else "compared anyway") + f" ({'; '.join(why)})")
    if not keep.any():
        keep[:] = True
        notes.append("no replica succeeded in both files: every replica is compared over the checkpoints "
                     "where both files hold finite values")
    return np.flatnonzero(keep), notes


def _paired(theory: np.ndarray, sim: np.ndarray):
    """theory (n_t, ...) against sim (n_s, ...): replica i with replica i, or one theory with all."""
    if theory.shape[0] == sim.shape[0]:
        return theory, sim
    if theory.shape[0] == 1:
        return np.broadcast_to(theory, sim.shape), sim
    raise ValueError(f"cannot pair {theory.shape[0]} theory trajectories with {sim.shape[0]} simulation replicas")


def _select(theory_arr: np.ndarray, sim_arr: np.ndarray, reps):
    """The compared replicas ``reps`` of both arrays (the theory's all, when it has one trajectory)."""
    if reps is None:
        return theory_arr, sim_arr
    return (theory_arr if theory_arr.shape[0] == 1 and sim_arr.shape[0] != 1 else theory_arr[reps]), sim_arr[reps]


def _finite_rows(x: np.ndarray) -> np.ndarray:
    """(n, k, ...) -> (n, k): every component finite."""
    return np.isfinite(x.reshape(x.shape[0], x.shape[1], -1)).all(-1)


def _masked_max(x: np.ndarray, mask: np.ndarray) -> float:
    """max of x (n, k, ...) over the (replica, checkpoint) entries where ``mask`` (n, k) holds (NaN
    propagates from those entries); NaN when there is none."""
    sel = x[mask]
    return float(sel.max()) if sel.size else float("nan")


def _checkpoint_reduce(a: np.ndarray, b: np.ndarray, mask: np.ndarray):
    """(spread, mean_dev) of :class:`StatisticComparison` with only the entries in ``mask`` (n, k):
    per checkpoint, over the replicas it keeps there (the spread needs two of them)."""
    if mask.all():  # the same expressions as without a mask: no replica stopped
        spread = float(b.std(0, ddof=1).max()) if b.shape[0] > 1 else float("nan")
        return spread, float(np.abs(a.mean(0) - b.mean(0)).max())
    spreads, devs = [], []
    for j in range(mask.shape[1]):
        rows = mask[:, j]
        if rows.sum() >= 2:
            spreads.append(b[rows, j].std(0, ddof=1).max())
        if rows.any():
            devs.append(np.abs(a[rows, j].mean(0) - b[rows, j].mean(0)).max())
    return (float(np.max(spreads)) if spreads else float("nan"), float(np.max(devs)) if devs else float("nan"))


def _strict_pairs(theory: Result, simulation: Result, replicas) -> np.ndarray:
    """Per compared replica: True where it succeeded in both files (its values must all be finite; a
    non-finite one shows as NaN in the table), False where it stopped (compared where finite)."""
    th_ok, sm_ok = _pair_status(theory, simulation)
    both = th_ok & sm_ok
    return both if replicas is None else both[np.asarray(replicas)]


def compare_training(theory: Result, simulation: Result, replicas=None) -> list[StatisticComparison]:
    """Per statistic (Q, Omega, M, G, b, and for generations >= 1 the overlap with the previous
    generation's weights): deviations over the checkpoints both files share, for the simulation
    replicas ``replicas`` (default: those that succeeded in both files, :func:`compared_replicas`).
    A compared replica that stopped (in either file) enters only at the checkpoints where both files
    hold finite values of the statistic; a statistic without any such checkpoint gets NaN."""
    if replicas is None:
        replicas, _ = compared_replicas(theory, simulation)
    it, is_ = common_checkpoints(theory.train.theta, simulation.train.theta)
    if len(it) == 0:
        raise ValueError("the two files share no checkpoint")
    strict = _strict_pairs(theory, simulation, replicas)
    out = []
    names = TRAIN_STATS + tuple(k for k in TRAIN_OPTIONAL
                                if getattr(theory.train, k) is not None and getattr(simulation.train, k) is not None)
    for name in names:
        th, sm = _select(getattr(theory.train, name)[:, it], getattr(simulation.train, name)[:, is_], replicas)
        if th.shape[2:] != sm.shape[2:]:
            raise ValueError(f"{name}: shapes differ ({th.shape[2:]} vs {sm.shape[2:]}): not the same problem")
        a, b = _paired(th, sm)
        mask = (_finite_rows(a) & _finite_rows(b)) | strict[:, None]
        spread, mean_dev = _checkpoint_reduce(a, b, mask)
        out.append(StatisticComparison(name, _masked_max(np.abs(a - b), mask), _masked_max(np.abs(b), mask),
                                       spread, mean_dev, int(mask.any(0).sum())))
    return out


def tolerance_failures(rows: list[StatisticComparison], tol: float) -> list[str]:
    """Names of the statistics whose max deviation exceeds ``tol`` times their scale, or whose
    deviation or scale is not finite (NaN: no finite common checkpoint) -- never a pass by NaN."""
    return [r.name for r in rows
            if not (np.isfinite(r.max_dev) and np.isfinite(r.scale)) or (r.scale > 0 and r.relative > tol)]


# ----------------------------------------------------------------------------- samples
@njit(cache=True, parallel=True)
def _mean_distance(x, y):
    """Mean Euclidean distance over all n x m pairs (the diagonal included when x is y)."""
    n, m = x.shape[0], y.shape[0]
    acc = np.zeros(n)
    for i in prange(n):
        s = 0.0
        for j in range(m):
            d2 = 0.0
            for k in range(x.shape[1]):
                diff = x[i, k] - y[j, k]
                d2 += diff * diff
            s += np.sqrt(d2)
        acc[i] = s
    return acc.sum() / (n * m)


def energy_distance(x: np.ndarray, y: np.ndarray) -> float:
    """Energy distance sqrt(2E|X-Y| - E|X-X'| - E|Y-Y'|) between samples x (n, R), y (m, R).

    V-statistics (all pairs, diagonals included): the estimate is never negative and, for
    samples of one law, has a positive bias of order n^-1/2 in the distance -- the same for
    theory-vs-simulation and simulation-vs-simulation at equal sample sizes, which is what
    makes the latter a usable noise floor."""
    x = np.ascontiguousarray(x, dtype=float)
    y = np.ascontiguousarray(y, dtype=float)
    e2 = 2 * _mean_distance(x, y) - _mean_distance(x, x) - _mean_distance(y, y)
    return float(np.sqrt(max(e2, 0.0)))


@dataclass(frozen=True)
class SampleComparison:
    """Generated samples at one training time theta (worst replica pair).

    mean_dev: max |mean difference|; cov_dev: max |covariance difference| (entrywise), with
    the simulation covariance's largest entry as ``cov_scale``; distance: energy distance
    between theory and simulation samples; floor: the same distance between two independent
    halves of the simulation samples (the sampling-noise floor)."""

    theta: float
    mean_dev: float
    cov_dev: float
    cov_scale: float
    distance: float
    floor: float

    @property
    def ratio(self) -> float:
        if np.isnan(self.distance) or np.isnan(self.floor):
            return float("nan")
        return self.distance / self.floor if self.floor > 0 else float("inf")


def compare_samples(theory: Result, simulation: Result, max_samples: int = 2000,
                    seed: int = 0, replicas=None) -> list[SampleComparison]:
    """Per sampled training time both files share: moments and energy distance, with noise floor,
    for the simulation replicas ``replicas`` (default: those that succeeded in both files).

    The simulation samples of each replica are split into two halves A and B (at most
    ``max_samples`` each); the floor is the distance between A and B, and the theory is
    compared with A on a theory subsample of the same size. A compared replica that stopped (in either
    file) enters only at the sampled times where both files hold finite samples; a time without any
    such replica gets a row of NaN."""
    if theory.sample is None or simulation.sample is None:
        raise ValueError("both files need generated samples (/sample)")
    if replicas is None:
        replicas, _ = compared_replicas(theory, simulation)
    it, is_ = common_checkpoints(theory.sample.theta, simulation.sample.theta)
    strict = _strict_pairs(theory, simulation, replicas)
    rng = np.random.default_rng(seed)
    out = []
    if min(theory.sample.projected.shape[2], simulation.sample.projected.shape[2]) < 2:
        raise ValueError("the sample comparison needs at least 2 samples per file (sample.n >= 2)")
    for i, j in zip(it, is_):
        th, sm = _paired(*_select(theory.sample.projected[:, i], simulation.sample.projected[:, j], replicas))
        rows = []
        for a, b, must in zip(th, sm, strict):
            if not (must or (np.isfinite(a).all() and np.isfinite(b).all())):
                continue  # a stopped replica, past its stop
            half = min(len(b) // 2, max_samples)
            perm = rng.permutation(len(b))
            sa, sb = b[perm[:half]], b[perm[half:2 * half]]
            ta = a[rng.permutation(len(a))[:half]]
            rows.append((np.abs(a.mean(0) - b.mean(0)).max(), np.abs(np.cov(a.T) - np.cov(b.T)).max(),
                         np.abs(np.cov(b.T)).max(), energy_distance(ta, sa), energy_distance(sa, sb)))
        if not rows:
            out.append(SampleComparison(float(theory.sample.theta[i]), *[float("nan")] * 5))
            continue
        rows = np.array(rows)
        worst = int(np.argmax(rows[:, 3] / np.maximum(rows[:, 4], 1e-300)))
        out.append(SampleComparison(float(theory.sample.theta[i]), float(rows[:, 0].max()), float(rows[:, 1].max()),
                                    float(rows[:, 2].max()), float(rows[worst, 3]), float(rows[worst, 4])))
    return out


@dataclass(frozen=True)
class GenerationComparison:
    """Theory against simulation for one generation: training rows and (when both have samples) sample rows."""

    generation: int
    training: list
    samples: list
    replicas: np.ndarray | None = None  # the simulation replicas compared
    notes: tuple = ()  # the replicas left out (or compared although they stopped), one line each
    stopped_only: bool = False  # no replica succeeded in both files: those compared all stopped


def compare_generations(theory: Result, simulation: Result) -> list[GenerationComparison]:
    """:func:`compare_training` and :func:`compare_samples` generation by generation (a single run is
    generation 0); only the generations both results hold; in each, only the replicas that succeeded
    in both (:func:`compared_replicas`)."""
    out = []
    for g in range(min(theory.n_generations, simulation.n_generations)):
        th, sm = theory.generation(g), simulation.generation(g)
        if th.train is None or sm.train is None or len(th.train.theta) == 0 or len(sm.train.theta) == 0:
            break
        reps, notes = compared_replicas(th, sm)
        th_ok, sm_ok = _pair_status(th, sm)
        stopped_only = not (th_ok & sm_ok).any()
        if stopped_only:
            notes = [_with_finite_range(n, th, sm, r) for n, r in zip(notes, reps)] + notes[len(reps):]
        samples = compare_samples(th, sm, replicas=reps) if th.sample is not None and sm.sample is not None else []
        out.append(GenerationComparison(g, compare_training(th, sm, reps), samples, reps, tuple(notes), stopped_only))
    return out


def _with_finite_range(note: str, theory: Result, simulation: Result, rep: int) -> str:
    """``note`` (on replica ``rep``) with the common checkpoints where both files hold finite values
    of every statistic for it."""
    it, is_ = common_checkpoints(theory.train.theta, simulation.train.theta)
    t = 0 if theory.n_replicas == 1 else rep
    finite = np.ones(len(it), dtype=bool)
    for name in TRAIN_STATS:
        a, b = getattr(theory.train, name)[t, it], getattr(simulation.train, name)[rep, is_]
        finite &= np.isfinite(a.reshape(len(it), -1)).all(1) & np.isfinite(b.reshape(len(it), -1)).all(1)
    if not finite.any():
        return f"{note}; no finite common checkpoint"
    theta = simulation.train.theta[is_[finite]]
    return f"{note}; finite at {finite.sum()} of {len(it)} common checkpoints, theta {theta[0]:.4g} to {theta[-1]:.4g}"


def format_generations(rows: list[GenerationComparison]) -> str:
    """The tables of :func:`compare_generations`, one block per generation (no header for a single run)."""
    blocks = []
    for row in rows:
        text = format_training(row.training)
        if row.notes:
            text = format_replicas(row) + "\n" + text
        if row.samples:
            text += "\n\ngenerated samples (projections on the observation space):\n" + format_samples(row.samples)
        blocks.append(text if len(rows) == 1 else f"== generation {row.generation} ==\n{text}")
    return "\n\n".join(blocks)


def format_replicas(row: GenerationComparison) -> str:
    """Which replicas a generation's tables compare, and why the others are left out."""
    used = ", ".join(map(str, row.replicas)) if row.replicas is not None else "all"
    head = ("replicas compared (none succeeded in both files; each where both files hold finite values)"
            if row.stopped_only else "replicas compared (succeeded in both files)")
    return "\n".join([f"{head}: {used}"] + [f"  {n}" for n in row.notes])


def format_header(theory: Result, simulation: Result, rows: list[GenerationComparison]) -> str:
    """The line above the tables: common checkpoints of generation 0, d, replicas (and how many were
    compared), generations."""
    th0, sm0 = theory.generation(0), simulation.generation(0)
    last = rows[-1]
    compared = ""
    if last.notes:
        compared = (f", {len(last.replicas)} compared although stopped (per-replica status below)" if last.stopped_only
                    else f", {len(last.replicas)} compared (per-replica status below)")
    return (f"training: {len(common_checkpoints(th0.train.theta, sm0.train.theta)[0])} common checkpoints, "
            f"theta up to {min(th0.train.theta[-1], sm0.train.theta[-1]):.4g}; simulation d = {simulation.d}, "
            f"{simulation.n_replicas} replica(s)" + compared + (f", {len(rows)} generations" if len(rows) > 1 else ""))


def format_training(rows: list[StatisticComparison]) -> str:
    lines = [f"{'statistic':<10}{'max |dev|':>12}{'scale':>12}{'relative':>11}{'sim spread':>12}{'mean dev':>12}"]
    for r in rows:
        spread = "n/a" if np.isnan(r.spread) else f"{r.spread:.4g}"
        rel = "n/a" if r.scale == 0 else f"{r.relative:.2%}"
        lines.append(f"{r.name:<10}{r.max_dev:>12.4g}{r.scale:>12.4g}{rel:>11}{spread:>12}{r.mean_dev:>12.4g}")
    return "\n".join(lines)


def format_samples(rows: list[SampleComparison]) -> str:
    lines = [f"{'theta':>8}{'mean dev':>11}{'cov dev':>11}{'cov scale':>11}{'energy dist':>13}{'noise floor':>13}{'ratio':>8}"]
    for r in rows:
        lines.append(f"{r.theta:>8.4g}{r.mean_dev:>11.4g}{r.cov_dev:>11.4g}{r.cov_scale:>11.4g}"
                     f"{r.distance:>13.4g}{r.floor:>13.4g}{r.ratio:>8.2f}")
    return "\n".join(lines)
