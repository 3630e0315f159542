"""Sweeps (hdae.sweep), their phase diagrams (hdae.sweep_plot) and the density diagnostics
(hdae.diagnostics): grid syntax, every point equal to the same problem solved alone (on a local
Dask cluster, bit for bit), kill-and-resume, failed points, and the diagnostics against closed forms."""
from __future__ import annotations

import importlib.util
import math
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from scipy.stats import norm

import hdae
from cli.main import cli
from hdae import diagnostics as dg
from hdae import sweep
from hdae.results import TRAIN_STATS

from conftest import SMALL

REPO = Path(__file__).resolve().parent.parent
FAST = ["theory.dt=0.1", "sample.n=200", "sample.steps=8"]



def _same(a, b) -> bool:
    """Equal numbers: floats to 1e-12 (NaN where NaN), everything else exactly. The numba kernels'
    vectorised (fastmath) sums start at the arrays' alignment, so another process (a Dask worker)
    can differ in the last bits."""
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype.kind == "f" or b.dtype.kind == "f":
        return a.shape == b.shape and bool(np.allclose(a, b, rtol=1e-12, atol=1e-14, equal_nan=True))
    return np.array_equal(a, b)

def _tiny(tmp_path) -> Path:
    path = tmp_path / "small.toml"
    path.write_text(SMALL)
    return path


# ----------------------------------------------------------------------------- grid
def test_parse_axis_forms():
    assert sweep.parse_axis("train.lr=0.05,0.1,0.2").values == (0.05, 0.1, 0.2)
    assert sweep.parse_axis("model.width=1:4").values == (1, 2, 3, 4)  # both ends included
    assert sweep.parse_axis("model.activation=relu,tanh").values == ("relu", "tanh")
    lin = sweep.parse_axis("train.tau=lin:0.5:2:4").values
    assert np.allclose(lin, [0.5, 1.0, 1.5, 2.0]) and lin[0] == 0.5 and lin[-1] == 2.0
    log = sweep.parse_axis("train.weight_decay=log:1e-3:1:4").values
    assert np.allclose(log, [1e-3, 1e-2, 1e-1, 1.0]) and log[0] == 1e-3 and log[-1] == 1.0
    assert sweep.parse_axis("train.times=[0.5],[0.3, 0.7]").values == ([0.5], [0.3, 0.7])
    assert sweep.parse_axis("train.lr=log:0.01:10:20").log


@pytest.mark.parametrize("spec, words", [
    ("train.lr", "section.key=VALUES"), ("train.lr=3:1", "empty"), ("train.lr=log:0:1:3", "positive"),
    ("train.lr=lin:0:1", "lin:START:STOP:N"), ("train.lr=0.1,,0.2", "empty value"), ("train.lr=0.1,0.1", "repeated"),
])
def test_parse_axis_errors_name_the_key(spec, words):
    with pytest.raises(sweep.SweepError, match=words):
        sweep.parse_axis(spec)


def test_points_are_the_cartesian_product_first_axis_slowest(tmp_path):
    spec = sweep.make_spec(_tiny(tmp_path), grid=["train.lr=0.1,0.3", "model.width=1:3"])
    points = sweep.plan(spec)
    assert [p.position for p in points] == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    assert points[4].overrides == ["train.lr=0.3", "model.width=2"]
    problem = hdae.load_problem(points[4].config)
    assert problem.train.lr == 0.3 and problem.model.width == 2
    assert points[4].dims == (2, 3, 2, 6, 2)  # r, K, R, checkpoints, sampled times


def test_swept_and_set_twice_is_refused(tmp_path):
    with pytest.raises(sweep.SweepError, match="both swept"):
        sweep.make_spec(_tiny(tmp_path), overrides=["train.lr=0.2"], grid=["train.lr=0.1,0.3"])
    with pytest.raises(sweep.SweepError, match="swept twice"):
        sweep.make_spec(_tiny(tmp_path), grid=["train.lr=0.1", "train.lr=0.3"])
    with pytest.raises(sweep.SweepError, match="every point is invalid"):
        sweep.plan(sweep.make_spec(_tiny(tmp_path), grid=["train.no_such_key=1,2"]))


# ----------------------------------------------------------------------------- the sweep
def _alone(tmp_path, point: sweep.Point, overrides):
    return hdae.solve(hdae.load_problem(_tiny(tmp_path), overrides=list(overrides) + point.overrides))


def _unpad(a, shape):
    return a[tuple(slice(0, s) for s in shape)]


def test_tiny_sweep_on_a_local_cluster_equals_each_problem_solved_alone(tmp_path):
    """Every point of a 2 x 2 sweep (two widths: padded shapes) run by 2 Dask worker processes
    equals, bit for bit, the same problem solved alone in this process (trajectories, samples,
    summaries)."""
    pytest.importorskip("distributed")
    out = tmp_path / "s.h5"
    spec = sweep.make_spec(_tiny(tmp_path), overrides=FAST, grid=["train.lr=0.1,0.3", "model.width=1:2"],
                           keep_samples=True)
    report = sweep.run_sweep(spec, out, workers=2)
    assert report.counts == {"pending": 0, "success": 4, "diverged": 0, "failed": 0}
    with h5py.File(out, "r") as f:
        workers = {w.decode().split(":")[1] for w in f["points/worker"][()]}
        assert str(os.getpid()) not in workers  # computed on the workers, not here
        for p in sweep.plan(spec):
            alone = _alone(tmp_path, p, FAST)
            th = f["theory"]
            assert th["status"][p.index] == sweep.SUCCESS
            n = len(alone.train.theta)
            assert np.array_equal(th["train/theta"][p.index][:n], alone.train.theta)
            assert np.isnan(th["train/theta"][p.index][n:]).all()
            for k in TRAIN_STATS:
                ref = getattr(alone.train, k)[0]
                assert _same(_unpad(th["train"][k][p.index], ref.shape), ref), k
            proj = alone.sample.projected[0]
            assert _same(_unpad(th["sample/projected"][p.index], proj.shape), proj)
            if p.dims[0] == 1:  # width 1 padded to 2: the rest is NaN
                assert np.isnan(th["train/Q"][p.index][:, 1, :]).all()
            s = dg.summarise(alone)
            assert th["summary/modes"][p.index] == s.modes
            assert _same(th["summary/distance"][p.index], s.distance)
            assert _same(th["summary/b_final"][p.index], alone.train.b[0, -1])
            assert _same(_unpad(th["summary/M_final"][p.index], alone.train.M[0, -1].shape), alone.train.M[0, -1])


def test_failing_points_are_recorded_and_the_others_complete(tmp_path, monkeypatch):
    """An invalid combination (w_0 = 0), a divergence and an exception inside solve each become a
    stored, failed or diverged point with its message; the other points (of the same chunk) complete."""
    import importlib

    out = tmp_path / "s.h5"
    mod = importlib.import_module("hdae.theory.solve")
    real_start = mod.initial_state

    def flaky_start(problem, *args, **kw):
        if problem.train.lr == 0.3 and problem.init.scale == 0.3 and problem.init.warm_norm == 0.0:
            raise RuntimeError("injected failure")
        return real_start(problem, *args, **kw)

    monkeypatch.setattr(mod, "initial_state", flaky_start)
    spec = sweep.make_spec(_tiny(tmp_path), overrides=FAST + ["sample.thetas=[0.5]"],
                           grid=["train.lr=0.1,0.3", "init.scale=0,0.3", "init.warm_norm=0,0.3",
                                 "theory.divergence=1e6,0.2"])
    report = sweep.run_sweep(spec, out, serial=True, chunk=16)
    s = sweep.SweepFile(out)
    assert report.computed == 16 and s.status.size == 16 and (s.status != sweep.PENDING).all()
    pos = {tuple(i): n for n, i in enumerate(s.index)}
    for (lr, sc, wn, dv), n in pos.items():
        if sc == 0 and wn == 0:
            assert s.status[n] == sweep.FAILED and "w_0 = 0" in s.message[n]
            assert np.isnan(s.runs["theory"]["train"]["Q"][n]).all()
        elif lr == 1 and sc == 1 and wn == 0:
            assert s.status[n] == sweep.FAILED and "RuntimeError: injected failure" in s.message[n]
        elif dv == 1 and wn == 1:  # |statistics| > 0.2 at theta = 0 already: bad input, a failed point
            assert s.status[n] == sweep.FAILED and "initial statistics are already out of range" in s.message[n]
        elif dv == 1:  # |statistics| > 0.2 on the way: stops, the checkpoints before are kept
            assert s.status[n] == sweep.DIVERGED and "diverged" in s.message[n]
            reached = s.runs["theory"]["summary"]["theta_reached"][n]
            assert 0 <= reached < 0.5 and s.runs["theory"]["summary"]["diverged"][n] == 1
            assert np.isnan(s.runs["theory"]["summary"]["modes"][n])  # no sample at theta = 0.5
        else:
            assert s.status[n] == sweep.SUCCESS and s.message[n] == ""
            assert np.isfinite(s.runs["theory"]["train"]["Q"][n]).all()
            assert s.runs["theory"]["summary"]["modes"][n] >= 1


def _stored(path):
    with h5py.File(path, "r") as f:
        out = {k: f["theory"]["train"][k][()] for k in TRAIN_STATS}
        out.update({f"summary/{k}": f["theory/summary"][k][()] for k in f["theory/summary"]})
        out.update(status=f["points/status"][()], theory_status=f["theory/status"][()],
                   message=f["points/message"][()], sample=f["theory/sample/projected"][()])
    return out


def test_chunked_sweeps_store_the_numbers_of_one_point_per_task(tmp_path, monkeypatch):
    """The same sweep (two widths: two batches; a diverging point) computed one point per task, in
    chunks in this process, and in chunks on 2 Dask workers stores the same numbers; a chunk whose
    shared solve raises is computed again point by point, each point with its own error."""
    grid = ["train.lr=0.1,0.3,9", "model.width=1:2", "train.weight_decay=0,0.5"]
    spec = sweep.make_spec(_tiny(tmp_path), overrides=FAST + ["theory.divergence=3"], grid=grid, keep_samples=True)
    assert sweep.chunk_size(64, 2) == 8 and sweep.chunk_size(1000, 2) == 32 and sweep.chunk_size(3, 4) == 1
    parts = sweep.chunks([p for p in sweep.plan(spec)], 5)
    assert [len(c) for c in parts] == [5, 1, 5, 1] and all(len({p.dims[0] for p in c}) == 1 for c in parts)
    one = tmp_path / "one.h5"
    sweep.run_sweep(spec, one, serial=True, chunk=1)
    ref = _stored(one)
    assert (ref["status"] == sweep.SUCCESS).sum() >= 6 and (ref["status"] == sweep.DIVERGED).sum() >= 1
    runs = {"serial": dict(serial=True), "serial-5": dict(serial=True, chunk=5)}
    if importlib.util.find_spec("distributed") is not None:
        runs["dask-3"] = dict(workers=2, chunk=3)
    for name, kw in runs.items():
        got = _stored(tmp_path / f"{name}.h5") if sweep.run_sweep(spec, tmp_path / f"{name}.h5", **kw) else None
        for k, v in ref.items():
            assert _same(got[k], v), (name, k)

    def broken(*args, **kw):
        raise MemoryError("the whole chunk")

    real_solve = hdae.solve

    def flaky_solve(problem, **kw):
        if problem.train.lr == 0.3 and problem.model.width == 2 and problem.train.weight_decay == 0.5:
            raise RuntimeError("injected failure")
        return real_solve(problem, **kw)

    monkeypatch.setattr(hdae.theory, "solve_many", broken)
    monkeypatch.setattr(hdae, "solve", flaky_solve)
    fallback = tmp_path / "fallback.h5"
    sweep.run_sweep(spec, fallback, serial=True, chunk=12)
    got, s = _stored(fallback), sweep.SweepFile(fallback)
    bad = [i for i, p in enumerate(sweep.plan(spec)) if p.overrides == ["train.lr=0.3", "model.width=2",
                                                                       "train.weight_decay=0.5"]]
    assert s.status[bad[0]] == sweep.FAILED and "RuntimeError: injected failure" in s.message[bad[0]]
    keep = np.ones(len(s.status), bool)
    keep[bad] = False
    for k, v in ref.items():
        assert _same(got[k][keep], v[keep]), k


def _run_cli_subprocess(args, env_extra=None):
    env = dict(os.environ, PYTHONPATH=str(REPO), **(env_extra or {}))
    return subprocess.run([sys.executable, "-m", "cli.main", "sweep", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


def test_killed_sweep_resumes_losing_and_repeating_nothing(tmp_path):
    """SIGKILL the driver while it writes its 3rd point (after the data, before the commit flag):
    the file stays readable with exactly 2 points stored; resuming computes exactly the 4
    others, leaves the 2 untouched, and ends equal to an uninterrupted sweep."""
    problem = _tiny(tmp_path)
    args = [str(problem), *sum((["--set", o] for o in FAST), []), "--grid", "train.lr=0.1,0.2,0.3",
            "--grid", "train.weight_decay=0,0.5", "--serial", "-q"]
    out = tmp_path / "k.h5"
    killed = _run_cli_subprocess(args + ["-o", str(out)], {"HDAE_SWEEP_KILL": "2:mid"})
    assert killed.returncode == -9, killed.stderr
    first = sweep.SweepFile(out)
    stored = first.status != sweep.PENDING
    assert stored.sum() == 2
    assert np.isfinite(first.runs["theory"]["train"]["Q"][2]).any()  # 3rd point's data written, not committed
    before = {k: first.runs["theory"]["train"][k][stored] for k in TRAIN_STATS}
    wall_before = first.wall_time[stored]

    spec = sweep.make_spec(problem, overrides=FAST, grid=["train.lr=0.1,0.2,0.3", "train.weight_decay=0,0.5"])
    report = sweep.run_sweep(spec, out, serial=True)
    assert (report.computed, report.skipped) == (4, 2)
    after = sweep.SweepFile(out)
    assert (after.status == sweep.SUCCESS).all()
    assert np.array_equal(after.wall_time[stored], wall_before)  # not recomputed
    for k in TRAIN_STATS:
        assert np.array_equal(after.runs["theory"]["train"][k][stored], before[k], equal_nan=True)
    again = sweep.run_sweep(spec, out, serial=True)
    assert (again.computed, again.skipped) == (0, 6)

    whole = tmp_path / "whole.h5"
    sweep.run_sweep(spec, whole, serial=True)
    ref = sweep.SweepFile(whole)
    for k in TRAIN_STATS:
        assert np.array_equal(after.runs["theory"]["train"][k], ref.runs["theory"]["train"][k], equal_nan=True)


def test_written_points_change_no_hdf5_metadata(tmp_path):
    """After creation, storing points changes only bytes inside the datasets' raw storage (so a
    kill at any moment cannot corrupt the file's structure) and never the file size."""
    spec = sweep.make_spec(_tiny(tmp_path), overrides=FAST, grid=["train.lr=0.1,0.3"], simulate=True, replicas=2,
                           keep_samples=True)
    out = tmp_path / "m.h5"
    points, _ = sweep.open_or_create(out, spec)
    before = np.frombuffer(out.read_bytes(), np.uint8)
    ranges = []
    with h5py.File(out, "r") as f:
        f.visititems(lambda name, obj: ranges.append((obj.id.get_offset(), obj.id.get_offset()
                                                      + obj.id.get_storage_size()))
                     if isinstance(obj, h5py.Dataset) else None)
    with h5py.File(out, "r+") as f:
        for p in points:
            sweep._write_point(f, sweep.compute_point(p.index, p.config, simulate=True, replicas=2, device="cpu",
                                                      keep_samples=True))
    after = np.frombuffer(out.read_bytes(), np.uint8)
    assert after.size == before.size
    changed = np.nonzero(after != before)[0]
    assert changed.size > 0
    inside = np.zeros(changed.size, bool)
    for lo, hi in ranges:
        inside |= (changed >= lo) & (changed < hi)
    assert inside.all()
    s = sweep.SweepFile(out)
    assert s.runs["simulation"]["summary"]["modes"].shape == (2, 2)  # (points, replicas)
    assert (s.runs["simulation"]["status"] == sweep.SUCCESS).all()


def test_existing_file_of_another_sweep_is_not_clobbered(tmp_path):
    out = tmp_path / "s.h5"
    a = sweep.make_spec(_tiny(tmp_path), overrides=FAST + ["sample.thetas=[]"], grid=["train.lr=0.1"])
    sweep.run_sweep(a, out, serial=True)
    b = sweep.make_spec(_tiny(tmp_path), overrides=FAST + ["sample.thetas=[]"], grid=["train.lr=0.2"])
    with pytest.raises(sweep.SweepError, match="different sweep"):
        sweep.run_sweep(b, out, serial=True)
    assert sweep.run_sweep(b, out, serial=True, force=True).computed == 1
    other = tmp_path / "x.h5"
    other.write_bytes(b"not hdf5")
    with pytest.raises(sweep.SweepError, match="not a readable sweep file"):
        sweep.run_sweep(b, other, serial=True)


# ----------------------------------------------------------------------------- command line and plots
def test_cli_sweep_and_phase_diagram(tmp_path):
    problem = _tiny(tmp_path)
    out = tmp_path / "s.h5"
    base = [str(problem), *sum((["--set", o] for o in FAST), []), "--grid", "train.lr=0.1,0.3",
            "--grid", "train.weight_decay=lin:0:1:3", "--grid", "init.scale=0,0.3", "--serial", "-o", str(out)]
    res = CliRunner().invoke(cli, ["sweep", *base, "--set", "init.warm_norm=0.0"])
    assert res.exit_code == 0, res.output
    assert "12 points (12 computed; 6 success, 0 diverged, 6 failed)" in res.output
    res = CliRunner().invoke(cli, ["sweep", *base, "--set", "init.warm_norm=0.0"])
    assert "0 computed, 12 already stored" in res.output
    png = tmp_path / "p.png"
    res = CliRunner().invoke(cli, ["plot", str(out), "-o", str(png), "--summary", "distance", "--at", "init.scale=0.3"])
    assert res.exit_code == 0, res.output
    assert png.stat().st_size > 10_000
    res = CliRunner().invoke(cli, ["plot", str(out), "-o", str(tmp_path / "l.png"), "--axes", "train.weight_decay"])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(cli, ["plot", str(out), "-o", str(tmp_path / "e.png"), "--at", "train.lr=0.2"])
    assert res.exit_code == 1 and "not a swept value" in res.output
    res = CliRunner().invoke(cli, ["sweep", str(problem), "--grid", "train.lr=3:1", "-o", str(tmp_path / "y.h5")])
    assert res.exit_code == 1 and res.output.count("\n") == 1 and "train.lr" in res.output


def test_select_fixes_and_averages_the_other_keys(tmp_path):
    spec = sweep.make_spec(_tiny(tmp_path), overrides=FAST, grid=["train.lr=0.1,0.3", "train.weight_decay=0,1",
                                                                  "init.scale=0.2,0.3"])
    out = tmp_path / "s.h5"
    sweep.run_sweep(spec, out, serial=True)
    from hdae.sweep_plot import select

    s = sweep.SweepFile(out)
    full = s.grid("b_final")  # (lr, wd, scale)
    v, status, notes = select(s, "b_final", ["train.weight_decay", "train.lr"], {"init.scale": "0.3"})
    assert np.array_equal(v, full[:, :, 1].T)
    v, _, notes = select(s, "b_final", ["train.lr"])
    assert np.allclose(v, full.reshape(2, -1).mean(1)) and "averaged over" in notes[0]


# ----------------------------------------------------------------------------- diagnostics
def test_count_modes_on_known_densities():
    x = np.linspace(-6, 6, 241)
    two = norm.pdf(x, -2, 0.6) + 0.5 * norm.pdf(x, 2, 0.6)
    assert dg.count_modes(two) == 2
    tiny_bump = two + 0.01 * norm.pdf(x, 5, 0.05) * 0.05 / 0.6  # 1% high: below the 5% threshold
    assert dg.count_modes(tiny_bump) == 2
    assert dg.count_modes(tiny_bump, threshold=0.001, prominence=0.001) == 3
    shoulder = norm.pdf(x, 0, 1) + norm.pdf(x, 1.0, 1)  # separation < 2 sd: one mode
    assert dg.count_modes(shoulder) == 1
    X, Y = np.meshgrid(x, x, indexing="ij")
    three = sum(np.exp(-((X - a) ** 2 + (Y - b) ** 2)) for a, b in ((2, 0), (-2, 0), (0, 3)))
    assert dg.count_modes(three) == 3
    assert dg.count_modes(np.ones((5, 5))) == 1 and dg.count_modes(np.zeros(7)) == 0


def test_mode_count_of_samples_finds_the_clusters():
    rng = np.random.default_rng(0)
    target = {"weights": np.array([0.3, 0.3, 0.4]), "means": np.array([[3.0, 0], [0, -3.0], [-3.0, 0]]),
              "covariances": np.array([np.eye(2)] * 3)}
    x = dg.mixture_samples(target["weights"], target["means"], target["covariances"], 3000, rng)
    assert dg.mode_count(x, np.zeros((2, 2))) == 3
    assert dg.mode_count(x[:, :1], np.zeros((1, 1)), dims=1) == 3  # x-marginal: -3, 0, 3, 3 sd apart
    # the Corollary 2.3 form: needles (tiny C) around few means give the same count as the smooth law
    assert dg.mode_count(x[:2000], 1e-6 * np.eye(2)) == 3
    one = rng.standard_normal((2000, 2))
    assert dg.mode_count(one, np.zeros((2, 2))) == 1


def _expected_abs(mu, s):
    """E|N(mu, s^2)|."""
    return s * math.sqrt(2 / math.pi) * math.exp(-mu ** 2 / (2 * s ** 2)) + mu * (1 - 2 * norm.cdf(-mu / s))


def test_target_distance_matches_the_closed_form_for_a_shifted_gaussian():
    """Energy distance^2 between N(delta, 1) and N(0, 1) in 1-D is 2E|N(delta, 2)| - 2E|N(0, 2)|."""
    delta = 1.5
    target = {"weights": np.array([1.0]), "means": np.array([[0.0]]), "covariances": np.array([[[1.0]]])}
    x = delta + np.random.default_rng(3).standard_normal((4000, 1))
    d = dg.target_distance(x, target, n=4000)
    exact = math.sqrt(2 * _expected_abs(delta, math.sqrt(2)) - 2 * _expected_abs(0.0, math.sqrt(2)))
    assert abs(d - exact) < 0.05 * exact
    floor = dg.target_floor(target, n=4000)
    assert floor < 0.1 * exact
    same = dg.target_distance(np.random.default_rng(4).standard_normal((4000, 1)), target, n=4000)
    assert same < 3 * floor


def test_summarise_a_theory_result_uses_corollary_2_3(small_problem):
    res = hdae.solve(small_problem.with_overrides(*FAST, "sample.n=1500"))
    s = dg.summarise(res)
    assert s.theta == res.sample.theta[-1] and s.modes >= 1
    means, cov = dg.generated_mixture(res)
    i = np.argmin(np.abs(res.train.theta - s.theta))
    Q, G, S = res.train.Q[0, i], res.train.G[0, i], res.sample.S[0, -1]
    assert np.allclose(cov, S * (np.eye(2) - G.T @ np.linalg.pinv(Q) @ G))
    assert np.allclose(means, res.sample.Z[0, -1] @ np.linalg.pinv(Q) @ G)
