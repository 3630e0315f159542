"""What counts as a divergence, for theory and simulation alike.

A run has diverged when any statistic (Q, Omega, M, G, b, or the theory's per-bin q, m, g), any
weight or any generated sample is non-finite or exceeds ``theory.divergence`` in absolute value
(default 1e6; the summary statistics of a sane run are O(1) to O(100)). A diverged run never
reports success: its Result has status 'diverged', and the command line exits with status 3.
The check is made replica by replica: a replica that diverges is frozen with its own status
(:mod:`hdae.results`, "Per-replica status") and the others go on.
"""
from __future__ import annotations

import numpy as np

EXIT_DIVERGED = 3


class DivergedError(RuntimeError):
    """A computation diverged (the command line exits with status 3)."""


def _as_numpy(a):
    if hasattr(a, "detach"):  # torch tensor
        a = a.detach().cpu().numpy()
    return np.asarray(a)


def exploded(arrays: dict, bound: float) -> str | None:
    """None when every array in ``{name: array}`` is finite and within ``bound``; else a short
    description of the first one that is not, e.g. ``'Q is non-finite'`` or ``'Q reached 3.1e+74'``."""
    return exploded_each(arrays, bound, 1)[0]


def exploded_each(arrays: dict, bound: float, n: int) -> list:
    """:func:`exploded` per replica: arrays ``{name: (n, ...)}`` with a leading replica axis; a list of
    n entries, None for a replica whose every array is finite and within ``bound``, else the
    description of its first bad array (vectorised over replicas: checked at every checkpoint)."""
    out = [None] * n
    for name, a in arrays.items():
        if a is None:
            continue
        a = _as_numpy(a).reshape(n, -1)
        if a.shape[1] == 0:
            continue
        finite = np.isfinite(a).all(1)
        peak = np.where(np.isfinite(a), np.abs(a), 0.0).max(1)
        for i in np.flatnonzero(~finite | (peak > bound)):
            if out[i] is None:
                out[i] = (f"{name} is non-finite" if not finite[i]
                          else f"{name} reached {peak[i]:.3g} (beyond theory.divergence = {bound:g})")
    return out


def check_initial(arrays: dict, bound: float) -> None:
    """Refuse (ConfigError, exit 1) a problem whose statistics are out of range before any training:
    that is the input's doing (centroids, eigenvalues, init scales far too large), not a divergence."""
    from .validate import ConfigError

    bad = exploded(arrays, bound)
    if bad is not None:
        raise ConfigError("target", f"the initial statistics are already out of range ({bad}): the problem's "
                                    "scales (centroids, eigenvalues, init.scale, init.warm_norm) are far too large")
