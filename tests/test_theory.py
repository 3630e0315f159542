"""The summary-statistic ODEs against independent references.

* exact: for the linear activation the expected loss is a closed-form polynomial of (w, b) in
  d dimensions; an explicit w evolved by its exact expected gradient (torch autograd) must give
  the ODE's statistics at eta = 0 (the finite-d realisation of section 2), b included;
* Monte Carlo: for nonlinear activations, the ODE's drift at a realised w equals the average of
  the per-sample SGD gradient over many samples (the gradient itself is checked against autograd
  in test_sgd.py), within Monte-Carlo error; the noise term 2 eta p_l D_l against
  (eta/2) E[g^T P_l g] in the bulk bins;
* closed forms: the operators for the linear activation; b(theta) in the d -> infinity limit;
* limiting cases: eta -> 0 removes exactly the noise term; r = 1; a single cluster;
* numerical convergence in the number of nodes, the step size and the spectral binning.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import hdae
from hdae import schedules, targets
from hdae.simulation.sgd import MixtureSampler, OnlineSGD
from hdae.theory import quadrature, solve
from hdae.theory.ode import State, TrainingSetup, integrate, operators, rhs
from hdae.theory.solve import initial_state

PROBLEM = """
seed = 3
[target]
kind = "mixture"
d = {d}
centroids = {centroids}
covariance = {covariance}
[model]
width = {r}
activation = "{act}"
skip = 0.3
[init]
scale = 0.8
warm_norm = 0.5
[train]
lr = 0.3
weight_decay = 0.4
times = {times}
time_weights = {tw}
tau = 1.0
checkpoints = 5
[sample]
thetas = []
"""
TWO_CLUSTERS = dict(centroids="[[1.5, 0.5], [-1.0, -1.0]]",
                    covariance="[{ blocks = [[0.5, 1.5], [0.5, 0.5]], latent = [0.8, 1.2] }, { isotropic = 0.7 }]")
ONE_CLUSTER = dict(centroids="[[1.0, -0.5]]", covariance="{ blocks = [[0.25, 2.0], [0.75, 0.5]] }")
ONE_TIME = dict(times="[0.6]", tw="[1.0]")
TWO_TIMES = dict(times="[0.4, 0.8]", tw="[0.3, 0.7]")


def make(d=40, r=2, act="tanh", clusters=TWO_CLUSTERS, times=ONE_TIME):
    return hdae.load_problem(PROBLEM.format(d=d, r=r, act=act, **clusters, **times))


def setup_for(problem, reduced, lr=None, nodes=None):
    tr = problem.train
    k = TrainingSetup.integration_dim(problem.model.width, len(tr.times))
    return TrainingSetup(reduced, problem.model.activation, tr.interpolant.alpha(tr.times), tr.interpolant.beta(tr.times),
                         tr.time_weights, tr.lr if lr is None else lr, tr.weight_decay,
                         nodes or quadrature.choose(k, problem.model.activation))


# ============================================================================ exact: linear activation
def expected_loss_linear(w, b, problem, realised):
    """E[l] for sigma(x) = x in d dimensions, in closed form (torch, differentiable)."""
    d = w.shape[0]
    tr = problem.train
    cents = torch.tensor(realised.centroids)
    C1 = torch.einsum("c,ci,cj->ij", torch.tensor(realised.weights), cents, cents)
    C1 = C1 + torch.diag(torch.tensor(realised.weights) @ torch.tensor(realised.eigenvalues))
    A = b * torch.eye(d, dtype=w.dtype) + w @ w.T / d
    total = 0.0
    for a, be, om in zip(tr.interpolant.alpha(tr.times), tr.interpolant.beta(tr.times), tr.time_weights):
        ext = a**2 * torch.eye(d, dtype=w.dtype) + be**2 * C1
        total = total + om * (torch.trace(A @ ext @ A.T) - 2 * be * torch.trace(A @ C1) + torch.trace(C1))
    return total


@pytest.mark.parametrize("clusters,times,r", [(TWO_CLUSTERS, ONE_TIME, 2), (TWO_CLUSTERS, TWO_TIMES, 2),
                                              (ONE_CLUSTER, ONE_TIME, 1), (ONE_CLUSTER, TWO_TIMES, 3)])
def test_ode_equals_exact_expected_gradient_flow_linear(clusters, times, r):
    """eta -> 0 and the finite-d realisation: explicit w under the exact expected gradient."""
    problem = make(d=40, r=r, act="linear", clusters=clusters, times=times)
    d, lam = problem.d, problem.train.weight_decay
    realised = targets.realise(problem.target, problem.observation_basis, d)
    w0 = targets.initial_weights(problem.target, problem.init, r, d, problem.seed, 1)[0]

    def flow(state):
        w = state[0].clone().requires_grad_(True)
        b = state[1].clone().requires_grad_(True)
        gw, gb = torch.autograd.grad(expected_loss_linear(w, b, problem, realised), (w, b))
        return (-(d / 2) * (gw + lam / d * w.detach()), -gb / (2 * d))

    thetas = np.linspace(0, 1.0, 5)
    dt = 0.01
    state = (torch.tensor(w0), torch.tensor(0.3, dtype=torch.float64))
    ref = [state]
    for i in range(len(thetas) - 1):
        for _ in range(round((thetas[i + 1] - thetas[i]) / dt)):
            k1 = flow(state)
            k2 = flow(tuple(s + dt / 2 * k for s, k in zip(state, k1)))
            k3 = flow(tuple(s + dt / 2 * k for s, k in zip(state, k2)))
            k4 = flow(tuple(s + dt * k for s, k in zip(state, k3)))
            state = tuple(s + dt / 6 * (a + 2 * b_ + 2 * c + e) for s, a, b_, c, e in zip(state, k1, k2, k3, k4))
        ref.append(state)

    reduced, states = initial_state(problem, "realised")
    sol = integrate(states[0], setup_for(problem, reduced, lr=0.0), thetas, "rk4", dt)
    assert sol.ok
    E, mu = realised.basis, realised.centroids
    for (w, b), y in zip(ref, sol.y):
        st = State.unpack(y, states[0].shapes)
        Q, Omega, M, G = st.aggregates(reduced.s)
        w = w.numpy()
        np.testing.assert_allclose(Q, w.T @ w / d, atol=1e-9)
        np.testing.assert_allclose(M, w.T @ mu.T / math.sqrt(d), atol=1e-9)
        np.testing.assert_allclose(G, w.T @ E / math.sqrt(d), atol=1e-9)
        np.testing.assert_allclose(Omega, np.einsum("ia,ci,ib->cab", w, realised.eigenvalues, w) / d, atol=1e-9)
        assert st.b == pytest.approx(float(b), abs=1e-9)


@pytest.mark.parametrize("times", [ONE_TIME, TWO_TIMES])
def test_operators_linear_activation_closed_form(times, rng):
    """U, K0, K1, D0, D1 for sigma(x) = x from Gaussian moments written out by hand."""
    problem = make(r=3, act="linear", times=times)
    reduced, _ = targets.reduce(problem.target, problem.observation_basis, None)
    setup = setup_for(problem, reduced)
    r, K = 3, 2
    X = rng.standard_normal((r, r))
    Q = X @ X.T / r + 0.2 * np.eye(r)
    Omega = np.array([Q * 0.7 + 0.1 * np.eye(r), Q * 1.3 + 0.05 * np.ones((r, r))])
    M = rng.standard_normal((r, K))
    b = 0.45
    U, K0, K1, D0, D1, sigma_h = operators(Q, Omega, M, b, setup)

    al, be, om = setup.alphas, setup.betas, setup.omegas
    I = np.eye(r)
    U_ref, K0_ref = np.zeros((r, K)), 0.5 * setup.weight_decay * I
    for c in range(K):
        pi, Om, m = reduced.weights[c], Omega[c], M[:, c]
        L1 = Om + np.outer(m, m)  # E[lam1 lam1^T]
        Eh = lambda t: be[t] * m  # noqa: E731
        Ehh = lambda t, u: al[t] * al[u] * Q + be[t] * be[u] * L1  # noqa: E731
        # g1_t = A1_t h_t - beta_t lam1 with A1_t = (2 b beta_t - 1) I + beta_t Q;  g0_t = alpha_t (A0 h_t - lam1)
        A1 = [(2 * b * be[t] - 1) * I + be[t] * Q for t in range(len(al))]
        A0 = 2 * b * I + Q
        Uc = sum(om[t] * (A1[t] @ Eh(t) - be[t] * m) for t in range(len(al)))
        B0 = sum(om[t] * al[t] ** 2 * Q @ A0 for t in range(len(al)))  # E[lam0 g0^T]
        B1 = sum(om[t] * be[t] * Om @ (A1[t] - I) for t in range(len(al)))  # E[(lam1 - m) g1^T]
        S = sum(om[t] * Ehh(t, t) for t in range(len(al)))
        V0 = sum(om[t] * om[u] * al[t] * al[u] * (A0 @ Ehh(t, u) @ A0 - be[t] * A0 @ L1 - be[u] * L1 @ A0 + L1)
                 for t in range(len(al)) for u in range(len(al)))
        V1 = sum(om[t] * om[u] * (A1[t] @ Ehh(t, u) @ A1[u] - be[u] * be[t] * A1[t] @ L1 - be[t] * be[u] * L1 @ A1[u]
                                  + be[t] * be[u] * L1) for t in range(len(al)) for u in range(len(al)))
        U_ref[:, c] = pi * Uc
        K0_ref = K0_ref + pi * (B0.T @ np.linalg.inv(Q) + S)
        np.testing.assert_allclose(K1[c], pi * B1.T @ np.linalg.inv(Om), atol=1e-10)
        np.testing.assert_allclose(D1[c], pi * V1, atol=1e-10)
        if c == 0:
            D0_ref = pi * V0
        else:
            D0_ref = D0_ref + pi * V0
    np.testing.assert_allclose(U, U_ref, atol=1e-10)
    np.testing.assert_allclose(K0, K0_ref, atol=1e-10)
    np.testing.assert_allclose(D0, D0_ref, atol=1e-10)
    Esh = sum(reduced.weights[c] * sum(om[t] * np.trace(al[t] ** 2 * Q + be[t] ** 2 * (Omega[c] + np.outer(M[:, c], M[:, c])))
                                       for t in range(len(al))) for c in range(K))
    assert sigma_h == pytest.approx(Esh, rel=1e-10)


# ============================================================================ Monte Carlo: nonlinear activations
def monte_carlo_drift(problem, n_samples, seed=0, chunk=2**14):
    """Per-sample drifts of the per-bin statistics at the realised w_0 (b = 0.3), averaged."""
    d, r = problem.d, problem.model.width
    tr = problem.train
    realised = targets.realise(problem.target, problem.observation_basis, d)
    reduced, merge = targets.reduce(problem.target, problem.observation_basis, d)
    w = torch.tensor(targets.initial_weights(problem.target, problem.init, r, d, problem.seed, 1)[0])
    sgd = OnlineSGD(MixtureSampler(realised, "cpu", torch.float64), tr.interpolant.alpha(tr.times),
                    tr.interpolant.beta(tr.times), tr.time_weights, tr.lr, tr.weight_decay, problem.model.activation,
                    "cpu", torch.float64)
    gen = torch.Generator().manual_seed(seed)
    onehot = torch.zeros((reduced.n_bins, d), dtype=torch.float64)
    onehot[merge[realised.bin_index], torch.arange(d)] = 1.0
    mu, E = torch.tensor(realised.centroids), torch.tensor(realised.basis)
    sums = {k: [] for k in ("q", "m", "g", "b", "noise")}
    for _ in range(n_samples // chunk):
        x0 = torch.randn((chunk, d), generator=gen, dtype=torch.float64)
        x1 = sgd.target.draw((chunk,), gen)
        W = w.expand(chunk, d, r)
        grad, dldb = sgd.gradient(W, torch.full((chunk,), 0.3, dtype=torch.float64), x0, x1)
        gp = grad + tr.weight_decay / d * W
        Pw = torch.einsum("li,ib->lib", onehot, w)
        A = torch.einsum("nia,lib->nlab", gp, Pw)
        sums["q"].append(-(A + A.transpose(2, 3)) / 2)
        sums["m"].append(-(math.sqrt(d) / 2) * torch.einsum("nia,li,ci->nlac", gp, onehot, mu))
        sums["g"].append(-(math.sqrt(d) / 2) * torch.einsum("nia,li,iR->nlaR", gp, onehot, E))
        sums["b"].append(-dldb / (2 * d))
        sums["noise"].append(tr.lr / 2 * torch.einsum("nia,li,nib->nlab", gp, onehot, gp))
    out = {}
    for k, v in sums.items():
        x = torch.cat(v).numpy()
        out[k] = (x.mean(0), x.std(0) / math.sqrt(len(x)))
    return reduced, out


@pytest.mark.parametrize("act,times,r,clusters", [("tanh", ONE_TIME, 2, TWO_CLUSTERS), ("relu", TWO_TIMES, 2, TWO_CLUSTERS),
                                                  ("erf", ONE_TIME, 1, ONE_CLUSTER), ("sigmoid", TWO_TIMES, 1, TWO_CLUSTERS)])
def test_drift_matches_monte_carlo_expected_gradient(act, times, r, clusters):
    problem = make(d=40, r=r, act=act, clusters=clusters, times=times)
    reduced, mc = monte_carlo_drift(problem, 2**17)
    _, states = initial_state(problem, "realised")
    st = State(states[0].q, states[0].m, states[0].g, 0.3)
    nodes = quadrature.choose(TrainingSetup.integration_dim(r, len(problem.train.times)), act, "auto",
                              16384 if act == "relu" else 0)
    drift = rhs(st, setup_for(problem, reduced, lr=0.0, nodes=nodes))
    for name, value in (("q", drift.q), ("m", drift.m), ("g", drift.g), ("b", np.array(drift.b))):
        mean, se = mc[name]
        z = np.abs(value - mean) / (se + 1e-12 * np.abs(mean).max())
        assert z.max() < 5.0, f"{name}: ODE drift differs from Monte Carlo by {z.max():.1f} standard errors"


def test_noise_term_matches_monte_carlo_in_bulk_bins():
    """2 eta p_l D_l = (eta/2) E[g^T P_l g] + O(1/d) for bins of macroscopic mass."""
    problem = make(d=200, r=2, act="tanh")
    reduced, mc = monte_carlo_drift(problem, 2**15, chunk=2**12)
    _, states = initial_state(problem, "realised")
    st = State(states[0].q, states[0].m, states[0].g, 0.3)
    noise = rhs(st, setup_for(problem, reduced)).q - rhs(st, setup_for(problem, reduced, lr=0.0)).q
    bulk = reduced.p > 0.1
    mean, se = mc["noise"]
    scale = np.abs(mean[bulk]).max()
    assert np.abs(noise[bulk] - mean[bulk]).max() < 0.05 * scale + 5 * se[bulk].max()
    # the noise term is exactly linear in eta and proportional to the bin mass
    noise2 = rhs(st, setup_for(problem, reduced, lr=2 * problem.train.lr)).q - rhs(st, setup_for(problem, reduced, lr=0.0)).q
    np.testing.assert_allclose(noise2, 2 * noise, rtol=1e-12, atol=1e-15)


# ============================================================================ closed form of b
def test_skip_connection_closed_form_in_the_limit():
    problem = make(act="tanh", times=TWO_TIMES).with_overrides("theory.init=\"limit\"", "train.tau=3.0",
                                                              "train.checkpoints=13")
    res = solve(problem, sample=False)
    tr = problem.train
    ref = schedules.skip_connection_closed_form(res.train.theta, 0.3, problem.target.average_eigenvalue(),
                                                tr.interpolant.alpha(tr.times), tr.interpolant.beta(tr.times),
                                                tr.time_weights)
    np.testing.assert_allclose(res.train.b[0], ref, atol=1e-9)


def test_skip_connection_finite_d_close_to_closed_form():
    """At finite d the O(1/d) terms move b by O(1/d) only."""
    problem = make(d=1000, act="tanh").with_overrides("train.tau=3.0")
    res = solve(problem, sample=False)
    tr = problem.train
    ref = schedules.skip_connection_closed_form(res.train.theta, 0.3, problem.target.average_eigenvalue(),
                                                tr.interpolant.alpha(tr.times), tr.interpolant.beta(tr.times),
                                                tr.time_weights)
    dev = np.abs(res.train.b[0] - ref).max()
    assert 0 < dev < 10 / problem.d


# ============================================================================ numerical convergence
def _solve_with(problem, **theory):
    over = [f"theory.{k}={v!r}".replace("'", '"') for k, v in theory.items()]
    return solve(problem.with_overrides(*over), sample=False)


def _max_rel(a, b):
    """Max over Q, M, b (those with a non-zero scale) of max |a - b| / max |b|."""
    out = []
    for k in ("Q", "M", "b"):
        scale = np.abs(getattr(b.train, k)).max()
        if scale > 0:
            out.append(np.abs(getattr(a.train, k) - getattr(b.train, k)).max() / scale)
    return max(out)


def test_convergence_in_step_size():
    problem = make(act="tanh", times=TWO_TIMES).with_overrides("train.tau=2.0", "train.checkpoints=5")
    ref = _solve_with(problem, dt=0.005)
    errors = [_max_rel(_solve_with(problem, dt=dt), ref) for dt in (0.2, 0.1, 0.05)]
    assert errors[0] > errors[1] > errors[2]
    assert errors[0] / errors[1] > 8 and errors[1] / errors[2] > 8  # fourth order: ratio 16
    assert errors[2] < 1e-5


def test_convergence_in_gauss_hermite_nodes():
    problem = make(act="tanh", times=TWO_TIMES, r=1).with_overrides("train.tau=1.0", "train.checkpoints=3")
    ref = _solve_with(problem, quadrature="gauss-hermite", nodes=40)
    errors = [_max_rel(_solve_with(problem, quadrature="gauss-hermite", nodes=n), ref) for n in (4, 8, 16, 24)]
    assert errors[0] > errors[1] > errors[2] > errors[3]  # geometric: 5e-3, 2e-4, 7e-6, 1e-7
    assert errors[3] < 1e-6


def test_convergence_in_sobol_nodes():
    problem = make(act="relu", r=2).with_overrides("train.tau=1.0", "train.checkpoints=3")
    ref = _solve_with(problem, quadrature="sobol", nodes=2**16)
    errors = [_max_rel(_solve_with(problem, quadrature="sobol", nodes=n), ref) for n in (2**8, 2**11, 2**14)]
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 1e-4


def test_spectral_binning_converges():
    """A continuous spectrum (an explicit list of 256 eigenvalues) reduced to fewer bins."""
    eig = np.round(np.linspace(0.2, 3.0, 256) ** 2 / 3, 6).tolist()
    base = hdae.load_problem(f"""
[target]
kind = "gaussian"
d = 2000
covariance = {{ eigenvalues = {eig}, latent = [4.0, 3.5] }}
[model]
width = 2
activation = "tanh"
[init]
scale = 0.5
[train]
lr = 0.2
weight_decay = 0.3
tau = 1.5
checkpoints = 4
[theory]
init = "limit"
""")
    ref = solve(base, sample=False)
    assert ref.attrs["n_bins"] == 2 + 256
    errors = []
    for n in (2, 8, 32):
        res = solve(base.with_overrides(f"theory.spectral_bins={n}"), sample=False)
        assert 2 < res.attrs["n_bins"] <= 2 + n  # equal-width eigenvalue intervals; empty ones are dropped
        assert res.attrs["lambda_avg"] == pytest.approx(ref.attrs["lambda_avg"], rel=1e-12)
        errors.append(_max_rel(res, ref))
    assert errors[0] / errors[1] > 8 and errors[1] / errors[2] > 8  # second order (midpoint rule): about 16
    assert errors[2] < 1e-3


# ============================================================================ quadrature rules
def test_gauss_hermite_is_exact_for_polynomials():
    nodes = quadrature.gauss_hermite(2, 5)
    x, w = nodes.points, nodes.weights
    assert w.sum() == pytest.approx(1.0)
    assert np.dot(w, x[:, 0] ** 4) == pytest.approx(3.0)
    assert np.dot(w, x[:, 0] ** 2 * x[:, 1] ** 2) == pytest.approx(1.0)
    assert np.dot(w, x[:, 0] ** 8) == pytest.approx(105.0)


def test_sobol_nodes_are_symmetric_and_deterministic():
    a, b = quadrature.sobol(3, 1000), quadrature.sobol(3, 1000)
    np.testing.assert_array_equal(a.points, b.points)
    assert len(a.points) == 2 * 1024
    np.testing.assert_allclose(a.weights @ a.points, 0.0, atol=1e-14)
    np.testing.assert_allclose(a.points.T * a.weights @ a.points, np.eye(3), atol=0.01)


# ============================================================================ solver behaviour
def test_divergence_is_reported_with_theta():
    # one SGD step is 2 eta/d = 3 in theta here: checkpoints 40/13 apart fall on distinct steps
    problem = make(act="relu").with_overrides("train.lr=60.0", "train.tau=40.0", "train.checkpoints=14",
                                             "theory.divergence=1e4")
    res = solve(problem, sample=False)
    assert res.status == "diverged"
    assert "theta =" in res.message and "eta = 60" in res.message
    assert 1 <= len(res.train.theta) < 14
    assert np.all(np.isfinite(res.train.Q))


def test_multi_replica_start_gives_one_trajectory_per_replica(small_problem):
    from hdae.simulation import simulate

    sim = simulate(small_problem, replicas=3, sample=False)
    multi = solve(init_from=sim, sample=False)
    assert multi.train.Q.shape[0] == 3 and multi.replica_axis
    for i in range(3):
        reduced, states = initial_state(small_problem, "realised", sim.d, sim.init_w[i:i + 1], sim.init_b[i:i + 1])
        sol = integrate(states[0], setup_for(small_problem, reduced), sim.train.theta, "rk4", small_problem.theory.dt)
        Q = np.array([State.unpack(y, states[0].shapes).q.sum(0) for y in sol.y])
        np.testing.assert_allclose(multi.train.Q[i], Q, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(multi.train.Q[:, 0], sim.train.Q[:, 0], rtol=1e-10, atol=1e-12)


def test_latent_bins_keep_their_pathwise_identity():
    """A latent bin spanned by observation directions has q_l = g_l g_l^T along every SGD path
    (here: one coordinate each); the ODE keeps it, because SGD noise enters only the bulk bins."""
    problem = hdae.load_problem("""
[target]
kind = "gaussian"
d = 500
covariance = { blocks = [[0.3, 1.0], [0.7, 0.2]], latent = [4.0, 2.5] }
[model]
width = 2
activation = "tanh"
[init]
scale = 1.0
[train]
lr = 0.3
weight_decay = 0.2
tau = 3.0
checkpoints = 7
[sample]
thetas = []
[theory]
dt = 0.01   # RK4 keeps this quadratic identity up to its truncation error
""")
    res = solve(problem, sample=False)
    q, g = res.extras["bins_q"][0], res.extras["bins_g"][0]  # (n_ckpt, L, r, r), (n_ckpt, L, r, R)
    assert res.extras["bins_label"][0].decode().startswith("latent")
    for j in range(2):  # the two latent bins: coordinate j carries observation direction j
        gj = g[:, j, :, j]
        np.testing.assert_allclose(q[:, j], np.einsum("ta,tb->tab", gj, gj), rtol=1e-6, atol=1e-12)
    assert np.abs(g[-1, :2]).max() > 10 * np.abs(g[0, :2]).max()  # the spikes were learned


def test_init_from_refuses_a_different_problem(small_problem):
    from hdae.config import ConfigError
    from hdae.simulation import simulate

    sim = simulate(small_problem, sample=False)
    with pytest.raises(ConfigError, match="^model: differs"):
        solve(small_problem.with_overrides('model.activation="relu"'), init_from=sim)
    res = solve(small_problem.with_overrides("theory.dt=0.01"), init_from=sim, sample=False)  # theory may differ
    np.testing.assert_allclose(res.train.theta, sim.train.theta)
