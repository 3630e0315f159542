"""Numba kernels for the finite-d simulation on CPU: a whole chunk of online-SGD steps per call.

:func:`sgd_steps` runs ``n_steps`` steps of the update of :mod:`hdae.simulation.sgd` (section 1 of
the derivation note) for every replica, given pre-drawn data x0, x1 of shape (m, n_rep, d):

    lam0 = w^T x0/sqrt d,  lam1 = w^T x1/sqrt d,  Q = w^T w/d,  h_t = alpha_t lam0 + beta_t lam1
    c_t  = (b h_t - lam1 + Q sigma_t) * sigma'_t
    v0   = sum_t omega_t alpha_t (b sigma_t + c_t),   v1 = sum_t omega_t ((1 - b beta_t) sigma_t - beta_t c_t)
    S    = sum_t omega_t sigma_t sigma_t^T
    w   <- (1 - eta lambda/d) w - eta [(2/sqrt d)(x0 v0^T - x1 v1^T) + (2/d) w S]
    b   <- b - (eta/d^2) 2 sum_t omega_t (b |x_t|^2 + sigma_t . h_t - x1 . x_t)

Each replica costs one sweep over its d x r weights per step, in blocks of d that stay in L1:
a block of the new w is formed from the whole old block and x0, x1, and dotted at once with the
next step's data (its fields) and with itself (its Q, whose diagonal holds the column norms for
the finiteness check), and the next data norms are summed: about (3 r^2 + 9 r + 6) d flops a
step, and no Python runs between steps. Replicas run in parallel (``prange``): the
coarse parallelism that stays fast when other processes take cores.

A replica stops at its first step after which b or a column norm of w is non-finite (the
criterion of the torch path): its weights stay at the state just before that step and its
local step index is written to ``failed`` (-1 when it completed all steps). The other
replicas go on. The data are drawn outside (:mod:`hdae.simulation.normals`, or the target's
``draw``); :func:`sgd_steps_overlapped` draws the next chunk on a second core meanwhile.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ..activations import nb_dsigma, nb_sigma
from .normals import _MASK64, ZIG_F, ZIG_R, ZIG_X, fill, fill_training


_FAST = {"reassoc", "contract", "nsz", "arcp"}  # vectorised sums; NaN/inf semantics kept for the checks


@njit(cache=True, fastmath=_FAST)
def _dot(a, b):
    acc = 0.0
    for k in range(a.shape[0]):
        acc += a[k] * b[k]
    return acc


_NB = 256  # doubles per block of the d loop: a block of w, the new w and four data vectors stay in L1


@njit(cache=True, fastmath=_FAST)
def _dot2(o, a, b):
    """(o.a, o.b) in one loop."""
    s0 = 0.0
    s1 = 0.0
    for k in range(o.shape[0]):
        s0 += o[k] * a[k]
        s1 += o[k] * b[k]
    return s0, s1


@njit(cache=True, fastmath=_FAST)
def _dot3(o, a, b):
    """(o.a, o.b, o.o) in one loop."""
    s0 = 0.0
    s1 = 0.0
    s2 = 0.0
    for k in range(o.shape[0]):
        s0 += o[k] * a[k]
        s1 += o[k] * b[k]
        s2 += o[k] * o[k]
    return s0, s1, s2


@njit(cache=True, fastmath=_FAST)
def _new_column(out, cur, lo, hi, p, A, a0, a1, u0, u1):
    """out = sum_q A[q, p] cur[q, lo:hi] + a0 u0 + a1 u1: up to four old columns in the first pass
    over out, then two per pass."""
    r = cur.shape[0]
    n = hi - lo
    cp = cur[p, lo:hi]
    app = A[p, p]
    if r == 1:
        for k in range(n):
            out[k] = app * cp[k] + a0 * u0[k] + a1 * u1[k]
        return
    # the first up to three other columns go into the first pass
    q1 = 1 if p == 0 else 0
    c1 = cur[q1, lo:hi]
    b1 = A[q1, p]
    if r == 2:
        for k in range(n):
            out[k] = app * cp[k] + b1 * c1[k] + a0 * u0[k] + a1 * u1[k]
        return
    q2 = q1 + 1 if q1 + 1 != p else q1 + 2
    c2 = cur[q2, lo:hi]
    b2 = A[q2, p]
    if r == 3:
        for k in range(n):
            out[k] = app * cp[k] + b1 * c1[k] + b2 * c2[k] + a0 * u0[k] + a1 * u1[k]
        return
    q3 = q2 + 1 if q2 + 1 != p else q2 + 2
    c3 = cur[q3, lo:hi]
    b3 = A[q3, p]
    for k in range(n):
        out[k] = app * cp[k] + b1 * c1[k] + b2 * c2[k] + b3 * c3[k] + a0 * u0[k] + a1 * u1[k]
    q1 = q3
    pend = -1
    for q in range(q1 + 1, r):
        if q == p:
            continue
        if pend < 0:
            pend = q
            continue
        ca = cur[pend, lo:hi]
        cb = cur[q, lo:hi]
        aa = A[pend, p]
        ab = A[q, p]
        for k in range(n):
            out[k] += aa * ca[k] + ab * cb[k]
        pend = -1
    if pend >= 0:
        ca = cur[pend, lo:hi]
        aa = A[pend, p]
        for k in range(n):
            out[k] += aa * ca[k]


@njit(cache=True, fastmath=_FAST)
def _fields(wt, y0, y1, lam0, lam1, Q, nn):
    """One blocked sweep over d: lam0 = wt y0, lam1 = wt y1, Q = wt wt^T (unnormalised, lower
    triangle and mirror) and nn = (|y0|^2, y0.y1, |y1|^2)."""
    r, d = wt.shape
    lam0[:] = 0.0
    lam1[:] = 0.0
    Q[:, :] = 0.0
    nn[:] = 0.0
    for lo in range(0, d, _NB):
        hi = min(lo + _NB, d)
        u0 = y0[lo:hi]
        u1 = y1[lo:hi]
        nn[0] += _dot(u0, u0)
        nn[1] += _dot(u0, u1)
        nn[2] += _dot(u1, u1)
        for p in range(r):
            wp = wt[p, lo:hi]
            lam0[p] += _dot(wp, u0)
            lam1[p] += _dot(wp, u1)
            for q in range(p + 1):
                Q[p, q] += _dot(wp, wt[q, lo:hi])
    for p in range(r):
        for q in range(p):
            Q[q, p] = Q[p, q]


@njit(cache=True, fastmath=_FAST)
def _replica_steps(w, b0, x0, x1, i, alphas, betas, omegas, lr, weight_decay, act, n_steps):
    """Steps of replica ``i`` in place on w (d, r); returns (new b, failing local step or -1).

    Works on w^T (r, d) so that every sum over d is a contiguous (vectorised) loop, in blocks of
    ``_NB`` coordinates: one sweep per step forms every column of the new w from all the old ones
    while the block is in L1, and in the same sweep the next step's fields, its Q (whose diagonal,
    the new column norms, is the finiteness check) and its data norms."""
    d, r = w.shape
    T = alphas.shape[0]
    sd = math.sqrt(d)
    decay = 1.0 - lr * weight_decay / d
    cx = 2.0 * lr / sd
    cw = 2.0 * lr / d
    cur = np.ascontiguousarray(w.T).astype(np.float64)
    nxt = np.empty((r, d))
    lam0 = np.empty(r)  # unnormalised sums over d: w^T y0, w^T y1, w^T w, (|y0|^2, y0.y1, |y1|^2)
    lam1 = np.empty(r)
    Q = np.empty((r, r))
    nn = np.empty(3)
    lam0n = np.empty(r)  # the same for the next step
    lam1n = np.empty(r)
    Qn = np.empty((r, r))
    nnn = np.empty(3)
    h = np.empty((T, r))
    s = np.empty((T, r))
    c = np.empty((T, r))
    v0 = np.empty(r)
    v1 = np.empty(r)
    A = np.empty((r, r))  # I decay - cw S: the linear part of the update
    b = b0
    failed = -1
    if n_steps > 0:
        _fields(cur, x0[0, i], x1[0, i], lam0, lam1, Q, nn)
    for j in range(n_steps):
        y0 = x0[j, i]
        y1 = x1[j, i]
        n00 = nn[0]
        n01 = nn[1]
        n11 = nn[2]
        for p in range(r):
            lam0[p] /= sd
            lam1[p] /= sd
            for q in range(r):
                Q[p, q] /= d
        # ---- the r-dimensional part
        dldb = 0.0
        for t in range(T):
            at = alphas[t]
            bt = betas[t]
            sh = 0.0
            for p in range(r):
                hv = at * lam0[p] + bt * lam1[p]
                h[t, p] = hv
                s[t, p] = nb_sigma(hv, act)
                sh += s[t, p] * hv
            for p in range(r):
                qs = 0.0
                for q in range(r):
                    qs += Q[p, q] * s[t, q]
                c[t, p] = (b * h[t, p] - lam1[p] + qs) * nb_dsigma(h[t, p], act)
            xt2 = at * at * n00 + 2.0 * at * bt * n01 + bt * bt * n11
            x1xt = at * n01 + bt * n11
            dldb += omegas[t] * (b * xt2 + sh - x1xt)
        dldb *= 2.0
        for p in range(r):
            a = 0.0
            e = 0.0
            for t in range(T):
                a += omegas[t] * alphas[t] * (b * s[t, p] + c[t, p])
                e += omegas[t] * ((1.0 - b * betas[t]) * s[t, p] - betas[t] * c[t, p])
            v0[p] = -cx * a
            v1[p] = cx * e
            for q in range(r):
                acc = 0.0
                for t in range(T):
                    acc += omegas[t] * s[t, q] * s[t, p]
                A[q, p] = -cw * acc
            A[p, p] += decay
        # ---- one blocked sweep: the new w, and the next step's fields, Q (new column norms), norms
        if j + 1 < n_steps:
            z0 = x0[j + 1, i]
            z1 = x1[j + 1, i]
        else:  # last step: only the norms are needed
            z0 = y0
            z1 = y1
        lam0n[:] = 0.0
        lam1n[:] = 0.0
        Qn[:, :] = 0.0
        nnn[:] = 0.0
        for lo in range(0, d, _NB):
            hi = min(lo + _NB, d)
            u0 = y0[lo:hi]
            u1 = y1[lo:hi]
            t0 = z0[lo:hi]
            t1 = z1[lo:hi]
            for p in range(r):
                out = nxt[p, lo:hi]
                _new_column(out, cur, lo, hi, p, A, v0[p], v1[p], u0, u1)
                s0, s1, s2 = _dot3(out, t0, t1)
                lam0n[p] += s0
                lam1n[p] += s1
                Qn[p, p] += s2
                for q in range(0, p - 1, 2):
                    s0, s1 = _dot2(out, nxt[q, lo:hi], nxt[q + 1, lo:hi])
                    Qn[p, q] += s0
                    Qn[p, q + 1] += s1
                if p % 2 == 1:
                    Qn[p, p - 1] += _dot(out, nxt[p - 1, lo:hi])
            s0, s1, s2 = _dot3(t0, t1, t1)  # (t0.t1, t0.t1, t0.t0): the data norms below
            nnn[0] += s2
            nnn[1] += s0
            nnn[2] += _dot(t1, t1)
        ok = True
        for p in range(r):
            ok = ok and math.isfinite(Qn[p, p])
            for q in range(p):
                Qn[q, p] = Qn[p, q]
        b_new = b - lr / (d * d) * dldb
        if not (ok and math.isfinite(b_new)):
            failed = j
            break
        b = b_new
        cur, nxt = nxt, cur
        lam0, lam0n = lam0n, lam0
        lam1, lam1n = lam1n, lam1
        Q, Qn = Qn, Q
        nn, nnn = nnn, nn
    w[:, :] = cur.T
    return b, failed


@njit(cache=True, parallel=True)
def sgd_steps(w, b, x0, x1, alphas, betas, omegas, lr, weight_decay, act, n_steps, skip, failed):
    """``n_steps`` online-SGD steps in place for every replica not marked in ``skip``.

    w (n, d, r) C-contiguous, b (n,), x0 and x1 (m, n, d) with m >= n_steps, alphas/betas/omegas
    (T,), lr eta, weight_decay lambda, act activation code (:data:`hdae.activations.CODES`),
    skip (n,) bool: replicas left untouched. failed (n,) int64 out: the 0-based step after which
    the replica became non-finite (it is left at the state before that step), else -1.
    """
    n = w.shape[0]
    for i in prange(n):
        failed[i] = -1
        if skip[i]:
            continue
        b[i], failed[i] = _replica_steps(w[i], b[i], x0, x1, i, alphas, betas, omegas, lr, weight_decay, act,
                                         n_steps)


@njit(cache=True, parallel=True)
def sgd_steps_overlapped(w, b, x0, x1, alphas, betas, omegas, lr, weight_decay, act, n_steps, skip, failed,
                         next_x0, next_x1, m_next, split, key0, key1, start_next, cum, centroids, std, X, R, F):
    """:func:`sgd_steps` on the chunk (x0, x1) while the next chunk's training data are drawn into
    (next_x0, next_x1) (:func:`hdae.simulation.normals.fill_training`, its steps start_next ...):
    task 0 trains every replica in turn and then draws rows split .. m_next - 1 of the next chunk,
    task 1 draws rows 0 .. split - 1. With two threads the tasks run at once (``split`` balances
    them); with one they run in turn. The numbers do not depend on ``split`` or the threads."""
    n = w.shape[0]
    for task in prange(2):
        if task == 0:
            for i in range(n):
                failed[i] = -1
                if not skip[i]:
                    b[i], failed[i] = _replica_steps(w[i], b[i], x0, x1, i, alphas, betas, omegas, lr, weight_decay,
                                                     act, n_steps)
            fill_training(next_x0, next_x1, split, m_next, key0, key1, start_next, cum, centroids, std, X, R, F)
        else:
            fill_training(next_x0, next_x1, 0, split, key0, key1, start_next, cum, centroids, std, X, R, F)


# ----------------------------------------------------------------------------- the d-dimensional sampler
@njit(cache=True, parallel=True, fastmath=_FAST)
def _sampler_paths(X, wt, scale, coef, noise_sd, act, seed, ZX, ZR, ZF):
    n_rep, m, d = X.shape
    r = wt.shape[1]
    K = coef.shape[0]
    sd = math.sqrt(d)
    for job in prange(n_rep * m):
        i = job // m
        x = X[i, job - i * m]
        lam = np.empty(r)
        noise = np.empty(d)
        for k in range(K):
            for p in range(r):
                lam[p] = nb_sigma(_dot(wt[i, p], x) / sd, act) * coef[k]
            s = scale[i, k]
            if noise_sd[k] > 0.0:
                fill(noise, seed, (np.uint64(job) * np.uint64(K) + np.uint64(k)) * np.uint64(d), ZX, ZR, ZF)
                ns = noise_sd[k]
                for t in range(d):
                    x[t] = s * x[t] + ns * noise[t]
            else:
                for t in range(d):
                    x[t] = s * x[t]
            for p in range(r):
                a = lam[p]
                wp = wt[i, p]
                for t in range(d):
                    x[t] += a * wp[t]


def sampler_paths(X, w, scale, coef, noise_sd, act: int, seed: int):
    """The Euler(-Maruyama) steps of the d-dimensional sampler (:mod:`hdae.simulation.sampler`), in
    place, one path at a time with the path in cache (paths in parallel):

        X <- scale_k X + coef_k w sigma(w^T X/sqrt d) + noise_sd_k xi,   k = 0 .. K-1,

    X (n_rep, m, d) C-contiguous, X_0 on entry, X_K on exit; w (n_rep, d, r); scale (n_rep, K);
    coef, noise_sd (K,); act an activation code. Path j of replica i at step k draws its xi as the
    normals (q K + k) d ... (q K + k) d + d - 1 of the counter-based stream ``seed``, q = i m + j
    (:mod:`hdae.simulation.normals`), so the result does not depend on the number of threads."""
    wt = np.ascontiguousarray(np.swapaxes(w, 1, 2), dtype=np.float64)
    _sampler_paths(X, wt, np.ascontiguousarray(scale, dtype=np.float64), np.ascontiguousarray(coef, dtype=np.float64),
                   np.ascontiguousarray(noise_sd, dtype=np.float64), act, np.uint64(int(seed) & _MASK64), ZIG_X,
                   ZIG_R, ZIG_F)
    return X
