"""The whole right-hand side of :func:`hdae.theory.ode.rhs` in one compiled call.

:func:`~hdae.theory.ode.rhs` assembles the operators of section 4 from the kernel's sums in numpy:
about a hundred small numpy calls, 0.5 ms per evaluation, which is most of the time of a small
problem (the default example: 3 clusters, about 1000 nodes, 250 evaluations). Here the same
arithmetic (aggregates, pseudo-inverses and square roots by eigendecomposition, the per-cluster
maps, the kernel :func:`~hdae.theory.kernels.cluster_expectations` on the same fixed node slices,
the exact zeta terms, the per-bin derivatives) runs in one serial numba function on the packed
state. It equals :func:`~hdae.theory.ode.rhs` to rounding (tests/test_fastrhs.py); ``ode.integrate``
uses it when the problem is small (:func:`use_fast`), where one thread is also what stays fast
on a busy machine; large problems keep the parallel kernel.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from .. import activations
from .kernels import cluster_expectations

#: node x cluster evaluations per right-hand side below which the serial compiled path is used
FAST_WORK = 1 << 16


def use_fast(setup, n_clusters: int) -> bool:
    return len(setup.nodes.weights) * n_clusters <= FAST_WORK


@njit(cache=True)
def _mm(a, b):
    """a @ b by loops (numba's @ and np.linalg need BLAS, whose check costs 0.3 s per process)."""
    n, k = a.shape
    m = b.shape[1]
    out = np.zeros((n, m))
    for i in range(n):
        for j in range(k):
            x = a[i, j]
            for l in range(m):
                out[i, l] += x * b[j, l]
    return out


@njit(cache=True)
def _jacobi_eigh(a):
    """Eigenvalues and eigenvectors (columns) of the small symmetric matrix a: cyclic Jacobi rotations
    until the off-diagonal part is below rounding."""
    n = a.shape[0]
    A = a.copy()
    V = np.eye(n)
    for _ in range(100):
        off = 0.0
        diag = 0.0
        for i in range(n):
            diag += A[i, i] * A[i, i]
            for j in range(i + 1, n):
                off += A[i, j] * A[i, j]
        if off <= 1e-32 * diag or off == 0.0:
            break
        for p in range(n - 1):
            for q in range(p + 1, n):
                apq = A[p, q]
                if apq == 0.0:
                    continue
                theta = (A[q, q] - A[p, p]) / (2.0 * apq)
                t = (1.0 if theta >= 0 else -1.0) / (abs(theta) + np.sqrt(theta * theta + 1.0))
                c = 1.0 / np.sqrt(t * t + 1.0)
                s = t * c
                for k in range(n):  # A <- A J (columns p, q)
                    akp = A[k, p]
                    akq = A[k, q]
                    A[k, p] = c * akp - s * akq
                    A[k, q] = s * akp + c * akq
                for k in range(n):  # A <- J^T A (rows p, q)
                    apk = A[p, k]
                    aqk = A[q, k]
                    A[p, k] = c * apk - s * aqk
                    A[q, k] = s * apk + c * aqk
                for k in range(n):
                    vkp = V[k, p]
                    vkq = V[k, q]
                    V[k, p] = c * vkp - s * vkq
                    V[k, q] = s * vkp + c * vkq
    e = np.empty(n)
    for i in range(n):
        e[i] = A[i, i]
    return e, V


@njit(cache=True)
def _eig_apply(a, mode):
    """Symmetric a: mode 0 pseudo-inverse (numpy pinv, hermitian, rcond 1e-10); 1 square root (negative
    eigenvalues clipped); 2 pseudo-inverse square root (eigenvalues below 1e-12 max dropped)."""
    n = a.shape[0]
    e, v = _jacobi_eigh(0.5 * (a + a.T))
    f = np.zeros(n)
    if mode == 0:
        big = 0.0
        for i in range(n):
            big = max(big, abs(e[i]))
        for i in range(n):
            if abs(e[i]) > 1e-10 * big:
                f[i] = 1.0 / e[i]
    elif mode == 1:
        for i in range(n):
            f[i] = np.sqrt(max(e[i], 0.0))
    else:
        top = 0.0
        for i in range(n):
            top = max(top, e[i])
        tol = top * 1e-12
        for i in range(n):
            if e[i] > tol:
                f[i] = 1.0 / np.sqrt(e[i])
    out = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            acc = 0.0
            for k in range(n):
                acc += v[i, k] * f[k] * v[j, k]
            out[i, j] = acc
    return out


@njit(cache=True)
def rhs_packed(y, nL, r, K, R, s_bins, T_bins, H_bins, noise_mass, pi, alphas, betas, omegas, lr, weight_decay,
               second_moment, inv_d, points, weights, act, n_blocks):
    """d/d theta of the packed state y = (q (L, r, r), m (L, r, K), g (L, r, R), b), as ``State.pack``
    orders it. inv_d: 1/d at finite d, 0 in the limit. Returns the packed derivative."""
    nq, nm, ng = nL * r * r, nL * r * K, nL * r * R
    q = y[:nq].reshape((nL, r, r))
    m = y[nq:nq + nm].reshape((nL, r, K))
    g = y[nq + nm:nq + nm + ng].reshape((nL, r, R))
    b = y[nq + nm + ng]
    T = alphas.shape[0]
    N = points.shape[0]
    kdim = points.shape[1]
    Q = np.zeros((r, r))
    M = np.zeros((r, K))
    Omega = np.zeros((K, r, r))
    for ll in range(nL):
        Q += q[ll]
        M += m[ll]
        for c in range(K):
            Omega[c] += s_bins[ll, c] * q[ll]
    Qp = _eig_apply(Q, 0)
    sqQ = _eig_apply(Q, 1) if T > 1 else np.zeros((r, r))
    U = np.zeros((r, K))
    K0 = 0.5 * weight_decay * np.eye(r)
    K1 = np.zeros((K, r, r))
    D0 = np.zeros((r, r))
    D1 = np.zeros((K, r, r))
    sigma_h = 0.0
    size = (N + n_blocks - 1) // n_blocks
    Qc = np.ascontiguousarray(Q)
    for c in range(K):
        if pi[c] == 0.0:
            continue
        mean = np.zeros(2 * r)
        Mc = np.empty(r)
        for a in range(r):
            mean[r + a] = M[a, c]
            Mc[a] = M[a, c]
        Lc = np.zeros((2 * r, kdim))
        C = np.zeros((2 * r, 2 * r))
        if T == 1:
            inv_sqrt = _eig_apply(alphas[0] ** 2 * Q + betas[0] ** 2 * Omega[c], 2)
            top = alphas[0] * _mm(Q, inv_sqrt)
            bot = betas[0] * _mm(Omega[c], inv_sqrt)
            Lc[:r] = top
            Lc[r:] = bot
            C[:r, :r] = Q
            C[r:, r:] = Omega[c]
            C -= _mm(Lc, Lc.T)
        else:
            Lc[:r, :r] = sqQ
            Lc[r:, r:] = _eig_apply(Omega[c], 1)
        # the kernel on the fixed node slices of ode._node_blocks (as the parallel kernel does)
        Uc = np.zeros(r)
        B0 = np.zeros((r, r))
        B1 = np.zeros((r, r))
        Sc = np.zeros((r, r))
        V0 = np.zeros((r, r))
        V1 = np.zeros((r, r))
        Ed = np.zeros((T, r))
        Edd = np.zeros((T, T, r, r))
        Esh = np.zeros(1)
        for i in range(n_blocks):
            lo = i * size
            hi = min(N, lo + size)
            if lo < hi:
                cluster_expectations(points[lo:hi], weights[lo:hi], Lc, mean, Mc, alphas, betas, omegas, b, Qc, act,
                                     T == 1, Uc, B0, B1, Sc, V0, V1, Ed, Edd, Esh)
        if T == 1:  # exact zeta terms (kernels module docstring)
            Rt = np.zeros((T, r, 2 * r))
            for t in range(T):
                for a in range(r):
                    Rt[t, a, a] = b * alphas[t]
                    Rt[t, a, r + a] = -(1.0 - b * betas[t])
            for t in range(T):
                C0R = _mm(C[:r], Rt[t].T)
                C1R = _mm(C[r:], Rt[t].T)
                for a in range(r):
                    for e in range(r):
                        B0[a, e] += omegas[t] * alphas[t] * C0R[a, e] * Ed[t, e]
                        B1[a, e] += omegas[t] * betas[t] * C1R[a, e] * Ed[t, e]
                for u in range(T):
                    rcr = _mm(_mm(Rt[t], C), Rt[u].T)
                    f0 = omegas[t] * omegas[u] * alphas[t] * alphas[u]
                    f1 = omegas[t] * omegas[u] * betas[t] * betas[u]
                    for a in range(r):
                        for e in range(r):
                            V0[a, e] += f0 * rcr[a, e] * Edd[t, u, a, e]
                            V1[a, e] += f1 * rcr[a, e] * Edd[t, u, a, e]
        p = pi[c]
        for a in range(r):
            U[a, c] = p * Uc[a]
        K0 += p * (_mm(B0.T, Qp) + Sc)
        K1[c] = p * _mm(B1.T, _eig_apply(Omega[c], 0))
        D0 += p * V0
        D1[c] = p * V1
        sigma_h += p * Esh[0]
    out = np.empty_like(y)
    dq = out[:nq].reshape((nL, r, r))
    dm = out[nq:nq + nm].reshape((nL, r, K))
    dg = out[nq + nm:nq + nm + ng].reshape((nL, r, R))
    for ll in range(nL):
        Kl = K0.copy()
        Dl = D0.copy()
        for c in range(K):
            Kl += s_bins[ll, c] * K1[c]
            Dl += s_bins[ll, c] * D1[c]
        dm[ll] = -_mm(U, T_bins[ll]) - _mm(Kl, m[ll])
        dg[ll] = -_mm(U, H_bins[ll]) - _mm(Kl, g[ll])
        X = _mm(U, m[ll].T) + _mm(Kl, q[ll])
        dq[ll] = -(X + X.T) + 2.0 * lr * noise_mass[ll] * Dl
    db = 0.0
    for t in range(T):
        db += omegas[t] * (betas[t] * (1.0 - b * betas[t]) * second_moment - b * alphas[t] ** 2)
    db -= sigma_h * inv_d
    out[nq + nm + ng] = db
    return out


def packed_rhs(setup, shapes, n_blocks: int):
    """fun(y) -> packed derivative for ``setup`` and state ``shapes`` (L, r, K, R), compiled path."""
    red = setup.reduced
    L, r, K, R = shapes
    args = (L, r, K, R, np.ascontiguousarray(red.s, dtype=float), np.ascontiguousarray(red.T, dtype=float),
            np.ascontiguousarray(red.H, dtype=float).reshape(L, K, R), np.ascontiguousarray(red.noise_mass, dtype=float),
            np.ascontiguousarray(red.weights, dtype=float), np.ascontiguousarray(setup.alphas, dtype=float),
            np.ascontiguousarray(setup.betas, dtype=float), np.ascontiguousarray(setup.omegas, dtype=float),
            float(setup.lr), float(setup.weight_decay), float(red.second_moment),
            0.0 if red.d is None else 1.0 / red.d, np.ascontiguousarray(setup.nodes.points, dtype=float),
            np.ascontiguousarray(setup.nodes.weights, dtype=float), activations.code(setup.activation), int(n_blocks))

    def fun(y):
        return rhs_packed(np.ascontiguousarray(y, dtype=float), *args)

    return fun
