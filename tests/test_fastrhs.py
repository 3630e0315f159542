"""The compiled whole right-hand side (hdae.theory.fastrhs) equals ode.rhs to rounding."""
from __future__ import annotations

import numpy as np
import pytest

import hdae
from hdae.theory import fastrhs, quadrature
from hdae.theory.ode import State, TrainingSetup, _node_blocks, integrate, rhs
from hdae.theory.solve import initial_state

from conftest import SMALL


def _setup(problem, mode, nodes=None):
    tr = problem.train
    reduced, states = initial_state(problem, mode)
    r, T = problem.model.width, len(tr.times)
    nodes = nodes or quadrature.choose(TrainingSetup.integration_dim(r, T), problem.model.activation)
    return TrainingSetup(reduced=reduced, activation=problem.model.activation, alphas=tr.interpolant.alpha(tr.times),
                         betas=tr.interpolant.beta(tr.times), omegas=tr.time_weights, lr=tr.lr,
                         weight_decay=tr.weight_decay, nodes=nodes), states[0]


@pytest.mark.parametrize("example,mode", [("fig1", "realised"), ("fig2", "limit"), ("hetero", "realised"),
                                          ("gaussian_decay", "realised"), (None, "realised")])
def test_compiled_rhs_equals_numpy_rhs(example, mode):
    problem = hdae.load_problem(SMALL) if example is None else hdae.load_problem(example=example)
    setup, st = _setup(problem, mode, quadrature.sobol(TrainingSetup.integration_dim(
        problem.model.width, len(problem.train.times)), 256) if problem.model.activation == "relu" else None)
    st = State(st.q, st.m, st.g, 0.37)  # b != 0: every term of the rhs is exercised
    K = len(setup.reduced.weights)
    fast = fastrhs.packed_rhs(setup, st.shapes, _node_blocks(len(setup.nodes.weights), K))
    want = rhs(st, setup).pack()
    got = fast(st.pack())
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-11 * np.abs(want).max())


def test_integrate_uses_the_compiled_path_for_small_problems_only():
    problem = hdae.load_problem(example="fig1")
    setup, st = _setup(problem, "realised", quadrature.sobol(4, 512))
    assert fastrhs.use_fast(setup, 3)
    big = TrainingSetup(**{**setup.__dict__, "nodes": quadrature.sobol(4, 2**15)})
    assert not fastrhs.use_fast(big, 3)
    a = integrate(st, setup, [0.0, 0.5], "rk4", 0.05).y[-1]
    # the numpy path (the parallel kernel) gives the same trajectory to rounding
    import hdae.theory.ode as ode
    before = fastrhs.FAST_WORK
    try:
        fastrhs.FAST_WORK = 0
        b = ode.integrate(st, setup, [0.0, 0.5], "rk4", 0.05).y[-1]
    finally:
        fastrhs.FAST_WORK = before
    np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
