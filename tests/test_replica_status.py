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


def test_training_plot_pools_the_replicas_that_succeeded_in_both(runs):
    """The theory from the good start has three finished trajectories, the 'bad' simulation only
    replicas 0 and 2 (its replicas 0 and 2 start from the same w_0): the pooled training plot
    averages the theory over those two as well, not over a trajectory whose simulation stopped."""
    from hdae import plotting

    th, sim = runs["th_good"], runs["bad"]
    fig = plotting.plot_training(th, sim, stats=("b",))
    ax = fig.axes[0]
    dashed = [ln for ln in ax.get_lines() if ln.get_linestyle() not in ("-", "None")]
    solid = [ln for ln in ax.get_lines() if ln.get_linestyle() == "-"]
    np.testing.assert_allclose(dashed[0].get_ydata(), th.train.b[[0, 2]].mean(0))
    np.testing.assert_allclose(solid[0].get_ydata(), sim.train.b[[0, 2]].mean(0))
    assert not np.allclose(th.train.b[[0, 2]].mean(0), th.train.b.mean(0))  # the pairing matters here
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "theory (mean of 2 trajectories)" in labels


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


# ----------------------------------------------------------------------------- every replica stopped
def _all_stopped(runs):
    """Copies of the 'bad' theory and simulation with every replica marked stopped, replica 0 of the
    simulation NaN from checkpoint 3 on and replica 2 of the theory NaN from checkpoint 4 on (replica 1
    is NaN after its own divergence in both)."""
    import copy

    th, sm = copy.deepcopy(runs["th_bad"]), copy.deepcopy(runs["bad"])
    for res in (th, sm):
        res.replica_status = np.array(["diverged"] * 3)
        res.replica_message = np.array(["injected"] * 3, dtype=object)
        res.status, res.message = "diverged", "3 of 3 replicas stopped (injected)"
    for k in ("Q", "Omega", "M", "G", "b"):
        getattr(sm.train, k)[0, 3:] = np.nan
        getattr(th.train, k)[2, 4:] = np.nan
    sm.sample.projected[0, 1:] = np.nan  # replica 0's samples after its stop
    return th, sm


def _nan_aware_reference(a, b):
    """(max_dev, scale, spread, mean_dev) of theory a and simulation b (n, k, ...), written out by hand:
    only the (replica, checkpoint) entries where both are finite."""
    n, k = a.shape[:2]
    ok = [[np.isfinite(a[r, j]).all() and np.isfinite(b[r, j]).all() for j in range(k)] for r in range(n)]
    devs = [np.max(np.abs(a[r, j] - b[r, j])) for r in range(n) for j in range(k) if ok[r][j]]
    scales = [np.max(np.abs(b[r, j])) for r in range(n) for j in range(k) if ok[r][j]]
    spreads, means = [], []
    for j in range(k):
        rows = [r for r in range(n) if ok[r][j]]
        if len(rows) >= 2:
            spreads.append(np.max(np.std(b[rows, j], axis=0, ddof=1)))
        if rows:
            means.append(np.max(np.abs(np.mean(a[rows, j], 0) - np.mean(b[rows, j], 0))))
    return max(devs), max(scales), max(spreads), max(means)


def test_compare_with_every_replica_stopped_is_nan_aware(runs):
    from hdae import compare

    th, sm = _all_stopped(runs)
    reps, notes = compare.compared_replicas(th, sm)
    assert list(reps) == [0, 1, 2] and "compared anyway" in notes[0]
    rows = compare.compare_training(th, sm)
    assert [r.name for r in rows][:5] == ["Q", "Omega", "M", "G", "b"]
    for r in rows:
        a, b = getattr(th.train, r.name), getattr(sm.train, r.name)
        ref = _nan_aware_reference(a, b)
        assert np.isfinite([r.max_dev, r.scale, r.spread, r.mean_dev]).all(), r
        np.testing.assert_allclose([r.max_dev, r.scale, r.spread, r.mean_dev], ref, rtol=1e-12)
        assert r.checkpoints == 4  # at theta = 2 (the last of 5) every replica is NaN in one file or the other
    assert compare.tolerance_failures(rows, 1e9) == []
    # the samples: replica 0 of the simulation enters only at theta = 0, where it is finite
    samples = compare.compare_samples(th, sm)
    assert all(np.isfinite([s.mean_dev, s.cov_dev, s.distance, s.floor, s.ratio]).all() for s in samples)
    # a statistic without any finite common checkpoint is NaN, and never within a tolerance
    sm.train.b[:] = np.nan
    rows = {r.name: r for r in compare.compare_training(th, sm)}
    assert np.isnan(rows["b"].max_dev) and rows["b"].checkpoints == 0 and np.isfinite(rows["Q"].max_dev)
    assert compare.tolerance_failures(list(rows.values()), 1e9) == ["b"]


def test_compare_cli_with_every_replica_stopped(runs, tmp_path):
    th, sm = _all_stopped(runs)
    r = CliRunner().invoke(cli, ["compare", str(th.write(tmp_path / "th.h5")), str(sm.write(tmp_path / "sim.h5"))])
    assert r.exit_code == 3, r.output
    assert "succeeded in both files)" not in r.stdout
    assert "replicas compared (none succeeded in both files; each where both files hold finite values): 0, 1, 2" \
        in r.stdout
    assert "3 compared although stopped" in r.stdout.splitlines()[0]
    assert "replica 0 compared anyway (theory diverged: injected; simulation diverged: injected); finite at 3 of 5 " \
           "common checkpoints, theta 0 to 1" in r.stdout
    table = r.stdout.split("statistic")[1].split("generated samples")[0]
    assert "nan" not in table
    q = next(ln.split() for ln in table.splitlines() if ln.startswith("Q "))
    ref = _nan_aware_reference(th.train.Q, sm.train.Q)
    assert [float(q[1]), float(q[2]), float(q[4]), float(q[5])] == pytest.approx(ref, rel=1e-3)


def test_compare_normal_case_unchanged_and_nan_in_a_success_still_shows(runs, tmp_path):
    """All replicas succeeded: the rows are the plain max / std / mean over everything (the formulas
    from before the NaN-aware reductions); a NaN in a replica that claims success is not masked: --tol
    fails on it."""
    import copy

    from hdae import compare

    th, sm = runs["th_good"], runs["good"]
    for r in compare.compare_training(th, sm):
        a, b = getattr(th.train, r.name), getattr(sm.train, r.name)
        assert r.max_dev == float(np.abs(a - b).max()) and r.scale == float(np.abs(b).max())
        assert r.spread == float(b.std(0, ddof=1).max()) and r.mean_dev == float(np.abs(a.mean(0) - b.mean(0)).max())
    bad = copy.deepcopy(sm)
    bad.train.Q[0, 2, 0, 0] = np.nan
    rows = {r.name: r for r in compare.compare_training(th, bad)}
    assert np.isnan(rows["Q"].max_dev) and compare.tolerance_failures(list(rows.values()), 1e9) == ["Q"]
    r = CliRunner().invoke(cli, ["compare", str(th.write(tmp_path / "th.h5")), str(bad.write(tmp_path / "sim.h5")),
                                 "--tol", "1e9"])
    assert r.exit_code == 1 and "not finite) for: Q" in r.stderr


# ----------------------------------------------------------------------------- hdae run with stopped replicas
def _blow(monkeypatch, replicas=(BLOWN,), generation=0):
    real = targets.initial_weights

    def blown(target, init, width, d, seed, n=1, g=0):
        w = real(target, init, width, d, seed, n, g)
        if g == generation and n > 1:
            w[list(replicas)] *= 8.0
        return w

    monkeypatch.setattr(targets, "initial_weights", blown)


def _run_cli(tmp_path, out, *extra):
    cfg = tmp_path / "p.toml"
    cfg.write_text(SMALL)
    args = ["run", str(cfg), "--replicas", "3", "-q", "-o", str(out), *extra]
    for o in OVERRIDES:
        args += ["--set", o]
    return CliRunner().invoke(cli, args)


def test_run_goes_on_when_some_replicas_stopped(tmp_path, monkeypatch):
    _blow(monkeypatch)
    out = tmp_path / "run"
    r = _run_cli(tmp_path, out)
    assert r.exit_code == 3, r.output  # a run with a stopped replica is never a success
    assert sorted(p.name for p in out.iterdir()) == ["comparison.txt", "densities.png", "simulation.h5",
                                                     "theory.h5", "training.png"]
    error = r.stderr.strip().splitlines()[-1]
    assert error.startswith("Error: simulation stopped: 1 of 3 replicas stopped (replica 1; 2 completed)")
    assert "the comparison and figures cover the replicas that succeeded (replicas 0, 2)" in error
    assert "saved simulation.h5, theory.h5, comparison.txt, densities.png, training.png" in error
    labels = [ln.split()[0] for ln in r.stderr.strip().splitlines()[:-1]]
    assert labels == ["simulation", "theory", "report", "densities", "training"]
    assert "training  " in r.stderr  # label and path apart
    text = (out / "comparison.txt").read_text()
    assert text.startswith("training: 5 common checkpoints")
    assert "replicas compared (succeeded in both files): 0, 2" in text and "replica 1 left out" in text
    assert "nan" not in text.split("statistic")[1]
    assert hdae.read(out / "simulation.h5").replica_status[BLOWN] == "diverged"
    # the report is what compare prints on the files written
    c = CliRunner().invoke(cli, ["compare", str(out / "theory.h5"), str(out / "simulation.h5")])
    assert c.exit_code == 3 and c.stdout == text and r.stdout == text


def test_run_stops_early_when_every_replica_stopped(tmp_path, monkeypatch):
    _blow(monkeypatch, replicas=(0, 1, 2))
    out = tmp_path / "run"
    r = _run_cli(tmp_path, out)
    assert r.exit_code == 3
    assert [ln for ln in r.stderr.splitlines() if ln.strip()] == [r.stderr.strip()]
    assert r.stderr.startswith("Error: simulation stopped: 3 of 3 replicas stopped")
    assert sorted(p.name for p in out.iterdir()) == ["simulation.h5"]


def test_run_generations_with_a_replica_stopped_in_a_later_generation(tmp_path, monkeypatch):
    _blow(monkeypatch, generation=1)
    out = tmp_path / "run"
    r = _run_cli(tmp_path, out, "--generations", "3", "--set", "sample.thetas=[2.0]")
    assert r.exit_code == 3, r.output
    assert sorted(p.name for p in out.iterdir()) == ["collapse.png", "comparison.txt", "densities.png",
                                                     "generations.png", "simulation.h5", "theory.h5", "training.png"]
    error = r.stderr.strip().splitlines()[-1]
    assert "simulation stopped: generation 1: 1 of 3 replicas stopped (replica 1" in error
    assert "2 of 3 generations computed" in error and "(replicas 0, 2)" in error
    text = (out / "comparison.txt").read_text()
    gen0, gen1 = text.split("== generation 1 ==")
    assert "left out" not in gen0 and "replicas compared (succeeded in both files): 0, 2" in gen1
    assert "model collapse (replica 0," in text
    assert "nan" not in text
    assert [g.replica_status[BLOWN] for g in hdae.read(out / "simulation.h5").generations] == ["success", "diverged"]
