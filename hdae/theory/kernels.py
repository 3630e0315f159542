"""Numba kernel: the Gaussian expectations of one cluster (section 4 of the derivation note).

For cluster c the local fields are lam0 ~ N(0, Q) and lam1 ~ N(M_c, Omega_c), independent.
With y = (lam0, lam1) the kernel integrates over xi ~ N(0, I_k) with

    y = mean + L xi + zeta,     zeta ~ N(0, C) independent of xi,

where the caller chooses L so that every field h_t = alpha_t lam0 + beta_t lam1 is a function
of xi alone (zeta has no component along any h_t): for one training time k = r and zeta
carries the part of y that h does not see; for several, k = 2r and C = 0. Integrands are
polynomial in zeta (degree <= 2), so their zeta-average is exact: the kernel returns the
xi-integrals below and the caller adds the zeta terms (:func:`hdae.theory.ode.operators`).

Per node, for each grid time t (omega_t its weight), with ybar = mean + L xi:

    h_t = alpha_t l0 + beta_t l1,  s_t = sigma(h_t),  s'_t = sigma'(h_t)
    c_t = (b h_t - l1 + Q s_t) * s'_t             (rho_t = b alpha_t l0 - (1 - b beta_t) l1 = b h_t - l1)
    g1_t = -(1 - b beta_t) s_t + beta_t c_t,      g0_t = alpha_t (b s_t + c_t)

and the kernel accumulates (E over xi)

    U  = sum_t omega_t E[g1_t]                        (r)      -> u of the note, summed over t
    B0 = sum_t omega_t E[l0 g0_t^T]                   (r, r)
    B1 = sum_t omega_t E[(l1 - M_c) g1_t^T]           (r, r)
    S  = sum_t omega_t E[s_t s_t^T]                   (r, r)
    V0 = E[v0 v0^T], v0 = sum_t omega_t g0_t          (r, r)   -> D_l = V0 + s_l V1 (section 5)
    V1 = E[v1 v1^T], v1 = sum_t omega_t g1_t          (r, r)
    Ed  = E[s'_t]            (T, r)       Edd = E[s'_t s'_t'^T]   (T, T, r, r)  (for the zeta terms)
    Esh = sum_t omega_t E[s_t . h_t]   (scalar, in Esh[0]): the O(1/d) term of E[dl/db]
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..activations import nb_sigma_dsigma


@njit(cache=True, fastmath=True)
def cluster_expectations(points, weights, L, mean, M, alphas, betas, omegas, b, Q, act, need_dd,
                         U, B0, B1, S, V0, V1, Ed, Edd, Esh):
    """Accumulate the expectations listed in the module docstring into the (zeroed) outputs.

    points (N, k), weights (N,), L (2r, k), mean (2r,), M (r,), alphas/betas/omegas (T,),
    b scalar, Q (r, r), act activation code, need_dd: also accumulate Edd; Esh (1,).
    """
    N, k = points.shape
    r = Q.shape[0]
    T = alphas.shape[0]
    y = np.empty(2 * r)
    h = np.empty(r)
    s = np.empty((T, r))
    sp = np.empty((T, r))
    c = np.empty(r)
    g0 = np.empty(r)
    g1 = np.empty(r)
    v0 = np.empty(r)
    v1 = np.empty(r)
    for n in range(N):
        wq = weights[n]
        for i in range(2 * r):
            acc = mean[i]
            for j in range(k):
                acc += L[i, j] * points[n, j]
            y[i] = acc
        for a in range(r):
            v0[a] = 0.0
            v1[a] = 0.0
        for t in range(T):
            al = alphas[t]
            be = betas[t]
            om = omegas[t]
            for a in range(r):
                h[a] = al * y[a] + be * y[r + a]
                s[t, a], sp[t, a] = nb_sigma_dsigma(h[a], act)
                Esh[0] += wq * om * s[t, a] * h[a]
            for a in range(r):
                qs = 0.0
                for e in range(r):
                    qs += Q[a, e] * s[t, e]
                c[a] = (b * h[a] - y[r + a] + qs) * sp[t, a]
                g0[a] = al * (b * s[t, a] + c[a])
                g1[a] = -(1.0 - b * be) * s[t, a] + be * c[a]
                v0[a] += om * g0[a]
                v1[a] += om * g1[a]
                U[a] += wq * om * g1[a]
                Ed[t, a] += wq * sp[t, a]
            wo = wq * om
            for a in range(r):
                l0 = wo * y[a]
                l1 = wo * (y[r + a] - M[a])
                sa = wo * s[t, a]
                for e in range(r):
                    B0[a, e] += l0 * g0[e]
                    B1[a, e] += l1 * g1[e]
                    S[a, e] += sa * s[t, e]
        for a in range(r):
            x0 = wq * v0[a]
            x1 = wq * v1[a]
            for e in range(r):
                V0[a, e] += x0 * v0[e]
                V1[a, e] += x1 * v1[e]
        if need_dd:
            for t in range(T):
                for u in range(T):
                    for a in range(r):
                        x = wq * sp[t, a]
                        for e in range(r):
                            Edd[t, u, a, e] += x * sp[u, e]


@njit(cache=True, parallel=True)
def cluster_expectations_blocked(points, weights, L, mean, M, alphas, betas, omegas, b, Q, act, need_dd, n_blocks):
    """:func:`cluster_expectations` over ``n_blocks`` slices of the nodes in parallel (numba threads).

    Returns the per-block partial sums U (nb, r), B0, B1, S, V0, V1 (nb, r, r), Ed (nb, T, r),
    Edd (nb, T, T, r, r), Esh (nb, 1); the caller sums them over the first axis."""
    N = points.shape[0]
    r = Q.shape[0]
    T = alphas.shape[0]
    U = np.zeros((n_blocks, r))
    B0 = np.zeros((n_blocks, r, r))
    B1 = np.zeros((n_blocks, r, r))
    S = np.zeros((n_blocks, r, r))
    V0 = np.zeros((n_blocks, r, r))
    V1 = np.zeros((n_blocks, r, r))
    Ed = np.zeros((n_blocks, T, r))
    Edd = np.zeros((n_blocks, T, T, r, r))
    Esh = np.zeros((n_blocks, 1))
    size = (N + n_blocks - 1) // n_blocks
    for i in prange(n_blocks):
        lo = i * size
        hi = min(N, lo + size)
        if lo < hi:
            cluster_expectations(points[lo:hi], weights[lo:hi], L, mean, M, alphas, betas, omegas, b, Q, act,
                                 need_dd, U[i], B0[i], B1[i], S[i], V0[i], V1[i], Ed[i], Edd[i], Esh[i])
    return U, B0, B1, S, V0, V1, Ed, Edd, Esh


@njit(cache=True, parallel=True)
def clusters_expectations(points, weights, Ls, means, Ms, row_rep, job_row, job_lo, job_hi, alphas, betas, omegas,
                          bs, Qs, act, need_dd):
    """:func:`cluster_expectations` for every cluster of every replica (trajectory) in ONE call,
    parallel over jobs = (row, node slice).

    Rows are (replica, cluster) pairs: Ls (C, 2r, k), means (C, 2r), Ms (C, r) their maps, row_rep (C,)
    the replica of each row, whose skip connection bs (n,) and Q = Qs (n, r, r) it uses. Job j
    integrates nodes job_lo[j]:job_hi[j] for row job_row[j] (empty for a cluster of zero weight); the
    slices are fixed by the caller, so the sums never depend on the thread count or on the other
    replicas. Returns the partial sums per job: U (J, r), B0, B1, S, V0, V1 (J, r, r), Ed (J, T, r),
    Edd (J, T, T, r, r), Esh (J, 1); the caller sums the jobs of each row."""
    J = job_row.shape[0]
    r = Qs.shape[1]
    T = alphas.shape[0]
    U = np.zeros((J, r))
    B0 = np.zeros((J, r, r))
    B1 = np.zeros((J, r, r))
    S = np.zeros((J, r, r))
    V0 = np.zeros((J, r, r))
    V1 = np.zeros((J, r, r))
    Ed = np.zeros((J, T, r))
    Edd = np.zeros((J, T, T, r, r))
    Esh = np.zeros((J, 1))
    for job in prange(J):
        c = job_row[job]
        rep = row_rep[c]
        lo = job_lo[job]
        hi = job_hi[job]
        if lo < hi:
            cluster_expectations(points[lo:hi], weights[lo:hi], Ls[c], means[c], Ms[c], alphas, betas, omegas,
                                 bs[rep], Qs[rep], act, need_dd, U[job], B0[job], B1[job], S[job], V0[job], V1[job],
                                 Ed[job], Edd[job], Esh[job])
    return U, B0, B1, S, V0, V1, Ed, Edd, Esh
