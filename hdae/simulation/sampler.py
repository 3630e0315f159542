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


def sample_finite_d(w, b, coefficients, n: int, basis, activation: str, generator, batch: int = 4096,
                    memory_budget: int = 256 * 2**20):
    """Generate ``n`` samples per replica and return their projections.

    w (n_rep, d, r) and b (n_rep,) torch tensors; ``basis`` E (d, R) tensor.
    Returns (E^T X (n_rep, n, R), Z = w^T X/sqrt d (n_rep, n, r)) at the grid's last time.
    Samples are generated at most ``batch`` per replica at a time, and so that one batch of X
    (n_rep x batch x d numbers) stays within ``memory_budget`` bytes; X is updated in place.
    """
    sigma, _ = activations.torch_pair(activation)
    n_rep, d, r = w.shape
    sd = math.sqrt(d)
    wt = w.transpose(1, 2).contiguous()
    A = coefficients.drift_scale(b.cpu().numpy()[:, None])  # (n_rep, n_steps)
    scale = torch.as_tensor(1.0 + coefficients.dt[None, :] * A, dtype=w.dtype, device=w.device)
    batch = max(1, min(batch, n, memory_budget // (n_rep * d * w.element_size())))
    projected, latent = [], []
    for start in range(0, n, batch):
        m = min(batch, n - start)
        X = torch.randn((n_rep, m, d), generator=generator, device=w.device, dtype=w.dtype)
        noise = torch.empty_like(X) if coefficients.noise_var.max() > 0 else None
        for k, dt in enumerate(coefficients.dt):
            drive = sigma(torch.bmm(X, w) / sd)  # (n_rep, m, r), from the old X
            X.mul_(scale[:, k, None, None])
            X.baddbmm_(drive, wt, alpha=float(dt * coefficients.gamma[k] / sd))
            if noise is not None and coefficients.noise_var[k] > 0:
                torch.randn(X.shape, generator=generator, device=w.device, dtype=w.dtype, out=noise)
                X.add_(noise, alpha=math.sqrt(coefficients.noise_var[k]))
        projected.append(X @ basis)
        latent.append(torch.bmm(X, w) / sd)
    return torch.cat(projected, 1), torch.cat(latent, 1)
