"""Scalar diagnostics of a generated density: its number of modes and its distance to the target.

Pure functions of arrays (plus thin wrappers that read a :class:`~hdae.results.Result`), shared by
sweeps and model-collapse diagnostics. Definitions:

**Generated law on the observation plane.** For a theory result at sampled time index ``j`` the
law of E^T X is, by Corollary 2.3, the Gaussian mixture (1/n) sum_i N(m_i, C) with means
m_i = Z_i Q^+ G over the n latent samples Z_i and one covariance C = S (I - G^T Q^+ G)
(:func:`generated_mixture`). For a simulation result only the projected samples x_i exist; they
are the mixture with C = 0.

**Smoothed density** (:func:`smoothed_density`). The mixture above is exact *given* the n
Monte-Carlo samples Z_i; where C is narrow (small S) it is a sum of needles, one local maximum
per sample. Each component's covariance is therefore widened to a Scott kernel
H = h^2 Cov(m), h = n^(-1/(D+4)), but only in the directions where C is narrower than H:
C_H = C^1/2 max(I, C^-1/2 H C^-1/2) C^1/2 (eigenvalue-wise max; C + H when C is singular).
With C = 0 this is the usual Gaussian kernel density estimate with Scott's bandwidth; with a wide
C the exact density is left as it is (a Rao-Blackwellised KDE).

**Number of modes** (:func:`count_modes`, :func:`mode_count`). The smoothed density of the first
``dims`` (<= 2) observation coordinates is evaluated on a ``grid`` x ``grid`` cell-centred grid
(default 64) spanning the component means' [0.1%, 99.9%] quantiles padded by 3 standard deviations
of C_H. A mode is a local maximum on that grid (8-neighbourhood; a plateau counts once) that is at
least ``threshold`` (5%) of the global maximum high and at least ``prominence`` (2% of the global
maximum) above the highest saddle joining it to a higher peak (0-D persistence of the super-level
sets). Shallow Monte-Carlo ripples and low far-out bumps do not count; modes closer than a grid
cell or than the kernel width are not resolved. At ``max_components`` = 2000 mixture components
the count is stable under a change of the subsample (fig1: the same count at 1000, 2000, 4000).

**Distance to the target** (:func:`target_distance`). The energy distance
sqrt(2E|X-Y| - E|X-X'| - E|Y-Y'|) (:func:`hdae.compare.energy_distance`, V-statistics) between
``n`` generated projected samples (evenly spaced subsample) and ``n`` samples drawn with a fixed
seed from the projected target mixture stored with the result (``Result.target``: weights, means,
covariances). Its sampling-noise floor, the same distance between two independent target samples
of size ``n``, is :func:`target_floor`: a generated law equal to the target scores about the floor
(~0.03 for n = 1000 on fig1), not zero.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from .compare import energy_distance
from .mixtures import gaussian_mixture_density

MODE_THRESHOLD = 0.05  # a local maximum counts as a mode above this fraction of the global maximum
MODE_PROMINENCE = 0.02  # ... and rises this fraction of it above the saddle to a higher peak
MODE_GRID = 64
MAX_COMPONENTS = 2000  # mixture components kept for the density (evenly spaced subsample)
DISTANCE_SAMPLES = 1000


# ----------------------------------------------------------------------------- arrays
def _psd_sqrt(c: np.ndarray) -> np.ndarray:
    e, v = np.linalg.eigh(0.5 * (c + c.T))
    return (v * np.sqrt(np.clip(e, 0.0, None))) @ v.T


def kernel_covariance(means: np.ndarray, cov: np.ndarray, factor: float | None = None) -> np.ndarray:
    """C_H (D, D): ``cov`` widened to the Scott kernel H = h^2 Cov(means) where it is narrower
    (see the module docstring); ``factor`` replaces Scott's h = n^(-1/(D+4))."""
    means = np.asarray(means, dtype=float)
    n, D = means.shape
    cov = np.atleast_2d(np.asarray(cov, dtype=float))[:D, :D]
    h = n ** (-1.0 / (D + 4)) if factor is None else float(factor)
    H = h ** 2 * np.atleast_2d(np.cov(means.T)) if n > 1 else np.zeros((D, D))
    e, v = np.linalg.eigh(0.5 * (cov + cov.T))
    scale = max(1.0, float(e.max()), float(np.trace(H)))
    if e.min() <= 1e-12 * scale:
        out = cov + H
    else:
        half, ihalf = (v * np.sqrt(e)) @ v.T, (v / np.sqrt(e)) @ v.T
        em, vm = np.linalg.eigh(ihalf @ H @ ihalf)
        out = half @ ((vm * np.maximum(em, 1.0)) @ vm.T) @ half
    out = 0.5 * (out + out.T)
    if np.linalg.eigvalsh(out).min() <= 1e-12 * scale:  # all means equal and C singular
        out = out + 1e-6 * scale * np.eye(D)
    return out


def smoothed_density(means: np.ndarray, cov: np.ndarray, points: np.ndarray, factor: float | None = None) -> np.ndarray:
    """Density at ``points`` (m, D) of (1/n) sum_i N(means[i], C_H), means (n, D), cov (D, D)."""
    means = np.atleast_2d(np.asarray(means, dtype=float))
    return gaussian_mixture_density(points, means, kernel_covariance(means, cov, factor))


def density_on_grid(means: np.ndarray, cov: np.ndarray, grid: int = MODE_GRID, factor: float | None = None):
    """The smoothed density of the first D = means.shape[1] (1 or 2) coordinates on a cell-centred
    grid: (axes [D arrays of length grid], values (grid,) or (grid, grid) indexed [ix, iy])."""
    means = np.atleast_2d(np.asarray(means, dtype=float))
    D = means.shape[1]
    if D not in (1, 2):
        raise ValueError(f"density_on_grid draws 1 or 2 coordinates, not {D}")
    ch = kernel_covariance(means, cov, factor)
    pad = 3 * np.sqrt(np.diag(ch))
    lo, hi = np.quantile(means, 0.001, axis=0) - pad, np.quantile(means, 0.999, axis=0) + pad
    axes = []
    for a in range(D):
        edges = np.linspace(lo[a], hi[a], grid + 1)
        axes.append(0.5 * (edges[1:] + edges[:-1]))
    mesh = np.meshgrid(*axes, indexing="ij")
    points = np.stack([m.ravel() for m in mesh], axis=1)
    values = gaussian_mixture_density(points, means, ch).reshape((grid,) * D)
    return axes, values


@njit(cache=True)
def _find(parent, i):
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


@njit(cache=True)
def _persistent_peaks(v, min_height, min_prominence):
    """Peaks of v (nx, ny) (8-neighbourhood) with height >= min_height and prominence >=
    min_prominence: union-find over the cells in decreasing order; when two components meet at a
    cell, the one with the lower peak dies there with prominence peak - cell value."""
    nx, ny = v.shape
    flat = v.ravel()
    order = np.argsort(-flat, kind="mergesort")
    parent = np.full(flat.size, -1)
    peak = np.zeros(flat.size)
    modes = 1
    for i in order:
        parent[i] = i
        peak[i] = flat[i]
        x, y = i // ny, i % ny
        for dx in range(-1, 2):
            for dy in range(-1, 2):
                if (dx == 0 and dy == 0) or x + dx < 0 or x + dx >= nx or y + dy < 0 or y + dy >= ny:
                    continue
                j = (x + dx) * ny + (y + dy)
                if parent[j] < 0:
                    continue
                ri, rj = _find(parent, i), _find(parent, j)
                if ri == rj:
                    continue
                if peak[ri] < peak[rj]:
                    low, high = ri, rj
                else:
                    low, high = rj, ri
                if low != i and peak[low] >= min_height and peak[low] - flat[i] >= min_prominence:
                    modes += 1
                parent[low] = high
    return modes


def count_modes(values: np.ndarray, threshold: float = MODE_THRESHOLD, prominence: float = MODE_PROMINENCE) -> int:
    """Number of modes of a density sampled on a regular 1-D or 2-D grid.

    A mode is a local maximum (a connected plateau counted once; 2 or 8 neighbours) whose height
    is >= ``threshold`` x the global maximum and whose prominence -- its height minus the highest
    level at which it joins a higher peak through the grid's super-level sets (0-D persistence,
    by union-find over the cells in decreasing order) -- is >= ``prominence`` x the global
    maximum. The global maximum always counts (if positive)."""
    v = np.asarray(values, dtype=float)
    if v.ndim not in (1, 2):
        raise ValueError(f"count_modes takes a 1-D or 2-D grid, not {v.ndim}-D")
    top = float(np.max(v)) if v.size else 0.0
    if not np.isfinite(top) or top <= 0:
        return 0
    grid = v.reshape(len(v), -1) if v.ndim == 2 else v[:, None]
    return int(_persistent_peaks(np.ascontiguousarray(grid), threshold * top, prominence * top))


def mode_count(means: np.ndarray, cov: np.ndarray, dims: int = 2, grid: int = MODE_GRID,
               threshold: float = MODE_THRESHOLD, max_components: int = MAX_COMPONENTS) -> int:
    """Modes of the smoothed mixture (1/n) sum_i N(means[i], cov) on its first ``dims`` (1 or 2)
    coordinates; ``max_components`` evenly spaced means are kept."""
    means = np.atleast_2d(np.asarray(means, dtype=float))
    means = _subsample(means[np.all(np.isfinite(means), axis=1)], max_components)
    dims = min(dims, means.shape[1])
    if len(means) == 0:
        raise ValueError("no finite samples")
    _, values = density_on_grid(means[:, :dims], np.atleast_2d(cov)[:dims, :dims], grid)
    return count_modes(values, threshold)


def _subsample(x: np.ndarray, n: int | None) -> np.ndarray:
    if n is None or len(x) <= n:
        return x
    return x[np.linspace(0, len(x) - 1, n).astype(int)]


def mixture_samples(weights, means, covariances, n: int, rng) -> np.ndarray:
    """n draws (n, R) of sum_k w_k N(means[k], covariances[k]) (singular covariances allowed)."""
    w = np.asarray(weights, dtype=float)
    means = np.atleast_2d(np.asarray(means, dtype=float))
    covs = np.broadcast_to(np.asarray(covariances, dtype=float), (len(means),) + (means.shape[1],) * 2)
    comp = rng.choice(len(w), size=n, p=w / w.sum())
    noise = rng.standard_normal((n, means.shape[1]))
    roots = np.stack([_psd_sqrt(c) for c in covs])
    return means[comp] + np.einsum("nb,nab->na", noise, roots[comp])


def target_samples(target: dict, n: int = DISTANCE_SAMPLES, seed: int = 0) -> np.ndarray:
    """n samples of the projected target ``{'weights','means','covariances'}`` (fixed ``seed``)."""
    return mixture_samples(target["weights"], target["means"], target["covariances"], n,
                           np.random.default_rng([seed, 17]))


def target_distance(samples: np.ndarray, target: dict, n: int = DISTANCE_SAMPLES, seed: int = 0) -> float:
    """Energy distance between ``n`` of the generated projected ``samples`` (m, R) (evenly spaced
    subsample) and ``n`` target samples drawn with ``seed``."""
    x = np.asarray(samples, dtype=float)
    x = _subsample(x[np.all(np.isfinite(x), axis=1)], n)
    if len(x) == 0:
        return float("nan")
    return energy_distance(x, target_samples(target, len(x), seed))


def target_floor(target: dict, n: int = DISTANCE_SAMPLES, seed: int = 0) -> float:
    """Sampling-noise floor of :func:`target_distance`: two independent target samples of size n."""
    return energy_distance(target_samples(target, n, seed), target_samples(target, n, seed + 1))


# ----------------------------------------------------------------------------- results
def generated_mixture(result, j: int = -1, replica: int = 0):
    """(means (n, R), cov (R, R)) of the generated law at ``result.sample.theta[j]`` for one
    replica: Corollary 2.3 for a theory result with latent samples Z (means Z Q^+ G, cov
    S (I - G^T Q^+ G), Q and G at the matching checkpoint); the projected samples with cov = 0
    otherwise (simulation)."""
    s = result.sample
    if s is None or len(s.theta) == 0:
        raise ValueError("the result holds no generated samples")
    j = range(len(s.theta))[j]
    rep = min(replica, s.projected.shape[0] - 1)
    if s.Z is None or s.S is None:
        x = s.projected[rep, j]
        return x, np.zeros((x.shape[1], x.shape[1]))
    from .results import checkpoint_index
    from .theory.transport import projected_law

    i = checkpoint_index(result.train.theta, float(s.theta[j]), 1e-6)
    if i is None:
        raise ValueError(f"sampled time {s.theta[j]} is not a training checkpoint")
    law = projected_law(s.Z[rep, j], result.train.Q[rep, i], result.train.G[rep, i], float(s.S[rep, j]))
    return law.means, law.cov


@dataclass(frozen=True)
class DensitySummary:
    """Diagnostics of one generated density (see the module docstring)."""

    theta: float  # training time of the generated samples
    modes: int  # number of modes of the smoothed density (first two observation coordinates)
    distance: float  # energy distance to the projected target
    floor: float  # the distance's sampling-noise floor (two target samples of the same size)


def summarise(result, j: int = -1, replica: int = 0, dims: int = 2, grid: int = MODE_GRID,
              threshold: float = MODE_THRESHOLD, n_distance: int = DISTANCE_SAMPLES, seed: int = 0) -> DensitySummary:
    """Modes and target distance of ``result``'s generated density at sampled time index ``j``."""
    means, cov = generated_mixture(result, j, replica)
    samples = result.sample.projected[min(replica, result.sample.projected.shape[0] - 1), j]
    if result.target is None:
        raise ValueError("the result holds no projected target")
    n = min(n_distance, len(samples))
    return DensitySummary(theta=float(result.sample.theta[j]), modes=mode_count(means, cov, dims, grid, threshold),
                          distance=target_distance(samples, result.target, n, seed),
                          floor=target_floor(result.target, n, seed))
