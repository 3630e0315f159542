"""The CUDA path of the simulator (skipped without a GPU; `-m gpu` selects these tests)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from hdae.simulation import simulate

from conftest import needs_cuda

pytestmark = [pytest.mark.gpu, needs_cuda]


def test_cuda_run_starts_from_the_same_weights_and_matches_cpu_statistically(small_problem):
    cpu = simulate(small_problem, replicas=8, device="cpu", sample=False)
    gpu = simulate(small_problem, replicas=8, device="cuda", sample=False)
    assert gpu.device.startswith("cuda")
    np.testing.assert_array_equal(cpu.init_w, gpu.init_w)  # w_0 is drawn by numpy, device-independent
    np.testing.assert_allclose(gpu.train.Q[:, 0], cpu.train.Q[:, 0], rtol=1e-12)
    # different noise streams: the replica means agree within their spread
    for k in ("Q", "M", "b"):
        a, b = getattr(cpu.train, k), getattr(gpu.train, k)
        spread = np.sqrt(a.var(0) / 8 + b.var(0) / 8) + 1e-12
        assert np.all(np.abs(a.mean(0) - b.mean(0)) < 6 * spread + 1e-3 * np.abs(a).max())


def test_cuda_float32_and_sampler(small_problem):
    p = small_problem.with_overrides('simulation.dtype="float32"')
    res = simulate(p, replicas=4, device="cuda")
    assert res.ok and res.sample.projected.shape == (4, 2, p.sample.n, 2)
    assert np.all(np.isfinite(res.sample.projected))


def test_cuda_is_deterministic_for_a_seed(small_problem):
    a = simulate(small_problem, replicas=2, device="cuda", sample=False)
    b = simulate(small_problem, replicas=2, device="cuda", sample=False)
    np.testing.assert_allclose(a.train.Q, b.train.Q, rtol=1e-6)
    assert torch.cuda.is_available()
