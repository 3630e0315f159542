"""Model collapse (derivation note section 7): the generated target, its discretisation, the
generation-by-generation theory against closed forms and against the d-dimensional simulation."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import hdae
from cli.main import cli
from hdae import collapse, schedules
from hdae.compare import compare_generations, energy_distance
from hdae.generated import GeneratedTarget, discretise
from hdae.linalg import pinv_sym, sym_sqrt
from hdae.results import Result
from hdae.simulation.sampler import generate
from hdae.theory import quadrature, transport
from hdae.theory.ode import State, TrainingSetup, integrate
from hdae.theory.solve import _solve_generation, generated_target, generation_start

from conftest import SMALL


def _coefficients(problem):
    return schedules.sampler_coefficients(problem.train.interpolant, problem.sample.noise, problem.sample.grid)


# ----------------------------------------------------------------------------- the generated target
def test_realised_generated_target_reproduces_the_sampler(small_problem):
    """Generation g's d-dim sampler output and the generation-(g+1) target realised in d dimensions
    around the same weights agree: means, covariances and energy distance on several projections."""
    problem = small_problem.with_overrides(**{"target.d": 300})
    sim = hdae.simulate(problem, sample=False)
    w, b = sim.final_w[0], float(sim.final_b[0])
    d = w.shape[0]
    coeffs = _coefficients(problem)
    gen = torch.Generator().manual_seed(3)
    n = 3000
    X = generate(torch.as_tensor(w)[None], torch.tensor([b], dtype=torch.float64), coeffs, 2 * n,
                 problem.model.activation, gen)[0].numpy()
    E = hdae.targets.realise(problem.target, problem.observation_basis, d).basis
    Q, G = w.T @ w / d, w.T @ E / np.sqrt(d)
    rng = np.random.default_rng(0)
    Z = transport.sample_latent(Q, b, coeffs, 20000, problem.model.activation, rng)
    points, weights = discretise(Z, 256, "kmeans")
    target = GeneratedTarget(points, weights, Q, G, float(coeffs.orthogonal_variance(b)[-1]), d)
    Y = target.draw(w, n, rng)
    # observation space, the span of w, and two random directions
    unit_w = np.linalg.qr(w)[0]
    rand = np.linalg.qr(rng.standard_normal((d, 2)))[0]
    P = np.hstack([E, unit_w, rand])
    x, y = X @ P, Y @ P
    xa, xb = x[:n], x[n:]
    sd = x.std(0)
    assert np.all(np.abs(xa.mean(0) - y.mean(0)) < 5 * sd / np.sqrt(n))
    cov_x, cov_y = np.cov(xa.T), np.cov(y.T)
    assert np.max(np.abs(cov_x - cov_y)) < 0.08 * np.max(np.abs(cov_x))
    floor = energy_distance(xa[:1500], xb[:1500])
    assert energy_distance(xa[:1500], y[:1500]) < 3 * floor


def test_generated_target_bins_are_consistent():
    """The two-bin reduction: masses, Lambda, E^T P E sums to I, T and H from the points, and the
    student's bins sum to its own Q', G' (their W part recovers C)."""
    rng = np.random.default_rng(1)
    r, R, J, d = 2, 2, 50, 400
    A = rng.standard_normal((r, r))
    Q = A @ A.T + 0.5 * np.eye(r)
    G = 0.4 * sym_sqrt(Q) @ np.linalg.qr(rng.standard_normal((r, R)))[0]
    points = rng.standard_normal((J, r))
    target = GeneratedTarget(points, np.full(J, 1 / J), Q, G, 0.3, d)
    red = target.reduce()
    np.testing.assert_allclose(red.p, [r / d, (d - r) / d])
    assert red.average_eigenvalue == pytest.approx(0.3 * (d - r) / d)
    np.testing.assert_allclose(red.EPE.sum(0), np.eye(R), atol=1e-12)
    np.testing.assert_allclose(red.T[0], points @ pinv_sym(Q) @ points.T)
    Qs = np.eye(r) * 0.7
    Gs = rng.standard_normal((r, R)) * 0.2
    C = rng.standard_normal((r, r)) * 0.3
    q, m, g = target.student_bins(Qs, Gs, C)
    np.testing.assert_allclose(q.sum(0), Qs)
    np.testing.assert_allclose(g.sum(0), Gs)
    np.testing.assert_allclose(target.overlap_from_bins(m[0]), C, atol=1e-10)


def test_discretisations_keep_the_mean_and_converge():
    """k-means and histogram keep the mean exactly; their covariance converges to the samples' as the
    number of points grows (k-means within-cluster variance shrinks)."""
    rng = np.random.default_rng(2)
    x = np.concatenate([rng.normal(-1.5, 0.4, (6000, 2)), rng.normal(1.0, 0.7, (4000, 2))])
    cov = np.cov(x.T, bias=True)
    errors = []
    for J in (16, 64, 256):
        for method in ("kmeans", "histogram"):
            p, w = discretise(x, J, method)
            assert w.sum() == pytest.approx(1.0)
            np.testing.assert_allclose(w @ p, x.mean(0), atol=1e-12)
        p, w = discretise(x, J, "kmeans")
        m = w @ p
        errors.append(np.abs((p - m).T @ ((p - m) * w[:, None]) - cov).max())
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.01 * np.abs(cov).max()


# ----------------------------------------------------------------------------- linear closed forms
def _linear_setup(points, weights, seed=4, activation="linear"):
    rng = np.random.default_rng(seed)
    r = points.shape[1]
    A = rng.standard_normal((r, r))
    Q = A @ A.T / r + 0.6 * np.eye(r)
    G = 0.5 * sym_sqrt(Q) @ np.linalg.qr(rng.standard_normal((r, 2)))[0]
    target = GeneratedTarget(points, weights, Q, G, 0.45, None)
    Qs, Gs, C = 0.3 * np.eye(r), 0.1 * rng.standard_normal((r, 2)), 0.2 * rng.standard_normal((r, r))
    q, m, g = target.student_bins(Qs, Gs, C)
    times = np.array([0.6])
    interp = schedules.Interpolant("linear")
    setup = TrainingSetup(reduced=target.reduce(), activation=activation, alphas=interp.alpha(times),
                          betas=interp.beta(times), omegas=np.array([1.0]), lr=0.3, weight_decay=0.2,
                          nodes=quadrature.choose(r, activation))
    sol = integrate(State(q, m, g, 0.1), setup, np.linspace(0, 1.0, 6), dt=0.05)
    assert sol.ok
    last = State.unpack(sol.y[-1], State(q, m, g, 0.1).shapes)
    Qf, _, _, Gf = last.aggregates(setup.reduced.s)
    return np.concatenate([Qf.ravel(), Gf.ravel(), target.overlap_from_bins(last.m[0]).ravel(), [last.b]])


@pytest.mark.parametrize("activation, same", [("linear", True), ("tanh", False)])
def test_linear_dynamics_see_only_the_moments_of_the_generated_law(activation, same):
    """With a linear DAE the loss is quadratic in x, so generation g+1 depends on generation g's law of
    Z only through its mean and covariance: two point sets with equal moments (raw samples, and their
    moment-preserving rotation) give identical trajectories -- not so for tanh."""
    rng = np.random.default_rng(5)
    points = np.concatenate([rng.normal(-1.0, 0.3, (40, 2)), rng.normal([1.2, 0.5], 0.5, (60, 2))])
    weights = rng.uniform(0.5, 1.5, len(points))
    weights /= weights.sum()
    mean = weights @ points
    cov = (points - mean).T @ ((points - mean) * weights[:, None])
    white = (points - mean) @ sym_sqrt(cov, inverse=True)
    rot = np.array([[np.cos(1.1), -np.sin(1.1)], [np.sin(1.1), np.cos(1.1)]])
    rotated = mean + white @ rot @ sym_sqrt(cov)
    a = _linear_setup(points, weights, activation=activation)
    b = _linear_setup(rotated, weights, activation=activation)
    if same:
        np.testing.assert_allclose(a, b, atol=1e-9)
    else:
        assert np.max(np.abs(a - b)) > 1e-4


LINEAR = SMALL.replace('activation = "tanh"', 'activation = "linear"').replace("tau = 0.5", "tau = 1.0") \
    .replace("weight_decay = 0.5", "weight_decay = 1.0")


def test_linear_generations_hand_on_the_closed_form_gaussian():
    """Linear activation, eps = 0: Z_T = prod_k [(1 + dt_k A_k) I + dt_k Gamma_k Q] Z_0, so each generation
    generates N(0, G^T Q^+ M Q M^T Q^+ G + S (I - G^T Q^+ G)) on the observation space. The theory's
    samples of every generation, and the discretised target it hands on, have that covariance."""
    problem = hdae.load_problem(LINEAR, overrides=["theory.init=limit", "sample.n=5000", "generations.points=200",
                                                   "generations.latent_samples=8000"])
    th = hdae.solve(problem, generations=3)
    assert th.ok and th.n_generations == 3
    coeffs = _coefficients(problem)
    for g in range(3):
        run = th.generation(g)
        Q, G, b = run.train.Q[0, -1], run.train.G[0, -1], float(run.train.b[0, -1])
        M = np.eye(2)
        for k in range(len(coeffs.dt)):
            M = ((1 + coeffs.dt[k] * coeffs.drift_scale(b)[k]) * np.eye(2) + coeffs.dt[k] * coeffs.gamma[k] * Q) @ M
        S = coeffs.orthogonal_variance(b)[-1]
        Qp = pinv_sym(Q)
        closed = G.T @ Qp @ M @ Q @ M.T @ Qp @ G + S * (np.eye(2) - G.T @ Qp @ G)
        emp = np.cov(run.sample.projected[0, -1].T)
        assert np.max(np.abs(emp - closed)) < 0.06 * np.abs(closed).max(), g
        if g + 1 < 3:  # the target handed on: the mixture's covariance, k-means within-cluster variance aside
            nxt = th.generation(g + 1).extras
            w, pts = nxt["target_weights"][0], nxt["target_points"][0]
            proj = GeneratedTarget(pts[w > 0], w[w > 0], nxt["target_Q"][0], nxt["target_G"][0],
                                   float(nxt["target_S"][0])).projected()
            means = proj[1]
            mix_cov = (means - w[w > 0] @ means).T @ ((means - w[w > 0] @ means) * w[w > 0, None]) + proj[2][0]
            assert np.max(np.abs(mix_cov - closed)) < 0.04 * np.abs(closed).max(), g


# ----------------------------------------------------------------------------- convergence in points
def test_next_generation_converges_in_the_number_of_points(small_problem):
    problem = small_problem.with_overrides("theory.init=limit")
    th0 = hdae.solve(problem)
    finals = {}
    for J in (16, 64, 256, 1024):
        p = problem.with_overrides(**{"generations.points": J, "generations.count": 2,
                                      "generations.latent_samples": 8000})
        start = generation_start(p, [generated_target(p, th0.train, 0, 0, None)], 1, None,
                                                   "limit")
        nodes = quadrature.choose(2, "tanh")
        run = _solve_generation(p, start, nodes, p.train.checkpoints, [], 1, False, 2)
        finals[J] = np.concatenate([run.train.Q[0, -1].ravel(), run.train.G[0, -1].ravel(),
                                    run.train.overlap[0, -1].ravel()])
    scale = np.abs(finals[1024]).max()
    errors = [np.abs(finals[J] - finals[1024]).max() / scale for J in (16, 64, 256)]
    assert errors[0] > errors[2]
    assert errors[2] < 2e-3


# ----------------------------------------------------------------------------- theory vs simulation
@pytest.fixture(scope="module")
def two_generations(tmp_path_factory):
    problem = hdae.load_problem(SMALL, overrides=["target.d=500", "train.tau=1.0", "sample.n=1500",
                                                 "generations.points=128"])
    sim = hdae.simulate(problem, replicas=2, generations=2)
    th = hdae.solve(init_from=sim)
    folder = tmp_path_factory.mktemp("gen")
    sim.write(folder / "sim.h5")
    th.write(folder / "th.h5")
    return sim, th, folder


def test_theory_follows_the_simulation_generation_by_generation(two_generations):
    sim, th, _ = two_generations
    assert sim.ok and th.ok and sim.n_generations == th.n_generations == 2
    rows = compare_generations(th, sim)
    assert [r.generation for r in rows] == [0, 1]
    for row in rows:
        worst = {r.name: r.relative for r in row.training}
        assert worst["Q"] < 0.1 and worst["G"] < 0.1 and worst["b"] < 0.02, (row.generation, worst)
        assert all(s.ratio < 3.0 for s in row.samples), row.generation
    assert "overlap" in [r.name for r in rows[1].training]
    # generations.chain = "simulation" (the default with init_from): generation 1's target is what the
    # simulation's generation 0 generates, from the statistics of its final weights
    w = sim.generation(0).final_w
    np.testing.assert_allclose(th.generation(1).extras["target_Q"], np.einsum("nia,nib->nab", w, w) / sim.d)
    # the variance of the generated density shrinks, in theory and in simulation alike
    for res in (sim, th):
        total = [d.total for d in collapse.diagnostics(res)]
        assert total[1] < total[0]
    assert np.allclose(sim.extras["collapse_total"], [d.total for d in collapse.diagnostics(sim)])


def test_theory_chain_follows_its_own_generations(two_generations):
    """generations.chain = "theory": generation 1's target is the theory's generation-0 density."""
    sim, _, _ = two_generations
    th = hdae.solve(sim.problem.with_overrides("generations.chain=theory"), init_from=sim, sample=False)
    np.testing.assert_allclose(th.generation(1).extras["target_Q"], th.generation(0).train.Q[:, -1])
    rows = compare_generations(th, sim)
    assert max(r.relative for r in rows[1].training if r.name in ("Q", "G")) < 0.15


def test_generation_files_round_trip_and_resume_from_final_weights(two_generations):
    sim, th, folder = two_generations
    back = Result.read(folder / "sim.h5")
    assert back.n_generations == 2 and back.train is None
    for g in range(2):
        np.testing.assert_array_equal(back.generation(g).final_w, sim.generation(g).final_w)
        np.testing.assert_array_equal(back.generation(g).train.Q, sim.generation(g).train.Q)
    assert back.generation(1).train.overlap.shape == sim.generation(1).train.overlap.shape
    # more samples of generation 1 from the stored weights: the same law as the stored samples
    p = back.problem
    w = torch.as_tensor(back.generation(1).final_w[:1])
    b = torch.as_tensor(back.generation(1).final_b[:1])
    X = generate(w, b, _coefficients(p), 1500, p.model.activation, torch.Generator().manual_seed(9))[0].numpy()
    E = hdae.targets.realise(p.target, p.observation_basis, p.d).basis
    stored = sim.generation(1).sample.projected[0, -1]
    floor = energy_distance(stored[:750], stored[750:])
    assert energy_distance(X @ E, stored) < 3 * max(floor, 1e-3)


def test_cli_generations(two_generations):
    _, _, folder = two_generations
    runner = CliRunner()
    res = runner.invoke(cli, ["compare", str(folder / "th.h5"), str(folder / "sim.h5")])
    assert res.exit_code == 0, res.output
    assert "== generation 1 ==" in res.output and "model collapse" in res.output
    res = runner.invoke(cli, ["info", str(folder / "sim.h5")])
    assert res.exit_code == 0 and "generation 1 (success" in res.output
    for what in ("generations", "collapse"):
        out = folder / f"{what}.png"
        res = runner.invoke(cli, ["plot", str(folder / "th.h5"), "--against", str(folder / "sim.h5"), "--what", what,
                                  "-o", str(out)])
        assert res.exit_code == 0, res.output
        assert out.stat().st_size > 10_000
    res = runner.invoke(cli, ["plot", str(folder / "th.h5"), "--what", "training", "--generation", "1",
                              "-o", str(folder / "t1.png")])
    assert res.exit_code == 0, res.output
    res = runner.invoke(cli, ["solve", "--init-from", str(folder / "sim.h5"), "--generations", "3",
                              "-o", str(folder / "x.h5")])
    assert res.exit_code != 0 and "holds 2 generation" in res.output


def test_generated_kind_is_not_a_problem_file_kind():
    with pytest.raises(hdae.ConfigError, match="generated target is made from a previous generation"):
        hdae.load_problem(SMALL.replace('kind = "mixture"', 'kind = "generated"'))


def test_resume_adds_generations_and_draws_from_the_file(two_generations, tmp_path):
    sim, _, folder = two_generations
    more = hdae.simulate(sim.problem, replicas=2, generations=3, resume=folder / "sim.h5")
    assert more.ok and more.n_generations == 3
    for g in range(2):  # the stored generations are kept as they were
        np.testing.assert_array_equal(more.generation(g).train.Q, sim.generation(g).train.Q)
    # generation 2 was trained on generation 1's samples: its overlap with generation 1's weights is O(1)
    assert np.abs(more.generation(2).train.overlap[:, -1]).max() > 0.1
    with pytest.raises(hdae.ConfigError, match="already holds 2"):
        hdae.simulate(sim.problem, replicas=2, generations=2, resume=sim)
    with pytest.raises(hdae.ConfigError, match="another problem"):
        hdae.simulate(sim.problem.with_overrides("train.lr=0.1"), replicas=2, generations=3, resume=sim)
    x = hdae.simulation.generated_samples(more, 500, generation=2, replica=1, seed=4)
    E = hdae.targets.realise(sim.problem.target, sim.problem.observation_basis, sim.d).basis
    stored = more.generation(2).sample.projected[1, -1]
    floor = energy_distance(stored[:750], stored[750:])
    assert x.shape == (500, sim.d)
    assert energy_distance(x @ E, stored) < 3 * max(floor, 1e-3)
    r = CliRunner().invoke(cli, ["simulate", "--resume", str(folder / "sim.h5"), "--generations", "3", "-q",
                                 "-o", str(tmp_path / "more.h5")])
    assert r.exit_code == 0, r.output
    assert Result.read(tmp_path / "more.h5").n_generations == 3


def test_collapse_table_columns_line_up():
    """Every row of the model-collapse table puts its separators and its column ends where the
    header does, whatever the cells' widths (a 4-mode cell once ran into the next column)."""
    from types import SimpleNamespace

    wide = SimpleNamespace(variance=np.array([3.72, 0.516]), total=4.2, n_modes=4,
                           mode_weights=np.array([0.26, 0.26, 0.24, 0.24]), distance=0.123)
    narrow = SimpleNamespace(variance=np.array([3.1, 0.5, 0.01]), total=3.6, n_modes=1,
                             mode_weights=np.array([1.0]), distance=0.2)
    lines = collapse.format_table({"theory": [wide, narrow], "simulation": [narrow]}).splitlines()
    head = lines[1]
    assert head.split()[:2] == ["gen", "|"] and "modes (weights)" in head
    bars = [i for i, ch in enumerate(head) if ch == "|"]
    for line in lines[2:]:
        assert [i for i, ch in enumerate(line) if ch == "|"] == bars, line
    row0 = lines[2]
    assert "4 (0.26, 0.26, 0.24, ...)" in row0
    # right-aligned cells end where their header ends
    for field, cell in (("dist", "0.123"), ("total", "4.2")):
        assert head.index(field) + len(field) == row0.index(cell) + len(cell)
