"""Fixed nodes for the Gaussian expectations of the ODE right-hand side.

All expectations are over a standard normal xi in R^k (k = r for one training time, 2r for
several; see :mod:`hdae.theory.kernels`). Nodes never change during a solve, so the
right-hand side is a smooth deterministic function of the statistics.

* ``gauss-hermite``: tensor product of n-point Gauss-Hermite rules (exact for polynomials of
  degree < 2n in each variable; spectrally accurate for smooth activations);
* ``sobol``: scrambled Sobol points with a fixed seed mapped through the normal quantile,
  symmetrised (xi and -xi), so odd moments vanish exactly; for non-smooth activations or
  large k where a tensor grid would be too large. Generating them needs scipy.stats (over a
  second to import), so the normal points are also kept in a small on-disk cache
  (:func:`cache_dir`), keyed by dimension, size, seed and scipy version: a later process loads
  the very same points without importing scipy.stats.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from numpy.polynomial.hermite_e import hermegauss

#: Gauss-Hermite points per dimension used by 'auto' for smooth activations, by dimension k
_GH_AUTO = {1: 48, 2: 24, 3: 16, 4: 10}
#: Sobol points (before symmetrisation) used by 'auto'
_SOBOL_AUTO = 4096
_SMOOTH = frozenset({"tanh", "erf", "sigmoid", "linear"})
SOBOL_SEED = 20240607


@dataclass(frozen=True)
class Nodes:
    """Quadrature rule for E[f(xi)], xi ~ N(0, I_k): sum_i weights[i] f(points[i])."""

    points: np.ndarray  # (N, k)
    weights: np.ndarray  # (N,), sum 1
    rule: str
    size: int  # points per dimension (Gauss-Hermite) or Sobol points before symmetrisation

    @property
    def dim(self) -> int:
        return self.points.shape[1]


@lru_cache(maxsize=32)
def gauss_hermite(k: int, n: int) -> Nodes:
    """Tensor Gauss-Hermite rule with n points per dimension in k dimensions (n^k nodes)."""
    x, w = hermegauss(n)
    w = w / w.sum()
    grids = np.meshgrid(*([x] * k), indexing="ij")
    wgrids = np.meshgrid(*([w] * k), indexing="ij")
    pts = np.stack([g.ravel() for g in grids], axis=1)
    wts = np.prod(np.stack([g.ravel() for g in wgrids], axis=1), axis=1)
    return Nodes(points=np.ascontiguousarray(pts), weights=wts, rule="gauss-hermite", size=n)


def cache_dir() -> Path | None:
    """Where Sobol node sets are cached: $HDAE_CACHE_DIR, else $XDG_CACHE_HOME/hdae, else ~/.cache/hdae
    (HDAE_CACHE_DIR set to an empty string: no cache)."""
    env = os.environ.get("HDAE_CACHE_DIR")
    if env is not None:
        return Path(env) if env else None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "hdae"


def _sobol_normal(k: int, m: int, seed: int) -> np.ndarray:
    """2^m scrambled Sobol points in k dimensions (scipy's generator, fixed seed) mapped through the
    normal quantile, from the on-disk cache when there (every process gets the same points)."""
    import scipy

    folder = cache_dir()
    path = None if folder is None else folder / f"sobol-normal-k{k}-m{m}-seed{seed}-scipy{scipy.__version__}.npy"
    if path is not None and path.is_file():
        try:
            x = np.load(path, allow_pickle=False)
            if x.shape == (2**m, k) and x.dtype == np.float64 and np.all(np.isfinite(x)):
                return x
        except (OSError, ValueError):
            pass
    from scipy.special import ndtri
    from scipy.stats import qmc

    u = qmc.Sobol(d=k, scramble=True, seed=seed).random_base2(m)
    x = ndtri(np.clip(u, 1e-16, 1 - 1e-16))
    if path is not None and m <= 20:  # at most 8 MiB per coordinate
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npy")
            np.save(tmp, x)
            os.replace(tmp, path)
        except OSError:
            pass
    return x


@lru_cache(maxsize=32)
def sobol(k: int, n: int, seed: int = SOBOL_SEED) -> Nodes:
    """``n`` scrambled Sobol points (rounded up to a power of 2) and their mirror images."""
    m = int(np.ceil(np.log2(max(n, 2))))
    x = _sobol_normal(k, m, seed)
    pts = np.concatenate([x, -x])
    return Nodes(points=np.ascontiguousarray(pts), weights=np.full(len(pts), 1.0 / len(pts)), rule="sobol", size=2**m)


def choose(k: int, activation: str, rule: str = "auto", size: int = 0) -> Nodes:
    """The node set for dimension ``k``: 'auto' takes Gauss-Hermite for smooth activations
    when k <= 4 (sizes in ``_GH_AUTO``; 3 points, exact, for the linear activation) and Sobol
    otherwise; ``size`` 0 means the default
    (points per dimension for Gauss-Hermite, number of points for Sobol)."""
    if rule == "auto" and activation == "linear":  # polynomial integrands of degree <= 4: 3 points are exact
        return gauss_hermite(k, size or 3)
    if rule == "auto":
        rule = "gauss-hermite" if (activation in _SMOOTH and k in _GH_AUTO) else "sobol"
    if rule == "gauss-hermite":
        n = size or _GH_AUTO.get(k, 6)
        if n**k > 2_000_000:
            raise ValueError(f"a {n}-point Gauss-Hermite grid in {k} dimensions has {n**k} nodes: use sobol")
        return gauss_hermite(k, n)
    return sobol(k, size or _SOBOL_AUTO)
