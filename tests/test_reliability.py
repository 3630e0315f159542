"""Issue 16: no silent wrong answers, no lost files, one-line errors everywhere."""
from __future__ import annotations

import numpy as np
import pytest

import hdae
from hdae import targets
from hdae.config import ConfigError

# ----------------------------------------------------------------------------- 1. spectra pairing
PAIRED = """
seed = 3
[target]
kind = "mixture"
d = {d}
centroids = [[1.5, 0.0], [0.0, -1.5]]
covariance = [{{ blocks = [[0.25, 3.0], [0.75, 1.0]], latent = [0.7, 0.9] }},
              {{ eigenvalues = [0.2, 4.0], latent = 1.1 }}]
[model]
width = 2
[init]
scale = 0.5
[train]
lr = 0.2
tau = 0.05
checkpoints = 2
[sample]
n = 50
thetas = []
"""


def _hand_eigenvalues(d):
    """The d-dim covariances of PAIRED written out coordinate by coordinate: latent (k = 2), then
    the bulk n = d - 2 in the written order: cluster 0 is 3.0 on the first quarter, 1.0 after;
    cluster 1 is 0.2 on the first half, 4.0 on the second half (halves rounded down)."""
    n = d - 2
    quarter, half = int(np.ceil(n / 4 - 0.5)), int(np.ceil(n / 2 - 0.5))
    c0 = np.r_[0.7, 0.9, np.full(quarter, 3.0), np.full(n - quarter, 1.0)]
    c1 = np.r_[1.1, 1.1, np.full(half, 0.2), np.full(n - half, 4.0)]
    return np.stack([c0, c1])


@pytest.mark.parametrize("d", [10, 203, 1000])
def test_blocks_and_eigenvalues_keep_the_written_pairing(d):
    p = hdae.load_problem(PAIRED.format(d=d))
    rt = targets.realise(p.target, p.observation_basis)
    np.testing.assert_array_equal(rt.eigenvalues, _hand_eigenvalues(d))
    # finite-d reduction: every bin holds coordinates whose per-cluster eigenvalues are the bin's s
    red, merge = targets.reduce(p.target, p.observation_basis, d)
    bins = merge[rt.bin_index]
    for l in range(red.n_bins):
        np.testing.assert_array_equal(rt.eigenvalues[:, bins == l], np.repeat(red.s[l][:, None], np.sum(bins == l), 1))
    # d -> infinity: the masses of the written pairings
    lim, _ = targets.reduce(p.target, p.observation_basis, None)
    pairs = {tuple(s): m for s, m in zip(lim.s[lim.n_latent:], lim.p[lim.n_latent:])}
    assert pairs == {(3.0, 0.2): pytest.approx(0.25), (1.0, 0.2): pytest.approx(0.25), (1.0, 4.0): pytest.approx(0.5)}


def test_written_pairing_reaches_theory_and_simulation():
    """Omega at theta = 0 in both branches equals w_0^T Sigma_c w_0/d with the hand-built Sigma_c."""
    from hdae.simulation import simulate
    from hdae.theory import solve

    d = 203
    p = hdae.load_problem(PAIRED.format(d=d))
    sim = simulate(p, sample=False)
    th = solve(init_from=sim, sample=False)
    w = sim.init_w[0]
    hand = np.stack([w.T @ (e[:, None] * w) / d for e in _hand_eigenvalues(d)])
    np.testing.assert_allclose(sim.train.Omega[0, 0], hand, rtol=1e-12)
    np.testing.assert_allclose(th.train.Omega[0, 0], hand, rtol=1e-10)
    # a problem whose pieces were re-paired would be a different problem: Lambda_c differ
    assert p.target.average_eigenvalue(d) == pytest.approx(float(p.target.weights @ _hand_eigenvalues(d).mean(1)))


def test_spectrum_piece_without_coordinate_is_refused():
    text = PAIRED.format(d=12).replace("[[0.25, 3.0], [0.75, 1.0]]", "[[0.01, 30.0], [0.99, 1.0]]")
    with pytest.raises(ConfigError, match=r"target\.d: d = 12 leaves spectrum piece 0 of cluster 0") as err:
        hdae.load_problem(text)
    assert "\n" not in str(err.value) and "d >= 102" in str(err.value)
    assert hdae.load_problem(text, d=102).target.bulk.values[0, 0] == 30.0
