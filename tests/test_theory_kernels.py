"""The all-cluster quadrature kernel behind operators(): cluster bookkeeping and determinism."""
from __future__ import annotations

import dataclasses

import numba
import numpy as np
import pytest

import hdae
from hdae.theory import quadrature
from hdae.theory.ode import TrainingSetup, _node_blocks, operators
from hdae.theory.solve import initial_state

from conftest import SMALL


def _setup(problem, times=(0.5,), weights=(1.0,), activation="tanh"):
    reduced, _ = initial_state(problem, "limit")
    r = problem.model.width
    times, weights = np.asarray(times, float), np.asarray(weights, float)
    nodes = quadrature.choose(TrainingSetup.integration_dim(r, len(times)), activation)
    return TrainingSetup(reduced=reduced, activation=activation, alphas=1 - times, betas=times, omegas=weights,
                         lr=0.2, weight_decay=0.5, nodes=nodes)


def _state(K, r, rng):
    A = rng.standard_normal((r, r))
    Q = A @ A.T / r + 0.3 * np.eye(r)
    Omega = np.stack([Q * (0.5 + 0.4 * c) + 0.1 * np.eye(r) for c in range(K)])
    M = rng.standard_normal((r, K))
    return Q, Omega, M


@pytest.mark.parametrize("activation,grid", [("tanh", ((0.5,), (1.0,))), ("relu", ((0.3, 0.8), (0.4, 0.6))),
                                             ("erf", ((0.6,), (1.0,)))])
def test_split_clusters_give_the_same_operators(small_problem, activation, grid, rng):
    """Each cluster cut into two identical halves of half the weight: the same K0, D0, sigma_h, and
    U, K1, D1 that add up to the unsplit ones; a zero-weight cluster changes nothing."""
    setup = _setup(small_problem, *grid, activation=activation)
    K, r = len(setup.reduced.weights), small_problem.model.width
    Q, Omega, M = _state(K, r, rng)
    U, K0, K1, D0, D1, sh = operators(Q, Omega, M, 0.3, setup)
    pi = np.asarray(setup.reduced.weights)
    split = dataclasses.replace(setup, reduced=dataclasses.replace(
        setup.reduced, weights=np.concatenate([pi / 2, pi / 2, [0.0]])))
    junk = np.full((1, r, r), 1e3)  # a zero-weight cluster with an absurd covariance is ignored
    U2, K02, K12, D02, D12, sh2 = operators(Q, np.concatenate([Omega, Omega, junk]),
                                            np.concatenate([M, M, 50 * np.ones((r, 1))], axis=1), 0.3, split)
    np.testing.assert_allclose(K02, K0, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(D02, D0, rtol=1e-12, atol=1e-14)
    assert sh2 == pytest.approx(sh, rel=1e-12)
    np.testing.assert_allclose(U2[:, :K] + U2[:, K:2 * K], U, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(K12[:K] + K12[K:2 * K], K1, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(D12[:K] + D12[K:2 * K], D1, rtol=1e-12, atol=1e-14)
    assert np.all(U2[:, -1] == 0) and np.all(K12[-1] == 0) and np.all(D12[-1] == 0)


def test_operators_do_not_depend_on_the_thread_count(rng):
    p = hdae.load_problem(SMALL)
    setup = _setup(p, activation="relu")  # Sobol: many nodes, several blocks per cluster
    assert _node_blocks(len(setup.nodes.weights), 3) > 1
    Q, Omega, M = _state(3, 2, rng)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = operators(Q, Omega, M, 0.1, setup)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        many = operators(Q, Omega, M, 0.1, setup)
    finally:
        numba.set_num_threads(before)
    for a, b in zip(one, many):
        np.testing.assert_array_equal(a, b)
