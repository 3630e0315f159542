"""hdae: precise high-dimensional theory of diffusion/flow models learned by a two-layer DAE."""
from ._version import __version__
from .config import ConfigError, Problem, example_names, example_text, load_problem
from .results import Result, read

__all__ = ["__version__", "ConfigError", "Problem", "Result", "example_names", "example_text", "load_problem",
           "read", "simulate"]


def simulate(problem, **kwargs):
    """Finite-d SGD + sampler for ``problem``; see :func:`hdae.simulation.run.simulate`."""
    from .simulation import simulate as _simulate

    return _simulate(problem, **kwargs)
