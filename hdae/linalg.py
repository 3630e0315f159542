"""Small symmetric-matrix helpers shared by the ODEs and the transport."""
from __future__ import annotations

import numpy as np


def sym_sqrt(a: np.ndarray, inverse: bool = False) -> np.ndarray:
    """Symmetric (pseudo-inverse, with ``inverse``) square root of a PSD matrix, or of each of a
    stack (..., n, n); negative eigenvalues (rounding) are clipped to 0."""
    e, v = np.linalg.eigh(0.5 * (a + np.swapaxes(a, -1, -2)))
    tol = np.maximum(e.max(axis=-1, initial=0.0), 0.0)[..., None] * 1e-12
    if inverse:
        f = np.where(e > tol, 1.0 / np.sqrt(np.where(e > tol, e, 1.0)), 0.0)
    else:
        f = np.sqrt(np.clip(e, 0.0, None))
    return (v * f[..., None, :]) @ np.swapaxes(v, -1, -2)


def pinv_sym(a: np.ndarray) -> np.ndarray:
    """Moore-Penrose pseudo-inverse of a symmetric matrix, or of each of a stack (..., n, n)
    (exact where Q or Omega is singular)."""
    return np.linalg.pinv(0.5 * (a + np.swapaxes(a, -1, -2)), rcond=1e-10, hermitian=True)
