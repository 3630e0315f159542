"""Result files: HDF5 round trips (simulation and theory), the replica axis on disk, atomic, no silent overwrite."""
from __future__ import annotations

import os

import h5py
import numpy as np
import pytest

import hdae
from hdae.results import OutputExistsError, Result, SampleRecord, TrainRecord
from hdae.simulation import simulate
from hdae.theory import solve

from conftest import SMALL




@pytest.fixture(scope="module")
def problem():
    return hdae.load_problem(SMALL, overrides=["sample.n=150"])


@pytest.fixture(scope="module")
def sim1(problem):
    return simulate(problem, device="cpu")


@pytest.fixture(scope="module")
def sim2(problem):
    return simulate(problem, replicas=2, device="cpu")


@pytest.fixture(scope="module")
def theory1(sim1):
    return solve(init_from=sim1)


def _assert_same(a: Result, b: Result):
    for k in ("kind", "hdae_version", "created", "config_text", "seed", "device", "wall_time_s", "status", "message",
              "d", "replica_axis"):
        assert getattr(a, k) == getattr(b, k), k
    assert type(b.seed) is int and type(b.d) is int and type(b.wall_time_s) is float
    assert isinstance(b.config_text, str) and isinstance(b.created, str) and isinstance(b.device, str)
    np.testing.assert_array_equal(a.train.theta, b.train.theta)
    for k in ("Q", "Omega", "M", "G", "b"):
        x, y = getattr(a.train, k), getattr(b.train, k)
        assert x.shape == y.shape and x.dtype == y.dtype, k
        np.testing.assert_array_equal(x, y)
    for k in ("init_w", "init_b"):
        x, y = getattr(a, k), getattr(b, k)
        assert (x is None) == (y is None)
        if x is not None:
            np.testing.assert_array_equal(x, y)
    assert (a.sample is None) == (b.sample is None)
    if a.sample is not None:
        for k in ("theta", "projected", "Z", "S"):
            x, y = getattr(a.sample, k), getattr(b.sample, k)
            assert (x is None) == (y is None), k
            if x is not None:
                assert x.shape == y.shape, k
                np.testing.assert_array_equal(x, y)
    assert (a.target is None) == (b.target is None)
    for k in a.target or {}:
        np.testing.assert_array_equal(a.target[k], b.target[k])
    if a.target is not None:
        assert set(a.target) == set(b.target)
    assert set(a.extras) == set(b.extras)
    for k in a.extras:
        np.testing.assert_array_equal(a.extras[k], b.extras[k])
    assert a.attrs == b.attrs
    assert a.n_replicas == b.n_replicas


def test_simulation_round_trip(sim1, sim2, tmp_path):
    for sim in (sim1, sim2):
        assert sim.kind == "simulation" and sim.ok and sim.sample is not None
        path = sim.write(tmp_path / f"sim{sim.n_replicas}.h5")
        back = hdae.read(path)
        _assert_same(sim, back)
        assert back.replica_axis and back.n_replicas == sim.n_replicas
        with h5py.File(path, "r") as f:
            assert f.attrs["kind"] == "simulation"
            assert f.attrs["hdae_version"] == hdae.__version__
            assert f.attrs["seed"] == 5 and f.attrs["d"] == 200
            assert f["train/Q"].shape == (sim.n_replicas, len(sim.train.theta), 2, 2)
            assert f["init/w"].shape == (sim.n_replicas, 200, 2)
            assert f["sample/projected"].shape == (sim.n_replicas, 2, 150, 2)
        # the stored problem is the one that was run
        assert back.problem.config == sim.problem.config == hdae.load_problem(SMALL, overrides=["sample.n=150"]).config
    assert set(os.listdir(tmp_path)) == {"sim1.h5", "sim2.h5"}


def test_simulation_attributes(sim1):
    assert sim1.hdae_version == hdae.__version__
    assert sim1.seed == 5 and sim1.d == 200
    assert sim1.device.startswith("cpu")
    assert sim1.wall_time_s > 0
    assert "T" in sim1.created and sim1.created.endswith("+00:00")
    assert sim1.attrs["dtype"] == "float64"
    assert sim1.attrs["lambda_avg"] == pytest.approx(1.0)
    assert sim1.config_text == hdae.load_problem(SMALL, overrides=["sample.n=150"]).config_text


def test_single_replica_theory_has_no_replica_axis_on_disk(theory1, problem, tmp_path):
    th2 = solve(problem)  # realised init, no simulation
    for th, name in ((theory1, "t1.h5"), (th2, "t2.h5")):
        assert th.kind == "theory" and not th.replica_axis and th.n_replicas == 1
        assert th.sample is not None and th.sample.S is not None
        path = th.write(tmp_path / name)
        n_ck = len(th.train.theta)
        with h5py.File(path, "r") as f:
            assert not f.attrs["replica_axis"]
            assert f["train/Q"].shape == (n_ck, 2, 2)
            assert f["train/Omega"].shape == (n_ck, 3, 2, 2)
            assert f["train/M"].shape == (n_ck, 2, 3)
            assert f["train/G"].shape == (n_ck, 2, 2)
            assert f["train/b"].shape == (n_ck,)
            assert f["sample/projected"].shape == (2, 150, 2)
            assert f["sample/S"].shape == (2,)
            assert "init" not in f
        back = hdae.read(path)
        assert back.train.Q.shape == (1, n_ck, 2, 2) and back.train.b.shape == (1, n_ck)
        assert back.sample.projected.shape == (1, 2, 150, 2) and back.sample.Z.shape == (1, 2, 150, 2)
        _assert_same(th, back)
    # both theories start from the same realised w_0 as the simulation
    np.testing.assert_allclose(th2.train.Q[:, 0], theory1.train.Q[:, 0], rtol=1e-12)


def test_multi_replica_theory_keeps_the_axis(sim2, tmp_path):
    th = solve(init_from=sim2, sample=False)
    assert th.replica_axis and th.n_replicas == 2 and th.sample is None
    np.testing.assert_array_equal(th.train.theta, sim2.train.theta)
    np.testing.assert_allclose(th.train.Q[:, 0], sim2.train.Q[:, 0], rtol=1e-12, atol=1e-15)
    path = th.write(tmp_path / "t.h5")
    with h5py.File(path, "r") as f:
        assert f.attrs["replica_axis"] and f["train/Q"].shape == (2, len(th.train.theta), 2, 2)
    _assert_same(th, hdae.read(path))


def test_theory_round_trip_from_file(sim1, tmp_path):
    sim_path = sim1.write(tmp_path / "sim.h5")
    th = solve(init_from=sim_path)
    back = hdae.read(th.write(tmp_path / "th.h5"))
    _assert_same(th, back)
    assert back.attrs["init"] == "simulation initial weights"
    assert back.extras["bins_label"].dtype.kind == "S"


def test_refuses_to_overwrite(sim1, theory1, tmp_path):
    path = tmp_path / "out.h5"
    sim1.write(path)
    before = path.read_bytes()
    with pytest.raises(OutputExistsError) as err:
        theory1.write(path)
    assert "out.h5" in str(err.value) and "\n" not in str(err.value)
    assert path.read_bytes() == before
    assert hdae.read(path).kind == "simulation"
    theory1.write(path, force=True)
    assert hdae.read(path).kind == "theory"
    assert os.listdir(tmp_path) == ["out.h5"]  # no temporary file left behind
    # a directory is never replaced
    (tmp_path / "adir").mkdir()
    with pytest.raises(OutputExistsError):
        sim1.write(tmp_path / "adir", force=True)


def test_write_creates_parent_folders(theory1, tmp_path):
    path = theory1.write(tmp_path / "a" / "b" / "th.h5")
    assert path.is_file() and os.listdir(path.parent) == ["th.h5"]


def test_failed_write_leaves_existing_file_untouched(sim1, theory1, tmp_path, monkeypatch):
    path = tmp_path / "keep.h5"
    sim1.write(path)
    before = path.read_bytes()
    original = Result._fill

    def failing_fill(self, f):
        original(self, f)  # write everything, then fail before the rename
        raise RuntimeError("disk full (simulated)")

    monkeypatch.setattr(Result, "_fill", failing_fill)
    with pytest.raises(RuntimeError, match="simulated"):
        theory1.write(path, force=True)
    assert path.read_bytes() == before
    with pytest.raises(RuntimeError):
        theory1.write(tmp_path / "new.h5")
    assert sorted(os.listdir(tmp_path)) == ["keep.h5"]

    def half_fill(self, f):
        f.create_group("train").create_dataset("theta", data=self.train.theta)
        raise KeyboardInterrupt

    monkeypatch.setattr(Result, "_fill", half_fill)
    with pytest.raises(KeyboardInterrupt):
        theory1.write(path, force=True)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["keep.h5"]
    monkeypatch.undo()
    _assert_same(sim1, hdae.read(path))


def test_read_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        hdae.read(tmp_path / "absent.h5")


def test_handmade_result_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    n_rep, n_ck, r, K, R = 3, 4, 2, 3, 2
    train = TrainRecord(np.linspace(0, 1, n_ck), rng.standard_normal((n_rep, n_ck, r, r)),
                        rng.standard_normal((n_rep, n_ck, K, r, r)), rng.standard_normal((n_rep, n_ck, r, K)),
                        rng.standard_normal((n_rep, n_ck, r, R)), rng.standard_normal((n_rep, n_ck)))
    res = Result(kind="simulation", config_text=load_text(), seed=11, d=50, train=train, device="cpu (test)",
                 wall_time_s=1.25, init_w=rng.standard_normal((n_rep, 50, r)), init_b=np.zeros(n_rep),
                 sample=SampleRecord(np.array([0.0, 1.0]), rng.standard_normal((n_rep, 2, 7, R))),
                 status="diverged", message="SGD diverged at step 3 (theta = 0.1)",
                 extras={"scalar": 2.5, "vec": np.arange(4)}, attrs={"note": "ünïcode", "count": 3, "x": 0.5})
    back = hdae.read(res.write(tmp_path / "h.h5"))
    _assert_same(res, back)
    assert back.sample.Z is None and back.sample.S is None
    assert back.attrs == {"note": "ünïcode", "count": 3, "x": 0.5}
    assert back.status == "diverged" and not back.ok
    # truncated: the first n checkpoints
    t = back.train.truncated(2)
    np.testing.assert_array_equal(t.Q, train.Q[:, :2])
    np.testing.assert_array_equal(t.theta, train.theta[:2])


def load_text():
    return hdae.load_problem(SMALL).config_text
