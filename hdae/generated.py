"""The density a trained DAE generates, as the target of the next generation (model collapse).

Derivation note section 7 (Remark 4.1 of the paper). After training, generation g's sampler
produces, exactly in distribution at any d,

    X_T = w Q^+ Z_T / sqrt(d) + X_perp,      X_perp ~ N(0, S_T Proj(W-perp)),

with Z_T from the r-dimensional recursion (``hdae.theory.transport``), W = span(w), Q = w^T w/d
and S_T the W-perp variance. Discretising the law of Z_T into weighted points z_j (without
smoothing) gives a Gaussian mixture of the form of section 1: centroids mu_j = w Q^+ z_j/sqrt(d)
in W, covariance S_T Proj(W-perp) for every cluster. Its reduced representation has two bins:

    bin "W"    : mass r/d (0 in the limit), eigenvalue 0, T_W = Z Q^+ Z^T, H_W = Z Q^+ G,
                 E^T P_W E = G^T Q^+ G;
    bin "bulk" : mass (d - r)/d (1 in the limit), eigenvalue S_T, no centroid overlap, H = 0,
                 E^T P_bulk E = I - G^T Q^+ G,

where G = w^T E/sqrt(d) of generation g and E is the ORIGINAL observation basis, so all
generations are observed in the same space. A student w' of generation g+1 enters through
Q' = w'^T w'/d, G' = w'^T E/sqrt(d) and its overlap with the previous weights C = w'^T w/d:

    q_W = C Q^+ C^T,  q_bulk = Q' - q_W,  m_W = C Q^+ Z^T,  m_bulk = 0,  g_W = C Q^+ G,  g_bulk = G' - g_W.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .targets import ReducedTarget
from .linalg import pinv_sym

DISCRETISATIONS = ("kmeans", "histogram", "samples")


@dataclass(frozen=True)
class GeneratedTarget:
    """Generation g's generated density as a mixture target.

    points (J, r): the discretised law of Z_T; weights (J,) sum to 1; Q (r, r), G (r, R): the
    statistics of generation g's final weights; S: the W-perp variance S_T; d: ambient dimension
    (None: the d -> infinity limit)."""

    points: np.ndarray
    weights: np.ndarray
    Q: np.ndarray
    G: np.ndarray
    S: float
    d: int | None = None
    kind: str = "generated"

    @property
    def n_clusters(self) -> int:
        return len(self.weights)

    @property
    def width(self) -> int:
        return self.Q.shape[0]

    def reduce(self) -> ReducedTarget:
        """The two spectral bins (W, bulk) of the module docstring."""
        J, r, R = self.n_clusters, self.width, self.G.shape[1]
        Qp = pinv_sym(self.Q)
        p = np.array([0.0, 1.0]) if self.d is None else np.array([r / self.d, (self.d - r) / self.d])
        s = np.zeros((2, J))
        s[1] = self.S
        T = np.zeros((2, J, J))
        T[0] = self.points @ Qp @ self.points.T
        H = np.zeros((2, J, R))
        H[0] = self.points @ Qp @ self.G
        EPE = np.empty((2, R, R))
        EPE[0] = self.G.T @ Qp @ self.G
        EPE[1] = np.eye(R) - EPE[0]
        return ReducedTarget(p=p, s=s, T=T, H=H, EPE=EPE, weights=self.weights.copy(), labels=("W", "bulk"),
                             d=self.d, n_latent=1)

    def projected(self):
        """Projection on the observation space (Corollary 2.3 for a discretised Z): (weights (J,),
        means (J, R) = z_j Q^+ G, covariances (J, R, R) = S (I - G^T Q^+ G))."""
        Qp = pinv_sym(self.Q)
        cov = self.S * (np.eye(self.G.shape[1]) - self.G.T @ Qp @ self.G)
        cov = 0.5 * (cov + cov.T)
        return self.weights.copy(), self.points @ Qp @ self.G, np.broadcast_to(cov, (self.n_clusters,) + cov.shape).copy()

    def draw(self, w: np.ndarray, n: int, rng) -> np.ndarray:
        """n samples (n, d) of the target realised in d dimensions around explicit weights w (d, r)
        whose statistics are Q: x = w Q^+ z_j/sqrt(d) + sqrt(S) Proj(W-perp) xi, j ~ weights."""
        d = w.shape[0]
        Qp = pinv_sym(self.Q)
        j = rng.choice(self.n_clusters, size=n, p=self.weights / self.weights.sum())
        xi = rng.standard_normal((n, d))
        coef = np.linalg.lstsq(w, xi.T, rcond=None)[0]  # projection of xi on span(w)
        perp = xi - (w @ coef).T
        return (self.points[j] @ Qp @ w.T) / np.sqrt(d) + np.sqrt(self.S) * perp

    def student_bins(self, Q_student, G_student, overlap, Q_basis=None, G_basis=None):
        """Per-bin statistics (q (2, r, r), m (2, r, J), g (2, r, R)) of a student with Q', G' and
        C = w'^T w/d (the module docstring's map). ``Q_basis``, ``G_basis`` (default: the target's
        Q, G) are the statistics of the weights w that C refers to, when these are known more
        exactly than the target's (a simulation's actual previous weights): then q_W and g_W are
        the student's exact overlaps with that W."""
        Qb = self.Q if Q_basis is None else np.asarray(Q_basis, dtype=float)
        Gb = self.G if G_basis is None else np.asarray(G_basis, dtype=float)
        A = np.asarray(overlap, dtype=float) @ pinv_sym(Qb)
        r = A.shape[0]
        q = np.empty((2, r, r))
        q[0] = A @ Qb @ A.T
        q[1] = np.asarray(Q_student) - q[0]
        m = np.zeros((2, r, self.n_clusters))
        m[0] = A @ self.points.T
        g = np.empty((2, r, self.G.shape[1]))
        g[0] = A @ Gb
        g[1] = np.asarray(G_student) - g[0]
        return q, m, g

    def overlap_from_bins(self, m_W: np.ndarray, Q_basis=None) -> np.ndarray:
        """C = w'^T w/d recovered from m_W = C Q^+ Z^T (m_W stays in that form under the ODEs):
        C = m_W Z (Z^T Z)^+ Q (Q: ``Q_basis`` as in :meth:`student_bins`). m_W (..., r, J) -> (..., r, r)."""
        Z = self.points
        return m_W @ Z @ np.linalg.pinv(Z.T @ Z) @ (self.Q if Q_basis is None else Q_basis)


# ----------------------------------------------------------------------------- discretisation
def discretise(samples: np.ndarray, n_points: int, method: str = "kmeans", seed: int = 0):
    """Weighted points (points (J, r), weights (J,)) for the empirical law of ``samples`` (n, r),
    without smoothing (derivation note section 7).

    kmeans: Lloyd's algorithm from a k-means++ start (``n_points`` centres; weights = cluster
    sizes; the centres are the cluster means, so the mean of the law is kept exactly);
    histogram: a grid of about ``n_points`` cells over the samples' range, one point per
    non-empty cell at the mean of its samples; samples: the first ``n_points`` samples, equal
    weights. Deterministic for a given ``seed``."""
    x = np.asarray(samples, dtype=float)
    if x.ndim != 2 or len(x) == 0 or not np.all(np.isfinite(x)):
        raise ValueError("discretise needs finite samples of shape (n, r)")
    n = len(x)
    if method == "samples" or n_points >= n:
        k = min(n_points, n)
        return x[:k].copy(), np.full(k, 1.0 / k)
    if method == "histogram":
        return _histogram(x, n_points)
    if method == "kmeans":
        return _kmeans(x, n_points, np.random.default_rng(seed))
    raise ValueError(f"unknown discretisation {method!r}; choose one of {', '.join(DISCRETISATIONS)}")


def _group_means(x, labels, k):
    counts = np.bincount(labels, minlength=k).astype(float)
    sums = np.zeros((k, x.shape[1]))
    np.add.at(sums, labels, x)
    keep = counts > 0
    return sums[keep] / counts[keep, None], counts[keep] / len(x)


def _histogram(x, n_points):
    r = x.shape[1]
    per_dim = max(1, int(round(n_points ** (1.0 / r))))
    lo, hi = x.min(0), x.max(0)
    width = np.where(hi > lo, hi - lo, 1.0)
    idx = np.clip(((x - lo) / width * per_dim).astype(np.int64), 0, per_dim - 1)
    flat = np.ravel_multi_index(idx.T, (per_dim,) * r)
    labels = np.unique(flat, return_inverse=True)[1]
    return _group_means(x, labels, labels.max() + 1)


def _kmeans(x, k, rng, max_iter: int = 100):
    n = len(x)
    centres = np.empty((k, x.shape[1]))
    centres[0] = x[rng.integers(n)]
    d2 = ((x - centres[0]) ** 2).sum(1)
    for j in range(1, k):  # k-means++ seeding
        total = d2.sum()
        i = rng.choice(n, p=d2 / total) if total > 0 else rng.integers(n)
        centres[j] = x[i]
        d2 = np.minimum(d2, ((x - centres[j]) ** 2).sum(1))
    labels = None
    from ._kmeans_nb import nearest  # compiled: 5-10x numpy's distance matrix at 20000 samples x 400 centres

    x = np.ascontiguousarray(x)
    for _ in range(max_iter):
        new = nearest(x, np.ascontiguousarray(centres))
        if labels is not None and np.array_equal(new, labels):
            break
        labels = new
        means, _ = _group_means(x, labels, k)
        counts = np.bincount(labels, minlength=k)
        centres = centres.copy()
        centres[counts > 0] = means
    labels = np.unique(labels, return_inverse=True)[1]
    return _group_means(x, labels, labels.max() + 1)
