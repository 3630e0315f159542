"""The d-dimensional sampler: with a linear activation it is a linear Gaussian map with a closed-form law.
Every test runs both implementations: numpy (the CPU path, numpy Generator) and torch (the CUDA path, run
here on CPU tensors with a torch.Generator)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hdae import schedules
from hdae.simulation import sample_finite_d

F64 = torch.float64
BACKENDS = ["numpy", "torch"]


def _as(backend, a):
    a = np.asarray(a, dtype=float)
    return a if backend == "numpy" else torch.as_tensor(a)


def _gen(backend, seed):
    return np.random.default_rng(seed) if backend == "numpy" else torch.Generator().manual_seed(seed)


def _np(x):
    return x.numpy() if isinstance(x, torch.Tensor) else x


def _coefficients(eps=0.0, kind="constant", steps=12, t_end=0.9, schedule="linear"):
    return schedules.sampler_coefficients(schedules.Interpolant(schedule), schedules.NoiseSchedule(eps, kind),
                                          schedules.sampling_grid(steps, t_end))


def _weights(n_rep, d, r, seed):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((n_rep, d, r))
    w[:, :, 1:] *= 0.6  # unequal units
    return w


def _covariance_recursion(w, b, co):
    """Exact covariance of X_n for sigma = identity: X_{k+1} = M_k X_k + sqrt(nv_k) xi,
    M_k = (1 + dt_k A_k) I + dt_k Gamma_k w w^T/d, X_0 ~ N(0, I)."""
    d = w.shape[0]
    A = co.drift_scale(b)
    C = np.eye(d)
    P = w @ w.T / d
    for k, dt in enumerate(co.dt):
        M = (1 + dt * A[k]) * np.eye(d) + dt * co.gamma[k] * P
        C = M @ C @ M.T + co.noise_var[k] * np.eye(d)
    return C


def _projected_closed_form(w, b, co, E):
    """Section 6 for sigma = identity: Z_{k+1} = ((1 + dt A_k) I + dt Gamma_k Q) Z_k + noise with covariance
    nv_k Q, Z_0 ~ N(0, Q); E^T X = G^T Q^+ Z + N(0, S (I - G^T Q^+ G)), S from orthogonal_variance."""
    d, r = w.shape
    Q = w.T @ w / d
    G = w.T @ E / math.sqrt(d)
    A = co.drift_scale(b)
    P = Q.copy()  # Cov(Z)
    for k, dt in enumerate(co.dt):
        B = (1 + dt * A[k]) * np.eye(r) + dt * co.gamma[k] * Q
        P = B @ P @ B.T + co.noise_var[k] * Q
    S = co.orthogonal_variance(b)[-1]
    Qp = np.linalg.pinv(Q)
    L = G.T @ Qp
    return L @ P @ L.T + S * (np.eye(E.shape[1]) - G.T @ Qp @ G), P, S


def _check_cov(samples, C, n_sigma=5.0):
    """Sample covariance (mean known to be 0) against C, entry by entry in units of its Gaussian sd."""
    n = samples.shape[0]
    emp = samples.T @ samples / n
    sd = np.sqrt((np.outer(np.diag(C), np.diag(C)) + C**2) / n)
    z = np.abs(emp - C) / sd
    assert z.max() < n_sigma, (z.max(), np.unravel_index(z.argmax(), z.shape))
    zm = np.abs(samples.mean(0)) / np.sqrt(np.diag(C) / n)
    assert zm.max() < n_sigma


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("eps,kind", [(0.0, "constant"), (0.4, "constant"), (1.0, "alpha2")])
def test_linear_sampler_law(eps, kind, backend):
    d, r, n_rep, n = 30, 2, 2, 20000
    co = _coefficients(eps, kind)
    w = _weights(n_rep, d, r, seed=1)
    b = np.array([0.3, 1.4])
    # an orthonormal observation basis with a component inside span(w) and one outside
    rng = np.random.default_rng(2)
    E = np.linalg.qr(np.column_stack([w[0, :, 0] + rng.standard_normal(d), rng.standard_normal(d)]))[0]
    X, Z = sample_finite_d(_as(backend, w), _as(backend, b), co, n, _as(backend, np.eye(d)), "linear",
                           _gen(backend, 3))
    assert X.shape == (n_rep, n, d) and Z.shape == (n_rep, n, r)
    assert isinstance(X, np.ndarray) == (backend == "numpy")
    X, Z = _np(X), _np(Z)
    for i in range(n_rep):
        C = _covariance_recursion(w[i], b[i], co)
        closed, P, S = _projected_closed_form(w[i], b[i], co, E)
        # the d x d recursion and the closed form of section 6 agree exactly
        np.testing.assert_allclose(E.T @ C @ E, closed, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(w[i].T @ C @ w[i] / d, P, rtol=1e-10, atol=1e-12)
        # orthogonal to w the variance is S_n
        perp = np.linalg.svd(w[i], full_matrices=True)[0][:, r:]  # orthonormal basis of W-perp
        np.testing.assert_allclose(perp.T @ C @ perp, S * np.eye(perp.shape[1]), rtol=1e-10, atol=1e-12)
        # Z = w^T X/sqrt d for the returned samples
        np.testing.assert_allclose(Z[i], X[i] @ w[i] / math.sqrt(d), rtol=1e-10, atol=1e-12)
        # the samples follow the law
        _check_cov(X[i], C)
        _check_cov(X[i] @ E, closed)
        _check_cov(Z[i], P)
    if eps == 0.0:  # b < 1 shrinks, b > 1 expands the orthogonal part (probability-flow ODE)
        assert co.orthogonal_variance(0.3)[-1] < 1 < co.orthogonal_variance(1.4)[-1]


@pytest.mark.parametrize("backend", BACKENDS)
def test_projected_output_equals_X_times_basis(backend):
    d, r, n = 25, 3, 500
    co = _coefficients(0.3)
    w = _as(backend, _weights(1, d, r, seed=4))
    b = _as(backend, [0.8])
    E = np.linalg.qr(np.random.default_rng(5).standard_normal((d, 2)))[0]
    full, _ = sample_finite_d(w, b, co, n, _as(backend, np.eye(d)), "tanh", _gen(backend, 9))
    proj, _ = sample_finite_d(w, b, co, n, _as(backend, E), "tanh", _gen(backend, 9))
    np.testing.assert_allclose(_np(proj), _np(full) @ E, rtol=1e-12, atol=1e-12)
    again, _ = sample_finite_d(w, b, co, n, _as(backend, E), "tanh", _gen(backend, 9))
    np.testing.assert_array_equal(_np(again), _np(proj))  # same seed, same samples


def test_numpy_and_torch_samplers_agree_in_law():
    """tanh, noise: the two implementations' samples (different streams) have the same law."""
    from hdae.compare import energy_distance

    d, r, n = 30, 2, 3000
    co = _coefficients(0.4)
    w = _weights(1, d, r, seed=6)
    b = np.array([0.9])
    E = np.linalg.qr(np.column_stack([w[0, :, 0], np.random.default_rng(7).standard_normal(d)]))[0]
    out = [_np(sample_finite_d(_as(k, w), _as(k, b), co, 2 * n, _as(k, E), "tanh", _gen(k, 1))[0][0])
           for k in BACKENDS]
    floor = energy_distance(out[0][:n], out[0][n:])
    assert energy_distance(out[0][:n], out[1][:n]) < 4 * floor + 1e-3


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("schedule", ["linear", "trigonometric"])
def test_probability_flow_with_zero_weights_is_a_scalar_map(schedule, backend):
    d, r, n = 40, 2, 300
    co = _coefficients(0.0, steps=15, t_end=0.95, schedule=schedule)
    b = np.array([0.2, 1.0, 1.7])
    w = _as(backend, np.zeros((3, d, r)))
    X, Z = sample_finite_d(w, _as(backend, b), co, n, _as(backend, np.eye(d)), "sigmoid", _gen(backend, 11))
    X, Z = _np(X), _np(Z)
    if backend == "numpy":  # X_0: the first draw of the generator (ziggurat normals seeded from it)
        from hdae.simulation.normals import standard_normal

        X0 = standard_normal(np.empty((3, n, d)), np.random.default_rng(11).integers(2**63))
    else:
        X0 = torch.randn((3, n, d), generator=torch.Generator().manual_seed(11), dtype=F64).numpy()
    for i in range(3):
        factor = np.prod(1 + co.dt * (b[i] * co.gamma + co.linear))
        np.testing.assert_allclose(X[i], factor * X0[i], rtol=1e-12, atol=1e-14)
        assert factor**2 == pytest.approx(co.orthogonal_variance(b[i])[-1], rel=1e-12)
    assert not np.any(Z)
    if schedule == "linear":  # A = (b - 1)/(1 - t): b < 1 shrinks, b = 1 keeps, b > 1 expands
        f = [np.prod(1 + co.dt * (bi * co.gamma + co.linear)) for bi in b]
        assert f[0] < 1 and f[1] == pytest.approx(1.0, abs=1e-14) and f[2] > 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_zero_weights_with_noise_gives_isotropic_variance_S(backend):
    d, n = 20, 20000
    co = _coefficients(0.5, "alpha", steps=10, t_end=0.9)
    w = _as(backend, np.zeros((1, d, 1)))
    X, _ = sample_finite_d(w, _as(backend, [0.6]), co, n, _as(backend, np.eye(d)), "tanh", _gen(backend, 2),
                           batch=3000)
    S = co.orthogonal_variance(0.6)[-1]
    _check_cov(_np(X)[0], S * np.eye(d))
    # S from the recursion S_{k+1} = (1 + dt A)^2 S_k + 2 eps_k dt_k, eps_k = 0.5 alpha_{t_k}
    s = 1.0
    for k in range(10):
        t, dt = co.t[k], co.dt[k]
        A = 0.6 * (1 + t / (1 - t) + 0.5 * (1 - t) * t / (1 - t) ** 2) - 1 / (1 - t) - 0.5 * (1 - t) / (1 - t) ** 2
        s = (1 + dt * A) ** 2 * s + 2 * 0.5 * (1 - t) * dt
    assert S == pytest.approx(s, rel=1e-13)


def test_numpy_weights_need_a_numpy_generator():
    co = _coefficients(0.0)
    with pytest.raises(TypeError, match="numpy Generator"):
        sample_finite_d(np.zeros((1, 5, 1)), np.ones(1), co, 4, np.eye(5), "tanh", torch.Generator())


def test_float32_numpy_sampler():
    co = _coefficients(0.3)
    w = _weights(2, 20, 2, seed=3).astype(np.float32)
    for act in ("tanh", "relu", "erf", "sigmoid", "linear"):
        X, Z = sample_finite_d(w, np.array([0.5, 1.0], np.float32), co, 50, np.eye(20, dtype=np.float32), act,
                               np.random.default_rng(0))
        assert X.dtype == np.float32 and Z.dtype == np.float32 and np.isfinite(X).all(), act
