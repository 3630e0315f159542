"""Counter-based N(0, 1) draws for the CPU simulation (numba).

Normal number ``j`` of the stream ``key`` is a pure function of (key, j): the 64-bit word
``splitmix64(key + j * 0x9E3779B97F4A7C15)`` (Steele, Lea & Flood's SplitMix64 output function on
the counter; it passes BigCrush) goes through Doornik's ZIGNOR ziggurat (J. A. Doornik, "An improved
ziggurat method to generate normal random samples", 2005) with 1024 layers of equal area: the
layer index i from the low 10 bits, the uniform u in [-1, 1) from the top 52 (disjoint bits; u a
multiple of 2^-51), accepted as u X_i when |u| < X_{i+1}/X_i: 99.57% of draws, against 98.5% with
Marsaglia & Tsang's 256 layers, whose 3.5x more frequent rejections (about 30 ns each) made a draw
1.3x slower. The rejections continue the exact ziggurat (wedges, one exp each with the tabulated
f(X_i); Marsaglia's tail) on uniforms of an auxiliary stream indexed by j, so every number stays a
function of (key, j) alone.

Hence any range of a stream can be filled by any thread in any order with the same result: big
arrays are filled in parallel blocks, and the SGD data of a chunk can be drawn partly ahead, on
another core, while the kernel trains on the previous chunk (:func:`hdae.simulation.kernels`).
The fast path runs as two loops over a block: the hash, vectorised, which also lays the top 52 bits
under the exponent of 2.0 (so u = that double - 3, without an int-to-double conversion, which AVX2
lacks), then the table lookups. About 2 ns a number on one core of the 2-core test machine
(validation/benchmark_draws.py), and any thread can draw any part.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

_MASK64 = (1 << 64) - 1
_LAYERS = 1024
_TAIL = 4.038849846109506  # r: the base strip's right edge (1024 layers)
_AREA = 0.0012263246463530809  # v: each layer's area, r f(r) + int_r^inf f (f(x) = exp(-x^2 / 2))
_TWO = np.uint64(0x4000000000000000)  # the bits of 2.0: (z >> 12) | _TWO is a double in [2, 4)
_BLOCK = 1024  # numbers hashed, transformed and checked per pass (L1-resident scratch)


def _zig_tables(n=_LAYERS, r=_TAIL, v=_AREA):
    """The layer edges X (n + 1,), ratios R_i = X_{i+1}/X_i (n,) and densities F_i = exp(-X_i^2/2)
    (n + 1,) of an n-layer ziggurat of common area v."""
    x = np.empty(n + 1)
    f = math.exp(-0.5 * r * r)
    x[0] = v / f
    x[1] = r
    x[n] = 0.0
    for i in range(2, n):
        x[i] = math.sqrt(-2.0 * math.log(v / x[i - 1] + f))
        f = math.exp(-0.5 * x[i] * x[i])
    return x, x[1:] / x[:-1], np.exp(-0.5 * x * x)


ZIG_X, ZIG_R, ZIG_F = _zig_tables()


@njit(cache=True, inline="always")
def _mix(z):
    """SplitMix64's output function of the counter state z = key + j * golden (uint64)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@njit(cache=True, inline="always")
def word(key, j):
    """The 64-bit word j of stream ``key`` (uint64 arguments)."""
    return _mix(key + j * np.uint64(0x9E3779B97F4A7C15))


@njit(cache=True, inline="always")
def _fast(z):
    """(u, i) of the word z: layer i from its low 10 bits, u = (z >> 12) 2^-51 - 1 in [-1, 1) from its
    top 52 (exactly the value the block loops get as bitcast((z >> 12) | _TWO) - 3)."""
    return float(z >> np.uint64(12)) * 4.440892098500626e-16 - 1.0, np.intp(z & np.uint64(_LAYERS - 1))


@njit(cache=True, inline="always")
def uniform(key, j):
    """Uniform j of stream ``key`` in [0, 1), 2^-53 resolution."""
    return float(word(key, j) >> np.uint64(11)) * 1.1102230246251565e-16


@njit(cache=True, inline="always")
def subkey(key, tag):
    """An independent stream key derived from ``key`` and a small integer tag."""
    return word(key ^ np.uint64(0xD1B54A32D192ED03), np.uint64(tag) + np.uint64(1))


@njit(cache=True)
def _rejected(u, i, aux, j, X, R, F):
    """Normal j of a stream whose fast path rejected (u, i): the rest of the ziggurat, on 53-bit
    uniforms of the stream's auxiliary stream ``aux`` (subkey 0) at counters 256 j, 256 j + 1, ..."""
    c = j * np.uint64(256)
    r = X[1]
    while True:
        if abs(u) < R[i]:
            return u * X[i]
        if i == 0:  # the tail beyond X[1] = r (Marsaglia's method)
            while True:
                a = math.log(1.0 - uniform(aux, c)) / r
                e = math.log(1.0 - uniform(aux, c + np.uint64(1)))
                c += np.uint64(2)
                if -2.0 * e >= a * a:
                    break
            return a - r if u < 0.0 else r - a
        x = u * X[i]  # the wedge between layers i and i + 1
        if F[i + 1] + uniform(aux, c) * (F[i] - F[i + 1]) < math.exp(-0.5 * x * x):
            return x
        u, i = _fast(word(aux, c + np.uint64(1)))
        c += np.uint64(2)


@njit(cache=True, nogil=True)
def fill_affine(out, key, start, mean, scale, X, R, F):
    """out[j] = mean[j] + scale[j] * (normal start + j of stream ``key``), or the normal alone when
    ``mean`` is empty (out 1-d float64 or float32, mean and scale of its length or empty; key, start
    uint64; X, R, F the tables :data:`ZIG_X`, :data:`ZIG_R`, :data:`ZIG_F`).

    Blocks of ``_BLOCK`` normals: hash the counters; transform (vectorised), keeping per group of 8
    the largest rejection margin |u| - R_i; redo the rejected (0.43%) in the groups that have one."""
    n = out.shape[0]
    affine = mean.shape[0] > 0
    aux = subkey(key, 0)
    words = np.empty(_BLOCK, dtype=np.uint64)
    bits = np.empty(_BLOCK, dtype=np.uint64)
    ub = bits.view(np.float64)  # ub[k] - 3 is word k's u
    gmax = np.empty(_BLOCK // 8)
    mask = np.uint64(_LAYERS - 1)
    for lo in range(0, n, _BLOCK):
        m = min(_BLOCK, n - lo)
        base = start + np.uint64(lo)
        c = key + base * np.uint64(0x9E3779B97F4A7C15)  # word(key, base + k), the counter as an induction
        for k in range(m):
            z = _mix(c)
            words[k] = z
            bits[k] = (z >> np.uint64(12)) | _TWO
            c += np.uint64(0x9E3779B97F4A7C15)
        o = out[lo:lo + m]
        groups = m // 8
        for g in range(groups):
            mx = -1.0
            for e in range(8):
                k = 8 * g + e
                u, i = ub[k] - 3.0, np.intp(words[k] & mask)
                o[k] = u * X[i]
                mx = max(mx, abs(u) - R[i])
            gmax[g] = mx
        for g in range(groups):
            if gmax[g] >= 0.0:
                for k in range(8 * g, 8 * g + 8):
                    u, i = ub[k] - 3.0, np.intp(words[k] & mask)
                    if abs(u) >= R[i]:
                        o[k] = _rejected(u, i, aux, base + np.uint64(k), X, R, F)
        for k in range(8 * groups, m):  # the block's last few, one by one
            u, i = ub[k] - 3.0, np.intp(words[k] & mask)
            o[k] = u * X[i] if abs(u) < R[i] else _rejected(u, i, aux, base + np.uint64(k), X, R, F)
        if affine:
            mu = mean[lo:lo + m]
            sd = scale[lo:lo + m]
            for k in range(m):
                o[k] = mu[k] + sd[k] * o[k]


@njit(cache=True, nogil=True)
def fill(out, key, start, X, R, F):
    """out[j] = normal number start + j of stream ``key``, j < len(out): :func:`fill_affine` without
    the affine map."""
    e = np.empty(0)
    fill_affine(out, key, start, e, e, X, R, F)


@njit(cache=True, parallel=True)
def _fill_parallel(flat, key, X, R, F):
    n_blocks = (flat.shape[0] + 32767) // 32768
    for blk in prange(n_blocks):
        lo = blk * 32768
        hi = min(lo + 32768, flat.shape[0])
        fill(flat[lo:hi], key, np.uint64(lo), X, R, F)


def standard_normal(out: np.ndarray, seed: int) -> np.ndarray:
    """Fill ``out`` (C-contiguous, float64 or float32) with iid N(0, 1): element j (in C order) is
    normal j of the stream ``seed``, whatever the number of threads (big arrays are filled in
    parallel blocks)."""
    flat = out.reshape(-1)
    key = np.uint64(int(seed) & _MASK64)
    if flat.shape[0] <= 65536:
        fill(flat, key, np.uint64(0), ZIG_X, ZIG_R, ZIG_F)
    else:
        _fill_parallel(flat, key, ZIG_X, ZIG_R, ZIG_F)
    return out


@njit(cache=True)
def _label(u, cum):
    """The cluster c with cum[c - 1] <= u < cum[c] (the last one for u beyond)."""
    c = 0
    while c < cum.shape[0] - 1 and cum[c] <= u:
        c += 1
    return c


@njit(cache=True, nogil=True)
def fill_mixture(row, key, s, cum, centroids, std, X, R, F):
    """Sample ``s`` of the Gaussian-mixture stream ``key`` into ``row`` (d,): centroids[c] + std[c] * z,
    its cluster c from uniform s of subkey 1 (P(c) = weight; ``cum`` the cumulative weights, (K,)),
    its z normals s d ... s d + d - 1 of subkey 2; centroids and std (K, d)."""
    d = row.shape[0]
    s = np.uint64(s)
    c = _label(uniform(subkey(key, 1), s) * cum[cum.shape[0] - 1], cum)
    fill_affine(row, subkey(key, 2), s * np.uint64(d), centroids[c], std[c], X, R, F)


@njit(cache=True, nogil=True)
def fill_training_row(x0, x1, j, i, key0, key1, step, cum, centroids, std, X, R, F):
    """Step ``step`` of replica i into x0[j, i] and x1[j, i] (x0, x1 (m, n, d)): x0 normals
    step d ... of stream subkey(key0, i), x1 sample ``step`` of the mixture stream subkey(key1, i).
    A replica's data depend on neither the chunk nor the number of replicas."""
    d = x0.shape[2]
    fill(x0[j, i], subkey(key0, i), np.uint64(step) * np.uint64(d), X, R, F)
    fill_mixture(x1[j, i], subkey(key1, i), step, cum, centroids, std, X, R, F)


@njit(cache=True, nogil=True)
def fill_training(x0, x1, lo, hi, key0, key1, start, cum, centroids, std, X, R, F):
    """Rows lo <= j < hi of a chunk of training data (steps start + j, every replica), one thread."""
    for j in range(lo, hi):
        for i in range(x0.shape[1]):
            fill_training_row(x0, x1, j, i, key0, key1, start + j, cum, centroids, std, X, R, F)


@njit(cache=True, parallel=True)
def fill_training_parallel(x0, x1, key0, key1, start, cum, centroids, std, X, R, F):
    """The whole chunk (m, n, d), rows in parallel: the same numbers as :func:`fill_training`."""
    m, n = x0.shape[0], x0.shape[1]
    for q in prange(m * n):
        j = q // n
        fill_training_row(x0, x1, j, q - j * n, key0, key1, start + j, cum, centroids, std, X, R, F)


@njit(cache=True, parallel=True)
def fill_mixture_rows(x, key, cum, centroids, std, X, R, F):
    """Samples 0 .. n - 1 of the mixture stream ``key`` into x (n, d), rows in parallel."""
    for q in prange(x.shape[0]):
        fill_mixture(x[q], key, q, cum, centroids, std, X, R, F)
