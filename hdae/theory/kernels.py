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

:func:`rhs_packed` (end of the file; used through :mod:`hdae.theory.fastrhs`) is the whole
right-hand side around this kernel in one serial compiled call, for small problems.
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
    h = np.empty((r, CH))
    wq = np.empty(CH)
    sh = 0.0
    for lo in range(0, N, CH):
        n = min(CH, N - lo)
        # per-node fields, every loop over the chunk's nodes innermost (vectorised)
        for j in range(n):
            wq[j] = weights[lo + j]
        for i in range(2 * r):
            for j in range(n):
                y[i, j] = mean[i]
            for kk in range(k):
                lik = L[i, kk]
                for j in range(n):
                    y[i, j] += lik * points[lo + j, kk]
        for a in range(r):
            for j in range(n):
                v0[a, j] = 0.0
                v1[a, j] = 0.0
                wy[a, j] = wq[j] * y[a, j]
                wy[r + a, j] = wq[j] * (y[r + a, j] - M[a])
        for t in range(T):
            al = alphas[t]
            be = betas[t]
            om = omegas[t]
            for a in range(r):
                for j in range(n):
                    h[a, j] = al * y[a, j] + be * y[r + a, j]
                if act == 1:  # relu: branch-free, vectorised
                    for j in range(n):
                        x = h[a, j]
                        s[t, a, j] = max(x, 0.0)
                        sp[t, a, j] = 1.0 if x > 0.0 else 0.0
                else:
                    for j in range(n):
                        sa, spa = nb_sigma_dsigma(h[a, j], act)
                        s[t, a, j] = sa
                        sp[t, a, j] = spa
                for j in range(n):
                    ws[t, a, j] = wq[j] * om * s[t, a, j]
                    wsp[t, a, j] = wq[j] * sp[t, a, j]
                    sh += ws[t, a, j] * h[a, j]
            for a in range(r):
                for j in range(n):  # c = (b h - l1 + Q s) s'; v0 += om al (b s + c); v1 += om (-(1 - b be) s + be c)
                    qs = 0.0
                    for e in range(r):
                        qs += Q[a, e] * s[t, e, j]
                    c = (b * h[a, j] - y[r + a, j] + qs) * sp[t, a, j]
                    v0[a, j] += om * al * (b * s[t, a, j] + c)
                    v1[a, j] += om * (-(1.0 - b * be) * s[t, a, j] + be * c)
        for a in range(r):
            for j in range(n):
                wv0[a, j] = wq[j] * v0[a, j]
                wv1[a, j] = wq[j] * v1[a, j]
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


# ----------------------------------------------------------------------------- the whole rhs (theory/fastrhs.py)
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
