"""The assignment step of k-means (hdae.generated._kmeans) compiled: each sample's nearest centre by
exact squared distance, without the (n, k) distance matrix numpy builds (imported on first use only)."""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def nearest(x, centres):
    """labels (n,) of the nearest centre (the first one on ties) for samples x (n, r), centres (k, r)."""
    n, r = x.shape
    k = centres.shape[0]
    labels = np.empty(n, dtype=np.int64)
    for i in range(n):
        best = np.inf
        arg = 0
        for j in range(k):
            d = 0.0
            for a in range(r):
                t = x[i, a] - centres[j, a]
                d += t * t
            if d < best:
                best = d
                arg = j
        labels[i] = arg
    return labels
