"""hdae.theory.solve_many: several problems in one process, compatible ones integrated together
(one integrate_batch, each trajectory with its own output times, steps, divergence bound and status),
every Result equal to the problem solved alone."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import hdae
from hdae.config import ConfigError
from hdae.results import TRAIN_STATS
from hdae.theory import solve, solve_many
from hdae.theory.solve import _batch_key, _plan

FAST = ["theory.dt=0.1", "sample.n=200", "sample.steps=8", "sample.thetas=[1.0, 2.8]"]
GRID = [[f"train.lr={lr}", f"train.weight_decay={wd}"] for lr in (0.1, 0.3) for wd in (0.5, 1.5)]
DIVERGING = ["train.lr=1000.0", "train.weight_decay=0.0", "theory.init='limit'", "theory.divergence=1e4"]
OTHERS = [DIVERGING, ["theory.init='limit'"], ["model.width=3"], ["theory.integrator='adaptive'"]]


def _problems(extra=()):
    return [hdae.load_problem(example="fig2", overrides=FAST + o) for o in GRID + OTHERS + list(extra)]


def _close(a, b, what):
    if a is None or b is None:
        assert a is None and b is None, what
        return
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape, what
    if a.dtype.kind in "fc":
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=0, equal_nan=True, err_msg=what)
    else:
        assert np.array_equal(a, b), what


def assert_same_result(a, b):
    assert (a.kind, a.status, a.message, a.seed, a.d, a.config_text, a.device) == \
        (b.kind, b.status, b.message, b.seed, b.d, b.config_text, b.device)
    assert a.attrs == b.attrs
    _close(a.replica_status, b.replica_status, "replica_status")
    _close(a.replica_message, b.replica_message, "replica_message")
    _close(a.replica_theta_stop, b.replica_theta_stop, "replica_theta_stop")
    _close(a.train.theta, b.train.theta, "theta")
    for k in TRAIN_STATS:
        _close(getattr(a.train, k), getattr(b.train, k), k)
    assert (a.sample is None) == (b.sample is None)
    if a.sample is not None:
        for k in ("theta", "projected", "Z", "S", "density", "density_x", "density_y"):
            _close(getattr(a.sample, k), getattr(b.sample, k), f"sample.{k}")
    assert a.extras.keys() == b.extras.keys()
    for k in a.extras:
        _close(a.extras[k], b.extras[k], f"extras {k}")
    for k in a.target:
        _close(a.target[k], b.target[k], f"target {k}")


def test_solve_many_equals_solve_per_problem():
    """A fig2 grid over lr x weight decay, a point that diverges (its status its own), one with other
    output times (the limit start), one of another width (its own group) and one with the adaptive
    integrator (solved alone): every Result equals solve(problem)."""
    problems = _problems()
    keys = [_batch_key(_plan(p, None, None)) for p in problems]
    assert len(set(keys[:6])) == 1 and keys[6] != keys[0] and keys[7] is None  # one batch of 6, then 1 + 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        many = solve_many(problems)
        alone = [solve(p) for p in problems]
    for a, b in zip(many, alone):
        assert_same_result(a, b)
    statuses = [r.status for r in many]
    assert statuses[4] == "diverged" and "diverged at theta" in many[4].message
    assert statuses[:4] + statuses[5:] == ["success"] * 7
    assert many[5].train.theta.tolist() != many[0].train.theta.tolist()  # other output times, same batch
    no_sample = solve_many(problems[:2], sample=False)
    assert all(r.sample is None for r in no_sample)
    assert_same_result(no_sample[1], solve(problems[1], sample=False))
    assert solve_many([]) == []


def test_solve_many_errors_stay_with_their_problem():
    """A problem whose start is out of range fails alone: 'return' puts its exception in its place and
    computes the others; 'raise' raises it, as a loop of solve would."""
    bad = ["theory.divergence=0.2"]
    problems = _problems([bad])[:3] + _problems([bad])[-1:]
    out = solve_many(problems, errors="return")
    assert isinstance(out[3], ConfigError) and "out of range" in str(out[3])
    for a, p in zip(out[:3], problems[:3]):
        assert_same_result(a, solve(p))
    with pytest.raises(ConfigError, match="out of range"):
        solve_many(problems)


def test_solve_many_falls_back_one_by_one_when_a_batch_raises(monkeypatch):
    """An exception inside a shared integration: its problems are solved again one by one, so that the
    error reaches only the problem it belongs to."""
    import sys

    mod = sys.modules["hdae.theory.solve"]
    real = mod.integrate_batch
    problems = _problems()[:3]

    def flaky(states, setups, *a, **kw):
        if len(states) > 1:
            raise FloatingPointError("batch broke")
        if setups[0].lr == 0.1 and setups[0].weight_decay == 1.5:
            raise FloatingPointError("this one")
        return real(states, setups, *a, **kw)

    monkeypatch.setattr(mod, "integrate_batch", flaky)
    out = solve_many(problems, errors="return")
    assert isinstance(out[1], FloatingPointError) and str(out[1]) == "this one"
    monkeypatch.setattr(mod, "integrate_batch", real)
    for i in (0, 2):
        assert_same_result(out[i], solve(problems[i]))
