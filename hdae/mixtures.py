"""Gaussian-mixture densities (one numba kernel): the generated density of Corollary 2.3, the
projected target, and their smoothed drawings all evaluate sum_k w_k N(x; mu_k, C_k) here."""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange


@njit(cache=True, parallel=True)
def _mixture_kernel(points, means, cinv, lognorm, weights):
    """out[i] = sum_k weights[k] exp(lognorm[k] - (x_i - mu_k)^T cinv[k] (x_i - mu_k)/2)."""
    m, R = points.shape
    n = means.shape[0]
    out = np.empty(m)
    for i in prange(m):
        acc = 0.0
        diff = np.empty(R)
        for k in range(n):
            for a in range(R):
                diff[a] = points[i, a] - means[k, a]
            quad = 0.0
            for a in range(R):
                row = 0.0
                for b in range(R):
                    row += cinv[k, a, b] * diff[b]
                quad += diff[a] * row
            e = lognorm[k] - 0.5 * quad
            if e > -700.0:
                acc += weights[k] * math.exp(e)
        out[i] = acc
    return out


def gaussian_mixture_density(points, means, covariances, weights=None, ridge: float = 0.0) -> np.ndarray:
    """Density at ``points`` (m, R) of sum_k w_k N(means[k], C_k).

    covariances: one (R, R) matrix shared by all components or one per component (n, R, R);
    weights (n,) default equal (1/n); ``ridge`` > 0 adds ridge * max(1, largest eigenvalue) to
    the diagonal of (numerically) singular covariances so that they can be drawn as thin ridges.
    """
    points = np.ascontiguousarray(np.atleast_2d(points), dtype=float)
    means = np.ascontiguousarray(np.atleast_2d(means), dtype=float)
    n, R = means.shape
    covs = np.broadcast_to(np.asarray(covariances, dtype=float), (n, R, R)).copy()
    if ridge > 0:
        for k in range(n):
            e = np.linalg.eigvalsh(covs[k])
            if e.min() <= 1e-12 * max(1.0, e.max()):
                covs[k] += ridge * max(1.0, e.max()) * np.eye(R)
    w = np.full(n, 1.0 / n) if weights is None else np.asarray(weights, dtype=float)
    _, logdet = np.linalg.slogdet(covs)
    lognorm = -0.5 * (logdet + R * math.log(2 * math.pi))
    return _mixture_kernel(points, means, np.ascontiguousarray(np.linalg.inv(covs)), lognorm, w)
