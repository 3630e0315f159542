"""Counter-based normals (hdae.simulation.normals) and the training data drawn from them: the
N(0, 1) law, number j of a stream as a pure function of (key, j), and the SGD trajectory
independent of chunks, threads, overlap and the number of replicas."""
from __future__ import annotations

from math import erf, sqrt

import numba
import numpy as np
import pytest

import hdae
from hdae import targets
from hdae.simulation import kernels, normals
from hdae.simulation.sgd import MixtureSampler, OnlineSGD

from conftest import SMALL

TABLES = (normals.ZIG_X, normals.ZIG_R, normals.ZIG_F)


def _fill(n, key, start=0, dtype=np.float64):
    out = np.empty(n, dtype=dtype)
    normals.fill(out, np.uint64(key), np.uint64(start), *TABLES)
    return out


def test_ziggurat_tables():
    """1024 layers of equal area v under exp(-x^2/2), the base strip and tail included, and the top
    layer closing the ladder at x = 0; the rejection rate 1 - mean(R) is 0.43%."""
    X, R, F = TABLES
    n, v = normals._LAYERS, normals._AREA
    assert X.shape == (n + 1,) and X[n] == 0.0 and np.all(np.diff(X[1:]) < 0)
    widths = X[1:n]  # layers 1 .. n - 1: width X_i, height f(X_{i+1}) - f(X_i)
    np.testing.assert_allclose(widths * (F[2:n + 1] - F[1:n]), v, rtol=1e-9)
    tail = sqrt(np.pi / 2) * (1 - erf(X[1] / sqrt(2)))  # int_r^inf exp(-x^2/2)
    assert X[1] * F[1] + tail == pytest.approx(v, rel=1e-12)  # the base strip
    assert X[0] * F[1] == pytest.approx(v, rel=1e-15)
    np.testing.assert_allclose(R, X[1:] / X[:-1])
    assert 1 - R.mean() == pytest.approx(0.00428, abs=1e-5)


@numba.njit
def _uniforms_both_ways(words):
    """u of each word as _fast computes it and as the block loop does (bitcast of the top 52 bits
    under 2.0's exponent, minus 3)."""
    fast = np.empty(words.shape[0])
    layer = np.empty(words.shape[0], np.intp)
    bits = (words >> np.uint64(12)) | normals._TWO
    for k in range(words.shape[0]):
        fast[k], layer[k] = normals._fast(words[k])
    return fast, bits.view(np.float64) - 3.0, layer


def test_uniform_bits():
    """Both routes give the same u in [-1, 1), its ends included, the layer from the low 10 bits."""
    words = np.concatenate([np.array([0, 2**64 - 1, 2**12 - 1, 2**12, 2**63], dtype=np.uint64),
                            np.random.default_rng(0).integers(0, 2**64 - 1, 10_000, dtype=np.uint64)])
    fast, bitcast, layer = _uniforms_both_ways(words)
    np.testing.assert_array_equal(fast, bitcast)
    np.testing.assert_array_equal(layer, words & np.uint64(1023))
    assert fast[0] == -1.0 and fast[1] == 1.0 - 2.0**-51 and fast[2] == -1.0 and fast[3] == -1.0 + 2.0**-51
    assert fast[4] == 0.0 and np.all((fast >= -1) & (fast < 1))


def test_standard_normal_distribution():
    """Moments, tails (the base strip / tail boundary r = 3.654 included) and the
    Kolmogorov-Smirnov distance of N(0, 1)."""
    n = 2_000_000
    x = normals.standard_normal(np.empty(n), 123)
    assert abs(x.mean()) < 5 / sqrt(n)
    assert abs(x.var() - 1) < 5 * sqrt(2 / n)
    assert abs(np.mean(x**3)) < 5 * sqrt(15 / n)
    assert abs(np.mean(x**4) - 3) < 5 * sqrt(96 / n)
    for a in (1.0, 2.5, 3.0, normals.ZIG_X[1], 4.0):
        p = 1 - erf(a / sqrt(2))
        assert abs(np.mean(np.abs(x) > a) - p) < 5 * sqrt(p / n) + 1e-7, a
    xs = np.sort(x[:200_000])
    cdf = 0.5 * (1 + np.vectorize(erf)(xs / sqrt(2)))
    ks = np.max(np.abs(cdf - np.arange(1, xs.size + 1) / xs.size))
    assert ks < 1.95 / sqrt(xs.size)  # 99.9% level
    assert np.corrcoef(x[:-1], x[1:])[0, 1] < 5 / sqrt(n)  # consecutive numbers uncorrelated


def test_stream_is_a_function_of_key_and_index():
    """Any range of a stream, in any block layout, parallel or serial, gives the same numbers."""
    n = 200_000
    whole = normals.standard_normal(np.empty(n), 77)  # parallel blocks of 2^15
    np.testing.assert_array_equal(_fill(n, 77), whole)  # one serial pass
    for a, b in ((0, 1), (5, 3000), (1023, 1025), (65535, 70001), (n - 7, n)):
        np.testing.assert_array_equal(_fill(b - a, 77, a), whole[a:b])
    np.testing.assert_array_equal(_fill(1000, 78)[:10] == whole[:10], np.zeros(10, bool))
    np.testing.assert_array_equal(_fill(5000, 77, dtype=np.float32), whole[:5000].astype(np.float32))
    np.testing.assert_array_equal(normals.standard_normal(np.empty((4, 50)), 9).ravel(), _fill(200, 9))


def test_mixture_stream():
    """Cluster frequencies follow the weights; within a cluster, mean and variance per coordinate."""
    cum = np.cumsum([0.2, 0.5, 0.3])
    d, n = 3, 60_000
    cents = np.array([[4.0, 0, 0], [0, -4.0, 0], [0, 0, 8.0]])
    std = np.array([[1.0, 1, 1], [0.5, 2.0, 1], [1, 1, 0.1]])
    x = np.empty((n, d))
    normals.fill_mixture_rows(x, np.uint64(5), cum, cents, std, *TABLES)
    label = np.argmin(((x[:, None, :] - cents[None]) ** 2 / std[None] ** 2).sum(2), axis=1)
    freq = np.bincount(label, minlength=3) / n
    np.testing.assert_allclose(freq, [0.2, 0.5, 0.3], atol=5 * sqrt(0.25 / n))
    for c in range(3):
        xc = x[label == c]
        np.testing.assert_allclose(xc.mean(0), cents[c], atol=5 * std[c].max() / sqrt(len(xc)))
        np.testing.assert_allclose(xc.std(0), std[c], rtol=0.05)
    row = np.empty(d)  # row q is sample q of the stream, whatever the array around it
    normals.fill_mixture(row, np.uint64(5), 4321, cum, cents, std, *TABLES)
    np.testing.assert_array_equal(row, x[4321])


@pytest.fixture
def kernel_sgd():
    p = hdae.load_problem(SMALL)
    rt = targets.realise(p.target, p.observation_basis)
    tr = p.train
    sgd = OnlineSGD(MixtureSampler(rt), tr.interpolant.alpha(tr.times), tr.interpolant.beta(tr.times),
                    tr.time_weights, tr.lr, tr.weight_decay, p.model.activation)
    w0 = targets.initial_weights(p.target, p.init, 3, rt.d, 5, 3)
    return sgd, w0


def test_training_data_layout(kernel_sgd):
    """Replica i's data at step s depend on (keys, i, s) only: not on the chunk, the replica count,
    or the serial / parallel fill."""
    sgd, _ = kernel_sgd
    keys = sgd.data_keys(np.random.default_rng(3))
    x0, x1 = sgd.training_data(keys, 0, 20, 3)
    y0, y1 = sgd.training_data(keys, 7, 5, 1)
    np.testing.assert_array_equal(y0[:, 0], x0[7:12, 0])
    np.testing.assert_array_equal(y1[:, 0], x1[7:12, 0])
    s0, s1 = np.empty_like(x0), np.empty_like(x1)
    normals.fill_training(s0, s1, 0, 20, *keys, 0, *sgd.target.arrays(), *TABLES)
    np.testing.assert_array_equal(s0, x0)
    np.testing.assert_array_equal(s1, x1)
    assert not np.array_equal(x0[:, 0], x0[:, 1]) and not np.array_equal(x1[:, 0], x1[:, 1])
    np.testing.assert_array_equal(sgd.draw(20, 3, np.random.default_rng(3))[1], x1)  # draw = one call's data


def _trained(sgd, w0, n_steps, chunk, threads, seed=11):
    w, b = w0.copy(), np.array([0.0, 0.1, -0.1])[: w0.shape[0]].copy()
    before = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        failed = sgd.run_replicas(w, b, n_steps, np.random.default_rng(seed), chunk)
    finally:
        numba.set_num_threads(before)
    assert (failed == -1).all()
    return w, b


def test_trajectory_independent_of_chunk_and_replicas(kernel_sgd):
    """Bitwise the same weights whatever the chunk and the number of replicas trained beside it."""
    sgd, w0 = kernel_sgd
    ref = _trained(sgd, w0[:1], 300, 256, 1)
    assert not np.array_equal(ref[0], w0[:1])
    for chunk in (1, 7, 64):
        np.testing.assert_array_equal(_trained(sgd, w0[:1], 300, chunk, 1)[0], ref[0])
    three = _trained(sgd, w0, 300, 64, 1)
    np.testing.assert_array_equal(three[0][0], ref[0][0])
    assert not np.array_equal(three[0][1], three[0][0])


def test_trajectory_same_when_drawing_on_a_second_core(kernel_sgd):
    """One replica on two threads: the next chunk is drawn while the kernel trains (overlap), with
    the same weights, bit for bit, as on one thread."""
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("numba was started with one thread")
    sgd, w0 = kernel_sgd
    ref = _trained(sgd, w0[:1], 300, 256, 1)
    assert sgd._overlapped_chunks == 0
    for chunk in (8, 50, 256):
        before = sgd._overlapped_chunks
        w, b = _trained(sgd, w0[:1], 300, chunk, 2)
        assert sgd._overlapped_chunks > before  # the overlapped path ran
        np.testing.assert_array_equal(w, ref[0])
        np.testing.assert_array_equal(b, ref[1])



@numba.njit(parallel=True)
def _claim_from_both_ends(flags, owner):
    """The overlapped draws' protocol on a flag array: thread 0 takes rows from the top, thread 1
    from the bottom, each until it finds a row taken; owner[j] counts 1 per take by 0, 10 by 1."""
    for task in numba.prange(2):
        j, step, mark = (flags.shape[0] - 1, -1, 1) if task == 0 else (0, 1, 10)
        while 0 <= j < flags.shape[0] and kernels._claim(flags, j):
            owner[j] += mark
            j += step


def test_rows_of_the_overlapped_draws_are_taken_once():
    """Each row of the next chunk is claimed by exactly one of the two threads (an atomic exchange:
    with a plain check-then-set both threads could take the row where they meet, and the
    mixture's in-place affine map would then be applied twice to it)."""
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("numba was started with one thread")
    before = numba.get_num_threads()
    numba.set_num_threads(2)
    try:
        for n in (1, 2, 7, 5000):
            for _ in range(300 if n > 7 else 50):
                flags, owner = np.zeros(n, np.uint8), np.zeros(n, np.int64)
                _claim_from_both_ends(flags, owner)
                assert np.all((owner == 1) | (owner == 10)) and np.all(flags == 1)
                # the takes are contiguous from each end: the split is one point
                assert np.all(np.diff((owner == 1).astype(int)) >= 0)
    finally:
        numba.set_num_threads(before)
