"""Re-export of :mod:`hdae.linalg` (symmetric square roots and pseudo-inverses)."""
from ..linalg import pinv_sym, sym_sqrt

__all__ = ["pinv_sym", "sym_sqrt"]
