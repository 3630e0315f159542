"""Shared test helpers: small problems that run in seconds, and data/GPU availability."""
from __future__ import annotations

import numba
import numpy as np
import pytest
import torch

import hdae
from hdae.config import ConfigError
from hdae.targets import resolve_data_dir



@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """The test problems are tiny: one torch / numba thread is fastest, and stays fast when the cores
    are busy (with 2 threads on a loaded machine the many small kernels spend their time waiting)."""
    before = torch.get_num_threads(), numba.get_num_threads()
    torch.set_num_threads(1)
    numba.set_num_threads(1)
    yield
    torch.set_num_threads(before[0])
    numba.set_num_threads(before[1])


def mnist_available() -> bool:
    try:
        resolve_data_dir(hdae.targets.DEFAULT_MNIST_DIR)
        return True
    except ConfigError:
        return False


needs_mnist = pytest.mark.skipif(not mnist_available(), reason="MNIST IDX files not found (../shared/data/mnist)")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")

SMALL = """
seed = 5
[target]
kind = "mixture"
d = 200
centroids = [[2.0, 0.0], [0.0, -2.0], [-2.0, 0.0]]
covariance = { isotropic = 1.0 }
[model]
width = 2
activation = "tanh"
[init]
scale = 0.3
warm_norm = 0.3
[train]
lr = 0.2
weight_decay = 0.5
times = [0.5]
tau = 0.5
checkpoints = 6
[sample]
n = 300
steps = 10
t_end = 0.9
thetas = [0.0, 0.5]
"""


@pytest.fixture
def small_problem():
    """A 3-cluster tanh problem at d = 200 that simulates in well under a second."""
    return hdae.load_problem(SMALL)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
