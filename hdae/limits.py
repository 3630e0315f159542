"""Memory estimates checked before computing: an absurd size (``-r 100000000``, ``--d 10**9``,
``sample.n = 10**8``) is refused with one line that names the estimate, instead of running out of
memory (or into an allocation error) after minutes.

The estimates count the arrays that scale with the sizes (bytes; constants of order one are
rounded up), not Python's own overhead; a problem is refused only when it needs more than the
memory available now (``MemAvailable`` of /proc/meminfo, else the physical memory).
"""
from __future__ import annotations

import os

from .validate import ConfigError

GiB = 2**30


def available_memory() -> int:
    """Bytes of memory available now (Linux: MemAvailable; elsewhere: physical memory)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 2**62


def _sample_bytes(problem, n_rep: int) -> int:
    n_s, r, R = len(problem.sample.thetas), problem.model.width, problem.observation_basis.shape[1]
    grid = problem.sample.density_grid
    return 8 * n_rep * n_s * (3 * problem.sample.n * (R + r) + 3 * grid * grid)


def simulation_bytes(problem, replicas: int) -> int:
    """Estimated peak bytes of :func:`hdae.simulation.simulate` (weights and their copies, the
    float64 w_0, the realised target, statistics, samples; the noise buffers are capped at 256 MiB
    each by the simulation itself)."""
    d, r, K = problem.d, problem.model.width, problem.target.n_clusters
    R = problem.observation_basis.shape[1]
    n_ckpt, n_s = len(problem.train.checkpoints), len(problem.sample.thetas)
    weights = 8 * replicas * d * r * (4 + n_s)
    target = 8 * 3 * (K + R) * d
    stats = 8 * replicas * n_ckpt * (r * r * (K + 1) + r * (K + R) + 1)
    return weights + target + stats + _sample_bytes(problem, replicas) + 2 * 256 * 2**20


def theory_bytes(problem, n_rep: int, n_nodes: int, node_dim: int) -> int:
    """Estimated peak bytes of :func:`hdae.theory.solve` (quadrature nodes and their per-node
    work arrays, per-bin trajectories, samples)."""
    r, K = problem.model.width, problem.target.n_clusters
    R = problem.observation_basis.shape[1]
    n_ckpt = len(problem.train.checkpoints)
    n_bins = len(problem.target.bulk.fractions) + problem.target.latent_dim
    nodes = 8 * n_nodes * (node_dim + 8 * r)
    trajectories = 8 * 2 * n_rep * n_ckpt * n_bins * r * (r + K + R)
    return nodes + trajectories + _sample_bytes(problem, n_rep)


def realised_start_bytes(problem, d: int, replicas: int = 1) -> int:
    """Estimated bytes of the theory's finite-d start: w_0 (replicas, d, r), the realised target and
    the per-coordinate work arrays of :func:`hdae.targets.realised_statistics`."""
    r, K = problem.model.width, problem.target.n_clusters
    R = problem.observation_basis.shape[1]
    return 8 * d * (replicas * r * (3 + 2 * (r + K + R)) + 3 * (K + R) + 2)


def check_memory(needed: int, what: str, sizes: str) -> None:
    """Refuse (ConfigError) when ``needed`` bytes exceed the memory available now."""
    have = available_memory()
    if needed > have:
        raise ConfigError("size", f"{what} needs about {needed / GiB:.3g} GiB ({sizes}) but {have / GiB:.3g} GiB "
                                  "are available: reduce these sizes")
