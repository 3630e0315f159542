"""The click command line: examples, simulate -> solve -> compare/info, errors as one-line messages."""
from __future__ import annotations

import os
import re

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import hdae
from cli.main import cli
from hdae import compare as cmp
from hdae import tomlio

from conftest import SMALL



SIM_ARGS = ["simulate", "--example", "fig2", "--d", "150", "--set", "train.tau=0.2", "--set", "sample.n=200",
            "--set", "sample.thetas=[0.0, 0.2]", "-q"]


def _run(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def _one_line_error(result):
    """Exit status != 0, one 'Error: ...' line, no traceback."""
    assert result.exit_code != 0
    out = result.output.strip()
    assert "Traceback" not in out
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert len(lines) == 1, out
    assert lines[0].startswith("Error: "), out
    return lines[0]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """simulate -> solve --init-from, through the command line."""
    folder = tmp_path_factory.mktemp("cli")
    sim, th = folder / "sim.h5", folder / "th.h5"
    r = _run(*SIM_ARGS, "-o", str(sim))
    assert r.exit_code == 0, r.output
    r = _run("solve", "--init-from", str(sim), "-o", str(th), "-q")
    assert r.exit_code == 0, r.output
    return folder, sim, th


def test_examples_lists_all_names():
    r = _run("examples")
    assert r.exit_code == 0
    lines = r.output.strip().splitlines()
    assert [ln.split()[0] for ln in lines] == hdae.example_names()
    assert any(ln.startswith("fig1") and "(default)" in ln for ln in lines)
    for ln, name in zip(lines, hdae.example_names()):
        desc = tomlio.loads(hdae.example_text(name))["description"]
        assert desc[:30] in ln


def test_examples_prints_parseable_toml():
    r = _run("examples", "fig1")
    assert r.exit_code == 0
    assert r.output == hdae.example_text("fig1")
    cfg = tomlio.loads(r.output)
    assert cfg["name"] == "fig1" and cfg["model"]["width"] == 4
    assert hdae.load_problem(r.output).config == hdae.load_problem(example="fig1").config
    msg = _one_line_error(_run("examples", "nope"))
    assert "nope" in msg and "fig1" in msg


def test_simulate_output(files):
    _, sim_path, _ = files
    sim = hdae.read(sim_path)
    assert sim.kind == "simulation" and sim.ok and sim.d == 150 and sim.seed == 2 and sim.n_replicas == 1
    p = sim.problem
    assert p.name == "fig2" and p.train.tau == 0.2 and p.sample.n == 200 and p.model.activation == "tanh"
    assert sim.train.theta[-1] == pytest.approx(0.2)
    assert sim.sample.projected.shape == (1, 2, 200, 2)
    # the same run through the library gives the same numbers
    lib = hdae.simulate(hdae.load_problem(example="fig2", d=150, overrides=["train.tau=0.2", "sample.n=200",
                                                                           "sample.thetas=[0.0, 0.2]"]), device="cpu")
    np.testing.assert_array_equal(lib.train.Q, sim.train.Q)
    np.testing.assert_array_equal(lib.sample.projected, sim.sample.projected)


def test_solve_output(files):
    _, sim_path, th_path = files
    sim, th = hdae.read(sim_path), hdae.read(th_path)
    assert th.kind == "theory" and th.ok and th.d == 150
    np.testing.assert_array_equal(th.train.theta, sim.train.theta)
    # same starting point: the simulation's exact w_0
    for k in ("Q", "Omega", "M", "G", "b"):
        np.testing.assert_allclose(getattr(th.train, k)[:, 0], getattr(sim.train, k)[:, 0], rtol=1e-10, atol=1e-13)
    assert th.config_text == sim.config_text


def _parse_table(text):
    rows = {}
    for ln in text.splitlines():
        parts = ln.split()
        if parts and parts[0] in ("Q", "Omega", "M", "G", "b"):
            rows[parts[0]] = parts
    return rows


def test_compare(files):
    _, sim_path, th_path = files
    r = _run("compare", str(th_path), str(sim_path))
    assert r.exit_code == 0, r.output
    out = r.output
    sim, th = hdae.read(sim_path), hdae.read(th_path)
    assert f"{len(sim.train.theta)} common checkpoints" in out and "d = 150" in out
    rows = _parse_table(out)
    assert set(rows) == {"Q", "Omega", "M", "G", "b"}
    for name, parts in rows.items():
        # the printed max deviation and scale are the numbers computed directly from the two files
        a, s = getattr(th.train, name), getattr(sim.train, name)
        assert float(parts[1]) == pytest.approx(np.abs(a - s).max(), rel=1e-3)
        assert float(parts[2]) == pytest.approx(np.abs(s).max(), rel=1e-3)
        rel = float(parts[3].rstrip("%")) / 100
        assert rel == pytest.approx(np.abs(a - s).max() / np.abs(s).max(), abs=1e-4)
        assert rel < 0.35  # theory and a d = 150 simulation agree to finite-d noise
        assert parts[4] == "n/a"  # one replica: no spread
    assert "generated samples" in out
    theta_rows = [ln.split() for ln in out.splitlines() if re.match(r"^\s+0(\.2)?\s", ln)]
    assert len(theta_rows) == 2
    for row in theta_rows:
        assert float(row[-1]) > 0  # energy distance over noise floor
    # b deviates like 1/d; the library agrees
    by_name = {row.name: row for row in cmp.compare_training(th, sim)}
    assert by_name["b"].relative < 0.05


def test_compare_tol(files):
    _, sim_path, th_path = files
    r = _run("compare", str(th_path), str(sim_path), "--tol", "1e-12")
    assert r.exit_code == 1 and "Traceback" not in r.output
    lines = r.output.strip().splitlines()
    assert [ln for ln in lines if ln.startswith("Error")] == [lines[-1]]  # the table, then one error line
    assert "tol = 1e-12" in lines[-1] and all(k in lines[-1] for k in ("Q", "Omega", "M", "G", "b"))
    r = _run("compare", str(th_path), str(sim_path), "--tol", "10")
    assert r.exit_code == 0


def test_compare_noise_floor_is_positive(files):
    _, sim_path, th_path = files
    sim, th = hdae.read(sim_path), hdae.read(th_path)
    floors = [row.floor for seed in range(6) for row in cmp.compare_samples(th, sim, seed=seed)]
    assert min(floors) > 0, floors


def test_info(files):
    _, sim_path, th_path = files
    r = _run("info", str(th_path))
    assert r.exit_code == 0
    th = hdae.read(th_path)
    out = r.output
    assert "theory, status success" in out
    assert f"hdae {hdae.__version__}" in out and th.created in out
    assert "seed 2, d = 150, replicas 1" in out
    assert f"checkpoints {len(th.train.theta)}" in out and "0.2" in out
    assert "samples: 200 per training time" in out
    r = _run("info", str(sim_path), "--config")
    assert r.exit_code == 0 and "simulation" in r.output
    cfg_text = r.output.split("\n\n", 1)[1]
    assert tomlio.loads(cfg_text) == hdae.read(sim_path).problem.config


def test_force_needed_to_overwrite(files):
    folder, sim_path, th_path = files
    before = sim_path.read_bytes()
    msg = _one_line_error(_run(*SIM_ARGS, "-o", str(sim_path)))
    assert "exists" in msg and "--force" in msg
    assert sim_path.read_bytes() == before
    msg = _one_line_error(_run("solve", "--init-from", str(sim_path), "-o", str(th_path), "-q"))
    assert "exists" in msg
    # with --force it is replaced (a new run: a new creation time)
    other = folder / "other.h5"
    assert _run("solve", "--init-from", str(sim_path), "-o", str(other), "-q").exit_code == 0
    r = _run("solve", "--init-from", str(sim_path), "-o", str(other), "-q", "--force")
    assert r.exit_code == 0, r.output
    assert hdae.read(other).kind == "theory"
    assert not [f for f in os.listdir(folder) if f.endswith(".tmp")]


def test_bad_key_is_a_one_line_error(tmp_path):
    out = tmp_path / "x.h5"
    msg = _one_line_error(_run("simulate", "--example", "fig2", "--set", "train.foo=1", "-o", str(out)))
    assert "train.foo" in msg and "unknown key" in msg
    msg = _one_line_error(_run("solve", "--example", "fig2", "--set", "train.lr=nan", "-o", str(out)))
    assert "train.lr" in msg
    msg = _one_line_error(_run("simulate", "--example", "fig2", "--set", "sample.t_end=1.0", "-o", str(out)))
    assert "sample.t_end" in msg
    problem = tmp_path / "p.toml"
    problem.write_text(SMALL.replace("[model]", "[model]\ndepth = 3"))
    msg = _one_line_error(_run("simulate", str(problem), "-o", str(out)))
    assert "model.depth" in msg
    msg = _one_line_error(_run("simulate", str(tmp_path / "missing.toml"), "-o", str(out)))
    assert "missing.toml" in msg
    assert not out.exists()


def test_missing_file_arguments(tmp_path):
    r = _run("info", str(tmp_path / "absent.h5"))
    assert r.exit_code != 0 and "Traceback" not in r.output
    r = _run("compare", str(tmp_path / "a.h5"), str(tmp_path / "b.h5"))
    assert r.exit_code != 0 and "Traceback" not in r.output


def test_not_a_result_file_is_a_one_line_error(tmp_path):
    bad = tmp_path / "bad.h5"
    bad.write_text("not an HDF5 file\n")
    msg = _one_line_error(CliRunner().invoke(cli, ["info", str(bad)]))
    assert "bad.h5" in msg


def test_solve_d_conflicts_with_init_from(files, tmp_path):
    _, sim_path, _ = files
    r = _run("solve", "--init-from", str(sim_path), "--d", "100", "-o", str(tmp_path / "t.h5"))
    assert r.exit_code == 2 and "--d" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "t.h5").exists()


def test_solve_seed_conflicts_with_init_from(files, tmp_path):
    """--seed would be stored in the theory file without changing it, and compare would then refuse
    the pair: refused up front, like --d."""
    _, sim_path, _ = files
    r = _run("solve", "--init-from", str(sim_path), "--seed", "7", "-o", str(tmp_path / "t.h5"))
    assert r.exit_code == 2 and "--seed conflicts with --init-from" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "t.h5").exists()


def test_simulate_divergence_exit_status(tmp_path):
    problem = tmp_path / "p.toml"
    problem.write_text(SMALL)
    out = tmp_path / "div.h5"
    r = CliRunner().invoke(cli, ["simulate", str(problem), "--d", "100", "--set", "train.lr=5.0", "--set",
                                 "train.tau=20.0", "--set", "train.checkpoints=11", "--set", "sample.thetas=[]",
                                 "--set", "model.activation=linear", "-q", "-o", str(out)])
    assert r.exit_code == 3
    assert "diverged at step" in r.output and "Traceback" not in r.output
    res = hdae.read(out)
    assert res.status == "diverged" and len(res.train.theta) >= 1


@pytest.mark.parametrize("command", [[], ["examples"], ["simulate"], ["solve"], ["compare"], ["info"], ["plot"]])
def test_help(command):
    r = _run(*command, "--help")
    assert r.exit_code == 0
    assert "Usage:" in r.output
    if command:
        assert command[0] in r.output


def test_version():
    r = _run("--version")
    assert r.exit_code == 0 and hdae.__version__ in r.output


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
def test_device_cuda_without_gpu(tmp_path):
    out = tmp_path / "gpu.h5"
    msg = _one_line_error(_run(*SIM_ARGS, "--device", "cuda", "-o", str(out)))
    assert "cuda" in msg.lower()
    assert not out.exists() and os.listdir(tmp_path) == []


@pytest.mark.parametrize("args", [["--help"], ["examples"], ["solve", "--help"], ["sweep", "--help"]])
def test_light_commands_import_no_heavy_library(args):
    """`hdae --help`, `examples` and the commands' help load none of torch, numba, scipy or matplotlib
    (issue 15's start-up target of 0.5 s as a process): they are imported when a command runs."""
    import subprocess
    import sys

    code = ("import sys; from cli.main import cli\n"
            f"try:\n    cli({args!r})\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('torch', 'numba', 'scipy', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout[-500:]


def test_info_of_one_run_imports_no_heavy_library(files):
    """`hdae info FILE` (start-up target 0.5 s) reads the file with h5py alone: checking whether it is
    a sweep file must not load hdae.sweep (numba)."""
    import subprocess
    import sys

    _, sim, _ = files
    code = ("import sys; from cli.main import cli\n"
            f"try:\n    cli(['info', {str(sim)!r}])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('torch', 'numba', 'scipy', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert "simulation, status success" in out.stdout
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout[-500:]


def test_sweep_files_are_described_by_info_and_refused_as_one_run(tmp_path):
    """`info` describes a sweep file (axes, points by status, why a point diverged); the commands that
    take one run's result (compare, solve --init-from, simulate --resume) say it is a sweep file."""
    sweep = tmp_path / "sw.h5"
    r = _run("sweep", "--example", "fig1", "--grid", "train.lr=0.2,10", "--serial", "-o", str(sweep), "-q")
    assert sweep.exists(), r.output
    r = _run("info", str(sweep))
    assert r.exit_code == 0
    assert "sweep, 2 points (1 success, 1 diverged)" in r.output
    assert "axis train.lr (2): 0.2, 10" in r.output
    assert "point 1 (train.lr = 10): diverged" in r.output
    for args in (["compare", str(sweep), str(sweep)], ["solve", "--init-from", str(sweep), "-o", str(tmp_path / "t.h5")],
                 ["simulate", "--resume", str(sweep), "-o", str(tmp_path / "s.h5")]):
        msg = _one_line_error(CliRunner().invoke(cli, args))
        assert "is a sweep file" in msg, args
    assert not (tmp_path / "t.h5").exists() and not (tmp_path / "s.h5").exists()
