"""Per-replica status (issue 15, "Also"): a diverging replica stops alone, in simulation and theory;
the statuses are stored in the file and shown by ``hdae info`` and ``hdae compare``; the theory's
replicas go through the kernel together, and that equals integrating them one by one."""
from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

import hdae
from cli.main import cli
from conftest import SMALL
from hdae import targets
from hdae.results import Result, TrainRecord, combine_replicas
from hdae.simulation import simulate
from hdae.theory import solve

# relu at lr = 1 (one SGD step is 0.01 in theta at d = 200): stable from the problem's w_0, while
# replica 1 started with 8 times its weights blows up within a few dozen steps, in SGD and ODE alike
OVERRIDES = ["train.lr=1.0", "train.tau=2.0", "train.checkpoints=5", 'model.activation="relu"',
             "train.weight_decay=0.0", "sample.thetas=[0.0, 1.0, 2.0]", "sample.n=200"]
BLOWN = 1


@pytest.fixture(scope="module")
def problem():
    return hdae.load_problem(SMALL, overrides=OVERRIDES)


@pytest.fixture(scope="module")
def runs(problem):
    """Simulations of 3 replicas: 'bad' with replica 1's w_0 scaled by 8, 'good' without; and the
    theory started from each."""
    real = targets.initial_weights

    def blown(*a, **k):
        w = real(*a, **k)
        w[BLOWN] *= 8.0
        return w

    mp = pytest.MonkeyPatch()
    mp.setattr(targets, "initial_weights", blown)
    try:
        bad = simulate(problem, replicas=3, device="cpu")
    finally:
        mp.undo()
    good = simulate(problem, replicas=3, device="cpu")
    return {"bad": bad, "good": good, "th_bad": solve(init_from=bad), "th_good": solve(init_from=good)}


def _check_one_stopped(res, good, exact: bool):
    assert res.status == "diverged" and not res.ok
    assert list(res.replica_status) == ["success", "diverged", "success"]
    assert list(good.replica_status) == ["success"] * 3 and good.ok
    assert np.isnan(res.replica_theta_stop[[0, 2]]).all() and 0 < res.replica_theta_stop[BLOWN] < 2.0
    assert res.replica_message[0] == "" and "diverged" in res.replica_message[BLOWN]
    assert "1 of 3 replicas stopped (replica 1; 2 completed)" in res.message
    # full length for everyone: the others run to the end, the stopped one is NaN after it stopped
    np.testing.assert_array_equal(res.train.theta, good.train.theta)
    after = res.train.theta > res.replica_theta_stop[BLOWN]
    assert after.any() and np.isnan(res.train.Q[BLOWN, after]).all() and np.isnan(res.train.b[BLOWN, after]).all()
    assert np.isfinite(res.train.Q[BLOWN, 0]).all()
    stopped = res.sample.theta > res.replica_theta_stop[BLOWN]
    assert np.isnan(res.sample.projected[BLOWN, stopped]).all() and np.isfinite(res.sample.projected[BLOWN, 0]).all()
    # the healthy replicas are those of a run in which replica 1 did not diverge
    cmp = np.testing.assert_array_equal if exact else (
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13))
    for k in ("Q", "Omega", "M", "G", "b"):
        cmp(getattr(res.train, k)[[0, 2]], getattr(good.train, k)[[0, 2]])
    cmp(res.sample.projected[[0, 2]], good.sample.projected[[0, 2]])


def test_simulation_replica_diverges_alone(runs):
    sim = runs["bad"]
    _check_one_stopped(sim, runs["good"], exact=True)
    assert "SGD diverged" in sim.replica_message[BLOWN]
    np.testing.assert_array_equal(sim.final_w[[0, 2]], runs["good"].final_w[[0, 2]])
    assert np.isfinite(sim.final_w).all()  # the stopped replica keeps its last finite weights


def test_simulation_torch_step_freezes_alike(problem, runs, monkeypatch):
    """The torch step (the CUDA path), run here on CPU: the same statuses and, to float rounding, the
    same statistics as the numba kernel."""
    import functools

    from hdae.simulation import run, sgd

    monkeypatch.setattr(run, "OnlineSGD", functools.partial(sgd.OnlineSGD, backend="torch"))
    real = targets.initial_weights

    def blown(*a, **k):
        w = real(*a, **k)
        w[BLOWN] *= 8.0
        return w

    monkeypatch.setattr(targets, "initial_weights", blown)
    res = simulate(problem.with_overrides("sample.thetas=[]"), replicas=3, device="cpu")
    ref = runs["bad"]
    np.testing.assert_array_equal(res.replica_status, ref.replica_status)
    np.testing.assert_array_equal(res.replica_theta_stop, ref.replica_theta_stop)
    np.testing.assert_allclose(res.train.Q, ref.train.Q, rtol=1e-9, atol=1e-12)  # NaN alike


def test_theory_replica_diverges_alone(runs):
    th = runs["th_bad"]
    _check_one_stopped(th, runs["th_good"], exact=False)
    assert "ODE diverged at theta" in th.replica_message[BLOWN]


def test_statuses_round_trip(runs, tmp_path):
    for name in ("bad", "th_bad"):
        res = runs[name]
        back = hdae.read(res.write(tmp_path / f"{name}.h5"))
        assert back.status == res.status and back.message == res.message
        np.testing.assert_array_equal(back.replica_status, res.replica_status)
        np.testing.assert_array_equal(back.replica_message, res.replica_message)
        np.testing.assert_array_equal(back.replica_theta_stop, res.replica_theta_stop)
        np.testing.assert_array_equal(back.train.Q, res.train.Q)  # NaN where it stopped


def test_statuses_of_every_generation_round_trip(problem, tmp_path):
    p = problem.with_overrides("generations.count=2", "sample.thetas=[2.0]")
    sim = simulate(p, replicas=2, device="cpu")
    gens = [sim.generation(g) for g in range(2)]
    gens[1].replica_status = np.array(["success", "diverged"])
    gens[1].replica_message = np.array(["", "SGD diverged at step 9 (theta = 0.09): injected"], dtype=object)
    gens[1].replica_theta_stop = np.array([np.nan, 0.09])
    back = hdae.read(sim.write(tmp_path / "gens.h5"))
    assert list(back.generation(0).replica_status) == ["success"] * 2
    assert list(back.generation(1).replica_status) == ["success", "diverged"]
    assert back.generation(1).replica_theta_stop[1] == 0.09
    assert list(back.replica_status) == ["success", "diverged"]  # the root: the last generation's


def test_old_files_derive_the_replica_status(tmp_path):
    """A file without /replicas: every replica gets the run's status and message."""
    train = TrainRecord(np.array([0.0, 0.1]), np.zeros((2, 2, 1, 1)), np.zeros((2, 2, 1, 1, 1)),
                        np.zeros((2, 2, 1, 1)), np.zeros((2, 2, 1, 1)), np.zeros((2, 2)))
    res = Result(kind="simulation", config_text=SMALL, seed=5, d=200, train=train, status="diverged",
                 message="SGD diverged at step 3 (theta = 0.1)")
    path = res.write(tmp_path / "old.h5")
    import h5py

    with h5py.File(path, "a") as f:
        del f["replicas"]
    back = hdae.read(path)
    assert list(back.replica_status) == ["diverged", "diverged"] and not back.replica_ok.any()
    assert back.replica_message[1] == res.message and np.isnan(back.replica_theta_stop).all()


def test_combine_replicas():
    assert combine_replicas(["success"] * 3, [""] * 3) == ("success", "")
    one = "integrator failed at theta = 1"
    assert combine_replicas(["failed"], [one]) == ("failed", one)
    status, message = combine_replicas(["diverged", "failed", "success"], ["a", "b", ""])
    assert status == "diverged" and message.startswith("2 of 3 replicas stopped (replicas 0, 1; 1 completed)")
    assert combine_replicas(["failed", "failed"], ["x", "y"])[0] == "failed"


def test_info_and_compare_show_the_replica_status(runs, tmp_path):
    sim, th = runs["bad"].write(tmp_path / "sim.h5"), runs["th_bad"].write(tmp_path / "th.h5")
    r = CliRunner().invoke(cli, ["info", str(sim)])
    assert r.exit_code == 0, r.output
    assert "replicas: 2 success, 1 diverged" in r.output
    assert "replica 1: diverged at theta" in r.output and "SGD diverged at step" in r.output
    r = CliRunner().invoke(cli, ["info", str(runs["good"].write(tmp_path / "good.h5"))])
    assert "replicas: 3 success" in r.output
    r = CliRunner().invoke(cli, ["compare", str(th), str(sim)])
    assert r.exit_code == 3  # a diverged run is no success, but its table is printed
    assert "replicas compared (succeeded in both files): 0, 2" in r.output
    assert "replica 1 left out (theory diverged" in r.output and "simulation diverged" in r.output
    assert "statistic" in r.output and "nan" not in r.output.split("replicas compared")[1].split("Error")[0]


def test_compare_uses_only_replicas_that_succeeded_in_both(runs):
    from hdae import compare

    reps, notes = compare.compared_replicas(runs["th_good"], runs["bad"])
    assert list(reps) == [0, 2] and len(notes) == 1 and "simulation diverged" in notes[0]
    rows = {r.name: r for r in compare.compare_training(runs["th_good"], runs["bad"])}
    assert all(np.isfinite(r.max_dev) and np.isfinite(r.spread) for r in rows.values())
    reps, notes = compare.compared_replicas(runs["th_good"], runs["good"])
    assert list(reps) == [0, 1, 2] and notes == []


def test_pooled_plots_and_sweep_summaries_skip_stopped_replicas(runs):
    from hdae import plotting, sweep

    assert plotting.replica_indices(runs["bad"], None) == [0, 2]
    assert plotting.replica_indices(runs["bad"], 1) == [1]
    summ = sweep._run_payload(runs["th_bad"], False)["summary"]
    np.testing.assert_array_equal(summ["diverged"], [0, 1, 0])
    assert summ["theta_reached"][0] == summ["theta_reached"][2] == 2.0
    assert summ["theta_reached"][BLOWN] < runs["th_bad"].replica_theta_stop[BLOWN]
    assert np.isfinite(summ["modes"][[0, 2]]).all() and np.isnan(summ["modes"][BLOWN])


# ----------------------------------------------------------------------------- batched integration
def _setups_and_states(problem, scales=(1.0, 1.0, 1.5)):
    from hdae.theory import quadrature
    from hdae.theory.ode import TrainingSetup
    from hdae.theory.solve import initial_state

    w0 = targets.initial_weights(problem.target, problem.init, problem.model.width, problem.d, problem.seed, 3)
    w0 *= np.asarray(scales)[:, None, None]
    reduced, states = initial_state(problem, "realised", problem.d, w0)
    tr, th = problem.train, problem.theory
    nodes = quadrature.choose(TrainingSetup.integration_dim(problem.model.width, len(tr.times)),
                              problem.model.activation, th.quadrature, th.nodes)
    setup = TrainingSetup(reduced=reduced, activation=problem.model.activation,
                          alphas=tr.interpolant.alpha(tr.times), betas=tr.interpolant.beta(tr.times),
                          omegas=tr.time_weights, lr=tr.lr, weight_decay=tr.weight_decay, nodes=nodes)
    return [setup] * 3, states


@pytest.mark.parametrize("times", [[0.5], [0.3, 0.8]], ids=["one-time", "two-times"])
def test_batched_operators_equal_each_cluster_alone(small_problem, times):
    """One kernel call for all replicas' clusters = the one-cluster kernel on each node block, cluster by
    cluster and replica by replica."""
    from hdae import activations
    from hdae.theory.kernels import cluster_expectations
    from hdae.theory.ode import _cluster_maps, _node_blocks, _operators_from, operators_batch

    p = small_problem.with_overrides(f"train.times={times}", f"train.time_weights={[1.0 / len(times)] * len(times)}")
    setups, states = _setups_and_states(p)
    stats = [(*st.aggregates(su.reduced.s)[:3], st.b + 0.1 * i) for i, (st, su) in enumerate(zip(states, setups))]
    batch = operators_batch(stats, setups)
    for (Q, Omega, M, b), su, ops in zip(stats, setups, batch):
        mp = _cluster_maps(Q, Omega, M, su)
        nb = _node_blocks(len(su.nodes.weights), len(mp["active"]))
        r, T, N = Q.shape[0], len(su.alphas), len(su.nodes.weights)
        size = (N + nb - 1) // nb
        shapes = [(r,), (r, r), (r, r), (r, r), (r, r), (r, r), (T, r), (T, T, r, r), (1,)]
        sums = [np.zeros((len(mp["active"]), *sh)) for sh in shapes]
        for c in range(len(mp["active"])):
            for lo in range(0, N, size):  # each block accumulated alone, then summed: the kernel's order
                out = [np.zeros(sh) for sh in shapes]
                cluster_expectations(su.nodes.points[lo:lo + size], su.nodes.weights[lo:lo + size], mp["Ls"][c],
                                     mp["means"][c], mp["Ms"][c], su.alphas, su.betas, su.omegas, float(b), Q,
                                     activations.code(su.activation), mp["C"] is not None, *out)
                for acc, part in zip(sums, out):
                    acc[c] += part
        ref = _operators_from(sums, Q, Omega, b, mp["C"], su)
        for a, e in zip(ops, ref):
            np.testing.assert_allclose(a, e, rtol=1e-12, atol=1e-14)


def test_integrate_batch_equals_one_by_one(small_problem):
    from hdae.theory.ode import integrate, integrate_batch

    setups, states = _setups_and_states(small_problem)
    t_out = np.linspace(0, 0.5, 6)
    batch = integrate_batch(states, setups, t_out, "rk4", 0.02)
    for st, su, sol in zip(states, setups, batch):
        alone = integrate(st, su, t_out, "rk4", 0.02)
        assert sol.ok and alone.ok
        np.testing.assert_allclose(sol.y, alone.y, rtol=1e-13, atol=1e-15)


def test_integrate_batch_freezes_a_diverging_trajectory(problem):
    from hdae.theory.ode import integrate, integrate_batch

    setups, states = _setups_and_states(problem, (1.0, 8.0, 1.5))
    t_out = np.linspace(0, 1.0, 6)
    sols = integrate_batch(states, setups, t_out, "rk4", 0.02)
    assert [s.status for s in sols] == [0, 1, 0]
    assert len(sols[1].y) < len(t_out) and "ODE diverged at theta" in sols[1].message
    for k in (0, 2):
        np.testing.assert_allclose(sols[k].y, integrate(states[k], setups[k], t_out, "rk4", 0.02).y,
                                   rtol=1e-13, atol=1e-15)
    adaptive = integrate_batch(states, setups, t_out, "adaptive")
    assert [s.status for s in adaptive] == [0, 1, 0]
