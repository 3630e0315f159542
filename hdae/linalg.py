"""Small symmetric-matrix helpers shared by the ODEs and the transport."""
from __future__ import annotations

import numpy as np


def sym_sqrt(a: np.ndarray, inverse: bool = False) -> np.ndarray:
    """Symmetric (pseudo-inverse, with ``inverse``) square root of a PSD matrix; negative
    eigenvalues (rounding) are clipped to 0."""
    e, v = np.linalg.eigh(0.5 * (a + a.T))
    tol = max(e.max(initial=0.0), 0.0) * 1e-12
    if inverse:
        f = np.where(e > tol, 1.0 / np.sqrt(np.where(e > tol, e, 1.0)), 0.0)
    else:
        f = np.sqrt(np.clip(e, 0.0, None))
    return (v * f) @ v.T


def pinv_sym(a: np.ndarray) -> np.ndarray:
    """Moore-Penrose pseudo-inverse of a symmetric matrix (exact where Q or Omega is singular)."""
    return np.linalg.pinv(0.5 * (a + a.T), rcond=1e-10, hermitian=True)
