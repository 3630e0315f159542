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


#: nodes per chunk: the per-node fields of a chunk are computed first, then every sum is a dot product
#: over the chunk's nodes (accumulated in a register and vectorised), not a store per node
_CHUNK = 64


@njit(cache=True, fastmath=True, error_model="numpy")
def cluster_expectations(points, weights, L, mean, M, alphas, betas, omegas, b, Q, act, need_dd,
                         U, B0, B1, S, V0, V1, Ed, Edd, Esh):
    """Accumulate the expectations listed in the module docstring into the (zeroed) outputs.

    points (N, k), weights (N,), L (2r, k), mean (2r,), M (r,), alphas/betas/omegas (T,),
    b scalar, Q (r, r), act activation code, need_dd: also accumulate Edd; Esh (1,).

    Nodes are taken in chunks of ``_CHUNK``: first the fields of every node of the chunk (y, s_t,
    s'_t, v0 = sum_t omega_t g0_t, v1), then the sums over the chunk's nodes, with
    B0 = E[l0 v0^T], B1 = E[(l1 - M) v1^T] (l0, l1 do not depend on t) and the symmetric S, V0, V1,
    Edd from their upper triangles.
    """
    N, k = points.shape
    r = Q.shape[0]
    T = alphas.shape[0]
    CH = _CHUNK
    y = np.empty((2 * r, CH))
    wy = np.empty((2 * r, CH))  # w l0 and w (l1 - M)
    s = np.empty((T, r, CH))
    sp = np.empty((T, r, CH))
    ws = np.empty((T, r, CH))
    wsp = np.empty((T, r, CH))
    v0 = np.zeros((r, CH))
    v1 = np.zeros((r, CH))
    wv0 = np.empty((r, CH))
    wv1 = np.empty((r, CH))
    h = np.empty(r)
    sh = 0.0
    for lo in range(0, N, CH):
        n = min(CH, N - lo)
        for j in range(n):
            for i in range(2 * r):
                acc = mean[i]
                for kk in range(k):
                    acc += L[i, kk] * points[lo + j, kk]
                y[i, j] = acc
        for j in range(n):
            wq = weights[lo + j]
            for a in range(r):
                v0[a, j] = 0.0
                v1[a, j] = 0.0
                wy[a, j] = wq * y[a, j]
                wy[r + a, j] = wq * (y[r + a, j] - M[a])
            for t in range(T):
                al = alphas[t]
                be = betas[t]
                om = omegas[t]
                for a in range(r):
                    h[a] = al * y[a, j] + be * y[r + a, j]
                    sa, spa = nb_sigma_dsigma(h[a], act)
                    s[t, a, j] = sa
                    sp[t, a, j] = spa
                    ws[t, a, j] = wq * om * sa
                    wsp[t, a, j] = wq * spa
                    sh += wq * om * sa * h[a]
                for a in range(r):
                    qs = 0.0
                    for e in range(r):
                        qs += Q[a, e] * s[t, e, j]
                    c = (b * h[a] - y[r + a, j] + qs) * sp[t, a, j]
                    v0[a, j] += om * al * (b * s[t, a, j] + c)
                    v1[a, j] += om * (-(1.0 - b * be) * s[t, a, j] + be * c)
            for a in range(r):
                wv0[a, j] = wq * v0[a, j]
                wv1[a, j] = wq * v1[a, j]
        # sums over the chunk
        for a in range(r):
            acc = 0.0
            for j in range(n):
                acc += wv1[a, j]
            U[a] += acc
            for t in range(T):
                acc = 0.0
                for j in range(n):
                    acc += wsp[t, a, j]
                Ed[t, a] += acc
            for e in range(r):
                acc0 = 0.0
                acc1 = 0.0
                for j in range(n):
                    acc0 += wy[a, j] * v0[e, j]
                    acc1 += wy[r + a, j] * v1[e, j]
                B0[a, e] += acc0
                B1[a, e] += acc1
            for e in range(a, r):
                accs = 0.0
                for t in range(T):
                    for j in range(n):
                        accs += ws[t, a, j] * s[t, e, j]
                acc0 = 0.0
                acc1 = 0.0
                for j in range(n):
                    acc0 += wv0[a, j] * v0[e, j]
                    acc1 += wv1[a, j] * v1[e, j]
                S[a, e] += accs
                V0[a, e] += acc0
                V1[a, e] += acc1
        if need_dd:
            for t in range(T):
                for u in range(t, T):
                    for a in range(r):
                        for e in range(r if u > t else r):
                            if u == t and e < a:
                                continue
                            acc = 0.0
                            for j in range(n):
                                acc += wsp[t, a, j] * sp[u, e, j]
                            Edd[t, u, a, e] += acc
    Esh[0] += sh
    # the lower triangles (S, V0, V1 symmetric; Edd[u, t] = Edd[t, u]^T) from the accumulated upper ones
    for a in range(r):
        for e in range(a):
            S[a, e] = S[e, a]
            V0[a, e] = V0[e, a]
            V1[a, e] = V1[e, a]
    if need_dd:
        for t in range(T):
            for u in range(t, T):
                for a in range(r):
                    for e in range(r):
                        if u == t and e < a:
                            Edd[t, t, a, e] = Edd[t, t, e, a]
                        elif u > t:
                            Edd[u, t, e, a] = Edd[t, u, a, e]


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
def clusters_expectations(points, weights, Ls, means, Ms, active, alphas, betas, omegas, b, Q, act, need_dd,
                          n_blocks):
    """:func:`cluster_expectations` for every cluster in ONE call, parallel over (cluster, node block).

    Ls (K, 2r, k), means (K, 2r), Ms (K, r): per-cluster maps; active (K,) bool (clusters of zero
    weight are skipped). The nodes of a cluster are cut into ``n_blocks`` fixed slices (the sums
    never depend on the thread count). Returns the partial sums per (cluster, block), cluster-major:
    U (K nb, r), B0, B1, S, V0, V1 (K nb, r, r), Ed (K nb, T, r), Edd (K nb, T, T, r, r), Esh (K nb, 1)
    (zero for inactive clusters); the caller sums each block of nb rows."""
    N = points.shape[0]
    K = Ls.shape[0]
    r = Q.shape[0]
    T = alphas.shape[0]
    nb = n_blocks
    U = np.zeros((K * nb, r))
    B0 = np.zeros((K * nb, r, r))
    B1 = np.zeros((K * nb, r, r))
    S = np.zeros((K * nb, r, r))
    V0 = np.zeros((K * nb, r, r))
    V1 = np.zeros((K * nb, r, r))
    Ed = np.zeros((K * nb, T, r))
    Edd = np.zeros((K * nb, T, T, r, r))
    Esh = np.zeros((K * nb, 1))
    size = (N + nb - 1) // nb
    for job in prange(K * nb):
        c = job // nb
        i = job - c * nb
        lo = i * size
        hi = min(N, lo + size)
        if active[c] and lo < hi:
            cluster_expectations(points[lo:hi], weights[lo:hi], Ls[c], means[c], Ms[c], alphas, betas, omegas, b, Q,
                                 act, need_dd, U[job], B0[job], B1[job], S[job], V0[job], V1[job], Ed[job], Edd[job],
                                 Esh[job])
    return U, B0, B1, S, V0, V1, Ed, Edd, Esh
