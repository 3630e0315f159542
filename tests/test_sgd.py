"""Online SGD: the closed-form gradient against autograd, the exact update rule, reproducibility, divergence."""
from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

import hdae
from hdae import activations, targets
from hdae.simulation import simulate
from hdae.simulation.run import checkpoint_steps
from hdae.simulation.sgd import MixtureSampler, OnlineSGD, summary_statistics

from conftest import SMALL



CPU = torch.device("cpu")
F64 = torch.float64


def _sgd(problem, activation=None, times=None, time_weights=None, lr=None, weight_decay=None, dtype=F64,
         backend="auto"):
    tr = problem.train
    rt = targets.realise(problem.target, problem.observation_basis)
    times = tr.times if times is None else np.asarray(times, dtype=float)
    tw = tr.time_weights if time_weights is None else np.asarray(time_weights, dtype=float)
    return OnlineSGD(MixtureSampler(rt, CPU, dtype), tr.interpolant.alpha(times), tr.interpolant.beta(times), tw,
                     tr.lr if lr is None else lr, tr.weight_decay if weight_decay is None else weight_decay,
                     activation or problem.model.activation, CPU, dtype, backend), rt


def _random_state(n, d, r, seed):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn((n, d, r), generator=g, dtype=F64) * 1.3
    b = torch.linspace(-0.4, 0.9, n, dtype=F64)  # non-zero, different per replica
    x0 = torch.randn((n, d), generator=g, dtype=F64)
    x1 = torch.randn((n, d), generator=g, dtype=F64) * 0.8 + 0.5
    return w, b, x0, x1


def _numpy_loss(w, b, x0, x1, alphas, betas, omegas, activation):
    """l = sum_t omega_t |b x_t + w sigma(w^T x_t/sqrt d)/sqrt d - x1|^2, straight from section 1."""
    sigma, _ = activations.numpy_pair(activation)
    d = w.shape[0]
    total = 0.0
    for a, be, om in zip(alphas, betas, omegas):
        xt = a * x0 + be * x1
        f = b * xt + w @ sigma(w.T @ xt / math.sqrt(d)) / math.sqrt(d)
        total += om * np.sum((f - x1) ** 2)
    return total


TIME_GRIDS = [([0.5], [1.0]), ([0.3, 0.8], [0.3, 0.7])]


@pytest.mark.parametrize("activation", ["tanh", "relu", "erf", "sigmoid", "linear"])
@pytest.mark.parametrize("grid", TIME_GRIDS, ids=["one-time", "two-times"])
def test_gradient_matches_autograd(small_problem, activation, grid):
    times, weights = grid
    sgd, _ = _sgd(small_problem, activation, times, weights)
    n, d, r = 3, sgd.d, 3
    w, b, x0, x1 = _random_state(n, d, r, seed=len(times) * 10 + activations.code(activation))
    grad, dldb = sgd.gradient(w, b, x0, x1)
    wa, ba = w.clone().requires_grad_(True), b.clone().requires_grad_(True)
    loss = sgd.loss(wa, ba, x0, x1)
    assert loss.shape == (n,)
    gw, gb = torch.autograd.grad(loss.sum(), (wa, ba))
    assert grad.shape == (n, d, r) and dldb.shape == (n,)
    for i in range(n):  # replica by replica, relative to the gradient's size
        assert torch.linalg.norm(grad[i] - gw[i]) <= 1e-10 * torch.linalg.norm(gw[i])
        assert abs(float(dldb[i] - gb[i])) <= 1e-10 * abs(float(gb[i]))
    # and the loss itself is the definition of section 1 (independent numpy evaluation)
    alphas, betas = 1.0 - np.array(times), np.array(times)
    for i in range(n):
        ref = _numpy_loss(w[i].numpy(), float(b[i]), x0[i].numpy(), x1[i].numpy(), alphas, betas, weights, activation)
        assert float(loss[i].detach()) == pytest.approx(ref, rel=1e-12)


def test_gradient_trigonometric_interpolant_and_replica_independence(small_problem):
    p = small_problem.with_overrides("train.schedule=trigonometric", "train.times=[0.2, 0.6, 0.9]",
                                     "train.time_weights=[0.5, 0.2, 0.3]")
    sgd, _ = _sgd(p, "tanh")
    w, b, x0, x1 = _random_state(4, sgd.d, 2, seed=3)
    grad, dldb = sgd.gradient(w, b, x0, x1)
    wa, ba = w.clone().requires_grad_(True), b.clone().requires_grad_(True)
    gw, gb = torch.autograd.grad(sgd.loss(wa, ba, x0, x1).sum(), (wa, ba))
    assert torch.linalg.norm(grad - gw) <= 1e-10 * torch.linalg.norm(gw)
    torch.testing.assert_close(dldb, gb, rtol=1e-10, atol=0)
    # replica 2 alone gives the same gradient as inside the batch
    g2, db2 = sgd.gradient(w[2:3], b[2:3], x0[2:3], x1[2:3])
    torch.testing.assert_close(g2[0], grad[2], rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(db2[0], dldb[2], rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_step_applies_the_update_rule(small_problem, activation):
    sgd, _ = _sgd(small_problem, activation, [0.3, 0.7], [0.6, 0.4], lr=0.37, weight_decay=0.8)
    d = sgd.d
    w, b, x0, x1 = _random_state(2, d, 2, seed=5)
    wa, ba = w.clone().requires_grad_(True), b.clone().requires_grad_(True)
    gw, gb = torch.autograd.grad(sgd.loss(wa, ba, x0, x1).sum(), (wa, ba))
    w_new, b_new = w.clone(), b.clone()
    sgd.step(w_new, b_new, x0, x1)
    w_ref = w - 0.37 * (gw + (0.8 / d) * w)
    b_ref = b - (0.37 / d**2) * gb
    torch.testing.assert_close(w_new, w_ref, rtol=1e-11, atol=1e-12)
    torch.testing.assert_close(b_new, b_ref, rtol=1e-12, atol=1e-14)
    assert not torch.equal(b_new, b)


@pytest.mark.parametrize("backend", ["kernel", "torch"])
def test_run_is_reproducible_and_equals_manual_steps(small_problem, backend):
    sgd, _ = _sgd(small_problem, backend=backend)
    w0 = torch.as_tensor(targets.initial_weights(small_problem.target, small_problem.init, 2, sgd.d, 5, 2))
    b0 = torch.tensor([0.0, 0.1], dtype=F64)
    outs = []
    for _ in range(2):
        w, b = w0.clone(), b0.clone()
        assert sgd.run(w, b, 37, torch.Generator().manual_seed(42), chunk=16) is None
        outs.append((w, b))
    assert torch.equal(outs[0][0], outs[1][0]) and torch.equal(outs[0][1], outs[1][1])
    assert not torch.equal(outs[0][0], w0)
    # another seed: another trajectory
    w, b = w0.clone(), b0.clone()
    sgd.run(w, b, 37, torch.Generator().manual_seed(43), chunk=16)
    assert not torch.allclose(w, outs[0][0])
    # one chunk = draw x0 (m, n, d), then x1 (m, n), then m steps
    g = torch.Generator().manual_seed(7)
    w, b = w0.clone(), b0.clone()
    sgd.run(w, b, 25, g, chunk=64)
    g = torch.Generator().manual_seed(7)
    x0 = torch.randn((25, 2, sgd.d), generator=g, dtype=F64)
    x1 = sgd.target.draw((25, 2), g)
    wm, bm = w0.clone(), b0.clone()
    for j in range(25):
        sgd.step(wm, bm, x0[j], x1[j])
    tol = 0 if backend == "torch" else 1e-12  # the kernel sums in another order
    torch.testing.assert_close(w, wm, rtol=tol, atol=tol)
    torch.testing.assert_close(b, bm, rtol=tol, atol=tol)


def test_simulate_is_reproducible(small_problem):
    a = simulate(small_problem, sample=False, replicas=2, device="cpu")
    b = simulate(small_problem, sample=False, replicas=2, device="cpu")
    for k in ("Q", "Omega", "M", "G", "b"):
        np.testing.assert_array_equal(getattr(a.train, k), getattr(b.train, k))
    c = simulate(small_problem, sample=False, replicas=2, device="cpu", seed=6)
    assert not np.allclose(c.train.Q[:, -1], a.train.Q[:, -1])


def test_summary_statistics_definition(small_problem):
    rt = targets.realise(small_problem.target, small_problem.observation_basis)
    w, b, _, _ = _random_state(2, rt.d, 2, seed=9)
    st = summary_statistics(w, b, torch.as_tensor(rt.eigenvalues), torch.as_tensor(rt.centroids),
                            torch.as_tensor(rt.basis))
    d = rt.d
    for i in range(2):
        wi = w[i].numpy()
        np.testing.assert_allclose(st["Q"][i].numpy(), wi.T @ wi / d, rtol=1e-13)
        for c in range(3):
            np.testing.assert_allclose(st["Omega"][i, c].numpy(), wi.T @ np.diag(rt.eigenvalues[c]) @ wi / d,
                                       rtol=1e-13)
        np.testing.assert_allclose(st["M"][i].numpy(), wi.T @ rt.centroids.T / math.sqrt(d), rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(st["G"][i].numpy(), wi.T @ rt.basis / math.sqrt(d), rtol=1e-12, atol=1e-14)
    assert torch.equal(st["b"], b)


def test_theta_is_two_eta_mu_over_d(small_problem):
    res = simulate(small_problem, sample=False, device="cpu")
    steps = checkpoint_steps(small_problem.train.checkpoints, 200, 0.2)
    np.testing.assert_allclose(res.train.theta, 2 * 0.2 * steps / 200, rtol=1e-15)
    assert res.attrs["n_steps"] == steps[-1] == 250  # tau = 0.5 = 2 * 0.2 * 250 / 200


# ----------------------------------------------------------------------------- divergence
@pytest.mark.parametrize("backend", ["kernel", "torch"])
def test_run_reports_the_first_non_finite_step(small_problem, backend):
    sgd, _ = _sgd(small_problem, "linear", lr=5.0, weight_decay=0.0, backend=backend)
    w0 = torch.as_tensor(targets.initial_weights(small_problem.target, small_problem.init, 2, sgd.d, 5, 2))
    b0 = torch.zeros(2, dtype=F64)
    w, b = w0.clone(), b0.clone()
    failed = sgd.run(w, b, 200, torch.Generator().manual_seed(1), chunk=8)
    assert failed is not None
    # replay one step at a time with the same draws
    g = torch.Generator().manual_seed(1)
    wm, bm = w0.clone(), b0.clone()
    first = None
    for start in range(0, 200, 8):
        x0 = torch.randn((8, 2, sgd.d), generator=g, dtype=F64)
        x1 = sgd.target.draw((8, 2), g)
        for j in range(8):
            prev = wm.clone(), bm.clone()
            sgd.step(wm, bm, x0[j], x1[j])
            if not (torch.isfinite(wm).all() and torch.isfinite(bm).all()):
                first = start + j
                break
        if first is not None:
            break
    assert failed == first
    # the weights are left at the state just before that step: finite, equal to the replay
    assert torch.isfinite(w).all()
    tol = 0 if backend == "torch" else 1e-9
    torch.testing.assert_close(w, prev[0], rtol=tol, atol=tol * float(prev[0].abs().max()))
    torch.testing.assert_close(b, prev[1], rtol=tol, atol=tol)


def _diverging_problem(activation="relu", lr=5.0, tau=20.0):
    # theory.divergence = 1e300: only non-finite weights count (exploding statistics stop a run earlier,
    # see tests/test_reliability.py), so that the exact first failing step is tested
    return hdae.load_problem(SMALL, d=100, overrides=[f"train.lr={lr}", f"train.tau={tau}", "train.checkpoints=11",
                                                      "sample.thetas=[]", f'model.activation="{activation}"',
                                                      "theory.divergence=1e300"])


def _replay_first_failure(problem, sim):
    """Replay simulate's SGD step by step (same draws), returning (first failing 1-based step,
    statistics at each completed checkpoint)."""
    d, tr = problem.d, problem.train
    sgd, _ = _sgd(problem)  # built as simulate builds it
    w = torch.as_tensor(sim.init_w).clone()
    b = torch.as_tensor(sim.init_b).clone()
    g = sgd.default_generator(problem.seed)  # as simulate draws on CPU
    chunk = problem.simulation.chunk
    done, stats = 0, []
    for target in checkpoint_steps(tr.checkpoints, d, tr.lr):
        remaining = int(target) - done
        keys, local = sgd.data_keys(g), 0  # one pair of stream keys per run_replicas call
        while remaining > 0:
            m = min(chunk, remaining)
            x0, x1 = (torch.as_tensor(x) for x in sgd.training_data(keys, local, m, 1))
            local += m
            for j in range(m):
                sgd.step(w, b, x0[j], x1[j])
                # diverged: b, or w^T w/d (hence w and every statistic), no longer finite
                if not (torch.isfinite(b).all() and torch.isfinite((w * w).sum(1)).all()):
                    return done + j + 1, stats
            done += m
            remaining -= m
        stats.append(w.clone())
    return None, stats


@pytest.mark.parametrize("activation,lr", [("relu", 5.0), ("linear", 5.0)])
def test_simulate_divergence(activation, lr):
    p = _diverging_problem(activation, lr)
    res = simulate(p, sample=False, device="cpu")
    assert res.status == "diverged" and not res.ok
    m = re.search(r"step (\d+) \(theta = ([0-9.eE+-]+)\)", res.message)
    assert m, res.message
    step, theta = int(m.group(1)), float(m.group(2))
    assert theta == pytest.approx(2 * lr * step / p.d, rel=1e-5)
    first, stats = _replay_first_failure(p, res)
    assert step == first
    # the checkpoints before the failing step are saved, and they are the right ones
    all_steps = checkpoint_steps(p.train.checkpoints, p.d, p.train.lr)
    saved = all_steps[all_steps < step]
    assert len(res.train.theta) == len(saved) >= 1
    np.testing.assert_allclose(res.train.theta, 2 * lr * saved / p.d, rtol=1e-15)
    assert res.train.Q.shape[1] == len(saved) and res.train.b.shape[1] == len(saved)
    rt = targets.realise(p.target, p.observation_basis)
    for i, w in enumerate(stats):
        wn = w[0].numpy()
        np.testing.assert_allclose(res.train.Q[0, i], wn.T @ wn / p.d, rtol=1e-9)  # kernel vs torch replay
        np.testing.assert_allclose(res.train.M[0, i], wn.T @ rt.centroids.T / math.sqrt(p.d), rtol=1e-9,
                                   atol=1e-10 * np.abs(wn).max())
    assert "\n" not in res.message and f"eta = {lr:g}" in res.message


def test_simulate_divergence_keeps_checkpoints_before(tmp_path):
    p = _diverging_problem("relu", 4.0)  # diverges at step 34, after the checkpoints at steps 0 and 25
    res = simulate(p, sample=False, device="cpu")
    assert res.status == "diverged"
    assert len(res.train.theta) == 2 and res.train.theta[1] == pytest.approx(2.0)
    path = res.write(tmp_path / "div.h5")
    back = hdae.read(path)
    assert back.status == "diverged" and back.message == res.message
    np.testing.assert_array_equal(back.train.Q, res.train.Q)


def test_saved_checkpoints_are_finite_when_diverging():
    p = _diverging_problem("relu", 20.0, 50.0)
    res = simulate(p, sample=False, device="cpu")
    assert res.status == "diverged"
    for k in ("Q", "Omega", "M", "G", "b"):
        assert np.all(np.isfinite(getattr(res.train, k))), k
