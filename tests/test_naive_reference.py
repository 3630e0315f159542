"""The naive Monte-Carlo right-hand side of validation/naive_ode.py (written from the derivation note,
independently of hdae.theory) averages to hdae's deterministic right-hand side: a check of both, and
of the baseline that validation/benchmark_solve.py times hdae against."""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest

import hdae
from hdae.theory import quadrature
from hdae.theory.ode import State, TrainingSetup, integrate, rhs
from hdae.theory.solve import initial_state

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from validation.naive_ode import naive_rhs, naive_solve  # noqa: E402


def _setup(problem, nodes):
    tr = problem.train
    reduced, states = initial_state(problem, "realised")
    setup = TrainingSetup(reduced=reduced, activation=problem.model.activation, alphas=tr.interpolant.alpha(tr.times),
                          betas=tr.interpolant.beta(tr.times), omegas=tr.time_weights, lr=tr.lr,
                          weight_decay=tr.weight_decay, nodes=nodes)
    return setup, states[0]


# fig2: tanh r = 2 (Gauss-Hermite, exact to rounding); fig1: ReLU r = 4 (Sobol, 2^16 nodes: ~1e-4 of scale);
# hetero: ReLU r = 3, two clusters of different covariance, two training times (integrals in 2r = 6 dims)
CASES = [("fig2", quadrature.gauss_hermite(2, 24)), ("fig1", quadrature.sobol(4, 2**15)),
         ("hetero", quadrature.sobol(6, 2**15))]


@pytest.mark.parametrize("name,nodes", CASES, ids=[c[0] for c in CASES])
def test_naive_rhs_averages_to_hdae_rhs(name, nodes):
    problem = hdae.load_problem(example=name)
    setup, st0 = _setup(problem, nodes)
    # a state away from the start (b != 0, the units already moved): hdae's solution at theta = 0.6
    st = State.unpack(integrate(st0, setup, [0.0, 0.6], "rk4", 0.1).y[-1], st0.shapes)
    assert abs(st.b) > 0.1
    exact = rhs(st, setup)
    rng = np.random.default_rng(1)
    draws = [naive_rhs(st.q, st.m, st.g, st.b, setup.reduced, setup.activation, setup.alphas, setup.betas,
                       setup.omegas, setup.lr, setup.weight_decay, rng) for _ in range(60)]
    for i, (key, value) in enumerate((("q", exact.q), ("m", exact.m), ("g", exact.g), ("b", np.array(exact.b)))):
        x = np.array([d[i] for d in draws])
        mean, se = x.mean(0), x.std(0, ddof=1) / np.sqrt(len(x))
        scale = np.abs(value).max()
        # a quadrature allowance of 3e-4 of scale for the Sobol rules (1e-12 for Gauss-Hermite)
        allowance = (3e-4 if nodes.rule == "sobol" else 1e-12) * scale
        z = (np.abs(mean - value) - allowance).clip(0) / (se + 1e-12 * scale)
        assert z.max() < 5.0, f"{name} {key}: the naive rhs differs from hdae's by {z.max():.1f} standard errors"
        assert se.max() < 0.05 * scale  # the test has power: Monte-Carlo error well below the scale


def test_naive_solve_tracks_hdae_within_its_noise():
    """fig2 to theta = 1: the naive Euler/Monte-Carlo trajectory stays within a few % of hdae's."""
    problem = hdae.load_problem(example="fig2")
    setup, st0 = _setup(problem, quadrature.gauss_hermite(2, 24))
    t_out = np.array([0.0, 0.5, 1.0])
    ref = integrate(st0, setup, t_out, "rk4", 0.025).y
    naive = naive_solve(st0.q, st0.m, st0.g, st0.b, setup.reduced, setup.activation, setup.alphas, setup.betas,
                        setup.omegas, setup.lr, setup.weight_decay, t_out, np.random.default_rng(0))
    for y, (q, m, g, b) in zip(ref, naive):
        want = State.unpack(y, st0.shapes)
        Q, Qn = want.q.sum(0), q.sum(0)
        assert np.abs(Qn - Q).max() < 0.05 * np.abs(Q).max()
        assert np.abs(m.sum(0) - want.m.sum(0)).max() < 0.05 * np.abs(want.m.sum(0)).max()
        assert b == pytest.approx(want.b, abs=0.01)
