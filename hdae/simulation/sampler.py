"""The d-dimensional generative sampler with a trained DAE (Euler / Euler-Maruyama).

    X_{k+1} = X_k + dt_k [A_k X_k + Gamma_k w sigma(w^T X_k/sqrt d)/sqrt d] + sqrt(2 eps_k dt_k) xi_k,
    A_k = b Gamma_k + alpha'_k/alpha_k - eps_k/alpha_k^2,   X_0 ~ N(0, I_d),

which is the Euler discretisation of the generative SDE of section 6 of the derivation note
(coefficients from :func:`hdae.schedules.sampler_coefficients`, shared with the theory).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .. import activations


def generate(w, b, coefficients, m: int, activation: str, generator) -> torch.Tensor:
    """``m`` full samples X_T per replica, (n_rep, m, d), for weights w (n_rep, d, r) and b (n_rep,)
    (torch tensors); X is updated in place, so memory is one (n_rep, m, d) array (two with eps > 0)."""
    sigma, _ = activations.torch_pair(activation)
    n_rep, d, r = w.shape
    sd = math.sqrt(d)
    wt = w.transpose(1, 2).contiguous()
    A = coefficients.drift_scale(b.cpu().numpy()[:, None])  # (n_rep, n_steps)
    scale = torch.as_tensor(1.0 + coefficients.dt[None, :] * A, dtype=w.dtype, device=w.device)
    X = torch.randn((n_rep, m, d), generator=generator, device=w.device, dtype=w.dtype)
    noise = torch.empty_like(X) if coefficients.noise_var.max() > 0 else None
    for k, dt in enumerate(coefficients.dt):
        drive = sigma(torch.bmm(X, w) / sd)  # (n_rep, m, r), from the old X
        X.mul_(scale[:, k, None, None])
        X.baddbmm_(drive, wt, alpha=float(dt * coefficients.gamma[k] / sd))
        if noise is not None and coefficients.noise_var[k] > 0:
            torch.randn(X.shape, generator=generator, device=w.device, dtype=w.dtype, out=noise)
            X.add_(noise, alpha=math.sqrt(coefficients.noise_var[k]))
    return X


def batch_size(n_rep: int, d: int, element_size: int, batch: int, n: int, memory_budget: int = 256 * 2**20) -> int:
    """Samples per replica generated at once: at most ``batch`` and ``n``, and so that one batch of
    X (n_rep x batch x d numbers) stays within ``memory_budget`` bytes."""
    return max(1, min(batch, n, memory_budget // (n_rep * d * element_size)))


def sample_finite_d(w, b, coefficients, n: int, basis, activation: str, generator, batch: int = 4096,
                    memory_budget: int = 256 * 2**20):
    """Generate ``n`` samples per replica and return their projections.

    w (n_rep, d, r) and b (n_rep,) torch tensors; ``basis`` E (d, R) tensor.
    Returns (E^T X (n_rep, n, R), Z = w^T X/sqrt d (n_rep, n, r)) at the grid's last time,
    generating :func:`batch_size` samples per replica at a time.
    """
    n_rep, d, _ = w.shape
    batch = batch_size(n_rep, d, w.element_size(), batch, n, memory_budget)
    projected, latent = [], []
    for start in range(0, n, batch):
        X = generate(w, b, coefficients, min(batch, n - start), activation, generator)
        projected.append(X @ basis)
        latent.append(torch.bmm(X, w) / math.sqrt(d))
    return torch.cat(projected, 1), torch.cat(latent, 1)


class GeneratedData:
    """Training data of generation g+1: fresh samples of generation g's d-dimensional sampler.

    Replica i draws from replica i's trained weights w (n_rep, d, r), b (n_rep,). ``draw`` has the
    interface of :class:`hdae.simulation.sgd.MixtureSampler`."""

    def __init__(self, w, b, coefficients, activation: str):
        self.w, self.b = w, b
        self.coefficients, self.activation = coefficients, activation
        self.d = w.shape[1]

    def draw(self, shape: tuple, generator):
        """x1 of shape (m, n_rep, d) for ``shape`` = (m, n_rep): a tensor for a torch.Generator, a numpy
        array for a numpy Generator (which then seeds the sampler's torch generator: one stream)."""
        m, n_rep = shape
        if n_rep != self.w.shape[0]:
            raise ValueError(f"generated data hold {self.w.shape[0]} replicas, {n_rep} asked for")
        as_numpy = isinstance(generator, np.random.Generator)
        if as_numpy:
            generator = torch.Generator(device=self.w.device).manual_seed(int(generator.integers(2**63)))
        x = generate(self.w, self.b, self.coefficients, m, self.activation, generator).transpose(0, 1).contiguous()
        return x.cpu().numpy() if as_numpy else x
