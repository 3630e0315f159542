"""Interpolants (alpha_t, beta_t), noise schedules eps_t, and the sampler coefficients.

The interpolant is ``x_t = alpha_t x0 + beta_t x1`` with ``alpha_0 = beta_1 = 1`` and
``alpha_1 = beta_0 = 0`` (derivation note, section 1). The generative SDE (section 6)

    dX = [Gamma_t f(X) + (alpha'_t/alpha_t - eps_t/alpha_t^2) X] dt + sqrt(2 eps_t) dW,
    Gamma_t = beta'_t - (alpha'_t/alpha_t) beta_t + eps_t beta_t / alpha_t^2,

is discretised by Euler(-Maruyama) on a grid ``t_0 < ... < t_n``; ``sampler_coefficients``
is the single place where its per-step coefficients are computed, for the theory's
low-dimensional recursion and the finite-d torch sampler alike.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

INTERPOLANTS = ("linear", "trigonometric")
NOISE_SCHEDULES = ("constant", "alpha", "alpha2")


@dataclass(frozen=True)
class Interpolant:
    """One interpolant: ``linear`` (alpha = 1-t, beta = t) or ``trigonometric``
    (variance preserving: alpha = cos(pi t/2), beta = sin(pi t/2))."""

    name: str = "linear"

    def __post_init__(self):
        if self.name not in INTERPOLANTS:
            raise ValueError(f"unknown schedule {self.name!r}; choose one of {', '.join(INTERPOLANTS)}")

    def alpha(self, t):
        t = np.asarray(t, dtype=float)
        return 1.0 - t if self.name == "linear" else np.cos(0.5 * np.pi * t)

    def beta(self, t):
        t = np.asarray(t, dtype=float)
        return t * 1.0 if self.name == "linear" else np.sin(0.5 * np.pi * t)

    def dalpha(self, t):
        t = np.asarray(t, dtype=float)
        return -np.ones_like(t) if self.name == "linear" else -0.5 * np.pi * np.sin(0.5 * np.pi * t)

    def dbeta(self, t):
        t = np.asarray(t, dtype=float)
        return np.ones_like(t) if self.name == "linear" else 0.5 * np.pi * np.cos(0.5 * np.pi * t)


@dataclass(frozen=True)
class NoiseSchedule:
    """eps_t >= 0: ``constant`` (eps), ``alpha`` (eps alpha_t) or ``alpha2`` (eps alpha_t^2).
    eps = 0 gives the probability-flow ODE."""

    eps: float = 0.0
    kind: str = "constant"

    def __post_init__(self):
        if self.kind not in NOISE_SCHEDULES:
            raise ValueError(f"unknown eps_schedule {self.kind!r}; choose one of {', '.join(NOISE_SCHEDULES)}")
        if not (self.eps >= 0.0 and math.isfinite(self.eps)):
            raise ValueError("eps must be finite and >= 0")

    def __call__(self, t, interpolant: Interpolant):
        t = np.asarray(t, dtype=float)
        if self.kind == "constant":
            return self.eps * np.ones_like(t)
        a = interpolant.alpha(t)
        return self.eps * (a if self.kind == "alpha" else a * a)


@dataclass(frozen=True)
class SamplerCoefficients:
    """Per-step coefficients of the Euler scheme, arrays of length n_steps.

    X_{k+1} = X_k + dt_k [A_k X_k + Gamma_k w sigma(w^T X_k/sqrt d)/sqrt d] + sqrt(noise_var_k) xi_k
    with ``A_k = b Gamma_k + linear_k`` (the skip connection b enters only through A).
    """

    t: np.ndarray  # grid t_0..t_n, shape (n+1,)
    dt: np.ndarray  # (n,)
    gamma: np.ndarray  # Gamma_{t_k}, (n,)
    linear: np.ndarray  # alpha'/alpha - eps/alpha^2 at t_k, (n,)
    noise_var: np.ndarray  # 2 eps_k dt_k, (n,)

    def drift_scale(self, b) -> np.ndarray:
        """A_k = b Gamma_k + alpha'_k/alpha_k - eps_k/alpha_k^2, shape (n,) (b broadcasts: a column
        of skip connections (n_rep, 1) gives (n_rep, n))."""
        return b * self.gamma + self.linear

    def orthogonal_variance(self, b: float) -> np.ndarray:
        """Variance S_k of the isotropic Gaussian part orthogonal to the weights, (n+1,):
        S_0 = 1, S_{k+1} = (1 + dt_k A_k)^2 S_k + 2 eps_k dt_k (the same discrete recursion
        as the finite-d sampler; derivation note section 6)."""
        a = self.drift_scale(b)
        s = np.empty(len(self.t))
        s[0] = 1.0
        for k in range(len(self.dt)):
            s[k + 1] = (1.0 + self.dt[k] * a[k]) ** 2 * s[k] + self.noise_var[k]
        return s

    def orthogonal_variance_batch(self, b) -> np.ndarray:
        """:meth:`orthogonal_variance` for skip connections b (n,): shape (n, n_steps + 1)."""
        return np.array([self.orthogonal_variance(float(x)) for x in np.asarray(b, dtype=float).reshape(-1)])


def checkpoint_steps(thetas, d: int, lr: float) -> np.ndarray:
    """SGD step indices mu = round(theta d/(2 eta)) of training times theta (unique, sorted);
    the times SGD actually reaches are 2 eta mu/d (section 1: theta = 2 eta mu/d)."""
    return np.unique(np.rint(np.asarray(thetas, dtype=float) * d / (2 * lr)).astype(np.int64))


def sampling_grid(steps: int, t_end: float) -> np.ndarray:
    """Uniform grid t_k = t_end k/steps, k = 0..steps (the paper: steps=49, t_end=0.98)."""
    return t_end * np.arange(steps + 1) / steps


def sampler_coefficients(interpolant: Interpolant, noise: NoiseSchedule, grid) -> SamplerCoefficients:
    """Euler coefficients of the generative SDE on ``grid`` (left-point rule)."""
    t = np.asarray(grid, dtype=float)
    tk = t[:-1]
    a, b = interpolant.alpha(tk), interpolant.beta(tk)
    da, db = interpolant.dalpha(tk), interpolant.dbeta(tk)
    if np.any(a <= 0):
        raise ValueError("the sampling grid must stay below t = 1 (alpha_t > 0) at every step start")
    eps = noise(tk, interpolant)
    dt = np.diff(t)
    gamma = db - (da / a) * b + eps * b / a**2
    linear = da / a - eps / a**2
    return SamplerCoefficients(t=t, dt=dt, gamma=gamma, linear=linear, noise_var=2.0 * eps * dt)


def skip_connection_closed_form(theta, b0: float, lam_avg: float, alphas, betas, weights):
    """Closed form of b(theta) (derivation note section 5 / Result 2.1, eq. 11):
    b = Lambda E[beta]/k (1 - e^{-k theta}) + b0 e^{-k theta}, k = Lambda E[beta^2] + E[alpha^2]."""
    alphas, betas, weights = (np.asarray(v, dtype=float) for v in (alphas, betas, weights))
    k = lam_avg * np.dot(weights, betas**2) + np.dot(weights, alphas**2)
    b_inf = lam_avg * np.dot(weights, betas) / k
    decay = np.exp(-k * np.asarray(theta, dtype=float))
    return b_inf * (1.0 - decay) + b0 * decay
