"""Numba kernels for the finite-d simulation on CPU: a whole chunk of online-SGD steps per call.

:func:`sgd_steps` runs ``n_steps`` steps of the update of :mod:`hdae.simulation.sgd` (section 1 of
the derivation note) for every replica, given pre-drawn data x0, x1 of shape (m, n_rep, d):

    lam0 = w^T x0/sqrt d,  lam1 = w^T x1/sqrt d,  Q = w^T w/d,  h_t = alpha_t lam0 + beta_t lam1
    c_t  = (b h_t - lam1 + Q sigma_t) * sigma'_t
    v0   = sum_t omega_t alpha_t (b sigma_t + c_t),   v1 = sum_t omega_t ((1 - b beta_t) sigma_t - beta_t c_t)
    S    = sum_t omega_t sigma_t sigma_t^T
    w   <- (1 - eta lambda/d) w - eta [(2/sqrt d)(x0 v0^T - x1 v1^T) + (2/d) w S]
    b   <- b - (eta/d^2) 2 sum_t omega_t (b |x_t|^2 + sigma_t . h_t - x1 . x_t)

Each replica costs two passes over its d x r weights per step (one reads w, x0, x1 for the
fields, Q and the norms; one writes the new w and its column norms), so a step is about
10 d r flops and no Python runs between steps. Replicas run in parallel (``prange``): the
coarse parallelism that stays fast when other processes take cores.

A replica stops at its first step after which b or a column norm of w is non-finite (the
criterion of the torch path): its weights stay at the state just before that step and its
local step index is written to ``failed`` (-1 when it completed all steps). The other
replicas go on. Drawing the data stays outside (the target's ``draw``).
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ..activations import nb_dsigma, nb_sigma


@njit(cache=True)
def _replica_steps(w, b0, x0, x1, i, alphas, betas, omegas, lr, weight_decay, act, n_steps):
    """Steps of replica ``i`` in place on w (d, r); returns (new b, failing local step or -1)."""
    d, r = w.shape
    T = alphas.shape[0]
    sd = math.sqrt(d)
    decay = 1.0 - lr * weight_decay / d
    cx = 2.0 * lr / sd
    cw = 2.0 * lr / d
    cur = w
    nxt = np.empty((d, r), dtype=w.dtype)
    lam0 = np.empty(r)
    lam1 = np.empty(r)
    Q = np.empty((r, r))
    h = np.empty((T, r))
    s = np.empty((T, r))
    c = np.empty((T, r))
    v0 = np.empty(r)
    v1 = np.empty(r)
    S = np.empty((r, r))
    A = np.empty((r, r))  # I decay - cw S: the linear part of the update
    ss = np.empty(r)
    b = b0
    failed = -1
    swapped = False  # True while the current state lives in the scratch buffer
    for j in range(n_steps):
        y0 = x0[j, i]
        y1 = x1[j, i]
        # ---- pass 1: fields, Q, norms
        lam0[:] = 0.0
        lam1[:] = 0.0
        Q[:, :] = 0.0
        n00 = 0.0
        n01 = 0.0
        n11 = 0.0
        for k in range(d):
            a0 = y0[k]
            a1 = y1[k]
            n00 += a0 * a0
            n01 += a0 * a1
            n11 += a1 * a1
            for p in range(r):
                wp = cur[k, p]
                lam0[p] += wp * a0
                lam1[p] += wp * a1
                for q in range(p + 1):
                    Q[p, q] += wp * cur[k, q]
        for p in range(r):
            lam0[p] /= sd
            lam1[p] /= sd
            for q in range(p + 1):
                Q[p, q] /= d
                Q[q, p] = Q[p, q]
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
            v0[p] = a
            v1[p] = e
            for q in range(r):
                acc = 0.0
                for t in range(T):
                    acc += omegas[t] * s[t, q] * s[t, p]
                S[q, p] = acc
        for q in range(r):
            for p in range(r):
                A[q, p] = -cw * S[q, p]
            A[q, q] += decay
        # ---- pass 2: the new w and its column norms
        ss[:] = 0.0
        for k in range(d):
            a0 = y0[k]
            a1 = y1[k]
            for p in range(r):
                acc = -cx * (a0 * v0[p] - a1 * v1[p])
                for q in range(r):
                    acc += cur[k, q] * A[q, p]
                nxt[k, p] = acc
                ss[p] += acc * acc
        b_new = b - lr / (d * d) * dldb
        ok = math.isfinite(b_new)
        for p in range(r):
            ok = ok and math.isfinite(ss[p])
        if not ok:
            failed = j
            break
        b = b_new
        cur, nxt = nxt, cur
        swapped = not swapped
    if swapped:
        w[:, :] = cur
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


@njit(cache=True)
def mixture_affine(z, c, centroids, std):
    """In place, row by row: z[i] <- centroids[c[i]] + std[c[i]] * z[i] (a mixture draw from N(0, I)
    draws z (n, d) and cluster labels c (n,); centroids and std (K, d)), without gathered copies."""
    n, d = z.shape
    for i in range(n):
        ci = c[i]
        for k in range(d):
            z[i, k] = centroids[ci, k] + std[ci, k] * z[i, k]
