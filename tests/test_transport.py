"""Generative transport (Result 2.2 / B.1, Corollary 2.3) against independent references."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hdae import activations, schedules
from hdae.compare import energy_distance
from hdae.simulation.sampler import sample_finite_d
from hdae.theory import transport
from hdae.theory.linalg import sym_sqrt


def _coefficients(eps=0.0, steps=49, t_end=0.98, schedule="linear", eps_kind="constant"):
    return schedules.sampler_coefficients(schedules.Interpolant(schedule), schedules.NoiseSchedule(eps, eps_kind),
                                          schedules.sampling_grid(steps, t_end))


def _network(rng, d=300, r=2, R=2, k=3, scale=1.0):
    """Weights with O(1) overlaps on a 3-dim latent block plus a random bulk; E in the latent block."""
    w = 0.6 * scale * rng.standard_normal((d, r))
    w[:k] += math.sqrt(d) * rng.standard_normal((k, r)) * 0.5 * scale
    E = np.zeros((d, R))
    E[:k] = np.linalg.qr(rng.standard_normal((k, R)))[0]
    return w, E


@pytest.mark.parametrize("act,eps", [("tanh", 0.0), ("relu", 0.3), ("erf", 0.1)])
def test_latent_recursion_reproduces_the_d_dim_sampler_pathwise(act, eps, rng):
    """Z_k = w^T X_k/sqrt d of a d-dim Euler(-Maruyama) run equals the r-dim recursion driven
    by the projected noise, to machine precision (section 6 of the note)."""
    d, r, n, b = 200, 2, 50, 0.8
    w, _ = _network(rng, d, r)
    coeffs = _coefficients(eps, steps=20, t_end=0.9)
    sigma, _ = activations.numpy_pair(act)
    X = rng.standard_normal((n, d))
    xi = rng.standard_normal((len(coeffs.dt), n, d))
    Q = w.T @ w / d
    Z0 = X @ w / math.sqrt(d)
    for k, dt in enumerate(coeffs.dt):
        A = b * coeffs.gamma[k] + coeffs.linear[k]
        X = X + dt * (A * X + coeffs.gamma[k] * sigma(X @ w / math.sqrt(d)) @ w.T / math.sqrt(d)) \
            + math.sqrt(coeffs.noise_var[k]) * xi[k]
    sqrtQ = sym_sqrt(Q)
    noise = np.einsum("knd,dr->knr", xi, w) / math.sqrt(d) @ np.linalg.inv(sqrtQ)  # standardised projected noise
    z = Z0.copy()
    transport._latent_recursion(z, np.ascontiguousarray(noise), sqrtQ, Q, coeffs.drift_scale(b), coeffs.gamma,
                                coeffs.dt, np.sqrt(coeffs.noise_var), activations.code(act))
    np.testing.assert_allclose(z, X @ w / math.sqrt(d), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("act,eps", [("tanh", 0.0), ("relu", 0.0), ("tanh", 0.5)])
def test_projected_law_matches_the_d_dim_sampler_for_a_fixed_network(act, eps, rng):
    """Q, G and b fixed by hand: the torch d-dim sampler's E^T X against Corollary 2.3."""
    d, r, n, b = 300, 2, 4000, 0.9
    w, E = _network(rng, d, r, scale=0.5 if act == "relu" else 1.0)  # ReLU drift is unbounded: keep Q small
    coeffs = _coefficients(eps)
    gen = torch.Generator().manual_seed(7)
    proj, _ = sample_finite_d(torch.tensor(w)[None], torch.tensor([b]), coeffs, 2 * n, torch.tensor(E), act, gen)
    sim = proj[0].numpy()
    Q, G = w.T @ w / d, w.T @ E / math.sqrt(d)
    theory, Z, S = transport.generated_samples(Q, G, b, coeffs, n, act, np.random.default_rng(3))
    assert S == pytest.approx(coeffs.orthogonal_variance(b)[-1])
    floor = energy_distance(sim[:n], sim[n:])
    assert 0 < floor and energy_distance(theory, sim[:n]) < 3 * floor
    se = sim.std(0) / math.sqrt(n)
    np.testing.assert_array_less(np.abs(theory.mean(0) - sim.mean(0)), 5 * np.sqrt(2) * se)
    cov_sim = np.cov(sim.T)
    assert np.abs(np.cov(theory.T) - cov_sim).max() < 0.1 * np.abs(cov_sim).max()


def test_linear_activation_gives_the_closed_form_gaussian(rng):
    """sigma(x) = x: Z is Gaussian with Cov_{k+1} = M_k Cov_k M_k^T + 2 eps_k dt_k Q,
    M_k = (1 + dt_k A_k) I + dt_k Gamma_k Q, and E^T X by Corollary 2.3."""
    r, R, b, eps = 2, 2, 0.7, 0.2
    X = rng.standard_normal((r, r))
    Q = X @ X.T / 2 + 0.3 * np.eye(r)
    G = 0.5 * rng.standard_normal((r, R))
    coeffs = _coefficients(eps, steps=30, t_end=0.9)
    cov = Q.copy()
    A = coeffs.drift_scale(b)
    for k, dt in enumerate(coeffs.dt):
        Mk = (1 + dt * A[k]) * np.eye(r) + dt * coeffs.gamma[k] * Q
        cov = Mk @ cov @ Mk.T + coeffs.noise_var[k] * Q
    S = coeffs.orthogonal_variance(b)[-1]
    Qp = np.linalg.inv(Q)
    expected = G.T @ Qp @ cov @ Qp @ G + S * (np.eye(R) - G.T @ Qp @ G)
    n = 200_000
    proj, Z, S_th = transport.generated_samples(Q, G, b, coeffs, n, "linear", np.random.default_rng(0))
    assert S_th == pytest.approx(S, rel=1e-12)
    np.testing.assert_allclose(np.cov(Z.T), cov, rtol=0.02, atol=0.02 * np.abs(cov).max())
    np.testing.assert_allclose(np.cov(proj.T), expected, rtol=0.02, atol=0.02 * np.abs(expected).max())
    np.testing.assert_allclose(proj.mean(0), 0.0, atol=5 * np.sqrt(np.diag(expected) / n).max())


@pytest.mark.parametrize("schedule,eps_kind", [("linear", "constant"), ("trigonometric", "alpha2")])
def test_variance_recursion_converges_to_the_continuous_formula(schedule, eps_kind):
    """S_{k+1} = (1 + dt A)^2 S_k + 2 eps dt -> exp(2 int A)(1 + 2 int exp(-2 int A) eps) as dt -> 0."""
    b, eps, t_end = 0.6, 0.3, 0.9
    interp, noise = schedules.Interpolant(schedule), schedules.NoiseSchedule(eps, eps_kind)
    fine = np.linspace(0, t_end, 200_001)
    c = schedules.sampler_coefficients(interp, noise, fine)
    a = c.drift_scale(b)
    ia = np.concatenate([[0.0], np.cumsum(0.5 * (a[1:] + a[:-1]) * np.diff(fine[:-1]))])
    e = noise(fine[:-1], interp)
    inner = np.concatenate([[0.0], np.cumsum(0.5 * (np.exp(-2 * ia[1:]) * e[1:] + np.exp(-2 * ia[:-1]) * e[:-1])
                                              * np.diff(fine[:-1]))])
    exact = np.exp(2 * ia[-1]) * (1 + 2 * inner[-1])
    errors = [abs(_coefficients(eps, n, t_end, schedule, eps_kind).orthogonal_variance(b)[-1] - exact)
              for n in (25, 50, 100, 200)]
    ratios = np.array(errors[:-1]) / np.array(errors[1:])
    assert np.all(ratios > 1.7), errors  # first order in dt
    assert errors[-1] < 0.05 * exact


def test_odd_activation_transport_is_equivariant(rng):
    """sigma odd: the recursion maps (Z_0, noise) -> Z and (-Z_0, -noise) -> -Z exactly, so the
    generated density is symmetric under X -> -X (the paper's Fig. 2 argument)."""
    r, n, b = 2, 500, 0.9
    X = rng.standard_normal((r, r))
    Q = X @ X.T + 0.5 * np.eye(r)
    coeffs = _coefficients(0.4)
    sq = sym_sqrt(Q)
    z0 = rng.standard_normal((n, r)) @ sq
    noise = rng.standard_normal((len(coeffs.dt), n, r))
    out = []
    for sign in (1.0, -1.0):
        z = sign * z0
        transport._latent_recursion(z, sign * noise.copy(), sq, Q, coeffs.drift_scale(b), coeffs.gamma, coeffs.dt,
                                    np.sqrt(coeffs.noise_var), activations.code("tanh"))
        out.append(z)
    np.testing.assert_allclose(out[1], -out[0], atol=1e-12)
    # relu is not odd: the same construction breaks the symmetry
    zr = [sign * z0 for sign in (1.0, -1.0)]
    for sign, z in zip((1.0, -1.0), zr):
        transport._latent_recursion(z, sign * noise.copy(), sq, Q, coeffs.drift_scale(b), coeffs.gamma, coeffs.dt,
                                    np.sqrt(coeffs.noise_var), activations.code("relu"))
    assert np.abs(zr[1] + zr[0]).max() > 0.1


def test_odd_activation_density_is_symmetric_in_the_d_dim_sampler(rng):
    """The finite-d sampler with tanh: third moments and means of E^T X vanish within sampling error."""
    d, n = 200, 20_000
    w, E = _network(rng, d)
    proj, _ = sample_finite_d(torch.tensor(w)[None], torch.tensor([1.0]), _coefficients(0.0), n, torch.tensor(E),
                              "tanh", torch.Generator().manual_seed(1))
    x = proj[0].numpy()
    se = x.std(0) / math.sqrt(n)
    assert np.all(np.abs(x.mean(0)) < 5 * se)
    third = (x**3).mean(0)
    assert np.all(np.abs(third) < 5 * (x**3).std(0) / math.sqrt(n))


def test_projected_density_is_normalised_and_matches_samples(rng):
    R = 2
    w, E = _network(rng, 300, 2, R)
    Q, G = w.T @ w / 300, w.T @ E / math.sqrt(300)
    coeffs = _coefficients(0.0)
    proj, Z, S = transport.generated_samples(Q, G, 0.9, coeffs, 3000, "tanh", np.random.default_rng(2))
    law = transport.projected_law(Z, Q, G, S)
    assert not law.degenerate
    lo, hi = proj.min(0) - 3, proj.max(0) + 3
    gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], 200), np.linspace(lo[1], hi[1], 200), indexing="ij")
    pts = np.stack([gx.ravel(), gy.ravel()], 1)
    dens = law.density(pts)
    cell = (gx[1, 0] - gx[0, 0]) * (gy[0, 1] - gy[0, 0])
    assert dens.sum() * cell == pytest.approx(1.0, abs=0.01)
    # the mixture's mean and covariance are the Corollary's
    mean = (dens[:, None] * pts).sum(0) * cell
    np.testing.assert_allclose(mean, law.means.mean(0), atol=0.02)
    np.testing.assert_allclose(law.cov, S * (np.eye(R) - G.T @ np.linalg.inv(Q) @ G), rtol=1e-10)


def test_degenerate_observation_space_falls_back_to_kde():
    """E inside span(w): the Gaussian part vanishes, the density comes from a KDE of samples."""
    Q = np.eye(2)
    G = np.eye(2)  # E = the span of w itself
    law = transport.projected_law(np.random.default_rng(0).standard_normal((500, 2)), Q, G, 1.0)
    assert law.degenerate
    dens = law.density(np.zeros((1, 2)))
    assert dens[0] == pytest.approx(1 / (2 * np.pi), rel=0.3)
