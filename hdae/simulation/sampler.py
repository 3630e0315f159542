"""The d-dimensional generative sampler with a trained DAE (Euler / Euler-Maruyama).

    X_{k+1} = X_k + dt_k [A_k X_k + Gamma_k w sigma(w^T X_k/sqrt d)/sqrt d] + sqrt(2 eps_k dt_k) xi_k,
    A_k = b Gamma_k + alpha'_k/alpha_k - eps_k/alpha_k^2,   X_0 ~ N(0, I_d),

which is the Euler discretisation of the generative SDE of section 6 of the derivation note
(coefficients from :func:`hdae.schedules.sampler_coefficients`, shared with the theory).
"""
from __future__ import annotations

import math

import numpy as np

from .. import activations
from .sgd import _np_of, is_torch


def generate(w, b, coefficients, m: int, activation: str, generator):
    """``m`` full samples X_T per replica, (n_rep, m, d), for weights w (n_rep, d, r) and b (n_rep,).

    numpy arrays with a numpy Generator (the CPU path: the numba kernel
    :func:`hdae.simulation.kernels.sampler_paths`, X_0 and the noise from counter-based ziggurat streams keyed
    from the generator; no torch), or torch tensors with a torch.Generator (the CUDA path). X is
    updated in place, so memory is one (n_rep, m, d) array (two for torch with eps > 0)."""
    if is_torch(w):
        return _generate_torch(w, b, coefficients, m, activation, generator)
    if not isinstance(generator, np.random.Generator):
        raise TypeError("numpy weights take a numpy Generator; give torch tensors to sample with a torch.Generator")
    return _generate_numpy(w, np.asarray(b), coefficients, m, activation, generator)


def _generate_numpy(w, b, coefficients, m, activation, generator):
    from .kernels import sampler_paths
    from .normals import standard_normal

    n_rep, d, r = w.shape
    scale = 1.0 + coefficients.dt[None, :] * coefficients.drift_scale(b.astype(float)[:, None])  # (n_rep, K)
    X = standard_normal(np.empty((n_rep, m, d), dtype=w.dtype), generator.integers(2**63))
    coef = coefficients.dt * coefficients.gamma / math.sqrt(d)
    noisy = bool((coefficients.noise_var > 0).any())
    noise_seed = generator.integers(2**63) if noisy else 0  # the probability flow draws nothing more
    return sampler_paths(X, w, scale, coef, np.sqrt(np.maximum(coefficients.noise_var, 0.0)),
                         activations.code(activation), noise_seed)


def _generate_torch(w, b, coefficients, m, activation, generator):
    import torch

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

    w (n_rep, d, r), b (n_rep,) and the basis E (d, R): numpy arrays with a numpy Generator, or
    torch tensors with a torch.Generator (see :func:`generate`); the results are of the same kind.
    Returns (E^T X (n_rep, n, R), Z = w^T X/sqrt d (n_rep, n, r)) at the grid's last time,
    generating :func:`batch_size` samples per replica at a time.
    """
    n_rep, d, _ = w.shape
    torch_in = is_torch(w)
    if not torch_in:
        basis = _np_of(basis)
    batch = batch_size(n_rep, d, w.element_size() if torch_in else w.itemsize, batch, n, memory_budget)
    projected, latent = [], []
    for start in range(0, n, batch):
        X = generate(w, b, coefficients, min(batch, n - start), activation, generator)
        projected.append(X @ basis)
        latent.append((X @ w) / math.sqrt(d))
    if torch_in:
        import torch

        return torch.cat(projected, 1), torch.cat(latent, 1)
    return np.concatenate(projected, 1), np.concatenate(latent, 1)


class GeneratedData:
    """Training data of generation g+1: fresh samples of generation g's d-dimensional sampler.

    Replica i draws from replica i's trained weights w (n_rep, d, r), b (n_rep,) (numpy arrays on
    CPU, torch tensors on a device). ``draw`` has the interface of
    :class:`hdae.simulation.sgd.MixtureSampler`."""

    def __init__(self, w, b, coefficients, activation: str):
        self.w, self.b = w, b
        self.coefficients, self.activation = coefficients, activation
        self.d = w.shape[1]

    def draw(self, shape: tuple, generator):
        """x1 of shape (m, n_rep, d) for ``shape`` = (m, n_rep): a numpy array for a numpy Generator
        (numpy weights: the numpy sampler on that generator's stream; torch weights: a torch
        generator seeded from it), a tensor for a torch.Generator."""
        m, n_rep = shape
        if n_rep != self.w.shape[0]:
            raise ValueError(f"generated data hold {self.w.shape[0]} replicas, {n_rep} asked for")
        as_numpy = isinstance(generator, np.random.Generator)
        w, b = self.w, self.b
        if as_numpy and is_torch(w):
            import torch

            generator = torch.Generator(device=w.device).manual_seed(int(generator.integers(2**63)))
        elif not as_numpy and not is_torch(w):
            import torch

            w, b = (torch.as_tensor(a, device=generator.device) for a in (w, b))
        x = generate(w, b, self.coefficients, m, self.activation, generator).swapaxes(0, 1)
        if is_torch(x):
            x = x.contiguous()
            return x.cpu().numpy() if as_numpy else x
        return np.ascontiguousarray(x)
