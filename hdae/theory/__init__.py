"""Theory: quadrature nodes, numba kernels, the summary-statistic ODEs, transport."""
from .solve import solve, solve_many

__all__ = ["solve", "solve_many"]
