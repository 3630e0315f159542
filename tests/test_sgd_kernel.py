"""The numba SGD kernel (CPU path of OnlineSGD.run) against the torch step: same draws, same
trajectory to float rounding; per-replica divergence status with the exact step."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import hdae
from hdae import targets
from hdae.simulation.sgd import MixtureSampler, OnlineSGD, summary_statistics

from conftest import SMALL

F64 = torch.float64


def _pair(problem, activation, times, weights, lr=None, weight_decay=None, dtype=F64):
    tr = problem.train
    rt = targets.realise(problem.target, problem.observation_basis)
    times, weights = np.asarray(times, float), np.asarray(weights, float)
    make = lambda backend: OnlineSGD(MixtureSampler(rt, "cpu", dtype), tr.interpolant.alpha(times),  # noqa: E731
                                     tr.interpolant.beta(times), weights, tr.lr if lr is None else lr,
                                     tr.weight_decay if weight_decay is None else weight_decay, activation, "cpu",
                                     dtype, backend)
    return make("kernel"), make("torch"), rt


def _w0(problem, n, r, d, dtype=F64):
    return torch.as_tensor(targets.initial_weights(problem.target, problem.init, r, d, 5, n), dtype=dtype).clone()


@pytest.mark.parametrize("activation", ["tanh", "relu", "erf", "sigmoid", "linear"])
@pytest.mark.parametrize("grid", [([0.5], [1.0]), ([0.3, 0.8], [0.3, 0.7])], ids=["one-time", "two-times"])
def test_kernel_trajectory_equals_torch_step(small_problem, activation, grid):
    """Same seed -> same statistics (Q, Omega, M, G, b) after 300 steps, 3 replicas, r = 3."""
    kern, ref, rt = _pair(small_problem, activation, *grid, weight_decay=0.3)
    assert kern.backend == "kernel" and ref.backend == "torch"
    d = rt.d
    w0 = _w0(small_problem, 3, 3, d)
    b0 = torch.tensor([0.0, 0.2, -0.1], dtype=F64)
    stats = []
    for sgd in (kern, ref):
        w, b = w0.clone(), b0.clone()
        assert sgd.run(w, b, 300, torch.Generator().manual_seed(11), chunk=64) is None
        stats.append(summary_statistics(w, b, *(torch.as_tensor(a) for a in (rt.eigenvalues, rt.centroids,
                                                                              rt.basis))))
    for k in ("Q", "Omega", "M", "G", "b"):
        a, e = stats[0][k], stats[1][k]
        assert torch.linalg.norm(a - e) <= 1e-10 * torch.linalg.norm(e), k
    assert not torch.allclose(stats[0]["Q"], w0.transpose(1, 2) @ w0 / d)  # it moved


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_numpy_generator_same_trajectory_on_both_backends(small_problem, activation):
    """The CPU default: numpy draws (PCG64); the torch step fed the same draws follows the kernel."""
    kern, ref, rt = _pair(small_problem, activation, [0.2, 0.7], [0.5, 0.5])
    w0 = _w0(small_problem, 2, 2, rt.d)
    out = []
    for sgd in (kern, ref):
        w, b = w0.clone(), torch.zeros(2, dtype=F64)
        assert sgd.run(w, b, 200, sgd.default_generator(8) if sgd is kern else np.random.default_rng(8), 50) is None
        out.append((w, b))
    assert torch.linalg.norm(out[0][0] - out[1][0]) <= 1e-10 * torch.linalg.norm(out[1][0])
    torch.testing.assert_close(out[0][1], out[1][1], rtol=1e-10, atol=1e-13)
    assert isinstance(ref.default_generator(8), torch.Generator)


def test_kernel_float32(small_problem):
    """float32 weights: the kernel follows the torch step to float32 rounding."""
    kern, ref, rt = _pair(small_problem, "tanh", [0.5], [1.0], dtype=torch.float32)
    w0 = _w0(small_problem, 2, 2, rt.d, torch.float32)
    out = []
    for sgd in (kern, ref):
        w, b = w0.clone(), torch.zeros(2, dtype=torch.float32)
        sgd.run(w, b, 100, torch.Generator().manual_seed(3), chunk=32)
        out.append(w)
    assert torch.linalg.norm(out[0] - out[1]) <= 1e-4 * torch.linalg.norm(out[1])


def _diverging(backend_pair_index, lr=1.0):
    p = hdae.load_problem(SMALL)
    sgds = _pair(p, "relu", [0.5], [1.0], lr=lr, weight_decay=0.0)
    w0 = _w0(p, 3, 2, sgds[2].d)
    w0[1] *= 8.0  # replica 1 starts far out and diverges; 0 and 2 stay finite at lr = 1
    return sgds[backend_pair_index], w0


def _first_failures(sgd, w0, n_steps, seed, chunk):
    """Per replica, the first step after which b or |w_col|^2 is non-finite, from torch steps one at a time."""
    g = torch.Generator().manual_seed(seed)
    w, b = w0.clone(), torch.zeros(w0.shape[0], dtype=F64)
    first = np.full(w0.shape[0], -1)
    done = 0
    while done < n_steps:
        m = min(chunk, n_steps - done)
        x0, x1 = sgd.draw(m, w0.shape[0], g)
        for j in range(m):
            sgd.step(w, b, x0[j], x1[j])
            bad = ~(torch.isfinite(b) & torch.isfinite((w * w).sum(1)).all(1))
            for i in np.flatnonzero(bad.numpy()):
                if first[i] < 0:
                    first[i] = done + j
        done += m
    return first


@pytest.mark.parametrize("backend", [0, 1], ids=["kernel", "torch"])
def test_per_replica_divergence(backend):
    sgd, w0 = _diverging(backend)
    first = _first_failures(sgd, w0, 200, 1, 64)
    assert first[1] >= 0 and first[0] == first[2] == -1
    w, b = w0.clone(), torch.zeros(3, dtype=F64)
    failed = sgd.run_replicas(w, b, 200, torch.Generator().manual_seed(1), chunk=64)
    np.testing.assert_array_equal(failed, first)
    assert torch.isfinite(w).all() and torch.isfinite(b).all()  # the diverged replica kept its last finite state
    # the finite replicas are exactly where they would be had replica 1 not diverged
    w_ok = w0.clone()
    w_ok[1] /= 8.0
    w2, b2 = w_ok.clone(), torch.zeros(3, dtype=F64)
    assert (sgd.run_replicas(w2, b2, 200, torch.Generator().manual_seed(1), chunk=64) == -1).all()
    torch.testing.assert_close(w[[0, 2]], w2[[0, 2]], rtol=0, atol=0)
    torch.testing.assert_close(b[[0, 2]], b2[[0, 2]], rtol=0, atol=0)
    # and run() (all replicas stop together) reports the same first step, all left just before it
    w3, b3 = w0.clone(), torch.zeros(3, dtype=F64)
    assert sgd.run(w3, b3, 200, torch.Generator().manual_seed(1), chunk=64) == first[1]
    torch.testing.assert_close(w3[1], w[1], rtol=0, atol=0)
    torch.testing.assert_close(b3[1], b[1], rtol=0, atol=0)


def test_kernel_and_torch_agree_on_divergence():
    (kern, w0), (ref, _) = _diverging(0, lr=2.0), _diverging(1, lr=2.0)
    out = []
    for sgd in (kern, ref):
        w, b = w0.clone(), torch.zeros(3, dtype=F64)
        out.append((sgd.run_replicas(w, b, 300, torch.Generator().manual_seed(4), chunk=50), w, b))
    np.testing.assert_array_equal(out[0][0], out[1][0])
    assert (out[0][0] >= 0).sum() >= 2  # several replicas diverge, each at its own step
    torch.testing.assert_close(out[0][1], out[1][1], rtol=1e-9, atol=1e-9 * float(out[1][1].abs().max()))


def test_skip_leaves_replicas_untouched(small_problem):
    kern, _, rt = _pair(small_problem, "tanh", [0.5], [1.0])
    w0 = _w0(small_problem, 3, 2, rt.d)
    w, b = w0.clone(), torch.zeros(3, dtype=F64)
    kern.run_replicas(w, b, 50, torch.Generator().manual_seed(2), chunk=16, skip=[False, True, False])
    assert torch.equal(w[1], w0[1]) and float(b[1]) == 0.0
    assert not torch.equal(w[0], w0[0])


def test_backend_validation(small_problem):
    kern = _pair(small_problem, "tanh", [0.5], [1.0])[0]
    with pytest.raises(ValueError, match="backend"):
        OnlineSGD(kern.target, [1.0], [0.0], [1.0], 0.1, 0.0, "tanh", "cpu", F64, "numpy")


def _numpy_steps(w, b, x0, x1, alphas, betas, omegas, lr, weight_decay, sig, dsig, n_steps):
    """The update of the kernel's module docstring in plain numpy, one replica: (w, b, failed)."""
    d = w.shape[0]
    for j in range(n_steps):
        y0, y1 = x0[j], x1[j]
        lam0, lam1, Q = w.T @ y0 / np.sqrt(d), w.T @ y1 / np.sqrt(d), w.T @ w / d
        v0, v1, S, dldb = 0.0, 0.0, 0.0, 0.0
        for a, be, om in zip(alphas, betas, omegas):
            h = a * lam0 + be * lam1
            s = sig(h)
            c = (b * h - lam1 + Q @ s) * dsig(h)
            v0 = v0 + om * a * (b * s + c)
            v1 = v1 + om * ((1.0 - b * be) * s - be * c)
            S = S + om * np.outer(s, s)
            xt = a * y0 + be * y1
            dldb += 2.0 * om * (b * xt @ xt + s @ h - y1 @ xt)
        w_new = (1.0 - lr * weight_decay / d) * w - lr * (2.0 / np.sqrt(d) * (np.outer(y0, v0) - np.outer(y1, v1))
                                                         + 2.0 / d * w @ S)
        b_new = b - lr / d**2 * dldb
        if not (np.isfinite(b_new) and np.isfinite(np.sum(w_new * w_new, axis=0)).all()):
            return w, b, j
        w, b = w_new, b_new
    return w, b, -1


@pytest.mark.parametrize("r", [1, 2, 3, 4, 5, 6, 7])
@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_kernel_blocks_equal_numpy_update(r, activation):
    """Every kind of sweep (generated: one loop for r = 1, 2, two for r = 3, 4; blocked for r >= 5,
    whose column passes differ for r = 5, 6, 7) and a d of two full blocks and a partial one: the
    kernel, whose off-diagonal w^T w follows the recursion, follows the plain update, and stops at
    its failing step."""
    from hdae import activations
    from hdae.simulation import kernels

    rng = np.random.default_rng(r)
    d, m, n_steps = 600, 30, 25
    alphas, betas, omegas = np.array([0.3, 0.8]), np.array([0.6, 0.5]), np.array([0.4, 0.6])
    sig, dsig = activations.numpy_pair(activation)
    w0 = rng.standard_normal((2, d, r))
    x0, x1 = rng.standard_normal((m, 2, d)), rng.standard_normal((m, 2, d))
    for lr, scale in ((0.3, 1.0), (50.0, 30.0)):  # stable; diverging within the chunk
        w, b, failed = w0.copy(), np.array([0.1, -0.2]), np.zeros(2, np.int64)
        kernels.sgd_steps(w, b, scale * x0, scale * x1, alphas, betas, omegas, lr, 0.1,
                          activations.code(activation), n_steps, np.zeros(2, bool), failed, np.full((2, r, r), np.nan),
                          np.empty((2, 2 * r, d)))
        for i in range(2):
            with np.errstate(over="ignore", invalid="ignore"):
                we, be, fe = _numpy_steps(w0[i], [0.1, -0.2][i], scale * x0[:, i], scale * x1[:, i], alphas, betas,
                                          omegas, lr, 0.1, sig, dsig, n_steps)
            assert failed[i] == fe
            assert np.linalg.norm(w[i] - we) <= 1e-11 * np.linalg.norm(we)
            assert abs(b[i] - be) <= 1e-11 * max(1.0, abs(be))
        if scale > 1.0 and activation == "relu":  # (tanh stays bounded here)
            assert (failed >= 0).all()


@pytest.mark.parametrize("r", [1, 2, 3, 4, 5, 6])
@pytest.mark.parametrize("d", [1, 7, 601])
def test_sweep_equals_numpy(r, d):
    """kernels._sweep, one step's pass over d (generated loops for r <= 4, blocked beyond), against
    numpy: both directions of the two-half buffer (the old half untouched, the new half's previous
    contents irrelevant), z distinct from y and z the same arrays as y (the last step), d below
    and off the vector width and the block size, float64 and float32 data; to 1e-12 of the sums
    of absolute terms (the data norms of float32 data to float32 rounding, as before). Of Qn only
    the diagonal, the column norms, is the sweep's."""
    from hdae.simulation import kernels

    rng = np.random.default_rng(10 * r + d)
    A = np.eye(r) + 0.3 * rng.standard_normal((r, r))
    v0, v1 = rng.standard_normal(r), rng.standard_normal(r)
    cur = rng.standard_normal((r, d))
    data = rng.standard_normal((4, d))

    def close(actual, expected, scale, rtol=1e-12):
        err, scale = np.abs(np.asarray(actual) - np.asarray(expected)), np.asarray(scale)
        assert np.all(err <= rtol * scale), np.max(err / scale)

    for dtype in (np.float64, np.float32):
        y0, y1, z0, z1 = data.astype(dtype)
        for src in (0, 1):
            for t0, t1 in ((z0, z1), (y0, y1)):
                ws = rng.standard_normal((2 * r, d))
                ws[src * r:src * r + r] = cur
                old_half = ws[src * r:src * r + r].copy()
                lam0n, lam1n, Qn, nnn = (np.full(shape, np.nan) for shape in (r, r, (r, r), 3))
                Qn[~np.eye(r, dtype=bool)] = 7.0  # the off-diagonal is the caller's: left as it was
                kernels._sweep(ws, src, A, v0, v1, y0, y1, t0, t1, lam0n, lam1n, Qn, nnn)
                u0, u1, s0, s1 = (np.asarray(x, np.float64) for x in (y0, y1, t0, t1))
                nxt = A.T @ cur + np.outer(v0, u0) + np.outer(v1, u1)
                np.testing.assert_array_equal(ws[src * r:src * r + r], old_half)
                close(ws[(1 - src) * r:(2 - src) * r], nxt,
                      np.abs(A.T) @ np.abs(cur) + np.outer(np.abs(v0), np.abs(u0)) + np.outer(np.abs(v1), np.abs(u1)))
                close(lam0n, nxt @ s0, np.abs(nxt) @ np.abs(s0))
                close(lam1n, nxt @ s1, np.abs(nxt) @ np.abs(s1))
                close(np.diag(Qn), np.sum(nxt**2, axis=1), np.sum(nxt**2, axis=1))
                assert np.all(Qn[~np.eye(r, dtype=bool)] == 7.0)
                close(nnn, [s0 @ s0, s0 @ s1, s1 @ s1], [s0 @ s0, np.abs(s0) @ np.abs(s1), s1 @ s1],
                      1e-12 if dtype == np.float64 else 1e-6)  # products of float32 data are float32


def test_sweep_source_compiles_for_any_width():
    """The template of the generated sweeps is valid for widths beyond those compiled in."""
    from hdae.simulation import kernels

    for r in (1, 3, 6):
        ns = {}
        exec(kernels._sweep_source(r), ns)
        assert callable(ns[f"_sweep_r{r}"])


@pytest.mark.parametrize("r", [2, 3, 5])
def test_gram_recursion_carried_between_calls(r):
    """The off-diagonal of w^T w follows the recursion (no pass over d): after 3000 steps the carried
    gram still equals the directly summed w^T w to 1e-11 of its scale, and splitting the steps into
    calls that carry gram gives bitwise the same weights as one call."""
    from hdae import activations
    from hdae.simulation import kernels

    rng = np.random.default_rng(r)
    d, m = 300, 3000
    alphas, betas, omegas = np.array([0.3, 0.8]), np.array([0.6, 0.5]), np.array([0.4, 0.6])
    w0 = rng.standard_normal((1, d, r))
    x0, x1 = rng.standard_normal((m, 1, d)), 1.0 + rng.standard_normal((m, 1, d))
    args = (alphas, betas, omegas, 0.2, 0.1, activations.code("tanh"))
    skip, failed = np.zeros(1, bool), np.zeros(1, np.int64)

    w, b, gram = w0.copy(), np.array([0.1]), np.full((1, r, r), np.nan)
    kernels.sgd_steps(w, b, x0, x1, *args, m, skip, failed, gram, np.empty((1, 2 * r, d)))
    assert failed[0] == -1 and np.abs(w).max() > 0.1
    direct = w[0].T @ w[0]
    np.testing.assert_allclose(gram[0], direct, rtol=0, atol=1e-11 * np.abs(direct).max())
    assert np.array_equal(gram[0], gram[0].T)

    w2, b2, gram2 = w0.copy(), np.array([0.1]), np.full((1, r, r), np.nan)
    for lo, hi in ((0, 1), (1, 700), (700, 2001), (2001, m)):
        scratch = np.full((1, 2 * r, d), float(lo))  # its contents never matter
        kernels.sgd_steps(w2, b2, x0[lo:hi], x1[lo:hi], *args, hi - lo, skip, failed, gram2, scratch)
    np.testing.assert_array_equal(w2, w)
    np.testing.assert_array_equal(b2, b)
    np.testing.assert_array_equal(gram2, gram)
