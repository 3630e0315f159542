"""Issue 16: no silent wrong answers, no lost files, one-line errors everywhere."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import hdae
from cli.main import cli
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


def test_one_eigenvalue_per_coordinate_is_exact():
    """An eigenvalues list as long as the bulk gives every coordinate its own value, in the written order,
    also when another cluster's block break falls in the middle of a coordinate."""
    d, k = 39, 2
    values = np.random.default_rng(0).uniform(0.1, 5.0, d - k).round(6)
    text = PAIRED.format(d=d).replace("{ eigenvalues = [0.2, 4.0], latent = 1.1 }",
                                      f"{{ eigenvalues = {values.tolist()}, latent = 1.1 }}")
    text = text.replace("[[0.25, 3.0], [0.75, 1.0]]", "[[0.5, 3.0], [0.5, 1.0]]")
    p = hdae.load_problem(text)
    rt = targets.realise(p.target, p.observation_basis)
    np.testing.assert_array_equal(rt.eigenvalues[1, k:], values)
    np.testing.assert_array_equal(rt.eigenvalues[0, k:], np.r_[np.full(18, 3.0), np.full(19, 1.0)])


def test_spectral_binning_of_an_unsorted_spectrum():
    """Merged bins gather pieces by eigenvalue wherever they lie: masses and mass-weighted eigenvalues
    of the realised coordinates, Lambda exact."""
    d = 403
    p = hdae.load_problem(PAIRED.format(d=d).replace("{ eigenvalues = [0.2, 4.0], latent = 1.1 }",
                                                     "{ eigenvalues = [0.5, 3.0, 1.0, 2.0, 0.25], latent = 1.1 }"))
    rt = targets.realise(p.target, p.observation_basis)
    red, merge = targets.reduce(p.target, p.observation_basis, d, spectral_bins=2)
    bins = merge[rt.bin_index]
    assert red.n_bins - red.n_latent == 2
    for l in range(red.n_bins):
        np.testing.assert_allclose(red.p[l], np.mean(bins == l), rtol=1e-14)
        np.testing.assert_allclose(red.s[l], rt.eigenvalues[:, bins == l].mean(1), rtol=1e-12)
    assert red.average_eigenvalue == pytest.approx(float(rt.weights @ rt.eigenvalues.mean(1)), rel=1e-13)


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


# ----------------------------------------------------------------------------- helpers
ROOT = Path(__file__).resolve().parents[1]
TINY = ["--example", "fig2", "--d", "60", "--set", "train.tau=0.1", "--set", "train.checkpoints=3",
        "--set", "sample.n=100", "--set", "sample.steps=5", "--set", "sample.thetas=[0.1]", "-q"]


def _cli(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def _one_line(result, code=None):
    """Non-zero exit (or ``code``), exactly one line on stderr, starting 'Error: ', no traceback."""
    assert result.exit_code != 0 if code is None else result.exit_code == code, (result.exit_code, result.stderr)
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    return lines[0]


def _leftovers(folder: Path):
    """Hidden temporary files or staged folders left in ``folder``."""
    return sorted(p.name for p in Path(folder).iterdir() if p.name.startswith("."))


def _subprocess(*args, code=None, **kw):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, *args], cwd=kw.pop("cwd", ROOT), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


# ----------------------------------------------------------------------------- 2. divergence
def test_exploding_sgd_is_a_divergence():
    """fig1 at lr = 50 (the issue's case): weights stay finite for a while but Q explodes; never 'success'."""
    from hdae.simulation import simulate

    problem = hdae.load_problem(example="fig1", d=200, overrides=["train.lr=50", "sample.thetas=[]",
                                                                   "train.checkpoints=4"])
    sim = simulate(problem, sample=False)
    assert sim.status == "diverged" and "SGD diverged" in sim.message, sim.message
    assert np.all(np.isfinite(sim.train.Q)) and np.abs(sim.train.Q).max() <= problem.theory.divergence


@pytest.mark.parametrize("command", ["simulate", "solve"])
def test_exploding_sampler_is_a_divergence_in_both_branches(tmp_path, command):
    """eps = 1e3: the Euler-Maruyama sampler blows up (samples ~1e100): exit 3, status diverged."""
    out = tmp_path / "r.h5"
    r = _cli(command, *TINY, "--set", "sample.eps=1e3", "-o", out)
    line = _one_line(r, 3)
    assert "diverged" in line and "generated samples" in line
    res = hdae.read(out)
    assert res.status == "diverged" and not res.ok


def test_run_exits_3_on_divergence(tmp_path):
    r = _cli("run", "--example", "fig1", "--d", "200", "--set", "sample.n=200", "--set", "sample.steps=5",
             "--set", "train.lr=50", "--set", "train.checkpoints=7", "--set", "sample.thetas=[0.0, 3.0]", "-q",
             "-o", tmp_path / "run")
    assert "diverged" in _one_line(r, 3)
    assert hdae.read(tmp_path / "run" / "simulation.h5").status == "diverged"
    assert not (tmp_path / "run" / "comparison.txt").exists()


# ----------------------------------------------------------------------------- 5-8. files
def test_interrupted_run_force_leaves_the_old_folder_whole(tmp_path, monkeypatch):
    out = tmp_path / "run"
    assert _cli("run", *TINY, "-o", out).exit_code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert set(before) == {"simulation.h5", "theory.h5", "comparison.txt", "densities.png", "training.png"}

    def interrupt(*a, **k):  # after simulation.h5 and theory.h5 of the new run were written
        raise KeyboardInterrupt

    monkeypatch.setattr(hdae.compare, "compare_training", interrupt)
    r = _cli("run", *TINY, "--seed", "9", "--force", "-o", out)
    assert "interrupted" in _one_line(r, 130)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert _leftovers(tmp_path) == []


def test_run_force_replaces_the_folder_as_a_whole_but_never_foreign_files(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "training.png").write_bytes(b"old")
    (out / "stale.txt").write_text("mine")
    assert "stale.txt" in _one_line(_cli("run", *TINY, "--force", "-o", out))
    (out / "stale.txt").unlink()
    assert "refusing to overwrite" in _one_line(_cli("run", *TINY, "-o", out))
    assert _cli("run", *TINY, "--force", "-o", out).exit_code == 0
    assert (out / "training.png").read_bytes()[:4] == b"\x89PNG" and (out / "simulation.h5").is_file()
    assert _leftovers(tmp_path) == []


def test_run_refusal_never_suggests_a_force_that_is_refused(tmp_path, monkeypatch):
    """A folder with the user's own files: refused up front, with or without --force, and the message
    points to another folder instead of --force; --force is offered only for a previous run."""
    import hdae.pipeline

    def no(*a, **k):
        raise AssertionError("computed although the output folder is refused")

    out = tmp_path / "mydata"
    out.mkdir()
    (out / "important.csv").write_text("keep")
    monkeypatch.setattr(hdae.pipeline, "_run_in", no)
    for extra in ([], ["--force"]):
        line = _one_line(_cli("run", *TINY, *extra, "-o", out), 1)
        assert "holds files that are not a run's (important.csv)" in line and "give a new or empty folder with -o" in line
        assert "use --force" not in line and "--force replaces" not in line
    assert [p.name for p in out.iterdir()] == ["important.csv"] and (out / "important.csv").read_text() == "keep"
    assert _leftovers(tmp_path) == []
    # a previous run: --force is the remedy offered, and it is the one that works
    monkeypatch.undo()
    run = tmp_path / "run"
    assert _cli("run", *TINY, "-o", run).exit_code == 0
    line = _one_line(_cli("run", *TINY, "-o", run), 1)
    assert "already holds a run" in line and "--force replaces it as a whole" in line
    assert _cli("run", *TINY, "--force", "-o", run).exit_code == 0
    # the current folder holding a run: refused, without suggesting --force
    monkeypatch.chdir(run)
    for extra in ([], ["--force"]):
        line = _one_line(_cli("run", *TINY, *extra, "-o", "."), 1)
        assert "current folder" in line and "--force" not in line
    assert sorted(p.name for p in run.iterdir()) == ["comparison.txt", "densities.png", "simulation.h5",
                                                     "theory.h5", "training.png"]


def test_interrupted_plot_keeps_the_old_figure(tmp_path, monkeypatch):
    sim, fig = tmp_path / "s.h5", tmp_path / "f.png"
    assert _cli("simulate", *TINY, "--no-sample", "-o", sim).exit_code == 0
    assert _cli("plot", sim, "-o", fig).exit_code == 0
    old = fig.read_bytes()
    from matplotlib.figure import Figure

    def half_then_interrupt(self, fname, **kw):
        Path(fname).write_bytes(b"\x89PNG half")
        raise KeyboardInterrupt

    monkeypatch.setattr(Figure, "savefig", half_then_interrupt)
    _one_line(_cli("plot", sim, "--force", "-o", fig), 130)
    assert fig.read_bytes() == old and _leftovers(tmp_path) == []


def test_sigterm_while_writing_removes_the_temporary_file(tmp_path):
    """A real process gets SIGTERM inside the HDF5 write: one line, exit 143, no hidden file."""
    script = (
        "import os, signal, sys\n"
        "from hdae import results\n"
        "fill = results.Result._fill\n"
        "def killed(self, f):\n"
        "    fill(self, f)\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "results.Result._fill = killed\n"
        "from cli.main import cli\n"
        "cli(sys.argv[1:])\n")
    p = _subprocess("-c", script, "simulate", *TINY, "--no-sample", "-o", str(tmp_path / "s.h5"))
    out, err = p.communicate(timeout=300)
    assert p.returncode == 143, err
    assert err.strip().count("\n") == 0 and err.startswith("Error: interrupted (SIGTERM)") and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", ["simulate", "solve", "plot", "run"])
def test_unwritable_output_is_refused_before_computing(tmp_path, monkeypatch, command):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    import cli.simulate
    import cli.solve
    import hdae.pipeline
    import hdae.plotting

    def no(*a, **k):
        raise AssertionError("computed before checking the output path")

    for mod, name in [(hdae.simulation, "simulate"), (hdae.theory, "solve"), (hdae.pipeline, "_run_in"),
                      (hdae.plotting, "plot_file")]:
        monkeypatch.setattr(mod, name, no)
    if command == "plot":
        sim = tmp_path / "s.h5"
        hdae.Result(kind="simulation", config_text=hdae.load_problem(example="fig2").config_text, seed=0, d=5,
                    train=hdae.results.TrainRecord(np.zeros(1), *(np.zeros((1, 1, 2, 2)),) * 5)).write(sim)
        args = ["plot", sim, "-o", blocker / "f.png"]
    else:
        args = [command, *TINY, "-o", blocker / ("out" if command == "run" else "out.h5")]
    assert "a_file" in _one_line(_cli(*args))


# ----------------------------------------------------------------------------- 3. compare
@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """Simulations of TINY (as given, other lr, other seed, other target) and theories of two of them."""
    folder = tmp_path_factory.mktemp("compare")
    f = {name: folder / f"{name}.h5" for name in ("sim", "th", "sim_lr", "th_lr", "sim_seed", "sim_target")}
    variants = {"sim": [], "sim_lr": ["--set", "train.lr=0.3"], "sim_seed": ["--seed", "9"],
                "sim_target": ["--set", "target.centroids=[[2.0, 0.0], [0.0, -3.0], [-3.0, 0.0]]"]}
    for name, extra in variants.items():
        assert _cli("simulate", *TINY, *extra, "-o", f[name]).exit_code == 0
    assert _cli("solve", "--init-from", f["sim"], "-q", "-o", f["th"]).exit_code == 0
    assert _cli("solve", "--init-from", f["sim_lr"], "-q", "-o", f["th_lr"]).exit_code == 0
    return f


def test_compare_accepts_the_same_problem(pair):
    r = _cli("compare", pair["th"], pair["sim"], "--tol", "0.5")
    assert r.exit_code == 0, r.stderr
    assert "statistic" in r.stdout and r.stderr == ""


@pytest.mark.parametrize("sim, key", [("sim_lr", "train.lr (0.2 vs 0.3)"), ("sim_seed", "seed (2 vs 9)"),
                                      ("sim_target", "target.centroids")])
def test_compare_refuses_different_problems(pair, sim, key):
    line = _one_line(_cli("compare", pair["th"], pair[sim]))
    assert "different problems" in line and key in line and "--allow-mismatch" in line
    r = _cli("compare", pair["th"], pair[sim], "--allow-mismatch")
    assert r.exit_code == 0 and "statistic" in r.stdout


def test_compare_refuses_swapped_and_same_kind_arguments(pair):
    assert "swapped" in _one_line(_cli("compare", pair["sim"], pair["th"]))
    assert "got a theory and a theory file" in _one_line(_cli("compare", pair["th"], pair["th_lr"]))
    assert "got a simulation and a simulation file" in _one_line(_cli("compare", pair["sim"], pair["sim"]))


@pytest.mark.parametrize("tol", ["nan", "inf", "-0.1"])
def test_compare_tol_must_be_finite(pair, tol):
    assert "--tol" in _one_line(_cli("compare", pair["th"], pair["sim"], "--tol", tol), 2)


def test_compare_tol_fails_on_non_finite_and_on_diverged_files(pair, tmp_path):
    th = hdae.read(pair["th"])
    th.train.Q[..., -1, 0, 0] = np.nan
    bad = th.write(tmp_path / "nan.h5")
    assert "Q" in _one_line(_cli("compare", bad, pair["sim"], "--tol", "10"), 1)
    th = hdae.read(pair["th"])
    th.status, th.message = "diverged", "ODE diverged at theta = 0.05"
    div = th.write(tmp_path / "div.h5")
    assert "diverged" in _one_line(_cli("compare", div, pair["sim"], "--tol", "10"), 3)
    assert "diverged" in _one_line(_cli("compare", div, pair["sim"]), 3)


def test_compare_theory_in_the_limit_may_differ_in_d_and_seed(pair, tmp_path):
    lim = tmp_path / "lim.h5"
    assert _cli("solve", *TINY, "--d", "500", "--seed", "4", "--set", "theory.init=limit", "-o", lim).exit_code == 0
    assert _cli("compare", lim, pair["sim"]).exit_code == 0
    assert "train.lr" in _one_line(_cli("compare", lim, pair["sim_lr"]))


# ----------------------------------------------------------------------------- 4. checkpoints on SGD steps
def test_two_checkpoints_on_one_sgd_step_are_refused(small_problem):
    """One SGD step is 2 eta/d = 0.002 in theta here: 0 and 0.0009 both fall on step 0."""
    with pytest.raises(ConfigError, match=r"train\.checkpoints: thetas 0 and 0.0009 fall on the same SGD step 0"):
        small_problem.with_overrides("train.checkpoints=[0.0, 0.0009, 0.5]")
    # the case: lr = 16 at d = 1000 (a step is 0.032) with checkpoints every 0.0125
    with pytest.raises(ConfigError, match=r"one step is 2 eta/d = 0\.032"):
        hdae.load_problem(example="fig1", overrides=["train.lr=16", "train.tau=0.5", "train.checkpoints=41",
                                                     "sample.thetas=[0.5]"])
    with pytest.raises(ConfigError, match=r"sample\.thetas: thetas 0\.4 and 0\.404"):
        small_problem.with_overrides("train.lr=3.0", "sample.thetas=[0.4, 0.404]", "train.checkpoints=2")
    # the d -> infinity theory reports at the thetas asked: nothing merges
    small_problem.with_overrides("train.checkpoints=[0.0, 0.0009, 0.5]", "theory.init='limit'")
    # distinct steps: every reported theta is within half a step of the one asked, none merged
    from hdae.simulation import simulate

    p = small_problem.with_overrides("train.lr=3.0", "train.checkpoints=[0.0, 0.05, 0.09, 0.5]", "sample.thetas=[]")
    sim = simulate(p, sample=False)
    np.testing.assert_allclose(sim.train.theta, [0.0, 0.06, 0.09, 0.51], atol=1e-12)
    assert len(sim.train.theta) == len(p.train.checkpoints)


# ----------------------------------------------------------------------------- tracebacks -> one line
def test_binary_problem_file_is_one_line(tmp_path):
    bad = tmp_path / "bin.toml"
    bad.write_bytes(b"seed = 1\n\xff\xfe\x00\x01binary")
    with pytest.raises(ConfigError, match="not a text"):
        hdae.load_problem(bad)
    assert "bin.toml" in _one_line(_cli("simulate", bad, "-o", tmp_path / "s.h5"))


def test_seeds_beyond_int64_are_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"seed: must be <= 9223372036854775807"):
        hdae.load_problem(example="fig2", overrides=["seed=9223372036854775808"])
    assert "--seed" in _one_line(_cli("solve", *TINY, "--seed", 2**63, "-o", tmp_path / "t.h5"), 2)
    # the largest seed works end to end, through the HDF5 write
    assert _cli("solve", *TINY, "--seed", 2**63 - 1, "--no-sample", "-o", tmp_path / "t.h5").exit_code == 0
    assert hdae.read(tmp_path / "t.h5").seed == 2**63 - 1


def test_absurd_sizes_are_refused_with_a_memory_estimate(tmp_path):
    line = _one_line(_cli("simulate", *TINY, "-r", 100000000, "-o", tmp_path / "s.h5"))
    assert "replicas = 100000000" in line and "GiB" in line
    assert "theory.nodes: must be <= 4194304" in _one_line(_cli("solve", *TINY, "--set", "theory.nodes=100000000",
                                                                "-o", tmp_path / "t.h5"))
    assert "GiB" in _one_line(_cli("run", *TINY, "--d", 10**9, "-o", tmp_path / "run"))
    assert list(tmp_path.iterdir()) == []


def test_one_sample_is_refused_before_anything_is_written(tmp_path):
    assert "sample.n: must be >= 2" in _one_line(_cli("run", *TINY, "--set", "sample.n=1", "-o", tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def test_initial_overflow_blames_the_input_not_the_learning_rate(tmp_path):
    for command in ("simulate", "solve"):
        line = _one_line(_cli(command, *TINY, "--set", "target.centroids=[[1e300, 0.0], [0.0, 1.0], [1.0, 1.0]]",
                              "-o", tmp_path / "x.h5"), 1)
        assert "far too large" in line and "eta =" not in line and "train.lr" not in line


def test_ctrl_c_during_solve_is_one_line_and_exit_130(tmp_path):
    """A real SIGINT inside the numba kernels (which turn it into a SystemError)."""
    marker, out = tmp_path / "started", tmp_path / "t.h5"
    script = (
        "import sys, pathlib\n"
        "from hdae.theory import ode\n"
        "integrate = ode.integrate_batch\n"
        "def marked(*a, **k):\n"
        f"    pathlib.Path({str(marker)!r}).touch()\n"
        "    return integrate(*a, **k)\n"
        "import hdae.theory.solve; s = sys.modules['hdae.theory.solve']\n"
        "s.integrate_batch = marked\n"
        "from cli.main import cli\n"
        "cli(sys.argv[1:])\n")
    p = _subprocess("-c", script, "solve", "--example", "fig1", "--d", "200", "--set", "theory.dt=0.0005",
                    "--no-sample", "-o", str(out))
    for _ in range(1200):
        if marker.exists() or p.poll() is not None:
            break
        time.sleep(0.05)
    time.sleep(1.0)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    assert err.strip() == "Error: interrupted (Ctrl-C); no partial output was left"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["started"]


# ----------------------------------------------------------------------------- smaller
def test_default_problem_is_named(tmp_path, monkeypatch):
    import hdae.theory

    monkeypatch.setattr(hdae.theory, "solve", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
    r = _cli("solve", "-o", tmp_path / "t.h5")
    assert "using the built-in example 'fig1'" in r.stderr.splitlines()[0] and r.exit_code == 130


def test_info_config_is_a_valid_problem_file(pair, tmp_path):
    r = _cli("info", pair["sim"], "--config")
    assert r.exit_code == 0
    text = r.stdout
    assert text.startswith("# ") and "# " + "  not in the problem: replicas = 1" in text
    problem = hdae.load_problem(text)
    assert problem.config == hdae.read(pair["sim"]).problem.config
    (tmp_path / "p.toml").write_text(text)
    assert hdae.load_problem(tmp_path / "p.toml").d == 60


def test_exit_codes_are_documented():
    for args in ([], ["simulate"], ["solve"], ["run"], ["compare"]):
        out = _cli(*args, "--help").stdout
        assert "3 a diverged computation" in " ".join(out.split()) and "130 Ctrl-C" in out
    readme = (ROOT / "README.md").read_text()
    assert "Exit status" in readme and "130" in readme


# ----------------------------------------------------------------------------- the bad-input sweep
_PROBLEM_BAD = {  # name -> (args after the command, with {tmp} for the test folder); each must fail in one line
    "missing file": ["{tmp}/absent.toml"],
    "binary file": ["{tmp}/binary.toml"],
    "empty file": ["{tmp}/empty.toml"],
    "not TOML": ["{tmp}/broken.toml"],
    "folder as file": ["{tmp}"],
    "unknown example": ["--example", "nosuch"],
    "unknown key": ["--example", "fig2", "--set", "model.depth=3"],
    "wrong type": ["--example", "fig2", "--set", "train.lr=abc"],
    "nan": ["--example", "fig2", "--set", "train.lr=nan"],
    "negative lr": ["--example", "fig2", "--set", "train.lr=-1"],
    "override without =": ["--example", "fig2", "--set", "train.lr"],
    "empty key": ["--example", "fig2", "--set", "train..lr=1"],
    "fractions": ["--example", "fig2", "--set", "target.covariance={ blocks = [[0.5, 1.0], [0.6, 2.0]] }"],
    "piece without coordinate": ["--example", "fig2", "--d", "20",
                                 "--set", "target.covariance={ blocks = [[0.01, 9.0], [0.99, 1.0]] }"],
    "seed 2^63 in file": ["{tmp}/big_seed.toml"],
    "seed 2^63": ["--example", "fig2", "--seed", str(2**63)],
    "d = 1": ["--example", "fig2", "--d", "1"],
    "d = 10^9": ["--example", "fig2", "--d", str(10**9)],
    "nodes 10^8": ["--example", "fig2", "--set", "theory.nodes=100000000"],
    "sample.n = 1": ["--example", "fig2", "--set", "sample.n=1"],
    "merged checkpoints": ["--example", "fig2", "--d", "20", "--set", "train.lr=5.0"],
    "centroid 1e300": ["--example", "fig2", "--d", "40", "--set", "target.centroids=[[1e300, 0.0], [0.0, 1.0]]",
                       "--set", "sample.n=10"],
    "output under a file": ["--example", "fig2", "-o", "{tmp}/binary.toml/out"],
    "output exists": ["--example", "fig2", "-o", "{tmp}/exists"],
}
_RESULT_BAD = {
    "missing file": ["{tmp}/absent.h5"],
    "binary file": ["{tmp}/binary.toml"],
    "folder as file": ["{tmp}"],
    "problem file as result": ["{tmp}/big_seed.toml"],
}
_COMPARE_BAD = {
    "swapped": ["{sim}", "{th}"],
    "theory twice": ["{th}", "{th}"],
    "other problem": ["{th}", "{sim_lr}"],
    "tol nan": ["{th}", "{sim}", "--tol", "nan"],
    "tol text": ["{th}", "{sim}", "--tol", "abc"],
    "binary": ["{th}", "{tmp}/binary.toml"],
    "missing": ["{th}", "{tmp}/absent.h5"],
    "one argument": ["{th}"],
}


def _sweep_cases():
    for name, args in _PROBLEM_BAD.items():
        for command in ("simulate", "solve", "run"):
            out = [] if "-o" in args else ["-o", "{tmp}/out" + ("" if command == "run" else ".h5")]
            yield pytest.param(command, args + out + (["-r", "100000000"] if name == "output exists" else []),
                               id=f"{command}-{name}")
    for command in ("simulate", "run"):
        yield pytest.param(command, ["--example", "fig2", "-r", "100000000", "-o", "{tmp}/o"], id=f"{command}-replicas")
        yield pytest.param(command, ["--example", "fig2", "-r", "0", "-o", "{tmp}/o"], id=f"{command}-no replicas")
    for name, args in _RESULT_BAD.items():
        yield pytest.param("info", args, id=f"info-{name}")
        yield pytest.param("plot", args + ["-o", "{tmp}/f.png"], id=f"plot-{name}")
        yield pytest.param("compare", ["{th}", *args], id=f"compare-{name}")
        yield pytest.param("solve", ["--init-from", *args, "-o", "{tmp}/t.h5"], id=f"solve-init-from-{name}")
    for name, args in _COMPARE_BAD.items():
        yield pytest.param("compare", args, id=f"compare-{name}")
    yield pytest.param("plot", ["{th_nosample}", "--what", "density", "-o", "{tmp}/f.png"], id="plot-no samples")
    yield pytest.param("plot", ["{th}", "-o", "{tmp}/binary.toml/f.png"], id="plot-output under a file")
    yield pytest.param("examples", ["nosuch"], id="examples-unknown")
    yield pytest.param("nosuch", [], id="unknown command")
    yield pytest.param("simulate", ["--bogus"], id="unknown option")


@pytest.fixture(scope="module")
def sweep_folder(tmp_path_factory, pair):
    tmp = tmp_path_factory.mktemp("sweep")
    (tmp / "binary.toml").write_bytes(bytes(range(256)) * 4)
    (tmp / "empty.toml").write_text("")
    (tmp / "broken.toml").write_text("[target\nkind = ")
    (tmp / "big_seed.toml").write_text(hdae.example_text("fig2").replace("seed = 2", f"seed = {2**63}"))
    assert f"seed = {2**63}" in (tmp / "big_seed.toml").read_text()
    (tmp / "exists").write_text("x")
    (tmp / "exists.h5").write_text("x")
    th_nosample = tmp / "th_nosample.h5"
    assert _cli("solve", *TINY, "--no-sample", "-o", th_nosample).exit_code == 0
    return {"tmp": str(tmp), "th_nosample": str(th_nosample), **{k: str(v) for k, v in pair.items()}}


def _fill(arg: str, names: dict) -> str:
    for k, v in names.items():
        arg = arg.replace("{" + k + "}", v)
    return arg


@pytest.mark.parametrize("command, args", list(_sweep_cases()))
def test_bad_input_sweep(sweep_folder, command, args):
    """Every command with a fixed list of bad inputs: non-zero exit, one line on stderr, no traceback,
    nothing left behind in the folder."""
    before = sorted(os.listdir(sweep_folder["tmp"]))
    r = _cli(command, *[_fill(a, sweep_folder) for a in args])
    line = _one_line(r)
    assert len(line) < 400
    assert sorted(os.listdir(sweep_folder["tmp"])) == before


@pytest.mark.parametrize("args", [["simulate", "{tmp}/binary.toml", "-o", "{tmp}/o.h5"],
                                  ["compare", "{sim}", "{th}"]])
def test_bad_input_in_a_real_process(sweep_folder, args):
    p = _subprocess("-m", "cli.main", *[_fill(a, sweep_folder) for a in args])
    out, err = p.communicate(timeout=300)
    assert p.returncode in (1, 2), err
    assert len(err.strip().splitlines()) == 1 and err.startswith("Error: ") and "Traceback" not in err + out


def test_an_unexpected_error_is_still_one_line(tmp_path, monkeypatch):
    import hdae.theory

    def bug(*a, **k):
        raise ZeroDivisionError("float division by zero")

    monkeypatch.setattr(hdae.theory, "solve", bug)
    line = _one_line(_cli("solve", *TINY, "-o", tmp_path / "t.h5"), 1)
    assert "internal error" in line and "ZeroDivisionError" in line and "HDAE_DEBUG" in line
    monkeypatch.setenv("HDAE_DEBUG", "1")
    with pytest.raises(ZeroDivisionError):
        _cli("solve", *TINY, "-o", tmp_path / "t.h5")


def test_run_into_the_current_empty_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert _cli("run", *TINY, "-o", ".").exit_code == 0
    assert {p.name for p in tmp_path.iterdir()} == {"simulation.h5", "theory.h5", "comparison.txt",
                                                     "densities.png", "training.png"}
    assert "current folder" in _one_line(_cli("run", *TINY, "--force", "-o", "."))
