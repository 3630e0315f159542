"""hdae: precise high-dimensional theory of diffusion/flow models learned by a two-layer DAE.

The public API (everything a command of the ``hdae`` CLI does is one of these calls):

    problem = hdae.load_problem("my.toml", overrides=["train.lr=0.1"])   # or example="fig1"
    sim = hdae.simulate(problem, replicas=4)          # finite-d SGD + sampler (numba/numpy; torch on CUDA)
    theory = hdae.solve(init_from=sim)                # Result 2.1 ODEs + generated density
    hdae.compare_training(theory, sim)                # deviations, scales, replica spread
    theory.write("theory.h5"); hdae.read("theory.h5")

``simulate`` and ``solve`` import numba (``simulate`` torch only for CUDA), ``read`` h5py, only when called.
"""
import os as _os

# OpenMP threads (numba's parallel kernels, torch's intra-op pool) that wait at a barrier sleep
# instead of spinning: with the default (spin) a 2-thread kernel ran 4x slower than 1 thread as soon
# as another process took a core (validation/benchmark_commands.py). Read by libgomp when it loads,
# so it is set before numba or torch are imported; a user's own setting wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from . import _numba_cache  # noqa: E402

_numba_cache.refresh()  # numba's cache knows a function's own file only: drop it when a kernel source changed

from ._version import __version__  # noqa: E402
from .config import ConfigError, Problem, example_names, example_text, load_problem

_LAZY = {"compare_samples": "compare", "compare_training": "compare", "Result": "results", "read": "results"}


def __getattr__(name):
    """compare_* (numba) and Result/read (h5py) load on first use: `hdae --help` stays fast."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = ["__version__", "ConfigError", "Problem", "Result", "compare_samples", "compare_training",
           "example_names", "example_text", "load_problem", "read", "run", "simulate", "solve",
           "solve_many"]


def simulate(problem, **kwargs):
    """Finite-d SGD + sampler for ``problem``: :func:`hdae.simulation.run.simulate`."""
    from .simulation import simulate as _simulate

    return _simulate(problem, **kwargs)


def solve(problem=None, **kwargs):
    """The theory of ``problem``: :func:`hdae.theory.solve.solve`."""
    from .theory import solve as _solve

    return _solve(problem, **kwargs)


def solve_many(problems, **kwargs):
    """The theory of several problems in one process, compatible ones integrated together:
    :func:`hdae.theory.solve.solve_many`."""
    from .theory import solve_many as _solve_many

    return _solve_many(problems, **kwargs)


def run(problem, out_dir, **kwargs):
    """Simulate, solve from the same w_0, compare and plot into ``out_dir``: :func:`hdae.pipeline.run`."""
    from .pipeline import run as _run

    return _run(problem, out_dir, **kwargs)
