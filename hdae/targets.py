"""Target densities: one canonical form, realised in d dimensions or reduced to spectral bins.

Every target kind of the problem files (``mixture``, ``gaussian``, ``manifold``, ``mnist``)
becomes a :class:`MixtureTarget`: K clusters with weights pi_c, centroids mu_c that live in a
k-dimensional *latent* space, and covariances Sigma_c that are diagonal in one common basis.
Coordinates are laid out as

    [0, k)   latent directions: carry the centroids and the observation space; each has its
             own eigenvalue per cluster (``latent_eigenvalues``, shape (K, k));
    [k, d)   bulk directions: eigenvalues follow a piecewise-constant quantile function per
             cluster (``BulkSpectrum``), coordinate i getting the value at u = (i+1/2)/(d-k).

From this one description:

* :func:`realise` builds the d-dimensional arrays the simulation uses (section 1 of the
  derivation note), deterministically from (target, d);
* :func:`reduce` builds the spectral bins of section 2 (masses p_l, eigenvalues s_l^c, centroid
  overlaps T_l, observation overlaps H_l), either in the d -> infinity limit (latent bins have
  p = 0) or at a finite d, where every bin is an actual set of coordinates (p_l = |bin|/d),
  which makes the theory start from exactly the simulation's initial point.
"""
from __future__ import annotations

import gzip
import math
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from .validate import REQUIRED, ConfigError, _check_table, _choice, _int, _matrix, _num, _num_list, _weights

MANIFOLDS = ("swiss_roll", "circle")
DEFAULT_MNIST_DIR = "../shared/data/mnist"


# ============================================================================ canonical form
@dataclass(frozen=True)
class BulkSpectrum:
    """Piecewise-constant quantile functions of the bulk eigenvalues, common pieces for all clusters.

    ``breaks`` (n+1,) increase from 0 to 1; piece j covers u in [breaks[j], breaks[j+1]) and
    cluster c has eigenvalue ``values[c, j]`` there, in the order the problem file writes them
    (values need not be monotone; pieces are shared by all clusters, so the pairing across
    clusters is the written one). At finite d the bulk coordinate i lies at u_i = (i + 1/2)/(d - k),
    so a piece [a, b) holds round(n b) - round(n a) coordinates (n = d - k, halves rounded down).
    """

    breaks: np.ndarray
    values: np.ndarray  # (K, n)

    @property
    def fractions(self) -> np.ndarray:
        return np.diff(self.breaks)

    def piece_of(self, n_coords: int) -> np.ndarray:
        """Piece index of each of ``n_coords`` bulk coordinates, u_i = (i + 1/2)/n_coords."""
        u = (np.arange(n_coords) + 0.5) / n_coords
        return np.clip(np.searchsorted(self.breaks, u, side="right") - 1, 0, len(self.breaks) - 2)


@dataclass(frozen=True)
class MixtureTarget:
    """x1 ~ sum_c pi_c N(mu_c, Sigma_c) with Sigma_c diagonal in the coordinate basis.

    weights (K,), centroids (K, k) and latent_eigenvalues (K, k) in latent coordinates,
    bulk: :class:`BulkSpectrum`; d: ambient dimension.
    """

    kind: str
    d: int
    weights: np.ndarray
    centroids: np.ndarray
    latent_eigenvalues: np.ndarray
    bulk: BulkSpectrum

    @property
    def n_clusters(self) -> int:
        return len(self.weights)

    @property
    def latent_dim(self) -> int:
        return self.centroids.shape[1]

    def average_eigenvalue(self, d: int | None = None) -> float:
        """Lambda = sum_c pi_c tr(Sigma_c)/d; ``d=None`` is the d -> infinity value."""
        bulk = self.bulk.values @ self.bulk.fractions
        if d is None:
            return float(self.weights @ bulk)
        k = self.latent_dim
        counts = np.bincount(self.bulk.piece_of(d - k), minlength=len(self.bulk.fractions))
        per_cluster = (self.latent_eigenvalues.sum(axis=1) + self.bulk.values @ counts) / d
        return float(self.weights @ per_cluster)

    def realise(self, basis: np.ndarray, d: int | None = None) -> "RealisedTarget":
        """The d-dimensional arrays (what the simulation draws from): :func:`realise`."""
        return realise(self, basis, d)

    def reduce(self, basis: np.ndarray, d: int | None = None, spectral_bins: int = 0):
        """Spectral bins (what the theory needs): :func:`reduce`."""
        return reduce(self, basis, d, spectral_bins)

    def projected(self, basis: np.ndarray):
        """The target's projection on the observation space: (weights (K,), means (K, R),
        covariances (K, R, R)) -- a Gaussian mixture, since E lives in latent coordinates."""
        means = self.centroids @ basis
        covs = np.einsum("kr,ck,ks->crs", basis, self.latent_eigenvalues, basis)
        return self.weights.copy(), means, covs


# ============================================================================ config -> target
def _spectrum_spec(key: str, spec, latent_dim: int | None):
    """Check one covariance spec; returns (pieces [(fraction, value)...], latent list or None)."""
    if not isinstance(spec, dict):
        raise ConfigError(key, f"expected a table like {{ isotropic = 1.0 }}, got {spec!r}")
    allowed = {"isotropic", "blocks", "eigenvalues", "latent"}
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise ConfigError(f"{key}.{unknown[0]}", f"unknown key; known keys: {', '.join(sorted(allowed))}")
    given = [k for k in ("isotropic", "blocks", "eigenvalues") if k in spec]
    if len(given) != 1:
        raise ConfigError(key, "give exactly one of isotropic, blocks, eigenvalues")
    kind = given[0]
    if kind == "isotropic":
        pieces = [(1.0, _num(f"{key}.isotropic", spec["isotropic"], 0.0))]
    elif kind == "blocks":
        blocks = spec["blocks"]
        if not isinstance(blocks, list) or not blocks:
            raise ConfigError(f"{key}.blocks", "expected a list of [fraction, eigenvalue] pairs")
        pieces = []
        for i, pair in enumerate(blocks):
            if not isinstance(pair, list) or len(pair) != 2:
                raise ConfigError(f"{key}.blocks[{i}]", f"expected [fraction, eigenvalue], got {pair!r}")
            frac = _num(f"{key}.blocks[{i}][0]", pair[0], 0.0, 1.0, lo_open=True)
            pieces.append((frac, _num(f"{key}.blocks[{i}][1]", pair[1], 0.0)))
        total = sum(f for f, _ in pieces)
        if abs(total - 1.0) > 1e-6:
            raise ConfigError(f"{key}.blocks", f"fractions must sum to 1, they sum to {total:.12g}")
    else:
        values = _num_list(f"{key}.eigenvalues", spec["eigenvalues"], 0.0)
        pieces = [(1.0 / len(values), v) for v in values]
    latent = None
    if "latent" in spec:
        lat = spec["latent"]
        if isinstance(lat, list):
            latent = _num_list(f"{key}.latent", lat, 0.0)
            if latent_dim is not None and len(latent) != latent_dim:
                raise ConfigError(f"{key}.latent", f"expected {latent_dim} values (one per latent direction), got {len(latent)}")
        else:
            latent = _num(f"{key}.latent", lat, 0.0)
    return pieces, latent


_TARGET_KEYS = {
    "mixture": {"d": 1000, "centroids": REQUIRED, "weights": None, "covariance": {"isotropic": 1.0}},
    "gaussian": {"d": 1000, "covariance": {"isotropic": 1.0}},
    "manifold": {"d": 1000, "manifold": REQUIRED, "points": None, "scale": 1.0, "covariance": {"isotropic": 0.1}},
    "mnist": {"d": 784, "digit": 7, "data_dir": DEFAULT_MNIST_DIR, "pixel_scale": 300.0, "spikes": 2},
}


def resolve_target_config(table) -> dict:
    """Check the [target] table (keys depend on ``kind``); returns it with defaults filled in."""
    if not isinstance(table, dict):
        raise ConfigError("target", "expected a table")
    kind = table.get("kind", "mixture")
    if kind == "generated":
        raise ConfigError("target.kind", "a generated target is made from a previous generation (--generations), "
                                         "not written in a problem file")
    _choice("target.kind", kind, tuple(TARGET_KINDS))
    spec = {"kind": (lambda k, v: v, "mixture")}
    for key, default in _TARGET_KEYS[kind].items():
        spec[key] = (lambda k, v: v, default)
    out = _check_table(table, spec, "target")
    _int("target.d", out["d"], 2)
    if kind == "mixture":
        cents = _matrix("target.centroids", out["centroids"])
        if "weights" in out:
            _weights("target.weights", out["weights"], len(cents))
        covs = out["covariance"]
        if isinstance(covs, list):
            if len(covs) != len(cents):
                raise ConfigError("target.covariance", f"expected one spec per cluster ({len(cents)}), got {len(covs)}")
            for i, c in enumerate(covs):
                _spectrum_spec(f"target.covariance[{i}]", c, cents.shape[1])
        else:
            _spectrum_spec("target.covariance", covs, cents.shape[1])
    elif kind == "gaussian":
        _, latent = _spectrum_spec("target.covariance", out["covariance"], None)
        if latent is not None and not isinstance(latent, list):
            raise ConfigError("target.covariance.latent", "a gaussian target takes a list: one eigenvalue per "
                                                          "latent (observable) direction")
    elif kind == "manifold":
        _choice("target.manifold", out["manifold"], MANIFOLDS)
        pts = out.get("points", 16 if out["manifold"] == "circle" else [24, 4])
        if out["manifold"] == "circle":
            _int("target.points", pts, 2)
        elif not (isinstance(pts, list) and len(pts) == 2):
            raise ConfigError("target.points", "a swiss roll takes [n_along_roll, n_across]")
        else:
            for i, n in enumerate(pts):
                _int(f"target.points[{i}]", n, 1)
        out["points"] = pts
        _num("target.scale", out["scale"], 0.0, lo_open=True)
        _spectrum_spec("target.covariance", out["covariance"], 3 if out["manifold"] == "swiss_roll" else 2)
    else:
        _int("target.digit", out["digit"], 0)
        if out["digit"] > 9:
            raise ConfigError("target.digit", f"must be 0..9, got {out['digit']}")
        if not isinstance(out["data_dir"], str):
            raise ConfigError("target.data_dir", "expected a path string")
        _num("target.pixel_scale", out["pixel_scale"], 0.0, lo_open=True)
        _int("target.spikes", out["spikes"], 1)
    for key in ("scale", "pixel_scale"):
        if key in out and isinstance(out[key], int):
            out[key] = float(out[key])
    return out


def default_observation(kind: str) -> str:
    """Default observation space: centroid span for mixtures and manifolds, principal directions otherwise."""
    return "centroids" if kind in ("mixture", "manifold") else "principal"


def _bulk_from_pieces(per_cluster: list[list[tuple[float, float]]]) -> BulkSpectrum:
    """Common refinement of per-cluster piecewise-constant spectra, each laid out in the order written.

    Cluster c's written pieces (f_1, v_1), (f_2, v_2), ... cover u in [0, f_1), [f_1, f_1 + f_2), ...
    on the bulk coordinates shared by all clusters; the breaks are the union of every cluster's
    cumulative fractions, so the pairing of values across clusters is the written one (never sorted)."""
    cum_pieces, edges = [], [0.0, 1.0]
    for pieces in per_cluster:
        cum = np.cumsum([f for f, _ in pieces])
        cum = cum / cum[-1]
        cum_pieces.append((np.concatenate([[0.0], cum]), np.array([v for _, v in pieces])))
        edges.extend(cum[:-1])
    breaks = np.unique(np.round(np.array(edges), 12))
    mids = 0.5 * (breaks[:-1] + breaks[1:])
    values = np.array([vals[np.clip(np.searchsorted(b, mids, side="right") - 1, 0, len(vals) - 1)]
                       for b, vals in cum_pieces])
    return BulkSpectrum(breaks=breaks, values=values)


def _check_pieces_fit(per_cluster: list[list[tuple[float, float]]], n_coords: int, k: int):
    """Refuse a written piece that gets no bulk coordinate at this d (it would silently vanish).

    Rounding rule (that of :meth:`BulkSpectrum.piece_of`): a piece covering u in [a, b) gets the
    coordinates i with (i + 1/2)/n in [a, b), i.e. about round(n b) - round(n a) of them."""
    for c, pieces in enumerate(per_cluster):
        cum = np.round(np.concatenate([[0.0], np.cumsum([f for f, _ in pieces])]) / sum(f for f, _ in pieces), 12)
        counts = np.ceil(cum * n_coords - 0.5)  # #coordinates with midpoint below each break
        empty = np.flatnonzero(np.diff(counts) <= 0)
        if len(empty):
            j = int(empty[0])
            need = int(math.ceil(1.0 / min(f for f, _ in pieces) - 1e-9)) + k
            raise ConfigError("target.d", f"d = {n_coords + k} leaves spectrum piece {j} of cluster {c} (fraction "
                                          f"{pieces[j][0]:.4g}, value {pieces[j][1]:.4g}) no coordinate of the "
                                          f"{n_coords} bulk ones; d >= {need} fits every piece")


def _latent_values(latent, pieces, k):
    if latent is None:  # default: the bulk's mean eigenvalue along every latent direction
        return np.full(k, sum(f * v for f, v in pieces) / sum(f for f, _ in pieces))
    return np.full(k, float(latent)) if np.isscalar(latent) else np.array(latent, dtype=float)


def _mixture_specs(cfg):
    cents = np.array(cfg["centroids"], dtype=float)
    K, k = cents.shape
    weights = np.array(cfg["weights"]) if "weights" in cfg else np.full(K, 1.0 / K)
    covs = cfg["covariance"] if isinstance(cfg["covariance"], list) else [cfg["covariance"]] * K
    return cents, weights, [_spectrum_spec("target.covariance", c, k) for c in covs]


def _gaussian_specs(cfg):
    pieces, latent = _spectrum_spec("target.covariance", cfg["covariance"], None)
    k = len(latent) if isinstance(latent, list) else 0
    return np.zeros((1, k)), np.ones(1), [(pieces, latent)]


def _manifold_specs(cfg):
    cents, weights = manifold_points(cfg["manifold"], cfg["points"], cfg["scale"])
    spec = _spectrum_spec("target.covariance", cfg["covariance"], cents.shape[1])
    return cents, weights, [spec] * len(weights)


def _mnist_specs(cfg):
    spectrum = mnist_spectrum(resolve_data_dir(cfg["data_dir"]), cfg["digit"], cfg["pixel_scale"])
    k = cfg["spikes"]
    if k >= len(spectrum):
        raise ConfigError("target.spikes", f"must be smaller than the {len(spectrum)} MNIST eigenvalues")
    return np.zeros((1, k)), np.ones(1), [([(1.0 / (len(spectrum) - k), v) for v in spectrum[k:]], list(spectrum[:k]))]


#: The target kinds of problem files, registered in one place: each maps a resolved [target] table to
#: (centroids (K, k), weights (K,), [(bulk pieces, latent eigenvalues)] per cluster), all of which
#: become a :class:`MixtureTarget`. The density generated by a previous generation is the other
#: kind of target (:class:`hdae.generated.GeneratedTarget`); it is made by ``generations``, never
#: written in a problem file.
TARGET_KINDS = {"mixture": _mixture_specs, "gaussian": _gaussian_specs, "manifold": _manifold_specs,
                "mnist": _mnist_specs}


def build_target(cfg: dict) -> MixtureTarget:
    """:class:`MixtureTarget` from a resolved [target] table."""
    kind, d = cfg["kind"], cfg["d"]
    cents, weights, specs = TARGET_KINDS[kind](cfg)
    k = cents.shape[1]
    if d < k + 1:
        raise ConfigError("target.d", f"must exceed the latent dimension {k}, got {d}")
    latent = np.array([_latent_values(lat, pieces, k) for pieces, lat in specs]).reshape(len(weights), k)
    _check_pieces_fit([pieces for pieces, _ in specs], d - k, k)
    bulk = _bulk_from_pieces([pieces for pieces, _ in specs])
    return MixtureTarget(kind=kind, d=d, weights=weights, centroids=cents, latent_eigenvalues=latent, bulk=bulk)


def manifold_points(manifold: str, points, scale: float):
    """Discretise a continuous manifold density into weighted centroids (midpoint rule).

    circle: mu(c) = scale (cos c, sin c), c ~ U[0, 2 pi) (exact for trigonometric polynomials);
    swiss_roll (the paper's section 1): mu(c) = scale (c1 cos c1/pi, c1 sin c1/pi, c2),
    c ~ U([0, 2 pi] x [-1, 1]) -- the roll scaled by 1/pi, so that ||mu|| <= sqrt(5) scale.
    Returns (centroids (K, k), weights (K,)).
    """
    if manifold == "circle":
        c = 2 * np.pi * (np.arange(points) + 0.5) / points
        cents = scale * np.stack([np.cos(c), np.sin(c)], axis=1)
    else:
        n1, n2 = points
        c1 = 2 * np.pi * (np.arange(n1) + 0.5) / n1
        c2 = -1 + 2 * (np.arange(n2) + 0.5) / n2
        g1, g2 = (a.ravel() for a in np.meshgrid(c1, c2, indexing="ij"))
        cents = scale * np.stack([g1 * np.cos(g1) / np.pi, g1 * np.sin(g1) / np.pi, g2], axis=1)
    return cents, np.full(len(cents), 1.0 / len(cents))


# ============================================================================ MNIST
def resolve_data_dir(path: str) -> Path:
    """Find an MNIST directory: ``$HDAE_MNIST_DIR`` if set (this machine's copy of the data, before
    the problem's ``target.data_dir``; ConfigError when it holds no IDX files, rather than a silent
    fall-back), else ``path`` as given (relative to the working directory) or relative to this
    repository's root. ConfigError when absent."""
    env = os.environ.get("HDAE_MNIST_DIR")
    if env:
        folder = Path(env).expanduser()
        if folder.is_dir() and _idx_pairs(folder):
            return folder
        raise ConfigError("target.data_dir", f"$HDAE_MNIST_DIR = {env!r} holds no MNIST IDX files "
                          "(t10k-/train-images-idx3-ubyte[.gz]); unset it to use target.data_dir")
    candidates = []
    p = Path(path).expanduser()
    candidates.append(p)
    if not p.is_absolute():
        candidates.append(Path(__file__).resolve().parents[1] / p)
    for c in candidates:
        if c.is_dir() and _idx_pairs(c):
            return c
    raise ConfigError("target.data_dir", f"no MNIST IDX files (t10k-/train-images-idx3-ubyte[.gz]) in {str(p)!r}")


def _idx_pairs(folder: Path):
    pairs = []
    for prefix in ("train", "t10k"):
        for suffix in ("", ".gz"):
            img = folder / f"{prefix}-images-idx3-ubyte{suffix}"
            lab = folder / f"{prefix}-labels-idx1-ubyte{suffix}"
            if img.is_file() and lab.is_file():
                pairs.append((img, lab))
                break
    return pairs


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        raw = fh.read()
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load_mnist_digit(folder: Path, digit: int) -> np.ndarray:
    """All images of ``digit`` in the IDX files of ``folder``, flattened: (n, 784) uint8."""
    images = []
    for img, lab in _idx_pairs(Path(folder)):
        x, y = _read_idx(img), _read_idx(lab)
        images.append(x.reshape(len(x), -1)[y == digit])
    return np.concatenate(images)


@lru_cache(maxsize=8)
def mnist_spectrum(folder: Path, digit: int, pixel_scale: float) -> np.ndarray:
    """Eigenvalues (descending, >= 0) of the empirical covariance of MNIST ``digit`` images,
    pixels divided by ``pixel_scale`` (the paper's appendix D: centered, scaled by 300)."""
    x = load_mnist_digit(folder, digit).astype(float) / pixel_scale
    x -= x.mean(axis=0)
    eig = np.linalg.eigvalsh(x.T @ x / len(x))[::-1]
    return np.clip(eig, 0.0, None)


# ============================================================================ observation space
def observation_basis(target: MixtureTarget, kind: str, dim: int = 2, basis=None) -> np.ndarray:
    """Orthonormal basis E of the observation space in latent coordinates, shape (k, R).

    centroids: span of the centroids (the latent axes themselves when they span it all,
    else Gram-Schmidt in centroid order); principal: the top ``dim`` eigenvectors of the
    target's covariance within the latent directions (they must dominate the bulk);
    explicit: ``basis`` (R vectors of length k), orthonormalised.
    """
    k = target.latent_dim
    if k == 0:
        raise ConfigError("observation.kind", "this target has no latent directions to observe "
                                              "(for a gaussian, give target.covariance.latent)")
    if kind == "centroids":
        cents = target.centroids - 0.0
        rank = np.linalg.matrix_rank(cents, tol=1e-10) if np.any(cents) else 0
        if rank == 0:
            raise ConfigError("observation.kind", "the centroids are all zero: use 'principal' or 'explicit'")
        if rank == k:
            return np.eye(k)
        return _orthonormalise(cents, rank)
    if kind == "principal":
        if dim > k:
            raise ConfigError("observation.dim", f"at most the {k} latent directions, got {dim}")
        mean = target.weights @ target.centroids
        cov = np.einsum("c,ci,cj->ij", target.weights, target.centroids, target.centroids) - np.outer(mean, mean)
        cov += np.diag(target.weights @ target.latent_eigenvalues)
        ev, vec = np.linalg.eigh(cov)
        order = np.argsort(-ev, kind="stable")[:dim]
        bulk_top = float(np.max(target.weights @ target.bulk.values))
        if ev[order[-1]] < bulk_top - 1e-12:
            raise ConfigError("observation.dim", f"principal direction {dim} (variance {ev[order[-1]]:.4g}) is weaker "
                                                 f"than the bulk's top eigenvalue {bulk_top:.4g}: add latent directions")
        e = vec[:, order]
        return e * np.where(e[np.argmax(np.abs(e), axis=0), np.arange(dim)] < 0, -1.0, 1.0)
    vecs = np.array(basis, dtype=float) if basis is not None else None
    if vecs is None:
        raise ConfigError("observation.basis", "missing: the explicit observation space needs a basis")
    if vecs.shape[1] != k:
        raise ConfigError("observation.basis", f"vectors live in the {k}-dim latent space, got length {vecs.shape[1]}")
    if np.linalg.matrix_rank(vecs, tol=1e-10) < len(vecs):
        raise ConfigError("observation.basis", "vectors are linearly dependent")
    return _orthonormalise(vecs, len(vecs))


def _orthonormalise(rows: np.ndarray, rank: int) -> np.ndarray:
    """Gram-Schmidt of the rows in order, dropping dependent ones; returns (k, rank)."""
    out = []
    for v in rows:
        v = v - sum((v @ e) * e for e in out)
        n = np.linalg.norm(v)
        if n > 1e-10 * max(1.0, np.abs(rows).max()):
            out.append(v / n)
        if len(out) == rank:
            break
    return np.array(out).T


# ============================================================================ realisation
@dataclass(frozen=True)
class RealisedTarget:
    """The target in d dimensions (coordinates = the common eigenbasis).

    eigenvalues (K, d), centroids (K, d), basis E (d, R), bin_index (d,): the spectral bin of
    :func:`reduce` (same target, same d) that holds each coordinate.
    """

    weights: np.ndarray
    eigenvalues: np.ndarray
    centroids: np.ndarray
    basis: np.ndarray
    bin_index: np.ndarray

    @property
    def d(self) -> int:
        return self.eigenvalues.shape[1]


def _latent_groups(target: MixtureTarget):
    """Latent coordinates grouped by identical eigenvalue vectors: list of index arrays."""
    groups: dict[tuple, list[int]] = {}
    for i, key in enumerate(map(tuple, target.latent_eigenvalues.T)):
        groups.setdefault(key, []).append(i)
    return [np.array(v) for v in groups.values()]


def realise(target: MixtureTarget, basis: np.ndarray, d: int | None = None) -> RealisedTarget:
    """The d-dimensional arrays of ``target`` (d defaults to ``target.d``); deterministic."""
    d = target.d if d is None else d
    k, K = target.latent_dim, target.n_clusters
    if d < k + 1:
        raise ConfigError("target.d", f"must exceed the latent dimension {k}, got {d}")
    pieces = target.bulk.piece_of(d - k)
    eig = np.concatenate([target.latent_eigenvalues, target.bulk.values[:, pieces]], axis=1)
    cents = np.zeros((K, d))
    cents[:, :k] = target.centroids
    e = np.zeros((d, basis.shape[1]))
    e[:k] = basis
    groups = _latent_groups(target)
    bins = np.empty(d, dtype=np.int64)
    for j, idx in enumerate(groups):
        bins[idx] = j
    bins[k:] = len(groups) + pieces
    return RealisedTarget(weights=target.weights.copy(), eigenvalues=eig, centroids=cents, basis=e, bin_index=bins)


# ============================================================================ reduction
@dataclass(frozen=True)
class ReducedTarget:
    """Spectral bins of section 2 of the derivation note.

    masses p (L,), eigenvalues s (L, K), centroid overlaps T (L, K, K), observation overlaps
    H (L, K, R), observation Gram blocks EPE = E^T P_l E (L, R, R), weights pi (K,), and
    ``labels`` naming each bin. ``d`` is None in the d -> infinity limit. The first
    ``n_latent`` bins hold the latent directions (the special, zero-mass directions of the limit).
    """

    p: np.ndarray
    s: np.ndarray
    T: np.ndarray
    H: np.ndarray
    EPE: np.ndarray
    weights: np.ndarray
    labels: tuple
    d: int | None = None
    n_latent: int = 0

    @property
    def n_bins(self) -> int:
        return len(self.p)

    @property
    def noise_mass(self) -> np.ndarray:
        """Masses entering the SGD-noise term 2 eta p_l D_l: p_l for bulk bins, 0 for latent bins.

        A latent bin is spanned by centroid and observation directions, so along every SGD path its
        q_l is a function of (m_l, g_l); the noise only makes m_l, g_l fluctuate (their O(d^-1/2)
        deviations) and has no drift of its own. In the d -> infinity limit these bins have p = 0."""
        out = self.p.copy()
        out[: self.n_latent] = 0.0
        return out

    @property
    def average_eigenvalue(self) -> float:
        """Lambda = sum_c pi_c sum_l p_l s_l^c."""
        return float(self.weights @ (self.s.T @ self.p))

    @property
    def second_moment(self) -> float:
        """E|x1|^2/d = Lambda + sum_c pi_c |mu_c|^2/d at finite d (Lambda in the limit d = None)."""
        if self.d is None:
            return self.average_eigenvalue
        return self.average_eigenvalue + float(self.weights @ np.einsum("lcc->c", self.T)) / self.d


def reduce(target: MixtureTarget, basis: np.ndarray, d: int | None = None,
           spectral_bins: int = 0) -> tuple[ReducedTarget, np.ndarray]:
    """Reduce ``target`` to spectral bins.

    d=None: the d -> infinity limit (latent bins carry p = 0, bulk bins their spectral
    fractions); an integer d: the finite-d realisation (p_l = |bin l|/d, bins as in
    :func:`realise`). ``spectral_bins`` > 0 merges the bulk pieces into at most that many bins:
    pieces whose cluster-averaged eigenvalue falls in the same of ``spectral_bins`` equal-width
    intervals are merged, with mass-weighted mean eigenvalues (a quadrature of the spectral
    density in eigenvalue space; Lambda is kept exactly); 0 keeps every piece (exact).

    Returns (reduced, merge) where ``merge[j]`` is the reduced bin of exact bin j (the bins
    indexed by ``RealisedTarget.bin_index``), so realised statistics can be summed into it.
    """
    k, K = target.latent_dim, target.n_clusters
    groups = _latent_groups(target)
    if d is None:
        bulk_mass = target.bulk.fractions
        latent_mass = np.zeros(len(groups))
    else:
        counts = np.bincount(target.bulk.piece_of(d - k), minlength=len(target.bulk.fractions))
        bulk_mass = counts / d
        latent_mass = np.array([len(g) / d for g in groups])
    n_exact = len(groups) + len(bulk_mass)
    merge = np.arange(n_exact)
    bulk_values = target.bulk.values
    if 0 < spectral_bins < len(bulk_mass):
        # group pieces by their (cluster-averaged) eigenvalue into equal-width intervals: the dynamics
        # of a bin depend on its eigenvalue (exponentially, for the unstable top of a spectrum), so
        # outlying eigenvalues keep bins of their own while the dense bulk is merged
        mean_value = target.weights @ target.bulk.values
        edges = np.linspace(mean_value.min(), mean_value.max(), spectral_bins + 1)
        group = np.clip(np.searchsorted(edges, mean_value, side="right") - 1, 0, spectral_bins - 1)
        group = np.unique(group, return_inverse=True)[1]
        weight = bulk_mass if d is not None else target.bulk.fractions
        new_mass = np.bincount(group, weights=weight)
        safe = np.where(new_mass > 0, new_mass, 1.0)
        bulk_values = np.array([np.bincount(group, weights=weight * v) / safe for v in target.bulk.values])
        merge[len(groups):] = len(groups) + group
        bulk_mass = new_mass
    L = len(groups) + len(bulk_mass)
    R = basis.shape[1]
    s = np.zeros((L, K))
    T = np.zeros((L, K, K))
    H = np.zeros((L, K, R))
    EPE = np.zeros((L, R, R))
    labels = []
    for j, idx in enumerate(groups):
        s[j] = target.latent_eigenvalues[:, idx[0]]
        mu, e = target.centroids[:, idx], basis[idx]
        T[j], H[j], EPE[j] = mu @ mu.T, mu @ e, e.T @ e
        labels.append(f"latent{list(idx.tolist())}")
    s[len(groups):] = bulk_values.T
    labels += [f"bulk[{i}]" for i in range(len(bulk_mass))]
    p = np.concatenate([latent_mass, bulk_mass])
    return ReducedTarget(p=p, s=s, T=T, H=H, EPE=EPE, weights=target.weights.copy(), labels=tuple(labels), d=d,
                         n_latent=len(groups)), merge


# ============================================================================ initial weights
def initial_weights(target: MixtureTarget, init, width: int, d: int, seed: int, replicas: int = 1,
                    generation: int = 0) -> np.ndarray:
    """w_0, shape (replicas, d, r): iid N(0, scale^2) entries plus, for unit j < #directions,
    a warm start ``warm_norm * sqrt(d) * u_j`` along the unit latent direction u_j.

    Replica i draws from ``numpy.random.default_rng([seed, i])`` (``[seed, i, 1000 + g]`` for the
    student of generation g >= 1): the same w_0 for the same (config, d, seed) whatever the device
    or the number of replicas.
    """
    k = target.latent_dim
    w = np.zeros((replicas, d, width))
    for i in range(replicas):
        if init.scale > 0:
            key = [seed, i] if generation == 0 else [seed, i, 1000 + generation]
            w[i] = init.scale * np.random.default_rng(key).standard_normal((d, width))
    if init.warm_norm > 0:
        w[:, :k] += init.warm_norm * math.sqrt(d) * warm_units(target, init, width)
    return w


def warm_units(target: MixtureTarget, init, width: int) -> np.ndarray:
    """Unit warm-start directions in latent coordinates, one column per unit, (k, width); units beyond
    the given directions get a zero column."""
    dirs = init.warm_directions[:width]
    u = np.zeros((target.latent_dim, width))
    u[:, : len(dirs)] = (dirs / np.linalg.norm(dirs, axis=1, keepdims=True)).T
    return u


def limit_initial_statistics(reduced: ReducedTarget, target: MixtureTarget, init, width: int, basis: np.ndarray):
    """Per-bin statistics of w_0 in the d -> infinity limit (cross terms random x warm vanish).

    Returns q (L, r, r), m (L, r, K), g (L, r, R)."""
    L, K, R = reduced.n_bins, target.n_clusters, basis.shape[1]
    q = init.scale**2 * reduced.p[:, None, None] * np.eye(width)[None]
    m = np.zeros((L, width, K))
    g = np.zeros((L, width, R))
    if init.warm_norm > 0:
        u = warm_units(target, init, width)
        for j, idx in enumerate(_latent_groups(target)):
            uj = u[idx]
            q[j] += init.warm_norm**2 * uj.T @ uj
            m[j] = init.warm_norm * uj.T @ target.centroids[:, idx].T
            g[j] = init.warm_norm * uj.T @ basis[idx]
    return q, m, g


def realised_statistics(w: np.ndarray, realised: RealisedTarget, merge: np.ndarray, n_bins: int):
    """Per-bin statistics of explicit weights w (replicas, d, r) (section 2 of the note):
    q_l = w^T P_l w/d, m_l = w^T P_l mu^T/sqrt d, g_l = w^T P_l E/sqrt d.
    Returns q (replicas, L, r, r), m (replicas, L, r, K), g (replicas, L, r, R)."""
    d = realised.d
    bins = merge[realised.bin_index]
    n, r = w.shape[0], w.shape[2]
    q = np.zeros((n, n_bins, r, r))
    m = np.zeros((n, n_bins, r, realised.centroids.shape[0]))
    g = np.zeros((n, n_bins, r, realised.basis.shape[1]))
    for i in range(n):
        np.add.at(q[i], bins, w[i][:, :, None] * w[i][:, None, :] / d)
        np.add.at(m[i], bins, w[i][:, :, None] * realised.centroids.T[:, None, :] / math.sqrt(d))
        np.add.at(g[i], bins, w[i][:, :, None] * realised.basis[:, None, :] / math.sqrt(d))
    return q, m, g
