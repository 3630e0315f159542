"""Node choices of the shipped examples and the Sobol node cache: convergence in the number of nodes at
the default example's own setting (fig1: ReLU, r = 4, 1024 symmetrised Sobol nodes), and cached node sets
identical to freshly generated ones. (validation/accuracy_solve.py checks every example over its full tau.)"""
from __future__ import annotations

import numpy as np
import pytest

import hdae
from hdae.theory import quadrature, solve


def _dev(a, b) -> float:
    """max over Q, M, G (those with a non-zero scale) of max |a - b| / max |b|."""
    out = []
    for k in ("Q", "M", "G"):
        scale = np.abs(getattr(b.train, k)).max()
        if scale > 0:
            out.append(float(np.abs(getattr(a.train, k) - getattr(b.train, k)).max() / scale))
    return max(out)


def test_default_example_converges_in_sobol_nodes():
    base = hdae.load_problem(example="fig1").with_overrides("train.tau=1.0", "train.checkpoints=5", "sample.thetas=[]")
    assert base.theory.nodes == 512  # the example's setting: 1024 nodes after symmetrisation
    res = solve(base, sample=False)
    assert res.attrs["quadrature"] == "sobol" and res.attrs["quadrature_nodes"] == 1024
    ref = solve(base.with_overrides("theory.nodes=16384"), sample=False)
    errors = [_dev(solve(base.with_overrides(f"theory.nodes={n}"), sample=False), ref) for n in (32, 512, 4096)]
    assert errors[0] > errors[1] > errors[2]
    assert _dev(res, ref) == errors[1] < 1e-3


def test_sobol_cache_gives_the_generated_nodes(tmp_path, monkeypatch):
    monkeypatch.setenv("HDAE_CACHE_DIR", str(tmp_path))
    fresh = quadrature._sobol_normal(3, 6, 123)
    files = list(tmp_path.glob("sobol-normal-k3-m6-seed123-*.npy"))
    assert len(files) == 1
    np.testing.assert_array_equal(quadrature._sobol_normal(3, 6, 123), fresh)  # from the cache
    files[0].write_bytes(b"not an array")  # a damaged cache file is regenerated, not trusted
    np.testing.assert_array_equal(quadrature._sobol_normal(3, 6, 123), fresh)
    monkeypatch.setenv("HDAE_CACHE_DIR", "")  # no cache at all
    np.testing.assert_array_equal(quadrature._sobol_normal(3, 6, 123), fresh)
    assert quadrature.cache_dir() is None


@pytest.mark.parametrize("k", [2, 4])
def test_sobol_nodes_are_standard_normal(k):
    n = quadrature.sobol(k, 512)
    assert len(n.weights) == 1024
    np.testing.assert_allclose(n.weights @ n.points, 0.0, atol=1e-14)
    np.testing.assert_allclose((n.points.T * n.weights) @ n.points, np.eye(k), atol=0.02)


def test_gaussian_decay_converges_in_gauss_hermite_points():
    """tanh saturating over a few node spacings (strong directions of variance 4 and 2): 24 points per
    dimension, the 'auto' default, sit near 1e-3 of scale over the full tau; the example's 40 well below."""
    base = hdae.load_problem(example="gaussian_decay").with_overrides("train.tau=1.5", "train.checkpoints=4",
                                                                      "sample.thetas=[]")
    assert base.theory.nodes == 40
    ref = solve(base.with_overrides("theory.nodes=96"), sample=False)
    errors = [_dev(solve(base.with_overrides(f"theory.nodes={n}"), sample=False), ref) for n in (16, 24, 40)]
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 2e-4
