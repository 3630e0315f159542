"""`hdae simulate` on CPU never imports torch (issue 15: importing it costs ~2 s of a process that
otherwise needs about as much): numpy arrays, the numba SGD kernel and the numpy sampler; torch is
kept for CUDA. Same seed, same result, bit for bit."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import hdae
from hdae.simulation import run, simulate
from hdae.simulation.sgd import summary_statistics

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
no_driver = pytest.mark.skipif(run.nvidia_driver_present(), reason="an NVIDIA driver is present ('auto' may pick CUDA)")


@no_driver
def test_simulate_commands_never_import_torch(tmp_path):
    """With sampling, without, and two generations: three `hdae simulate` runs in one process, after
    which torch was never imported (numba, scipy and h5py were)."""
    base = ["simulate", "--example", "fig2", "--d", "200", "--set", "train.tau=0.5", "--set",
            "sample.thetas=[0.25, 0.5]", "-q"]
    commands = [base + ["-o", str(tmp_path / "a.h5")],
                base + ["--no-sample", "-o", str(tmp_path / "b.h5")],
                base + ["--generations", "2", "--replicas", "2", "-o", str(tmp_path / "c.h5")]]
    code = ("import sys\nfrom cli.main import cli\n"
            f"for args in {commands!r}:\n"
            "    try:\n        cli(args)\n    except SystemExit as e:\n"
            "        assert e.code in (0, None), (args, e.code)\n"
            "print(sorted(m for m in ('torch', 'numba', 'scipy', 'h5py') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "['h5py', 'numba', 'scipy']", out.stdout[-500:]
    a, c = hdae.read(tmp_path / "a.h5"), hdae.read(tmp_path / "c.h5")
    assert a.ok and a.sample is not None and c.ok and c.n_generations == 2
    for res in (a, c):
        assert "torch_version" not in res.attrs and "numpy_version" in res.attrs and "numba_version" in res.attrs
        assert res.device.startswith("cpu (")


def test_resolve_device_without_a_driver(monkeypatch):
    monkeypatch.setattr(run, "nvidia_driver_present", lambda: False)
    assert run.resolve_device("auto") == "cpu" and run.resolve_device("cpu") == "cpu"
    assert run.describe_device("cpu").startswith("cpu (") and "threads" in run.describe_device("cpu")


@no_driver
def test_resolving_the_device_imports_no_torch():
    code = ("import sys\nfrom hdae.simulation.run import resolve_device, describe_device\n"
            "assert resolve_device('auto') == resolve_device('cpu') == 'cpu'\ndescribe_device('cpu')\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "False"


def test_cpu_run_is_numpy_and_bit_identical_on_rerun(small_problem):
    """Two generations with samples, 2 replicas, run twice: every stored array equal bit for bit."""
    p = small_problem.with_overrides("generations.count=2")
    a, b = (simulate(p, replicas=2, device="cpu") for _ in range(2))
    assert a.ok and a.n_generations == 2 and "torch_version" not in a.attrs
    for g in range(2):
        ga, gb = a.generation(g), b.generation(g)
        for k in ("Q", "Omega", "M", "G", "b"):
            np.testing.assert_array_equal(getattr(ga.train, k), getattr(gb.train, k))
        np.testing.assert_array_equal(ga.sample.projected, gb.sample.projected)
        np.testing.assert_array_equal(ga.sample.Z, gb.sample.Z)
        np.testing.assert_array_equal(ga.final_w, gb.final_w)
    np.testing.assert_array_equal(a.generation(1).train.overlap, b.generation(1).train.overlap)
    c = simulate(p.with_overrides("seed=6"), replicas=2, device="cpu")
    assert not np.allclose(c.generation(1).sample.projected, a.generation(1).sample.projected)


def test_summary_statistics_take_numpy_or_torch(small_problem):
    """numpy in, numpy out; CPU tensors in, tensors out, with the same numbers bit for bit."""
    rt = hdae.targets.realise(small_problem.target, small_problem.observation_basis)
    w = np.random.default_rng(3).standard_normal((2, rt.d, 2))
    b = np.array([0.1, -0.2])
    arrays = (rt.eigenvalues, rt.centroids, rt.basis)
    st_np = summary_statistics(w, b, *arrays)
    st_t = summary_statistics(torch.as_tensor(w), torch.as_tensor(b), *(torch.as_tensor(a) for a in arrays))
    for k in ("Q", "Omega", "M", "G", "b"):
        assert isinstance(st_np[k], np.ndarray) and isinstance(st_t[k], torch.Tensor)
        np.testing.assert_array_equal(st_np[k], st_t[k].numpy())
    st_np["b"][0] = 5.0
    assert b[0] == 0.1  # b is copied


def test_generated_samples_on_cpu(small_problem):
    sim = simulate(small_problem, replicas=2, device="cpu", sample=False)
    x = hdae.simulation.generated_samples(sim, 50, replica=1, seed=3, device="cpu")
    assert isinstance(x, np.ndarray) and x.shape == (50, sim.d) and np.isfinite(x).all()
    np.testing.assert_array_equal(x, hdae.simulation.generated_samples(sim, 50, replica=1, seed=3, device="cpu"))


# ----------------------------------------------------------------------------- the torch (CUDA) path
def test_torch_path_runs_on_cpu_tensors(small_problem, monkeypatch):
    """Where no GPU is at hand: simulate's torch implementation (tensors, torch generator, torch
    sampler, generated data of generation 1), run on CPU tensors; the torch step and the kernel fed
    the same torch draws follow the same trajectory."""
    import functools

    from hdae.simulation import sgd

    p = small_problem.with_overrides("generations.count=2")
    monkeypatch.setattr(run, "_TORCH_ON_CPU", True)
    kern = simulate(p, replicas=2, device="cpu")
    monkeypatch.setattr(run, "OnlineSGD", functools.partial(sgd.OnlineSGD, backend="torch"))
    ref = simulate(p, replicas=2, device="cpu")
    for res in (kern, ref):
        assert res.ok and res.n_generations == 2 and "torch_version" in res.attrs
        assert np.isfinite(res.generation(1).sample.projected).all()
    for g in range(2):
        for k in ("Q", "M", "G", "b"):
            np.testing.assert_allclose(getattr(kern.generation(g).train, k), getattr(ref.generation(g).train, k),
                                       rtol=1e-9, atol=1e-12)
    x = hdae.simulation.generated_samples(ref, 20, replica=1, seed=3, device="cpu")
    assert isinstance(x, np.ndarray) and x.shape == (20, ref.d)


def test_generation_statistics_in_torch_equal_numpy(small_problem, monkeypatch):
    """_Generation.statistics computed by torch (as on a device) and by numpy agree."""
    from hdae.simulation import sgd

    rt = hdae.targets.realise(small_problem.target, small_problem.observation_basis)
    rng = np.random.default_rng(4)
    w, w_prev = rng.standard_normal((2, rt.d, 2)), rng.standard_normal((2, rt.d, 2))
    b, S = np.array([0.3, 0.5]), np.array([0.9, 1.1])
    arrays = (rt.eigenvalues, rt.centroids, rt.basis, w_prev, S)
    st_np = run._Generation(*arrays).statistics(w, b)
    monkeypatch.setattr(sgd, "on_cpu", lambda x: False)
    st_t = run._Generation(*(torch.as_tensor(a) for a in arrays)).statistics(torch.as_tensor(w), torch.as_tensor(b))
    for k in ("Q", "Omega", "M", "G", "b", "overlap"):
        assert isinstance(st_t[k], torch.Tensor)
        np.testing.assert_allclose(st_t[k].numpy(), st_np[k], rtol=1e-12, atol=1e-14)


def test_numpy_sampler_does_not_depend_on_the_thread_count():
    """Each path of the sampler kernel draws from its own stream: 1 or 2 threads, the same bits."""
    import numba

    from hdae import schedules
    from hdae.simulation import sample_finite_d

    co = schedules.sampler_coefficients(schedules.Interpolant("linear"), schedules.NoiseSchedule(0.4, "constant"),
                                        schedules.sampling_grid(8, 0.9))
    w = np.random.default_rng(0).standard_normal((2, 50, 2))
    out = []
    before = numba.get_num_threads()
    try:
        for threads in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            numba.set_num_threads(threads)
            out.append(sample_finite_d(w, np.array([0.5, 1.2]), co, 64, np.eye(50)[:, :3], "tanh",
                                       np.random.default_rng(5)))
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(out[0][0], out[1][0])
    np.testing.assert_array_equal(out[0][1], out[1][1])
