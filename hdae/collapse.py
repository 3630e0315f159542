"""Model-collapse diagnostics: how the generated density changes over generations.

For each generation g, on the projected samples E^T X of its last sampled training time:

* ``variance`` (R,): the variance along each observation direction, and ``total`` their sum;
* ``modes``: the modes of a Gaussian kernel density estimate (Scott's bandwidth) of the first
  two observation coordinates on a grid: every grid cell climbs to its highest neighbour, each
  local maximum collects the probability of the cells that reach it, and maxima holding at
  least ``min_mass`` of it count as modes (``mode_weights``, largest first);
* ``distance``: the energy distance to samples of the ORIGINAL target's projection (the same
  number of samples, drawn with a fixed seed), so every generation is measured against one law.

The same estimator is applied to theory and simulation samples, so the two columns compare like
with like. Pure functions of arrays; :func:`diagnostics` reads a multi-generation Result.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .compare import energy_distance
from .diagnostics import target_samples
from .mixtures import gaussian_mixture_density


@dataclass(frozen=True)
class GenerationDiagnostics:
    generation: int
    theta: float
    variance: np.ndarray  # (R,)
    total: float
    mode_weights: np.ndarray  # (n_modes,), largest first
    distance: float

    @property
    def n_modes(self) -> int:
        return len(self.mode_weights)


def kde_grid(samples: np.ndarray, n_grid: int = 96, pad: float = 3.0):
    """Gaussian KDE (Scott's rule, per-coordinate bandwidth) of samples (n, D), D = 1 or 2, on a
    grid spanning the samples +- ``pad`` bandwidths. Returns (axes [(n_grid,)] * D, density (n_grid,)*D)."""
    x = np.asarray(samples, dtype=float)
    n, D = x.shape
    sd = x.std(0)
    sd = np.where(sd > 0, sd, 1.0)
    h = sd * n ** (-1.0 / (D + 4))
    axes = [np.linspace(x[:, i].min() - pad * h[i], x[:, i].max() + pad * h[i], n_grid) for i in range(D)]
    mesh = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, D)
    dens = gaussian_mixture_density(mesh, x, np.diag(h**2))
    return axes, dens.reshape((n_grid,) * D)


def grid_modes(density: np.ndarray, cell: float, min_mass: float = 0.02) -> np.ndarray:
    """Masses of the modes of a density on a regular 1-D or 2-D grid (cell = cell volume), largest
    first: hill climbing to the highest of the 3^D neighbours, pointer jumping to the maxima."""
    f = np.asarray(density, dtype=float)
    shape = f.shape
    idx = np.arange(f.size).reshape(shape)
    best_val = f.copy()
    best_idx = idx.copy()
    pad_val = np.pad(f, 1, constant_values=-np.inf)
    pad_idx = np.pad(idx, 1, constant_values=-1)
    offsets = np.array(np.meshgrid(*([[-1, 0, 1]] * f.ndim), indexing="ij")).reshape(f.ndim, -1).T
    for off in offsets:
        sl = tuple(slice(1 + o, 1 + o + s) for o, s in zip(off, shape))
        v, i = pad_val[sl], pad_idx[sl]
        better = v > best_val
        best_val = np.where(better, v, best_val)
        best_idx = np.where(better, i, best_idx)
    nxt = best_idx.ravel()
    while True:
        jumped = nxt[nxt]
        if np.array_equal(jumped, nxt):
            break
        nxt = jumped
    mass = np.bincount(nxt, weights=f.ravel() * cell, minlength=f.size)
    total = mass.sum()
    if total <= 0:
        return np.zeros(0)
    w = mass[mass > 0] / total
    return np.sort(w[w >= min_mass])[::-1]


def sample_diagnostics(samples: np.ndarray, reference: np.ndarray, generation: int = 0, theta: float = float("nan"),
                       min_mass: float = 0.02, max_samples: int = 2000) -> GenerationDiagnostics:
    """Diagnostics of projected samples (n, R) against samples of the original target (m, R); NaN
    (no modes) when fewer than two samples are finite (a replica that stopped)."""
    x = np.asarray(samples, dtype=float)
    x = x[np.all(np.isfinite(x), axis=1)]
    if len(x) < 2:
        nan = np.full(x.shape[1], np.nan)
        return GenerationDiagnostics(generation, float(theta), nan, float("nan"), np.zeros(0), float("nan"))
    axes, dens = kde_grid(x[:max_samples, :2])
    cell = np.prod([a[1] - a[0] for a in axes])
    var = x.var(0)
    return GenerationDiagnostics(generation, float(theta), var, float(var.sum()), grid_modes(dens, cell, min_mass),
                                 energy_distance(x[:max_samples], reference[:max_samples]))


def reference_replica(*results) -> int:
    """The replica the collapse diagnostics follow by default: the first that succeeded in every
    generation of every result given (a single theory trajectory stands for every replica; 0 when
    none did)."""
    n = max(r.n_replicas for r in results)
    oks = [np.broadcast_to(r.generation(g).replica_ok, (n,)) if r.n_replicas in (1, n) else np.zeros(n, bool)
           for r in results for g in range(r.n_generations)]
    ok = np.logical_and.reduce(oks)
    return int(np.argmax(ok)) if ok.any() else 0


def diagnostics(result, replica: int | None = None, n_reference: int = 2000) -> list[GenerationDiagnostics]:
    """Per generation of ``result`` (theory or simulation, one or several generations), the diagnostics
    of replica ``replica``'s samples at the last sampled training time (default
    :func:`reference_replica`: the first replica that succeeded throughout)."""
    if replica is None:
        replica = reference_replica(result)
    if result.target is None:
        raise ValueError("the result holds no projected target (/target)")
    reference = target_samples(result.target, n_reference, seed=result.seed)
    out = []
    for g in range(result.n_generations):
        run = result.generation(g)
        if run.sample is None:
            raise ValueError(f"generation {g} holds no generated samples")
        out.append(sample_diagnostics(run.sample.projected[replica, -1], reference, g, float(run.sample.theta[-1])))
    return out


def as_arrays(rows: list[GenerationDiagnostics]) -> dict:
    """The diagnostics as arrays (for HDF5): variance (n_gen, R), total, n_modes, distance (n_gen,),
    mode_weights (n_gen, max_modes) padded with zeros."""
    width = max([r.n_modes for r in rows] + [1])
    weights = np.zeros((len(rows), width))
    for i, r in enumerate(rows):
        weights[i, :r.n_modes] = r.mode_weights
    return {"variance": np.array([r.variance for r in rows]), "total": np.array([r.total for r in rows]),
            "n_modes": np.array([r.n_modes for r in rows]), "mode_weights": weights,
            "distance": np.array([r.distance for r in rows])}


def format_table(columns: dict[str, list[GenerationDiagnostics]]) -> str:
    """One table, a row per generation, a block of columns per source (e.g. {'theory': .., 'simulation': ..}):
    the top three variances, their total, the modes (with their weights) and the distance to the
    generation-0 target; columns as wide as their widest cell."""
    names = list(columns)
    fields = ("variances", "total", "modes (weights)", "dist")
    rows = []
    for g in range(max(len(v) for v in columns.values())):
        row = []
        for n in names:
            if g >= len(columns[n]):
                row.append(("", "", "", ""))
                continue
            r = columns[n][g]
            var = ", ".join(f"{v:.3g}" for v in r.variance[:3])
            modes = f"{r.n_modes} (" + ", ".join(f"{w:.2f}" for w in r.mode_weights[:3]) + (", ..." if r.n_modes > 3 else "") + ")"
            row.append((var, f"{r.total:.3g}", modes, f"{r.distance:.3g}"))
        rows.append(row)
    widths = [[max([len(f)] + [len(row[b][k]) for row in rows]) for k, f in enumerate(fields)] for b in range(len(names))]
    block_width = [sum(w) + 2 * (len(fields) - 1) for w in widths]
    title = f"{'':>4}" + "".join(f" | {n:<{block_width[b]}}" for b, n in enumerate(names))
    head = f"{'gen':>4}" + "".join(" | " + "  ".join(f"{f:>{w}}" for f, w in zip(fields, widths[b]))
                                   for b in range(len(names)))
    lines = [title, head]
    for g, row in enumerate(rows):
        lines.append(f"{g:>4}" + "".join(" | " + "  ".join(f"{c:>{w}}" for c, w in zip(row[b], widths[b]))
                                         for b in range(len(names))))
    return "\n".join(line.rstrip() for line in lines)


def collapse_extras(result) -> dict:
    """The diagnostics of every generation of the :func:`reference_replica` as ``collapse_*`` arrays for a
    result's /extra (empty when a generation has no samples); ``collapse_replica`` names the replica."""
    if any(result.generation(g).sample is None for g in range(result.n_generations)):
        return {}
    rep = reference_replica(result)
    arrays = as_arrays(diagnostics(result, rep))
    return {"collapse_replica": np.int64(rep), **{f"collapse_{k}": v for k, v in arrays.items()}}
