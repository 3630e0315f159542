"""Numba kernels for the finite-d simulation on CPU: a whole chunk of online-SGD steps per call.

:func:`sgd_steps` runs ``n_steps`` steps of the update of :mod:`hdae.simulation.sgd` (section 1 of
the derivation note) for every replica, given pre-drawn data x0, x1 of shape (m, n_rep, d):

    lam0 = w^T x0/sqrt d,  lam1 = w^T x1/sqrt d,  Q = w^T w/d,  h_t = alpha_t lam0 + beta_t lam1
    c_t  = (b h_t - lam1 + Q sigma_t) * sigma'_t
    v0   = sum_t omega_t alpha_t (b sigma_t + c_t),   v1 = sum_t omega_t ((1 - b beta_t) sigma_t - beta_t c_t)
    S    = sum_t omega_t sigma_t sigma_t^T
    w   <- (1 - eta lambda/d) w - eta [(2/sqrt d)(x0 v0^T - x1 v1^T) + (2/d) w S]
    b   <- b - (eta/d^2) 2 sum_t omega_t (b |x_t|^2 + sigma_t . h_t - x1 . x_t)

Each replica costs one sweep over its d x r weights per step (:func:`_sweep`): the new w is
formed from the old one and x0, x1, and dotted with the next step's data (its fields) and with
itself column by column (the diagonal of Q: the column norms, also the finiteness check), and the
next data norms are summed: about (2 r^2 + 10 r + 6) d flops a step, and no Python runs between
steps. The off-diagonal of w^T w needs no pass over d: the new w is w A + x0 v0^T + x1 v1^T, so

    (w'^T w')_pq = (A^T G A)_pq + (A^T l0)_p v0_q + v0_p (A^T l0)_q + (A^T l1)_p v1_q + v1_p (A^T l1)_q
                   + |x0|^2 v0_p v0_q + x0.x1 (v0_p v1_q + v1_p v0_q) + |x1|^2 v1_p v1_q

with G = w^T w, l0 = w^T x0, l1 = w^T x1 (unnormalised), all known from the previous sweep
(:func:`_next_gram`; the pass it replaces took 20% of the sweep at r = 4). The recursion is
carried from chunk to chunk in ``gram`` (n, r, r), so results do not depend on the chunks; a NaN
in gram[i, 0, 0] starts it from a direct sum. For
r <= 4 the sweep is generated code with every column in a register (one to three vectorised
loops over d, :func:`_sweep_source`), beyond that blocks of d that stay in L1. The old and the
new w^T are the two halves of one buffer. Replicas run in parallel (``prange``): the coarse
parallelism that stays fast when other processes take cores.

A replica stops at its first step after which b or a column norm of w is non-finite (the
criterion of the torch path): its weights stay at the state just before that step and its
local step index is written to ``failed`` (-1 when it completed all steps). The other
replicas go on. The data are drawn outside (:mod:`hdae.simulation.normals`, or the target's
``draw``); :func:`sgd_steps_overlapped` draws the next chunk on a second core meanwhile.
"""
from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

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
def _sweep_blocked(cur, nxt, A, v0, v1, y0, y1, z0, z1, lam0n, lam1n, Qn, nnn):
    """:func:`_sweep` for any width, from cur (r, d) into nxt (r, d), in blocks of ``_NB``
    coordinates: each column of a block of nxt is formed from the whole old block while it is in
    L1 and dotted at once with the data and itself."""
    r, d = cur.shape
    lam0n[:] = 0.0
    lam1n[:] = 0.0
    for p in range(r):
        Qn[p, p] = 0.0
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
        s0, s1, s2 = _dot3(t0, t1, t1)  # (t0.t1, t0.t1, t0.t0): the data norms below
        nnn[0] += s2
        nnn[1] += s0
        nnn[2] += _dot(t1, t1)


_SPECIALISED = 4  # widths r <= this get a generated sweep (_sweep_r1 ...); wider ones take _sweep_blocked
_FUSED = 2  # widths r <= this do their whole sweep in one loop


def _sweep_source(r: int) -> str:
    """Python source of ``_sweep_r{r}``: :func:`_sweep` for the width r, written out (numba cannot
    unroll a loop over a runtime r); ``print(_sweep_source(2))`` shows one.

    Every loop runs over the whole of d and vectorises over the coordinate k, each column's value
    at k held in a register: per k the r old values and y0[k], y1[k] are loaded once and the r
    new values formed (r (r + 2) FMAs with A, v0, v1 as constants). The old and the new w^T are
    the two halves of one array ws (2r, d), indexed by literal rows: with ``k in range(d)`` and
    ``d = ws.shape[1]`` LLVM proves that the new rows never overlap the old ones and vectorises
    without run-time alias checks (which it gives up on beyond 8 pointer pairs). The loop over
    d is written twice, once per direction (src = 0: rows 0..r-1 into r..2r-1; src = 1 back).

    The first loop also sums each new value's square (the diagonal of Qn: the column norms).
    For r <= ``_FUSED`` that loop does everything: the new values are also dotted with z0, z1
    and the data norms summed. For wider r these accumulators and the constants outnumber the
    16 vector registers (AVX2) and the spills cost more than re-reading the new rows (from
    L1/L2), so the sweep is two loops: the new columns and their norms; their fields and the data
    norms."""
    R = range(r)
    L = [f"def _sweep_r{r}(ws, src, A, v0, v1, y0, y1, z0, z1, lam0n, lam1n, Qn, nnn):",
         "    d = ws.shape[1]"]
    L += ["    " + "; ".join(f"a{q}{p} = A[{q}, {p}]" for q in R) for p in R]
    L += ["    " + "; ".join(f"b{p} = v0[{p}]" for p in R), "    " + "; ".join(f"e{p} = v1[{p}]" for p in R)]
    acc = [f"l{p}" for p in R] + [f"m{p}" for p in R] + [f"q{p}" for p in R]
    L.append("    " + " = ".join(acc + ["s0", "s1", "s2"]) + " = 0.0")

    ind = "            "
    fields = [ind + "t0 = z0[k]; t1 = z1[k]",  # the new columns' sums with z0, z1; the data norms
              ind + "; ".join(f"l{p} += n{p} * t0" for p in R),
              ind + "; ".join(f"m{p} += n{p} * t1" for p in R),
              ind + "s0 += t0 * t0; s1 += t0 * t1; s2 += t1 * t1"]
    for half in (0, 1):
        old, new = half * r, (1 - half) * r
        L.append("    if src == 0:" if half == 0 else "    else:")
        L.append("        for k in range(d):")
        L.append(ind + "; ".join(f"c{q} = ws[{old + q}, k]" for q in R) + "; u0 = y0[k]; u1 = y1[k]")
        L += [ind + f"n{p} = " + " + ".join(f"a{q}{p} * c{q}" for q in R) + f" + b{p} * u0 + e{p} * u1" for p in R]
        L.append(ind + "; ".join(f"ws[{new + p}, k] = n{p}" for p in R))
        L.append(ind + "; ".join(f"q{p} += n{p} * n{p}" for p in R))
        if r <= _FUSED:
            L += fields
    if r > _FUSED:
        L.append(f"    o = {r} if src == 0 else 0  # the first new row")
        L += ["    for k in range(d):", ind[4:] + "; ".join(f"n{p} = ws[o + {p}, k]" for p in R)]
        L += [x[4:] for x in fields]
    L += [f"    lam0n[{p}] = l{p}; lam1n[{p}] = m{p}" for p in R]
    L.append("    " + "; ".join(f"Qn[{p}, {p}] = q{p}" for p in R))
    L.append("    nnn[0] = s0; nnn[1] = s1; nnn[2] = s2")
    return "\n".join(L) + "\n"


def _compile_sweep(r: int):
    """njit of :func:`_sweep_source` (r); its source is registered with linecache for tracebacks.
    Not cached by itself: it is compiled into, and cached with, its (cached) callers."""
    import linecache

    src = _sweep_source(r)
    name = f"<hdae.simulation.kernels._sweep_source({r})>"
    linecache.cache[name] = (len(src), None, src.splitlines(True), name)
    ns = {"__name__": __name__}
    exec(compile(src, name, "exec"), ns)
    return njit(fastmath=_FAST)(ns[f"_sweep_r{r}"])


_sweep_r1, _sweep_r2, _sweep_r3, _sweep_r4 = (_compile_sweep(r) for r in range(1, _SPECIALISED + 1))


@njit(cache=True)
def _sweep(ws, src, A, v0, v1, y0, y1, z0, z1, lam0n, lam1n, Qn, nnn):
    """One step's sweep over d: the new weights and the next step's sums over d.

    ws (2r, d): rows src*r ... src*r + r - 1 hold the current w^T (cur); the new w^T (nxt) is
    written into the other half, and nothing else in ws changes (the current state stays, for a
    step that turns out non-finite):

        nxt[p] = sum_q A[q, p] cur[q] + v0[p] y0 + v1[p] y1,

    and, unnormalised: lam0n = nxt z0, lam1n = nxt z1, the diagonal of Qn = nxt nxt^T (the new
    column norms, the finiteness check: summed directly, never updated algebraically; the rest of
    Qn is left as it was: :func:`_next_gram` forms it), nnn = (|z0|^2, z0.z1, |z1|^2).
    A (r, r), v0, v1 (r,), y0, y1, z0, z1 (d,); z may be y. r <= ``_SPECIALISED``: the generated
    loops of :func:`_sweep_source`; wider: :func:`_sweep_blocked` (the two halves as cur, nxt)."""
    r = A.shape[0]
    if r == 1:
        _sweep_r1(ws, src, A, v0, v1, y0, y1, z0, z1, lam0n, lam1n, Qn, nnn)
    elif r == 2:
        _sweep_r2(ws, src, A, v0, v1, y0, y1, z0, z1, lam0n, lam1n, Qn, nnn)
    elif r == 3:
        _sweep_r3(ws, src, A, v0, v1, y0, y1, z0, z1, lam0n, lam1n, Qn, nnn)
    elif r == 4:
        _sweep_r4(ws, src, A, v0, v1, y0, y1, z0, z1, lam0n, lam1n, Qn, nnn)
    else:
        _sweep_blocked(ws[src * r:src * r + r], ws[(1 - src) * r:(2 - src) * r], A, v0, v1, y0, y1, z0, z1, lam0n,
                       lam1n, Qn, nnn)


@njit(cache=True, fastmath=_FAST)
def _off_diagonal(ws, src, G):
    """G[p, q] = G[q, p] = cur[p] . cur[q] for p > q, cur = ws[src r:src r + r] (r, d): the
    recursion's start (:func:`_next_gram`)."""
    r = G.shape[0]
    for p in range(r):
        for q in range(p):
            G[p, q] = G[q, p] = _dot(ws[src * r + p], ws[src * r + q])


@njit(cache=True, fastmath=_FAST)
def _next_gram(G, A, v0, v1, l0, l1, nn, Gn, P0, P1):
    """The off-diagonal of Gn = nxt nxt^T for nxt = A^T cur + v0 y0^T + v1 y1^T (rows) from G = cur
    cur^T, l0 = cur y0, l1 = cur y1 and nn = (|y0|^2, y0.y1, |y1|^2) (the module docstring's
    recursion; (r, r), (r,), (3,)); symmetric, the diagonal (summed by the sweep) left as it is.
    P0, P1 (r,) scratch."""
    r = G.shape[0]
    for p in range(r):
        a0 = 0.0
        a1 = 0.0
        for q in range(r):
            a0 += A[q, p] * l0[q]
            a1 += A[q, p] * l1[q]
        P0[p] = a0
        P1[p] = a1
    for p in range(r):
        for q in range(p):
            acc = 0.0
            for s in range(r):
                inner = 0.0
                for t in range(r):
                    inner += G[s, t] * A[t, q]
                acc += A[s, p] * inner
            acc += P0[p] * v0[q] + v0[p] * P0[q] + P1[p] * v1[q] + v1[p] * P1[q]
            acc += nn[0] * v0[p] * v0[q] + nn[1] * (v0[p] * v1[q] + v1[p] * v0[q]) + nn[2] * v1[p] * v1[q]
            Gn[p, q] = Gn[q, p] = acc


@njit(cache=True, fastmath=_FAST)
def _replica_steps(w, b0, x0, x1, i, alphas, betas, omegas, lr, weight_decay, act, n_steps, gram, ws):
    """Steps of replica ``i`` in place on w (d, r) and gram (r, r) (w^T w, unnormalised; NaN at
    [0, 0]: not known yet), with ws (2r, d) as scratch; returns (new b, failing local step or -1).

    Works on w^T (r, d) so that every sum over d is a contiguous (vectorised) loop: one sweep per
    step (:func:`_sweep`) forms every column of the new w from all the old ones, and with it the
    next step's fields, the new column norms (the finiteness check) and the next data norms; the
    rest of the new w^T w follows from the old one (:func:`_next_gram`)."""
    d, r = w.shape
    T = alphas.shape[0]
    sd = math.sqrt(d)
    decay = 1.0 - lr * weight_decay / d
    cx = 2.0 * lr / sd
    cw = 2.0 * lr / d
    for p in range(r):  # w^T now (rows src*r ...) and next (the other half): see _sweep
        row = ws[p]
        for k in range(d):
            row[k] = w[k, p]
    src = 0
    lam0 = np.empty(r)  # unnormalised sums over d: w^T y0, w^T y1, w^T w, (|y0|^2, y0.y1, |y1|^2)
    lam1 = np.empty(r)
    G = np.empty((r, r))
    nn = np.empty(3)
    lam0n = np.empty(r)  # the same for the next step
    lam1n = np.empty(r)
    Gn = np.empty((r, r))
    nnn = np.empty(3)
    f0 = np.empty(r)  # normalised: the fields w^T y / sqrt d and Q = w^T w / d
    f1 = np.empty(r)
    Q = np.empty((r, r))
    h = np.empty((T, r))
    s = np.empty((T, r))
    c = np.empty((T, r))
    v0 = np.empty(r)
    v1 = np.empty(r)
    P0 = np.empty(r)
    P1 = np.empty(r)
    A = np.empty((r, r))  # I decay - cw S: the linear part of the update
    b = b0
    failed = -1
    if n_steps > 0:
        # the first step's sums over d from a sweep that copies w (A = I, v0 = v1 = 0: exactly) into the
        # other half: bitwise the sums that a previous step's sweep forms, so chunks never change results
        A[:, :] = 0.0
        for p in range(r):
            A[p, p] = 1.0
        v0[:] = 0.0
        v1[:] = 0.0
        _sweep(ws, src, A, v0, v1, x0[0, i], x1[0, i], x0[0, i], x1[0, i], lam0, lam1, G, nn)
        src = 1 - src
        if math.isnan(gram[0, 0]):
            _off_diagonal(ws, src, G)
        else:
            for p in range(r):
                for q in range(p):
                    G[p, q] = G[q, p] = gram[p, q]
    for j in range(n_steps):
        y0 = x0[j, i]
        y1 = x1[j, i]
        for p in range(r):
            f0[p] = lam0[p] / sd
            f1[p] = lam1[p] / sd
            for q in range(r):
                Q[p, q] = G[p, q] / d
        # ---- the r-dimensional part
        dldb = 0.0
        for t in range(T):
            at = alphas[t]
            bt = betas[t]
            sh = 0.0
            for p in range(r):
                hv = at * f0[p] + bt * f1[p]
                h[t, p] = hv
                s[t, p] = nb_sigma(hv, act)
                sh += s[t, p] * hv
            for p in range(r):
                qs = 0.0
                for q in range(r):
                    qs += Q[p, q] * s[t, q]
                c[t, p] = (b * h[t, p] - f1[p] + qs) * nb_dsigma(h[t, p], act)
            xt2 = at * at * nn[0] + 2.0 * at * bt * nn[1] + bt * bt * nn[2]
            x1xt = at * nn[1] + bt * nn[2]
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
        # ---- one sweep over d: the new w, and the next step's fields, column norms and data norms
        if j + 1 < n_steps:
            z0 = x0[j + 1, i]
            z1 = x1[j + 1, i]
        else:  # last step: only the norms are needed
            z0 = y0
            z1 = y1
        _sweep(ws, src, A, v0, v1, y0, y1, z0, z1, lam0n, lam1n, Gn, nnn)
        ok = True
        for p in range(r):
            ok = ok and math.isfinite(Gn[p, p])
        b_new = b - lr / (d * d) * dldb
        if not (ok and math.isfinite(b_new)):
            failed = j
            break
        _next_gram(G, A, v0, v1, lam0, lam1, nn, Gn, P0, P1)
        b = b_new
        src = 1 - src
        lam0, lam0n = lam0n, lam0
        lam1, lam1n = lam1n, lam1
        G, Gn = Gn, G
        nn, nnn = nnn, nn
    for p in range(r):  # row by row: 2.5x faster than numba's w[:, :] = ws[...].T at r = 2
        row = ws[src * r + p]
        for k in range(d):
            w[k, p] = row[k]
    if n_steps > 0:
        gram[:, :] = G
    return b, failed


@njit(cache=True, parallel=True)
def sgd_steps(w, b, x0, x1, alphas, betas, omegas, lr, weight_decay, act, n_steps, skip, failed, gram, work):
    """``n_steps`` online-SGD steps in place for every replica not marked in ``skip``.

    w (n, d, r) C-contiguous, b (n,), x0 and x1 (m, n, d) with m >= n_steps, alphas/betas/omegas
    (T,), lr eta, weight_decay lambda, act activation code (:data:`hdae.activations.CODES`),
    skip (n,) bool: replicas left untouched. failed (n,) int64 out: the 0-based step after which
    the replica became non-finite (it is left at the state before that step), else -1. gram
    (n, r, r) in/out: each replica's w^T w (unnormalised), carried by the recursion of the module
    docstring from one call to the next; fill it with NaN before a run's first call. work (n, 2r, d)
    float64 scratch, allocated once by the caller. (At d = 10^4, r = 2 a call's cost besides its
    steps went from 70 to 33 us with two threads, 38 to 18 us with one, by this scratch and the
    row-by-row copies of w^T in and out.)
    """
    n = w.shape[0]
    for i in prange(n):
        failed[i] = -1
        if skip[i]:
            continue
        b[i], failed[i] = _replica_steps(w[i], b[i], x0, x1, i, alphas, betas, omegas, lr, weight_decay, act,
                                         n_steps, gram[i], work[i])


@intrinsic
def _claim(typingctx, flags, j):
    """``_claim(flags, j)``: atomically set flags[j] = 1 (flags 1-d uint8; a sequentially consistent
    exchange) and return whether it was 0, i.e. whether this thread is the one that has row j."""
    if not (isinstance(flags, types.Array) and flags.ndim == 1 and flags.dtype == types.uint8
            and isinstance(j, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        array_type, index_type = signature.args
        array = context.make_array(array_type)(context, builder, args[0])
        index = context.cast(builder, args[1], index_type, types.intp)
        pointer = cgutils.get_item_pointer(context, builder, array_type, array, [index])
        old = builder.atomic_rmw("xchg", pointer, ir.Constant(ir.IntType(8), 1), "seq_cst")
        return builder.icmp_unsigned("==", old, ir.Constant(ir.IntType(8), 0))

    return types.boolean(flags, j), codegen


@njit(cache=True, nogil=True)
def _draw_rows(next_x0, next_x1, claimed, first, step, key0, key1, start_next, cum, centroids, std, X, R, F):
    """Draw rows first, first + step, ... of the next chunk (:func:`fill_training`), each claimed
    atomically before it is drawn (:func:`_claim`), until a row is found taken (by the other task)
    or the end: every row is drawn by exactly one thread."""
    j = first
    while 0 <= j < claimed.shape[0] and _claim(claimed, j):
        fill_training(next_x0, next_x1, j, j + 1, key0, key1, start_next, cum, centroids, std, X, R, F)
        j += step


@njit(cache=True, parallel=True)
def sgd_steps_overlapped(w, b, x0, x1, alphas, betas, omegas, lr, weight_decay, act, n_steps, skip, failed, gram,
                         work, next_x0, next_x1, m_next, key0, key1, start_next, cum, centroids, std, X, R, F):
    """:func:`sgd_steps` on the chunk (x0, x1) while the next chunk's training data are drawn into
    (next_x0, next_x1) (:func:`hdae.simulation.normals.fill_training`, its steps start_next ...):
    task 1 draws rows 0, 1, ... of the next chunk; task 0 trains every replica in turn and then
    draws rows m_next - 1, m_next - 2, ...; each stops at a row the other has claimed, so the
    split follows the two threads' actual speeds, chunk by chunk. A row is a function of its step
    alone, so the numbers depend neither on the split nor on the threads. With one thread the
    tasks run in turn (task 0 then draws every row)."""
    n = w.shape[0]
    claimed = np.zeros(m_next, dtype=np.uint8)
    for task in prange(2):
        if task == 0:
            for i in range(n):
                failed[i] = -1
                if not skip[i]:
                    b[i], failed[i] = _replica_steps(w[i], b[i], x0, x1, i, alphas, betas, omegas, lr, weight_decay,
                                                     act, n_steps, gram[i], work[i])
            _draw_rows(next_x0, next_x1, claimed, m_next - 1, -1, key0, key1, start_next, cum, centroids, std, X, R, F)
        else:
            _draw_rows(next_x0, next_x1, claimed, 0, 1, key0, key1, start_next, cum, centroids, std, X, R, F)


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
