"""Theory against finite-d simulation on the shipped examples (slow: run with `pytest -m slow`).

At d = 1000 the per-replica deviations are finite-d fluctuations of a few percent of scale
(`python -m validation` reports them all); these tests hold them to bounds with margin, and the
generated samples' energy distance to a small multiple of its noise floor.
"""
from __future__ import annotations

import pytest

import hdae
from hdae import compare
from hdae.simulation import simulate
from hdae.theory import solve

from conftest import needs_mnist

pytestmark = pytest.mark.slow

# worst relative deviation (max over checkpoints and components, over the statistic's scale) allowed
BOUNDS = {"fig1": 0.06, "fig2": 0.12, "fig6": 0.25, "hetero": 0.10, "swiss_roll": 0.10}


@pytest.mark.parametrize("example", sorted(BOUNDS))
def test_theory_follows_simulation_at_d_1000(example):
    problem = hdae.load_problem(example=example, overrides=["sample.thetas=[]"])
    sim = simulate(problem, replicas=2)
    th = solve(init_from=sim)
    rows = {r.name: r for r in compare.compare_training(th, sim)}
    for name in ("Q", "M", "G"):
        assert rows[name].relative < BOUNDS[example], (name, rows[name])
    assert rows["b"].relative < 0.01


@needs_mnist
def test_mnist_example_within_replica_spread():
    """fig3 learns its principal directions from an unstable, O(d^-1/2) start: the theory is held to
    the size of the replicas' own spread rather than to a fixed bound."""
    sim = simulate(hdae.load_problem(example="fig3", overrides=["sample.thetas=[]"]), replicas=4)
    th = solve(init_from=sim)
    rows = {r.name: r for r in compare.compare_training(th, sim)}
    assert rows["Q"].mean_dev < 3 * rows["Q"].spread
    assert rows["b"].relative < 0.02


@pytest.mark.parametrize("example", ["fig1", "fig2"])
def test_generated_samples_within_noise_floor(example):
    problem = hdae.load_problem(example=example)
    sim = simulate(problem)
    th = solve(init_from=sim)
    for row in compare.compare_samples(th, sim):
        assert row.ratio < 4.0, row
        assert row.cov_dev < 0.25 * row.cov_scale, row
