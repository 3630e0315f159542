"""The whole right-hand side of :func:`hdae.theory.ode.rhs` in one compiled call.

:func:`~hdae.theory.ode.rhs` assembles the operators of section 4 from the kernel's sums in numpy:
about a hundred small numpy calls, 0.5 ms per evaluation, which is most of the time of a small
problem (the default example: 3 clusters, about 1000 nodes, 250 evaluations). Here the same
arithmetic (aggregates, pseudo-inverses and square roots by eigendecomposition, the per-cluster
maps, the kernel :func:`~hdae.theory.kernels.cluster_expectations` on the same fixed node slices,
the exact zeta terms, the per-bin derivatives) runs in one serial numba function on the packed
state (:func:`hdae.theory.kernels.rhs_packed`: in the kernel's file, so that numba's on-disk cache,
which only watches a function's own file, recompiles it whenever the kernel changes). It equals
:func:`~hdae.theory.ode.rhs` to rounding (tests/test_fastrhs.py); ``ode.integrate`` uses it when
the problem is small (:func:`use_fast`), where one thread is also what stays fast on a busy
machine; large problems keep the parallel kernel.
"""
from __future__ import annotations

import numpy as np

from .. import activations
from .kernels import rhs_packed

#: node x cluster evaluations per right-hand side below which the serial compiled path is used
FAST_WORK = 1 << 16


def use_fast(setup, n_clusters: int) -> bool:
    """Whether a problem is small enough for the serial compiled right-hand side."""
    return len(setup.nodes.weights) * n_clusters <= FAST_WORK


def packed_rhs(setup, shapes, n_blocks: int):
    """fun(y) -> packed derivative for ``setup`` and state ``shapes`` (L, r, K, R), compiled path."""
    red = setup.reduced
    L, r, K, R = shapes
    args = (L, r, K, R, np.ascontiguousarray(red.s, dtype=float), np.ascontiguousarray(red.T, dtype=float),
            np.ascontiguousarray(red.H, dtype=float).reshape(L, K, R), np.ascontiguousarray(red.noise_mass, dtype=float),
            np.ascontiguousarray(red.weights, dtype=float), np.ascontiguousarray(setup.alphas, dtype=float),
            np.ascontiguousarray(setup.betas, dtype=float), np.ascontiguousarray(setup.omegas, dtype=float),
            float(setup.lr), float(setup.weight_decay), float(red.second_moment),
            0.0 if red.d is None else 1.0 / red.d, np.ascontiguousarray(setup.nodes.points, dtype=float),
            np.ascontiguousarray(setup.nodes.weights, dtype=float), activations.code(setup.activation), int(n_blocks))

    def fun(y):
        return rhs_packed(np.ascontiguousarray(y, dtype=float), *args)

    return fun
