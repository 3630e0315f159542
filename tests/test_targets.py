"""Targets: the finite-d realisation, the spectral reduction, manifolds, initial weights, statistics at theta = 0."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import hdae
from hdae import targets
from hdae.simulation import simulate
from hdae.simulation.sgd import MixtureSampler

from conftest import SMALL



HETERO = """
seed = 3
[target]
kind = "mixture"
d = 203
centroids = [[2.5, 0.5, 0.0], [-1.5, -1.0, 1.0]]
weights = [0.6, 0.4]
covariance = [
  { isotropic = 1.0 },
  { blocks = [[0.3, 2.0], [0.7, 0.4]], latent = [0.5, 1.5, 3.0] },
]
[model]
width = 3
activation = "relu"
[init]
scale = 0.3
warm_norm = 0.2
[train]
tau = 0.3
checkpoints = 4
[sample]
thetas = []
"""

LIST_SPECTRUM = """
[target]
kind = "gaussian"
d = 157
covariance = { eigenvalues = [0.5, 3.0, 1.0, 2.0, 0.25], latent = [6.0, 5.0] }
[init]
scale = 1.0
"""


def _realised(problem, d=None):
    return targets.realise(problem.target, problem.observation_basis, d)


# ----------------------------------------------------------------------------- realisation
@pytest.mark.parametrize("d", [50, 203, 1000])
def test_realised_centroids_are_padded_latent_centroids(d):
    p = hdae.load_problem(HETERO)
    rt = _realised(p, d)
    K, k = p.target.centroids.shape
    assert rt.centroids.shape == (K, d) and rt.eigenvalues.shape == (K, d) and rt.basis.shape == (d, 2)
    np.testing.assert_array_equal(rt.centroids[:, :k], [[2.5, 0.5, 0.0], [-1.5, -1.0, 1.0]])
    assert not np.any(rt.centroids[:, k:])
    np.testing.assert_allclose(np.linalg.norm(rt.centroids, axis=1), [math.sqrt(6.5), math.sqrt(4.25)], rtol=1e-14)
    np.testing.assert_array_equal(rt.weights, [0.6, 0.4])


def test_realised_centroid_norms_of_examples():
    for name, norm in (("fig1", 3.0), ("fig2", 3.0), ("fig6", 3.0)):
        p = hdae.load_problem(example=name, d=120)
        np.testing.assert_allclose(np.linalg.norm(_realised(p).centroids, axis=1), norm, rtol=1e-14)
    circle = hdae.load_problem('[target]\nkind="manifold"\nmanifold="circle"\npoints=12\nscale=1.7\nd=50\n'
                               '[init]\nscale=1.0\n')
    np.testing.assert_allclose(np.linalg.norm(_realised(circle).centroids, axis=1), 1.7, rtol=1e-14)


def _check_piece_counts(values, expected_pieces, n_bulk):
    """values: realised bulk eigenvalues of one cluster; expected_pieces: [(fraction, value)] in the
    order written, which is the order along the bulk coordinates."""
    start = 0.0
    for frac, val in expected_pieces:
        lo, hi = int(np.ceil(start * n_bulk - 0.5)), int(np.ceil((start + frac) * n_bulk - 0.5))
        np.testing.assert_array_equal(values[lo:hi], val)
        assert abs((hi - lo) - frac * n_bulk) <= 1.0, (val, hi - lo, frac * n_bulk)
        start += frac
    assert hi == n_bulk


@pytest.mark.parametrize("d", [53, 203, 997])
def test_realised_block_spectrum_matches_the_fractions(d):
    p = hdae.load_problem(HETERO, d=d)
    rt = _realised(p)
    k = 3
    # cluster 0: isotropic 1, latent directions default to the bulk mean (1.0)
    np.testing.assert_array_equal(rt.eigenvalues[0], np.ones(d))
    # cluster 1: 30% of the bulk at 2.0, 70% at 0.4; latent values as given
    np.testing.assert_array_equal(rt.eigenvalues[1, :k], [0.5, 1.5, 3.0])
    _check_piece_counts(rt.eigenvalues[1, k:], [(0.3, 2.0), (0.7, 0.4)], d - k)


@pytest.mark.parametrize("d", [27, 157, 1000])
def test_realised_explicit_list_spectrum(d):
    p = hdae.load_problem(LIST_SPECTRUM, d=d)
    rt = _realised(p)
    assert p.target.latent_dim == 2
    np.testing.assert_array_equal(rt.eigenvalues[0, :2], [6.0, 5.0])
    _check_piece_counts(rt.eigenvalues[0, 2:], [(0.2, v) for v in (0.5, 3.0, 1.0, 2.0, 0.25)], d - 2)
    assert not np.any(rt.centroids)


def test_heteroscedastic_clusters_get_their_own_spectra():
    text = SMALL.replace("covariance = { isotropic = 1.0 }",
                         "covariance = [{ isotropic = 0.5 }, { eigenvalues = [4.0, 1.0] },"
                         " { blocks = [[0.25, 3.0], [0.75, 0.2]], latent = 7.0 }]")
    p = hdae.load_problem(text)
    rt = _realised(p)
    d, k = 200, 2
    np.testing.assert_array_equal(rt.eigenvalues[0], np.full(d, 0.5))
    np.testing.assert_array_equal(rt.eigenvalues[1, :k], [2.5, 2.5])  # default latent: the bulk mean
    _check_piece_counts(rt.eigenvalues[1, k:], [(0.5, 4.0), (0.5, 1.0)], d - k)
    np.testing.assert_array_equal(rt.eigenvalues[2, :k], [7.0, 7.0])
    _check_piece_counts(rt.eigenvalues[2, k:], [(0.25, 3.0), (0.75, 0.2)], d - k)
    # the projected target: the latent eigenvalues seen through E
    w, means, covs = p.target.projected(p.observation_basis)
    E = rt.basis
    for c in range(3):
        np.testing.assert_allclose(covs[c], E.T @ np.diag(rt.eigenvalues[c]) @ E, atol=1e-14)
        np.testing.assert_allclose(means[c], rt.centroids[c] @ E, atol=1e-14)


def test_realise_is_deterministic_and_rejects_small_d():
    p = hdae.load_problem(HETERO)
    a, b = _realised(p, 80), _realised(p, 80)
    for f in ("eigenvalues", "centroids", "basis", "bin_index", "weights"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
    with pytest.raises(hdae.ConfigError):
        _realised(p, 3)


# ----------------------------------------------------------------------------- observation basis
def test_observation_basis_centroids_orthonormal_and_spanning():
    # centroids of rank 2 in a 3-dim latent space: Gram-Schmidt in centroid order
    text = SMALL.replace("centroids = [[2.0, 0.0], [0.0, -2.0], [-2.0, 0.0]]",
                         "centroids = [[1.0, 1.0, 0.0], [2.0, 2.0, 0.0], [0.0, 1.0, 1.0]]")
    for src in (text, HETERO, SMALL, hdae.example_text("hetero")):
        p = hdae.load_problem(src)
        E = p.observation_basis
        mu = p.target.centroids
        np.testing.assert_allclose(E.T @ E, np.eye(E.shape[1]), atol=1e-12)
        np.testing.assert_allclose(mu @ E @ E.T, mu, atol=1e-12)  # the centroids lie in span(E)
        assert E.shape[1] == np.linalg.matrix_rank(mu)
        rt = _realised(p)
        np.testing.assert_allclose(rt.basis.T @ rt.basis, np.eye(E.shape[1]), atol=1e-12)
        np.testing.assert_allclose(rt.centroids @ rt.basis @ rt.basis.T, rt.centroids, atol=1e-12)
    p = hdae.load_problem(text)
    E = p.observation_basis
    np.testing.assert_allclose(E[:, 0], np.array([1.0, 1.0, 0.0]) / math.sqrt(2), atol=1e-12)


def test_observation_basis_explicit_and_principal():
    p = hdae.load_problem(SMALL, overrides=['observation.kind="explicit"', "observation.basis=[[1.0, 1.0]]"])
    np.testing.assert_allclose(p.observation_basis, np.array([[1.0], [1.0]]) / math.sqrt(2), atol=1e-14)
    p = hdae.load_problem(SMALL, overrides=['observation.kind="explicit"', "observation.basis=[[3.0, 0.0], [1.0, 2.0]]"])
    np.testing.assert_allclose(p.observation_basis, np.eye(2), atol=1e-14)
    # principal: top eigenvectors of the latent covariance sum_c pi_c (mu mu^T + diag s_c) - m m^T
    p = hdae.load_problem(LIST_SPECTRUM.replace("[6.0, 5.0]", "[5.0, 6.0]"), overrides=["observation.dim=1"])
    np.testing.assert_allclose(np.abs(p.observation_basis), [[0.0], [1.0]], atol=1e-14)


# ----------------------------------------------------------------------------- Lambda
@pytest.mark.parametrize("src,d", [(HETERO, 203), (HETERO, 57), (LIST_SPECTRUM, 157), (SMALL, 200)])
def test_average_eigenvalue_is_the_weighted_mean_of_realised_eigenvalues(src, d):
    p = hdae.load_problem(src, d=d)
    rt = _realised(p)
    expected = float(p.target.weights @ rt.eigenvalues.mean(axis=1))
    assert p.target.average_eigenvalue(d) == pytest.approx(expected, rel=1e-13)
    red, _ = targets.reduce(p.target, p.observation_basis, d)
    assert red.average_eigenvalue == pytest.approx(expected, rel=1e-13)
    # second moment E|x1|^2/d
    second = expected + float(p.target.weights @ (rt.centroids**2).sum(1)) / d
    assert red.second_moment == pytest.approx(second, rel=1e-13)


def test_average_eigenvalue_limit():
    p = hdae.load_problem(HETERO)
    # bulk spectra: cluster 0 -> 1.0, cluster 1 -> 0.3*2 + 0.7*0.4 = 0.88
    assert p.target.average_eigenvalue() == pytest.approx(0.6 * 1.0 + 0.4 * 0.88, rel=1e-14)
    assert hdae.load_problem(LIST_SPECTRUM).target.average_eigenvalue() == pytest.approx(6.75 / 5, rel=1e-14)


# ----------------------------------------------------------------------------- sampling x1
@pytest.mark.parametrize("kind", ["torch", "numpy"])
def test_mixture_sampler_moments(kind):
    p = hdae.load_problem(HETERO, d=40)
    rt = _realised(p)
    sampler = MixtureSampler(rt, torch.device("cpu"), torch.float64)
    n = 40000
    gen = torch.Generator().manual_seed(11) if kind == "torch" else np.random.default_rng(11)
    x = sampler.draw((n // 4, 4), gen)
    assert x.shape == (n // 4, 4, 40)
    x = np.asarray(x).reshape(n, 40)
    pi, mu, s = rt.weights, rt.centroids, rt.eigenvalues
    mean = pi @ mu
    var = pi @ (s + mu**2) - mean**2
    a = mu - mean  # cluster offsets from the mixture mean
    m4 = pi @ (a**4 + 6 * a**2 * s + 3 * s**2)  # fourth central moment per coordinate
    z_mean = (x.mean(0) - mean) / np.sqrt(var / n)
    z_var = (x.var(0) - var) / np.sqrt((m4 - var**2) / n)
    assert np.abs(z_mean).max() < 4.5, z_mean
    assert np.abs(z_var).max() < 4.5, z_var
    # cross-coordinate covariance in the latent block: sum_c pi_c a_c a_c^T
    cov01 = np.mean((x[:, 0] - mean[0]) * (x[:, 1] - mean[1]))
    # sd of the estimate <= sqrt(E[(x0-m0)^2 (x1-m1)^2]/n) <= (m4_0 m4_1)^(1/4)/sqrt(n) (Cauchy-Schwarz)
    assert cov01 == pytest.approx(pi @ (a[:, 0] * a[:, 1]), abs=5 * (m4[0] * m4[1]) ** 0.25 / math.sqrt(n))


# ----------------------------------------------------------------------------- reduction
@pytest.mark.parametrize("src,d", [(HETERO, 203), (HETERO, 60), (LIST_SPECTRUM, 157), (SMALL, 200),
                                   (hdae.example_text("swiss_roll"), 130)])
def test_reduce_bins_consistent_with_realisation(src, d):
    p = hdae.load_problem(src, d=d)
    rt = _realised(p)
    red, merge = targets.reduce(p.target, p.observation_basis, d)
    np.testing.assert_array_equal(merge, np.arange(red.n_bins))
    assert red.p.sum() == pytest.approx(1.0, abs=1e-14)
    assert red.d == d and len(red.labels) == red.n_bins
    for l in range(red.n_bins):
        idx = np.flatnonzero(rt.bin_index == l)
        assert red.p[l] == pytest.approx(len(idx) / d, abs=1e-15)
        # every coordinate of bin l has eigenvalues s[l] (one per cluster)
        np.testing.assert_array_equal(rt.eigenvalues[:, idx], np.repeat(red.s[l][:, None], len(idx), 1))
        mu, E = rt.centroids[:, idx], rt.basis[idx]
        np.testing.assert_allclose(red.T[l], mu @ mu.T, atol=1e-13)
        np.testing.assert_allclose(red.H[l], mu @ E, atol=1e-13)
        np.testing.assert_allclose(red.EPE[l], E.T @ E, atol=1e-13)
    np.testing.assert_allclose(red.EPE.sum(0), np.eye(rt.basis.shape[1]), atol=1e-13)
    np.testing.assert_allclose(red.T.sum(0), rt.centroids @ rt.centroids.T, atol=1e-12)
    assert set(np.unique(rt.bin_index)) <= set(range(red.n_bins))


@pytest.mark.parametrize("src", [HETERO, LIST_SPECTRUM, SMALL])
def test_reduce_limit_latent_bins_have_no_mass(src):
    p = hdae.load_problem(src)
    red, _ = targets.reduce(p.target, p.observation_basis, None)
    red_d, _ = targets.reduce(p.target, p.observation_basis, p.d)
    assert red.d is None
    n_latent = sum(lbl.startswith("latent") for lbl in red.labels)
    assert n_latent >= 1
    np.testing.assert_array_equal(red.p[:n_latent], 0.0)
    np.testing.assert_allclose(red.p[n_latent:], p.target.bulk.fractions, rtol=1e-14)
    assert red.p.sum() == pytest.approx(1.0, abs=1e-14)
    assert red.average_eigenvalue == pytest.approx(p.target.average_eigenvalue(), rel=1e-14)
    # same bins, eigenvalues and overlaps as at finite d; only the masses differ
    np.testing.assert_array_equal(red.s, red_d.s)
    np.testing.assert_allclose(red.T, red_d.T, atol=1e-15)
    np.testing.assert_allclose(red.H, red_d.H, atol=1e-15)


@pytest.mark.parametrize("d", [None, 157, 1000])
@pytest.mark.parametrize("n_bins", [1, 2, 3])
def test_spectral_bins_preserve_lambda(d, n_bins):
    p = hdae.load_problem(LIST_SPECTRUM.replace("[0.5, 3.0, 1.0, 2.0, 0.25]",
                                                "[0.5, 3.0, 1.0, 2.0, 0.25, 0.1, 4.0, 0.7, 1.3, 2.2]"))
    exact, _ = targets.reduce(p.target, p.observation_basis, d)
    coarse, merge = targets.reduce(p.target, p.observation_basis, d, spectral_bins=n_bins)
    n_lat = sum(lbl.startswith("latent") for lbl in exact.labels)
    assert coarse.n_bins == n_lat + n_bins
    assert coarse.average_eigenvalue == pytest.approx(exact.average_eigenvalue, rel=1e-13)
    assert coarse.p.sum() == pytest.approx(1.0, abs=1e-14)
    # merge maps exact bins to coarse bins: masses and mass-weighted eigenvalues add up
    np.testing.assert_allclose(np.bincount(merge, weights=exact.p), coarse.p, atol=1e-15)
    for c in range(exact.s.shape[1]):
        np.testing.assert_allclose(np.bincount(merge, weights=exact.p * exact.s[:, c]), coarse.p * coarse.s[:, c],
                                   atol=1e-14)
    np.testing.assert_array_equal(merge[:n_lat], np.arange(n_lat))
    np.testing.assert_array_equal(coarse.s[:n_lat], exact.s[:n_lat])


def test_spectral_bins_with_realised_statistics_sum_to_totals():
    p = hdae.load_problem(HETERO, overrides=["theory.spectral_bins=1"])
    d = p.d
    rt = _realised(p)
    red, merge = targets.reduce(p.target, p.observation_basis, d, spectral_bins=1)
    w = targets.initial_weights(p.target, p.init, p.model.width, d, p.seed, 2)
    q, m, g = targets.realised_statistics(w, rt, merge, red.n_bins)
    for i in range(2):
        np.testing.assert_allclose(q[i].sum(0), w[i].T @ w[i] / d, atol=1e-13)
        np.testing.assert_allclose(m[i].sum(0), w[i].T @ rt.centroids.T / math.sqrt(d), atol=1e-13)
        np.testing.assert_allclose(g[i].sum(0), w[i].T @ rt.basis / math.sqrt(d), atol=1e-13)


# ----------------------------------------------------------------------------- manifolds
def test_circle_points_lie_on_the_circle():
    cents, weights = targets.manifold_points("circle", 16, 2.5)
    assert cents.shape == (16, 2)
    np.testing.assert_allclose(np.linalg.norm(cents, axis=1), 2.5, rtol=1e-14)
    np.testing.assert_allclose(weights, np.full(16, 1 / 16), rtol=1e-15)
    angles = np.sort(np.mod(np.arctan2(cents[:, 1], cents[:, 0]), 2 * np.pi))
    np.testing.assert_allclose(angles, 2 * np.pi * (np.arange(16) + 0.5) / 16, atol=1e-12)
    np.testing.assert_allclose(cents.mean(0), 0.0, atol=1e-14)
    np.testing.assert_allclose(cents.T @ cents / 16, 2.5**2 / 2 * np.eye(2), atol=1e-12)


def test_swiss_roll_points_lie_on_the_roll():
    n1, n2, scale = 20, 3, 1.5
    cents, weights = targets.manifold_points("swiss_roll", [n1, n2], scale)
    assert cents.shape == (n1 * n2, 3)
    np.testing.assert_allclose(weights, np.full(n1 * n2, 1 / (n1 * n2)), rtol=1e-15)
    x, y, z = (cents / scale).T
    c1 = np.pi * np.hypot(x, y)  # radius = c1/pi on the roll
    np.testing.assert_allclose(np.mod(np.arctan2(y, x), 2 * np.pi), np.mod(c1, 2 * np.pi), atol=1e-10)
    assert np.all((c1 > 0) & (c1 < 2 * np.pi)) and np.all(np.abs(z) < 1)
    # the parameter grid is the uniform midpoint grid of [0, 2pi] x [-1, 1]
    np.testing.assert_allclose(np.unique(np.round(c1, 10)), 2 * np.pi * (np.arange(n1) + 0.5) / n1, atol=1e-9)
    np.testing.assert_allclose(np.unique(np.round(z, 10)), -1 + 2 * (np.arange(n2) + 0.5) / n2, atol=1e-9)
    # |mu|^2 = scale^2 ((c1/pi)^2 + c2^2) <= 5 scale^2 (the docstring's "<= 2 scale" ignores c2)
    np.testing.assert_allclose(np.linalg.norm(cents, axis=1) ** 2, scale**2 * ((c1 / np.pi) ** 2 + z**2), rtol=1e-12)
    # the example problem uses exactly these points
    p = hdae.load_problem(example="swiss_roll", d=100)
    np.testing.assert_array_equal(p.target.centroids, cents)
    np.testing.assert_array_equal(p.target.weights, weights)


# ----------------------------------------------------------------------------- initial weights
def test_initial_weights_deterministic_and_replica_independent():
    p = hdae.load_problem(HETERO)
    args = (p.target, p.init, p.model.width)
    w1 = targets.initial_weights(*args, 150, 4, 1)
    w3 = targets.initial_weights(*args, 150, 4, 3)
    w3b = targets.initial_weights(*args, 150, 4, 3)
    assert w1.shape == (1, 150, 3) and w3.shape == (3, 150, 3)
    np.testing.assert_array_equal(w3, w3b)
    np.testing.assert_array_equal(w3[0], w1[0])
    np.testing.assert_array_equal(targets.initial_weights(*args, 150, 4, 5)[:3], w3)
    assert not np.allclose(w3[0], w3[1])
    assert not np.allclose(targets.initial_weights(*args, 150, 5, 1), w1)
    # replica i: scale * default_rng([seed, i]) normals plus the warm start
    warm = w3[0] - 0.3 * np.random.default_rng([4, 0]).standard_normal((150, 3))
    for i in range(3):
        np.testing.assert_allclose(w3[i] - 0.3 * np.random.default_rng([4, i]).standard_normal((150, 3)), warm,
                                   atol=1e-13)
    # the same problem re-read from its config text gives the same w_0
    q = hdae.load_problem(p.config_text)
    np.testing.assert_array_equal(targets.initial_weights(q.target, q.init, q.model.width, 150, 4, 3), w3)


@pytest.mark.parametrize("d", [64, 400])
def test_warm_start_columns(d):
    # scale = 0: the warm columns are exactly warm_norm sqrt(d) along the (unit) centroid directions
    p = hdae.load_problem(SMALL, overrides=["init.scale=0.0", "init.warm_norm=0.7", "model.width=3"], d=d)
    w = targets.initial_weights(p.target, p.init, 3, d, 0, 2)
    rt = _realised(p)
    units = rt.centroids / np.linalg.norm(rt.centroids, axis=1, keepdims=True)
    for i in range(2):
        np.testing.assert_allclose(np.linalg.norm(w[i], axis=0), 0.7 * math.sqrt(d), rtol=1e-14)
        np.testing.assert_allclose(w[i], 0.7 * math.sqrt(d) * units.T, atol=1e-13)
    # with a random part and more units than centroids: warm part only on the first K units
    p = hdae.load_problem(HETERO, d=d)  # K = 2, width 3, scale 0.3, warm_norm 0.2
    w = targets.initial_weights(p.target, p.init, 3, d, 8, 1)[0]
    warm = w - 0.3 * np.random.default_rng([8, 0]).standard_normal((d, 3))
    rt = _realised(p)
    units = rt.centroids / np.linalg.norm(rt.centroids, axis=1, keepdims=True)
    np.testing.assert_allclose(warm[:, :2], 0.2 * math.sqrt(d) * units.T, atol=1e-12)
    np.testing.assert_allclose(warm[:, 2], 0.0, atol=1e-12)
    # explicit warm directions
    p = hdae.load_problem(SMALL, overrides=["init.warm_directions=[[1.0, 1.0], [0.0, 2.0]]"], d=d)
    w = targets.initial_weights(p.target, p.init, 2, d, 1, 1)[0]
    warm = w - 0.3 * np.random.default_rng([1, 0]).standard_normal((d, 2))
    np.testing.assert_allclose(warm[:2, 0], 0.3 * math.sqrt(d) * np.array([1, 1]) / math.sqrt(2), atol=1e-12)
    np.testing.assert_allclose(warm[:2, 1], 0.3 * math.sqrt(d) * np.array([0, 1]), atol=1e-12)
    np.testing.assert_allclose(warm[2:], 0.0, atol=1e-12)


# ----------------------------------------------------------------------------- statistics at theta = 0
@pytest.mark.parametrize("src,replicas", [(HETERO, 2), (SMALL, 1)])
def test_statistics_at_theta_zero_match_the_initialisation(src, replicas):
    p = hdae.load_problem(src)
    res = simulate(p, sample=False, replicas=replicas, device="cpu")
    d = p.d
    w0 = res.init_w
    assert w0.shape == (replicas, d, p.model.width)
    np.testing.assert_array_equal(w0, targets.initial_weights(p.target, p.init, p.model.width, d, p.seed, replicas))
    np.testing.assert_array_equal(res.init_b, np.full(replicas, p.model.skip))
    assert res.train.theta[0] == 0.0
    rt = _realised(p)
    red, merge = targets.reduce(p.target, p.observation_basis, d)
    q, m, g = targets.realised_statistics(w0, rt, merge, red.n_bins)
    for i in range(replicas):
        w = w0[i]
        Q = w.T @ w / d
        Omega = np.stack([w.T @ (rt.eigenvalues[c][:, None] * w) / d for c in range(len(rt.weights))])
        M = w.T @ rt.centroids.T / math.sqrt(d)
        G = w.T @ rt.basis / math.sqrt(d)
        np.testing.assert_allclose(res.train.Q[i, 0], Q, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(res.train.Omega[i, 0], Omega, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(res.train.M[i, 0], M, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(res.train.G[i, 0], G, rtol=1e-12, atol=1e-14)
        assert res.train.b[i, 0] == p.model.skip
        # the per-bin statistics add up to the same aggregates (section 2)
        np.testing.assert_allclose(q[i].sum(0), Q, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(np.einsum("lc,lab->cab", red.s, q[i]), Omega, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(m[i].sum(0), M, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(g[i].sum(0), G, rtol=1e-12, atol=1e-14)
