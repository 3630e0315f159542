"""Generative transport in low dimension (Result 2.2, Result B.1, Corollary 2.3; section 6 of the note).

With the trained statistics (Q, G, b) and the sampler's Euler coefficients:

* in W = span(w), Z = w^T X/sqrt d follows the r-dim recursion (the same discrete scheme as the
  finite-d sampler, so it reproduces the sampler's Z pathwise for the same noise):
      Z_0 = Q^{1/2} xi_0,  Z_{k+1} = Z_k + dt_k (A_k Z_k + Gamma_k Q sigma(Z_k)) + sqrt(2 eps_k dt_k) Q^{1/2} xi_{k+1};
* in W-perp, X is isotropic Gaussian with variance S_n (``SamplerCoefficients.orthogonal_variance``);
* on the observation space (Corollary 2.3), in distribution
      E^T X = G^T Q^+ Z + N(0, S (I_R - G^T Q^+ G)),  the two parts independent,
  so the projected density is an exact Gaussian mixture over the Z samples.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from .. import activations
from ..mixtures import gaussian_mixture_density
from ..schedules import SamplerCoefficients
from .linalg import pinv_sym, sym_sqrt


@njit(cache=True)
def _latent_recursion(z, noise, sqrtQ, Q, A, gamma, dt, noise_sd, act):
    """In place: z (n, r) from Z_0 through every step; noise (n_steps, n, r) standard normals."""
    n, r = z.shape
    s = np.empty(r)
    inc = np.empty(r)
    for k in range(dt.shape[0]):
        for i in range(n):
            for a in range(r):
                s[a] = activations.nb_sigma(z[i, a], act)
            for a in range(r):
                qs = 0.0
                for e in range(r):
                    qs += Q[a, e] * s[e]
                inc[a] = dt[k] * (A[k] * z[i, a] + gamma[k] * qs)
                if noise_sd[k] > 0.0:
                    nz = 0.0
                    for e in range(r):
                        nz += sqrtQ[a, e] * noise[k, i, e]
                    inc[a] += noise_sd[k] * nz
            for a in range(r):  # every component's increment uses the old z
                z[i, a] += inc[a]


def sample_latent(Q, b: float, coefficients: SamplerCoefficients, n: int, activation: str, rng,
                  z0=None) -> np.ndarray:
    """n samples of Z at the grid's last time (Result B.1), shape (n, r); ``z0`` (n, r): given
    initial values Z_0 (e.g. w^T X_0/sqrt d of a d-dim sampler's noise) instead of Q^{1/2} xi_0."""
    Q = np.asarray(Q, dtype=float)
    r = Q.shape[0]
    sq = sym_sqrt(Q)
    z = rng.standard_normal((n, r)) @ sq if z0 is None else np.array(z0, dtype=float).reshape(n, r)
    noise = rng.standard_normal((len(coefficients.dt), n, r))
    _latent_recursion(z, noise, sq, np.ascontiguousarray(Q), coefficients.drift_scale(b), coefficients.gamma,
                      coefficients.dt, np.sqrt(coefficients.noise_var), activations.code(activation))
    return z


@dataclass(frozen=True)
class ProjectedLaw:
    """Law of E^T X (Corollary 2.3): mixture over ``means`` (n, R) = Z Q^+ G with common
    covariance ``cov`` (R, R) = S (I - G^T Q^+ G)."""

    means: np.ndarray
    cov: np.ndarray

    @property
    def degenerate(self) -> bool:
        """True when the Gaussian part is (numerically) singular: then no exact density exists."""
        e = np.linalg.eigvalsh(self.cov)
        return bool(e.min() <= 1e-9 * max(1.0, e.max()))

    def marginal(self, dims: int, max_components: int | None = None) -> "ProjectedLaw":
        """The law of the first ``dims`` observation coordinates (still a mixture), optionally
        keeping only the first ``max_components`` components."""
        return ProjectedLaw(means=self.means[:max_components, :dims], cov=self.cov[:dims, :dims])

    def sample(self, rng) -> np.ndarray:
        """One draw per mixture component, (n, R)."""
        return self.means + rng.standard_normal(self.means.shape) @ sym_sqrt(self.cov)

    def density(self, points: np.ndarray, max_components: int | None = None) -> np.ndarray:
        """Density at ``points`` (m, R): the exact Gaussian mixture (no bandwidth) when the
        Gaussian part is non-degenerate, else a Gaussian KDE of samples (scipy)."""
        means = self.means if max_components is None else self.means[:max_components]
        if self.degenerate:
            from scipy.stats import gaussian_kde

            return gaussian_kde(self.sample(np.random.default_rng(0)).T)(points.T)
        return gaussian_mixture_density(points, means, self.cov)


def projected_law(Z: np.ndarray, Q, G, S: float) -> ProjectedLaw:
    """Corollary 2.3 from Z samples (n, r), Q (r, r), G (r, R) and the W-perp variance S."""
    G = np.asarray(G, dtype=float)
    Qp = pinv_sym(np.asarray(Q, dtype=float))
    cov = S * (np.eye(G.shape[1]) - G.T @ Qp @ G)
    return ProjectedLaw(means=Z @ Qp @ G, cov=0.5 * (cov + cov.T))


def generated_samples(Q, G, b: float, coefficients: SamplerCoefficients, n: int, activation: str, rng):
    """Theory samples of the generated density: (projected (n, R), Z (n, r), S)."""
    Z = sample_latent(Q, b, coefficients, n, activation, rng)
    S = float(coefficients.orthogonal_variance(b)[-1])
    return projected_law(Z, Q, G, S).sample(rng), Z, S
