"""The d-dimensional generative sampler with a trained DAE (Euler / Euler-Maruyama).

    X_{k+1} = X_k + dt_k [A_k X_k + Gamma_k w sigma(w^T X_k/sqrt d)/sqrt d] + sqrt(2 eps_k dt_k) xi_k,
    A_k = b Gamma_k + alpha'_k/alpha_k - eps_k/alpha_k^2,   X_0 ~ N(0, I_d),

which is the Euler discretisation of the generative SDE of section 6 of the derivation note
(coefficients from :func:`hdae.schedules.sampler_coefficients`, shared with the theory).
"""
from __future__ import annotations

import math

import torch

from .. import activations


def sample_finite_d(w, b, coefficients, n: int, basis, activation: str, generator, batch: int = 4096):
    """Generate ``n`` samples per replica and return their projections.

    w (n_rep, d, r) and b (n_rep,) torch tensors; ``basis`` E (d, R) tensor.
    Returns (E^T X (n_rep, n, R), Z = w^T X/sqrt d (n_rep, n, r)) at the grid's last time.
    Samples are generated ``batch`` at a time to bound memory (n_rep * batch * d numbers).
    """
    sigma, _ = activations.torch_pair(activation)
    n_rep, d, r = w.shape
    sd = math.sqrt(d)
    wt = w.transpose(1, 2)
    A = torch.as_tensor(coefficients.drift_scale(0.0), dtype=w.dtype, device=w.device)[None, :] \
        + b[:, None] * torch.as_tensor(coefficients.gamma, dtype=w.dtype, device=w.device)[None, :]  # (n_rep, n_steps)
    projected, latent = [], []
    for start in range(0, n, batch):
        m = min(batch, n - start)
        X = torch.randn((n_rep, m, d), generator=generator, device=w.device, dtype=w.dtype)
        for k, dt in enumerate(coefficients.dt):
            Z = torch.bmm(X, w) / sd
            drift = A[:, k, None, None] * X + coefficients.gamma[k] * torch.bmm(sigma(Z), wt) / sd
            X = X + dt * drift
            if coefficients.noise_var[k] > 0:
                X = X + math.sqrt(coefficients.noise_var[k]) * torch.randn(
                    X.shape, generator=generator, device=w.device, dtype=w.dtype)
        projected.append(X @ basis)
        latent.append(torch.bmm(X, w) / sd)
    return torch.cat(projected, 1), torch.cat(latent, 1)
