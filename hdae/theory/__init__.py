"""Theory: quadrature nodes, numba kernels, the summary-statistic ODEs, transport."""
from .solve import solve

__all__ = ["solve"]
