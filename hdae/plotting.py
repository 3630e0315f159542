"""Figures of results: generated densities (paper Figs. 1-3) and training curves (Figs. 6-7).

Everything here uses matplotlib's object-oriented :class:`~matplotlib.figure.Figure` API
(no pyplot, no display): :func:`plot_file` writes a PNG through the Agg canvas, and
:func:`plot_densities` / :func:`plot_training` return a Figure for notebooks.

Visual conventions (colour-blind safe):

* generated densities -- the simulation's samples (one replica by default) as a filled 2-D
  histogram (sequential 'Oranges' map, square-root colour scale); the theory's density
  (Corollary 2.3, a Gaussian mixture over the latent samples Z, for the trajectory started
  from that replica) as dark-blue contour lines; the projected target density as green dashed
  contour lines. Contours are highest-density regions enclosing ``DENSITY_MASSES`` of the
  probability mass (innermost = darkest). The mixture's components are as narrow as
  sqrt(S) (~0.02-0.3), far narrower than the spread of their means, so by default each is
  widened to an adaptive kernel bandwidth where it is narrower (:func:`theory_density`,
  ``smoothing``); ``smoothing=None`` draws the mixture exactly as it is.
* training curves -- simulation solid (replica mean, with a min-max band over replicas),
  theory dashed (mean over its trajectories); one colour per matrix entry, the same in theory
  and simulation.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import tomlio
from .mixtures import gaussian_mixture_density
from .safety import atomic_path
from .results import Result, checkpoint_index

#: Probability masses enclosed by the drawn density contours (innermost first).
DENSITY_MASSES = (0.25, 0.5, 0.75, 0.95)
#: Mixture components of the theory density per panel (all replicas together).
MAX_COMPONENTS = 2000
THEORY_COLOR = "#08306b"  # dark blue (end of the 'Blues' map)
TARGET_COLOR = "#009E73"  # Okabe-Ito bluish green
SIM_CMAP = "Oranges"
#: Paul Tol's 'muted' scheme: nine colours that stay distinct under colour-vision deficiencies.
PALETTE = ("#332288", "#CC6677", "#117733", "#DDCC77", "#88CCEE", "#882255", "#44AA99", "#999933", "#AA4499")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")
_RC = {"font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10, "legend.fontsize": 9,
       "xtick.labelsize": 8.5, "ytick.labelsize": 8.5}


# ============================================================================ helpers
def _split(a: Result | None, b: Result | None):
    """(theory, simulation) from two results in any order; ValueError for two of one kind."""
    theory = sim = None
    for r in (a, b):
        if r is None:
            continue
        if r.kind == "theory":
            if theory is not None:
                raise ValueError("two theory files given: pass one theory and one simulation file")
            theory = r
        elif r.kind == "simulation":
            if sim is not None:
                raise ValueError("two simulation files given: pass one theory and one simulation file")
            sim = r
        else:
            raise ValueError(f"unknown result kind {r.kind!r} (expected 'theory' or 'simulation')")
    return theory, sim


def _problem_name(result: Result) -> str:
    try:
        return str(tomlio.loads(result.config_text).get("name", ""))
    except (ValueError, TypeError):  # TOMLDecodeError is a ValueError
        return ""


def _describe(theory: Result | None, sim: Result | None) -> str:
    ref = theory if theory is not None else sim
    name = _problem_name(ref)
    parts = [name] if name else []
    if sim is not None:
        parts.append(f"simulation d = {sim.d}, {sim.n_replicas} replica{'s' if sim.n_replicas > 1 else ''}")
    if theory is not None:
        parts.append("theory" + (f" ({theory.n_replicas} trajectories)" if theory.n_replicas > 1 else ""))
    for r in (theory, sim):
        if r is not None and not r.ok:
            parts.append(f"{r.kind} {r.status}: {r.message}" if r.message else f"{r.kind} {r.status}")
    return " | ".join(parts)


def _checkpoint(theta_grid: np.ndarray, theta: float) -> int:
    i = checkpoint_index(theta_grid, theta, 1e-6)
    if i is None:
        nearest = theta_grid[int(np.argmin(np.abs(theta_grid - theta)))]
        raise ValueError(f"no training checkpoint at theta = {theta:g} (nearest {nearest:g})")
    return i


def _matching(thetas: np.ndarray, theta: float) -> int | None:
    return checkpoint_index(thetas, theta, 1e-6)


def target_marginal(result: Result, dims: int = 2):
    """The projected target (weights, means, covariances) restricted to the first ``dims``
    observation coordinates (a marginal, so still a Gaussian mixture)."""
    t = result.target
    if t is None:
        return None
    w = np.asarray(t["weights"], dtype=float)
    return w / w.sum(), np.asarray(t["means"])[:, :dims], np.asarray(t["covariances"])[:, :dims, :dims]


def target_density(result: Result, points: np.ndarray) -> np.ndarray:
    """Projected target density at ``points`` (m, D), marginal on the first D coordinates."""
    points = np.atleast_2d(points)
    weights, means, covs = target_marginal(result, points.shape[1])
    return gaussian_mixture_density(points, means, covs, weights, ridge=1e-6)  # flat directions: thin ridges


def replica_indices(result: Result, replica) -> list[int]:
    """Replica indices of ``result`` selected by ``replica``: an int (a file with a single
    trajectory -- e.g. a theory solved from the d -> infinity limit -- answers 0 for any int),
    or None / 'pool' for all that succeeded (their per-replica status; all of them when none did:
    a stopped replica's statistics are NaN after it stopped)."""
    n = result.n_replicas
    if replica is None or replica == "pool":
        ok = np.flatnonzero(result.replica_ok) if result.replica_status is not None else np.arange(n)
        return [int(i) for i in ok] if len(ok) else list(range(n))
    if isinstance(replica, str) or int(replica) != replica:
        raise ValueError(f"replica must be an integer or 'pool', not {replica!r}")
    if n == 1:
        return [0]
    if not -n <= int(replica) < n:
        raise ValueError(f"replica {replica} out of range: the {result.kind} file has {n} replicas")
    return [int(replica) % n]


def theory_laws(theory: Result, j: int, dims: int = 2, max_components: int = MAX_COMPONENTS, replica=None):
    """The theory's law of the generated samples at sampled time ``theory.sample.theta[j]``:
    one :class:`~hdae.theory.transport.ProjectedLaw` per selected replica (Corollary 2.3 with Q, G
    at the training checkpoint equal to that time), marginalised on the first ``dims``
    coordinates, with ``max_components`` mixture components in all (split over replicas)."""
    from .theory.transport import projected_law

    s = theory.sample
    if s is None or s.Z is None or s.S is None:
        raise ValueError("this theory result holds no latent samples Z and variances S")
    i = _checkpoint(theory.train.theta, float(s.theta[j]))
    reps = replica_indices(theory, replica)
    per = max(1, max_components // len(reps))
    laws = []
    for rep in reps:
        Z = s.Z[rep, j]
        if len(Z) > per:
            Z = Z[np.linspace(0, len(Z) - 1, per).astype(int)]
        law = projected_law(Z, theory.train.Q[rep, i], theory.train.G[rep, i], float(s.S[rep, j]))
        laws.append(law.marginal(dims))
    return laws


def smoothed_covariances(means: np.ndarray, cov: np.ndarray, factor=None) -> np.ndarray:
    """Per-component covariances (n, R, R) for drawing a mixture of n narrow Gaussians
    N(means[i], cov) as a smooth density.

    Each component's covariance is widened to an adaptive (Abramson) kernel bandwidth H_i of the
    means -- H_i = lambda_i^2 h^2 Cov(means), h = ``factor`` (default Scott's n^(-1/(R+4))),
    lambda_i = (pilot density at means[i] / its geometric mean)^(-1/2), so narrow kernels on
    ridges and modes, wide ones in the sparse tails -- but only in the directions where ``cov``
    is narrower than H_i: C_i = cov^1/2 max(I, cov^-1/2 H_i cov^-1/2) cov^1/2 (eigenvalue-wise
    max), so an already smooth mixture is left as it is.
    """
    means = np.asarray(means, dtype=float)
    cov = np.atleast_2d(np.asarray(cov, dtype=float))
    n, R = means.shape
    if n < 2:
        return np.broadcast_to(cov, (n, R, R)).copy()
    h = n ** (-1.0 / (R + 4)) if factor is None else float(factor)
    sigma = np.atleast_2d(np.cov(means.T))
    e, v = np.linalg.eigh(cov)
    singular = e.min() <= 1e-12 * max(1.0, e.max())
    # pilot: the fixed-bandwidth mixture (cov + h^2 Sigma), evaluated at the means themselves
    pilot_cov = cov + h ** 2 * sigma
    pe = np.linalg.eigvalsh(pilot_cov)
    if pe.min() <= 1e-12 * max(1.0, pe.max()):
        pilot_cov = pilot_cov + (1e-6 * max(pe.max(), 1e-12)) * np.eye(R)
    pilot = gaussian_mixture_density(means, means, np.broadcast_to(pilot_cov, (n, R, R)))
    logp = np.log(np.maximum(pilot, 1e-300))
    lam2 = np.clip(np.exp(-(logp - logp.mean())), 0.05, 20.0)  # lambda^2 = (pilot / geometric mean)^-1
    H = lam2[:, None, None] * (h ** 2 * sigma)[None]
    if singular:
        tiny = 1e-9 * max(1.0, float(np.trace(cov) + np.trace(sigma)))
        return cov[None] + H + tiny * np.eye(R)[None]
    half = (v * np.sqrt(e)) @ v.T
    ihalf = (v / np.sqrt(e)) @ v.T
    m = ihalf[None] @ H @ ihalf[None]
    em, vm = np.linalg.eigh(0.5 * (m + np.swapaxes(m, 1, 2)))
    inner = (vm * np.maximum(em, 1.0)[:, None, :]) @ np.swapaxes(vm, 1, 2)
    out = half[None] @ inner @ half[None]
    return 0.5 * (out + np.swapaxes(out, 1, 2))


def theory_density(theory: Result, j: int, points: np.ndarray, smoothing="auto",
                   max_components: int = MAX_COMPONENTS, replica=None) -> np.ndarray:
    """Theory density of generated samples at ``points`` (m, D) for sampled time index ``j``:
    ``projected_law(Z, Q, G, S).density`` (Corollary 2.3), marginal on the first D observation
    coordinates, for trajectory ``replica`` (None: the average over all trajectories).

    smoothing: None -- the mixture as it is (exact given the Z samples; where its Gaussian part
    is degenerate, ``ProjectedLaw.density`` falls back to a KDE). 'auto' (default) -- each
    component's covariance is widened, only in directions where it is narrower, to an adaptive
    kernel bandwidth of the component means (:func:`smoothed_covariances`): when S is small the
    exact mixture is a sum of needles around the Monte-Carlo Z samples, whose contours are
    unreadable. A number: that bandwidth factor instead of Scott's. Every variant integrates to one.
    """
    points = np.atleast_2d(np.asarray(points, dtype=float))
    if smoothing not in (None, "auto") and not isinstance(smoothing, (int, float)):
        raise ValueError(f"smoothing must be None, 'auto' or a number, not {smoothing!r}")
    laws = theory_laws(theory, j, points.shape[1], max_components, replica)
    out = np.zeros(len(points))
    for law in laws:
        if smoothing is None:
            out += law.density(points)
        else:
            factor = None if smoothing == "auto" else float(smoothing)
            out += gaussian_mixture_density(points, law.means, smoothed_covariances(law.means, law.cov, factor))
    return out / len(laws)


def density_grid(limits, n: int = 120):
    """Cell-centred grid over ``limits`` ((lo, hi) per coordinate): (axes list, points (n^D, D),
    cell volume)."""
    axes = [np.linspace(lo, hi, n + 1) for lo, hi in limits]
    centres = [0.5 * (a[1:] + a[:-1]) for a in axes]
    mesh = np.meshgrid(*centres, indexing="xy")
    points = np.stack([m.ravel() for m in mesh], axis=1)
    cell = float(np.prod([a[1] - a[0] for a in axes]))
    return centres, points, cell


def hdr_levels(density: np.ndarray, cell: float, masses=DENSITY_MASSES) -> np.ndarray:
    """Density thresholds whose super-level sets enclose ``masses`` of the mass on the grid
    (normalised to the grid's own total), increasing, duplicates dropped."""
    flat = np.sort(np.asarray(density, dtype=float).ravel())[::-1]
    cum = np.cumsum(flat) * cell
    if cum[-1] <= 0:
        return np.array([])
    cum /= cum[-1]
    idx = np.minimum(np.searchsorted(cum, masses), len(flat) - 1)
    levels = np.unique(flat[idx])
    return levels[levels > 0]


def _samples(result: Result, j: int, reps: list[int], dims: int) -> np.ndarray:
    x = result.sample.projected[reps, j, :, :dims].reshape(-1, dims)
    return x[np.all(np.isfinite(x), axis=1)]


def sample_extent(x: np.ndarray, q: float = 0.005):
    """(lo, hi) arrays: the [q, 1-q] quantiles of samples x (n, D)."""
    return np.quantile(x, q, axis=0), np.quantile(x, 1 - q, axis=0)


def density_limits(theory: Result | None, sim: Result | None, dims: int = 2, q: float = 0.003,
                   pad: float = 0.08, replica=None, target: bool = True) -> list[tuple[float, float]]:
    """Common axis limits: the [q, 1-q] quantiles of the generated samples (both files, every
    sampled time, the selected replicas) joined with the target means +- 3 marginal standard
    deviations (when ``target``), padded by ``pad`` of the width."""
    lo = np.full(dims, np.inf)
    hi = np.full(dims, -np.inf)
    for r in (theory, sim):
        if r is None:
            continue
        if r.sample is not None:
            reps = replica_indices(r, replica)
            for j in range(len(r.sample.theta)):
                x = _samples(r, j, reps, dims)
                if len(x):
                    a, b = sample_extent(x, q)
                    lo, hi = np.minimum(lo, a), np.maximum(hi, b)
        tm = target_marginal(r, dims) if target else None
        if tm is not None:
            _, means, covs = tm
            sd = np.sqrt(np.einsum("kii->ki", covs))
            lo = np.minimum(lo, (means - 3 * sd).min(0))
            hi = np.maximum(hi, (means + 3 * sd).max(0))
    if not np.all(np.isfinite(lo)):
        lo, hi = np.full(dims, -1.0), np.full(dims, 1.0)
    return _padded(lo, hi, pad)


def _padded(lo, hi, pad):
    width = np.maximum(np.asarray(hi) - np.asarray(lo), 1e-9 * np.maximum(1.0, np.abs(hi)))
    return [(float(a - pad * w), float(b + pad * w)) for a, b, w in zip(lo, hi, width)]


@dataclass
class _Panel:
    theta: float
    sim_j: int | None
    theory_j: int | None


def _panels(theory: Result | None, sim: Result | None) -> list[_Panel]:
    ts = theory.sample.theta if theory is not None and theory.sample is not None else np.array([])
    ss = sim.sample.theta if sim is not None and sim.sample is not None else np.array([])
    thetas = []
    for t in list(ss) + list(ts):
        if not any(abs(t - u) <= 1e-6 * max(1.0, abs(t)) for u in thetas):
            thetas.append(float(t))
    return [_Panel(t, _matching(ss, t), _matching(ts, t)) for t in sorted(thetas)]


def _fmt_theta(t: float) -> str:
    return f"{t:.3g}"


@dataclass
class _Style:
    smoothing: object
    grid: int
    bins: int
    max_components: int
    masses: tuple
    sim_reps: list
    theory_replica: object


def _draw_2d(ax, theory, sim, p: _Panel, lims, st: _Style, target_of: Result | None, lw: float = 1.0):
    """Histogram, theory contours and target contours of one panel on ``lims``."""
    from matplotlib import colors

    centres, points, cell = density_grid(lims, st.grid)
    X, Y = np.meshgrid(*centres)
    if p.sim_j is not None:
        x = _samples(sim, p.sim_j, st.sim_reps, 2)
        edges = [np.linspace(*lims[0], st.bins + 1), np.linspace(*lims[1], st.bins + 1)]
        h, _, _ = np.histogram2d(x[:, 0], x[:, 1], bins=edges, density=True)
        h = np.ma.masked_equal(h.T, 0.0)
        if h.count():
            ax.pcolormesh(edges[0], edges[1], h, cmap=SIM_CMAP, rasterized=True,
                          norm=colors.PowerNorm(0.5, vmin=0.0, vmax=float(h.max())))
    if p.theory_j is not None:
        dens = theory_density(theory, p.theory_j, points, st.smoothing, st.max_components,
                              st.theory_replica).reshape(X.shape)
        lev = hdr_levels(dens, cell, st.masses)
        if len(lev):
            ax.contour(X, Y, dens, levels=lev, cmap=_THEORY_CMAP(), linewidths=1.35 * lw)
    if target_of is not None:
        td = target_density(target_of, points).reshape(X.shape)
        lev = hdr_levels(td, cell, st.masses)
        if len(lev):
            ax.contour(X, Y, td, levels=lev, cmap=_TARGET_CMAP(), linewidths=1.1 * lw, linestyles="--")
    ax.set_xlim(*lims[0])
    ax.set_ylim(*lims[1])


def _THEORY_CMAP():
    from matplotlib import colors

    return colors.LinearSegmentedColormap.from_list("theory", ["#6baed6", THEORY_COLOR])


def _TARGET_CMAP():
    from matplotlib import colors

    return colors.LinearSegmentedColormap.from_list("target", ["#66c2a4", "#00563f"])


def _zoom(theory, sim, p: _Panel, st: _Style, lims, size: float = 0.4):
    """(zoom limits, inset bounds in axes fraction) for a panel whose generated samples cover
    less than 4% of its area and fit in the inset's footprint; None otherwise. The inset goes
    into the first corner (upper right, upper left, lower right, lower left) clear of them."""
    xs = []
    if p.sim_j is not None:
        xs.append(_samples(sim, p.sim_j, st.sim_reps, 2))
    if p.theory_j is not None:
        xs.append(_samples(theory, p.theory_j, replica_indices(theory, st.theory_replica), 2))
    xs = [x for x in xs if len(x)]
    if not xs:
        return None
    ext = [sample_extent(x, 0.002) for x in xs]
    lo = np.min([e[0] for e in ext], axis=0)
    hi = np.max([e[1] for e in ext], axis=0)
    base = np.array([a for a, _ in lims])
    spans = np.array([b - a for a, b in lims])
    frac = (hi - lo) / spans
    if np.prod(frac) > 0.04 or frac.max() > size - 0.05:
        return None
    centre, half = 0.5 * (lo + hi), 0.5 * np.maximum(hi - lo, 1e-12) * 1.15
    rel = half / spans
    if rel.max() < 2.5 * rel.min():  # comparable extents: keep the panel's aspect
        half = spans * rel.max()
    zl = [(float(c - w), float(c + w)) for c, w in zip(centre, half)]
    flo, fhi = (lo - base) / spans, (hi - base) / spans  # samples' box in axes fraction
    for x0, y0 in ((0.98 - size, 0.98 - size), (0.02, 0.98 - size), (0.98 - size, 0.02), (0.02, 0.02)):
        clear = flo[0] > x0 + size or fhi[0] < x0 or flo[1] > y0 + size or fhi[1] < y0
        if clear:
            return zl, [x0, y0, size, size]
    return None


# ============================================================================ densities
def plot_densities(theory: Result | None, simulation: Result | None, *, replica=0, smoothing="auto",
                   grid: int = 120, bins: int | None = None, max_components: int = MAX_COMPONENTS,
                   share_limits: bool = True, limits=None, zoom: bool = True, ncols: int | None = None,
                   masses=DENSITY_MASSES, title: str | None = None):
    """Generated densities, one panel per sampled training time, titled "theta = ..." (the training
    time, as on the training plot's axis; train.tau is the horizon).

    Each panel shows, on the first two observation coordinates (one coordinate when R = 1):

    * the simulation's generated samples of replica ``replica`` ('pool': all replicas pooled) as
      a filled histogram ('Oranges', square-root colour scale, normalised per panel);
    * the theory's density (:func:`theory_density`: Corollary 2.3's Gaussian mixture with Q and G
      at the checkpoint equal to that time, for the trajectory started from that replica or the
      average over trajectories with 'pool'; ``smoothing`` as there) as dark-blue contour lines;
    * the projected target density as green dashed contour lines.

    Contours are highest-density regions enclosing ``masses`` of the probability mass (darker =
    inner); the theory density is evaluated on a ``grid`` x ``grid`` lattice, the histogram has
    ``bins`` bins a side (default ~2.5 n^(1/3) for n samples; with R = 1, numpy's 'auto' bins
    over the samples' range). Either argument may be None. Axis limits are common to all panels (``share_limits``)
    unless ``limits`` [(x0, x1), (y0, y1)] is given; with ``zoom``, a panel whose samples fill
    less than 4% of it gets an inset magnifying them (histogram and theory only).
    Replicas of a random start can learn different directions, which is why one replica, not
    the pool, is the default. Returns a matplotlib Figure.
    """
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    if theory is not None and theory.kind != "theory" or simulation is not None and simulation.kind != "simulation":
        theory, simulation = _split(theory, simulation)
    panels = _panels(theory, simulation)
    if not panels:
        raise ValueError("no generated samples to draw: the file(s) have no /sample data "
                         "(simulate/solve with sampling on, or use --what training)")
    if theory is not None and theory.sample is not None and (theory.sample.Z is None or theory.sample.S is None):
        raise ValueError("the theory file has samples but no latent Z / variance S to evaluate its density")
    src = simulation if simulation is not None and simulation.sample is not None else theory
    R = src.sample.projected.shape[-1]
    dims = min(R, 2)
    if replica == "pool":
        replica = None
    sim_reps = replica_indices(simulation, replica) if simulation is not None else []
    if theory is not None:
        replica_indices(theory, replica)  # checks the index
        if simulation is not None and replica is not None and theory.n_replicas not in (1, simulation.n_replicas):
            raise ValueError(f"cannot pair {theory.n_replicas} theory trajectories with "
                             f"{simulation.n_replicas} simulation replicas")
    target_of = next((r for r in (theory, simulation) if r is not None and r.target is not None), None)
    if bins is None:  # ~ 2.5 n^(1/3) bins a side: a few samples per occupied bin
        n_samples = len(sim_reps) * simulation.sample.projected.shape[2] if simulation is not None and \
            simulation.sample is not None else 4000
        bins = int(np.clip(round(2.5 * n_samples ** (1 / 3)), 20, 70))
    st = _Style(smoothing, grid, bins, max_components, tuple(masses), sim_reps, replica)

    n = len(panels)
    ncols = ncols or min(n, 4)
    nrows = math.ceil(n / ncols)
    common = limits if limits is not None else (
        density_limits(theory, simulation, dims, replica=replica) if share_limits else None)
    size = (3.3 if n > 2 else 3.8 if n == 2 else 4.6) if dims == 2 else 3.6
    height = 2.6
    if dims == 2:
        ratio = 1.0 if common is None else (common[1][1] - common[1][0]) / (common[0][1] - common[0][0])
        height = size * (ratio if 0.4 < ratio < 2.5 else 1.0) + 0.35
    fig = Figure(figsize=(size * ncols + 0.6, height * nrows + 1.2), layout="constrained")
    with _rc():
        axes = fig.subplots(nrows, ncols, squeeze=False)
        for k, (ax, p) in enumerate(zip(axes.flat, panels)):
            lims = common
            if lims is None:
                lims = density_limits(theory if p.theory_j is not None else None,
                                      simulation if p.sim_j is not None else None, dims, replica=replica)
            if dims == 2:
                _draw_2d(ax, theory, simulation, p, lims, st, target_of)
                spans = [b - a for a, b in lims]
                if 0.4 < spans[0] / spans[1] < 2.5:
                    ax.set_aspect("equal", adjustable="box")
                zoomed = _zoom(theory, simulation, p, st, lims) if zoom else None
                if zoomed is not None:
                    zl, bounds = zoomed
                    ins = ax.inset_axes(bounds)
                    _draw_2d(ins, theory, simulation, p, zl, st, None, lw=0.8)
                    ins.tick_params(labelsize=6.5, length=2, pad=1)
                    stretch = ((zl[0][1] - zl[0][0]) / (zl[1][1] - zl[1][0])) / (spans[0] / spans[1])
                    if not 0.8 < stretch < 1.25:
                        factor = max(stretch, 1 / stretch)
                        ins.text(0.03, 0.97, f"{'y' if stretch > 1 else 'x'} stretched x{factor:.2g}",
                                 transform=ins.transAxes, fontsize=6.5, va="top", ha="left", color="0.25")
                    ins.locator_params(nbins=3)
                    for sp in ins.spines.values():
                        sp.set_edgecolor("0.35")
                    ax.indicate_inset([zl[0][0], zl[1][0], zl[0][1] - zl[0][0], zl[1][1] - zl[1][0]], ins,
                                      edgecolor="0.35", lw=0.8)
                ax.set_xlabel("$x_1$")
                if k % ncols == 0:
                    ax.set_ylabel("$x_2$")
            else:
                centres, points, _ = density_grid(lims, 10 * grid)
                xs = centres[0]
                if p.sim_j is not None:
                    x = _samples(simulation, p.sim_j, sim_reps, 1)[:, 0]
                    lo, hi = sample_extent(x[:, None], 0.001)
                    edges = np.histogram_bin_edges(x, bins="auto", range=(float(lo[0]), float(hi[0])))
                    ax.hist(x, bins=edges, density=True, color="#fdae6b", edgecolor="#d94801", linewidth=0.5)
                if p.theory_j is not None:
                    ax.plot(xs, theory_density(theory, p.theory_j, points, smoothing, max_components, replica),
                            color=THEORY_COLOR, lw=1.6)
                if target_of is not None:
                    ax.plot(xs, target_density(target_of, points), color=TARGET_COLOR, lw=1.3, ls="--")
                ax.set_xlim(*lims[0])
                ax.set_xlabel("$x_1$")
                if k % ncols == 0:
                    ax.set_ylabel("density")
            ax.set_title(rf"$\theta$ = {_fmt_theta(p.theta)}")
            ax.tick_params(labelsize=_RC["xtick.labelsize"])
        for ax in list(axes.flat)[n:]:
            ax.set_visible(False)

        handles = []
        if simulation is not None and simulation.sample is not None:
            lab = f"simulation samples (d = {simulation.d}"
            if simulation.n_replicas > 1:
                lab += (f", {simulation.n_replicas} replicas pooled" if replica is None
                        else f", replica {sim_reps[0]} of {simulation.n_replicas}")
            handles.append(Patch(facecolor="#f16913", edgecolor="#7f2704", label=lab + ")"))
        if theory is not None and theory.sample is not None:
            lab = "theory density (Cor. 2.3"
            if theory.n_replicas > 1:
                lab += (f", mean of {theory.n_replicas} trajectories" if replica is None
                        else f", trajectory {replica_indices(theory, replica)[0]}")
            handles.append(Line2D([], [], color=THEORY_COLOR, lw=1.5, label=lab + ")"))
        if target_of is not None:
            handles.append(Line2D([], [], color=TARGET_COLOR, lw=1.3, ls="--", label="target (projected)"))
        where = "" if R <= 2 else f"; first 2 of {R} observation coordinates"
        what = (f"contours enclose {', '.join(f'{m:.0%}' for m in masses)} of the mass{where}" if dims == 2
                else f"densities on the first observation coordinate{where}")
        _suptitle(fig, title if title is not None else _describe(theory, simulation))
        width = fig.get_figwidth()
        ncol = len(handles) if width >= 3.3 * len(handles) else max(1, min(len(handles), int(width // 4.5)))
        fig.legend(handles=handles, loc="outside lower center", ncol=ncol, frameon=False,
                   title=what, title_fontsize=8.5)
    return fig


# ============================================================================ training
def _entries(name: str, shape) -> list[tuple[tuple[int, int], str]]:
    """((a, c), label) of the drawn entries of a statistic of shape (rows, cols)."""
    rows, cols = shape
    sub = {"M": "M", "Q": "Q", "G": "G"}[name]
    out = []
    for a in range(rows):
        for c in range(cols):
            if name == "Q" and c < a:
                continue
            out.append(((a, c), f"${sub}_{{{a + 1}{c + 1}}}$" if max(rows, cols) < 10
                        else f"${sub}_{{{a + 1},{c + 1}}}$"))
    return out


def _entry_styles(name: str, entries) -> tuple[list[dict], list, str | None]:
    """Per entry: {'color', 'marker', 'lw'}; legend handles; legend title.

    Up to len(PALETTE) entries get one colour each. More: colour by column and marker by row
    (unit) when both fit the palette and the marker set; else colour by row (unit) alone."""
    from matplotlib.lines import Line2D

    if len(entries) <= len(PALETTE):
        styles = [{"color": PALETTE[k], "marker": None, "lw": 1.0} for k in range(len(entries))]
        handles = [Line2D([], [], color=s["color"], lw=1.6, label=lab) for s, (_, lab) in zip(styles, entries)]
        return styles, handles, None
    cols = sorted({c for (_, c), _ in entries})
    rows = sorted({a for (a, _), _ in entries})
    sym = {"M": "M_{ac}", "G": "G_{ac}", "Q": "Q_{ab}"}[name]
    second = "b" if name == "Q" else "c"
    if len(cols) <= len(PALETTE) and len(rows) <= len(MARKERS):
        styles = [{"color": PALETTE[c], "marker": MARKERS[a], "lw": 1.0} for (a, c), _ in entries]
        handles = [Line2D([], [], color=PALETTE[c], lw=1.6, label=f"{second} = {c + 1}") for c in cols]
        handles += [Line2D([], [], color="0.3", lw=0, marker=MARKERS[a], ms=5, label=f"a = {a + 1}") for a in rows]
        return styles, handles, f"${sym}$: colour {second}, marker a"
    styles = [{"color": PALETTE[a % len(PALETTE)], "marker": None, "lw": 0.5} for (a, _), _ in entries]
    handles = [Line2D([], [], color=PALETTE[a % len(PALETTE)], lw=1.6, label=f"a = {a + 1}")
               for a in rows[:len(PALETTE)]]
    what = {"M": "clusters", "G": "directions", "Q": "units"}[name]
    return styles, handles, f"${sym}$: colour a (all {len(cols)} {what} c, no bands)"


_STAT_TITLES = {"M": "M (overlaps with the cluster means)", "Q": "Q (overlaps between units)",
                "G": "G (weights on the observation space)", "b": "b (skip connection)",
                "Omega": "Omega"}


def plot_training(theory: Result | None, simulation: Result | None, *, stats=("M", "Q", "G", "b"),
                  replica=None, band: str = "minmax", theory_trajectories: str = "mean", ncols: int = 2,
                  title: str | None = None):
    """Summary statistics against the training time theta (paper Figs. 6-7).

    One panel per statistic in ``stats`` (M: every entry M[a, c] = unit a's overlap with cluster
    mean c; Q: the entries Q[a, b] with a <= b; G: every entry; b: the skip connection).
    Simulation solid, theory dashed, one colour per matrix entry shared by both (labels are
    1-based like the paper's; with more than nine entries the colour is the column and the
    marker the row, or the colour the row when there are too many columns -- then no bands).

    replica None (default): simulation replica mean with a shaded band over replicas (``band``
    'minmax', or 'std' = mean +- one standard deviation; no band for one replica); theory the
    mean of its trajectories (``theory_trajectories`` 'mean') or each trajectory thin dashed
    ('all'); with a theory of one trajectory per simulation replica (``--init-from``), both over
    the replicas that succeeded in both files. replica k: only simulation replica k and the theory
    trajectory started from it (the paired comparison; replicas of a random start can break
    symmetry differently).
    replica 'all': every replica thin solid and every trajectory thin dashed.
    Either argument may be None. Returns a matplotlib Figure.
    """
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    if theory is not None and theory.kind != "theory" or simulation is not None and simulation.kind != "simulation":
        theory, simulation = _split(theory, simulation)
    if theory is None and simulation is None:
        raise ValueError("nothing to draw: give a theory and/or a simulation result")
    if band not in ("minmax", "std"):
        raise ValueError(f"band must be 'minmax' or 'std', not {band!r}")
    if theory_trajectories not in ("mean", "all"):
        raise ValueError(f"theory_trajectories must be 'mean' or 'all', not {theory_trajectories!r}")
    every_rep = replica == "all"
    picks = {}
    for kind, r in (("theory", theory), ("simulation", simulation)):
        if r is not None:
            picks[kind] = replica_indices(r, None if every_rep else replica)
    if (replica is None and theory is not None and simulation is not None
            and theory.n_replicas == simulation.n_replicas > 1):  # paired files: pool the replicas both completed
        common = sorted(set(picks["theory"]) & set(picks["simulation"]))
        if common:
            picks["theory"] = picks["simulation"] = common
    unknown = [s for s in stats if s not in ("M", "Q", "G", "b", "Omega")]
    if unknown:
        raise ValueError(f"unknown statistic {unknown[0]!r}; choose among M, Q, G, b")
    n = len(stats)
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(4.8 * ncols, 3.4 * nrows + 0.9), layout="constrained")
    dash = (0, (4, 2.5))
    with _rc():
        axes = fig.subplots(nrows, ncols, squeeze=False)
        for ax, name in zip(axes.flat, stats):
            arrays = {}
            for kind, r in (("theory", theory), ("simulation", simulation)):
                if r is not None:
                    a = np.asarray(getattr(r.train, name), dtype=float)[picks[kind]]
                    if name == "Omega":  # (rep, t, K, r, r) -> the cluster-averaged (rep, t, r, r)
                        a = a.mean(2)
                    arrays[kind] = (r.train.theta, a)
            ref_shape = next(iter(arrays.values()))[1].shape[2:]
            if any(a.shape[2:] != ref_shape for _, a in arrays.values()):
                raise ValueError(f"{name}: the two files' shapes differ ({[a.shape[2:] for _, a in arrays.values()]}):"
                                 " not the same problem")
            if name == "b":
                entries = [((None, None), "$b$")]
                styles = [{"color": PALETTE[0], "marker": None, "lw": 1.0}]
                handles, legend_title = [], None
            else:
                entries = _entries("Q" if name == "Omega" else name, ref_shape)
                styles, handles, legend_title = _entry_styles("Q" if name == "Omega" else name, entries)
            for (idx, _), st in zip(entries, styles):
                pick = (lambda a: a) if idx[0] is None else (lambda a, i=idx: a[:, :, i[0], i[1]])
                if "simulation" in arrays:
                    t, a = arrays["simulation"]
                    y = pick(a)
                    every = max(1, len(t) // 8)
                    if every_rep:
                        for row in y:
                            ax.plot(t, row, color=st["color"], lw=1.4 * st["lw"], alpha=0.75, marker=st["marker"],
                                    ms=3, markevery=every)
                    else:
                        m = y.mean(0)
                        ax.plot(t, m, color=st["color"], lw=2.2 * st["lw"], alpha=0.75, marker=st["marker"], ms=4,
                                markevery=every)
                        if y.shape[0] > 1 and st["lw"] >= 1:  # no bands when there are too many entries
                            lo, hi = (y.min(0), y.max(0)) if band == "minmax" else (m - y.std(0), m + y.std(0))
                            ax.fill_between(t, lo, hi, color=st["color"], alpha=0.22, lw=0)
                if "theory" in arrays:
                    t, a = arrays["theory"]
                    y = pick(a)
                    every = max(1, len(t) // 8)
                    if (theory_trajectories == "all" or every_rep) and y.shape[0] > 1:
                        for row in y:
                            ax.plot(t, row, color=st["color"], lw=0.9 * st["lw"], ls=dash, marker=st["marker"], ms=3,
                                    mfc="none", markevery=every)
                    else:
                        ax.plot(t, y.mean(0), color=st["color"], lw=1.3 * st["lw"], ls=dash, marker=st["marker"],
                                ms=4, mfc="none", markevery=every)
            ax.set_title(_STAT_TITLES.get(name, name) + (" (mean over clusters)" if name == "Omega" else ""))
            ax.set_xlabel(r"training time $\theta$")
            ax.grid(alpha=0.25, lw=0.6)
            ax.tick_params(labelsize=_RC["xtick.labelsize"])
            if handles:
                ax.legend(handles=handles, fontsize=8, ncol=2 if len(handles) > 4 else 1, loc="best",
                          framealpha=0.8, handlelength=1.5, title=legend_title, title_fontsize=8)
        for ax in list(axes.flat)[n:]:
            ax.set_visible(False)
        key = []
        if simulation is not None:
            lab = "simulation"
            k = len(picks["simulation"])
            if every_rep and k > 1:
                lab += f" ({k} replicas)"
            elif k > 1:
                lab += f" (mean of {k} replicas; band: " + ("min-max)" if band == "minmax" else "mean ± std)")
            elif simulation.n_replicas > 1:
                lab += f" (replica {picks['simulation'][0]} of {simulation.n_replicas})"
            key.append(Line2D([], [], color="0.2", lw=2.2, alpha=0.75, label=lab))
        if theory is not None:
            lab = "theory"
            k = len(picks["theory"])
            if k > 1:
                lab += f" ({'mean of ' if theory_trajectories == 'mean' and not every_rep else ''}{k} trajectories)"
            elif theory.n_replicas > 1:
                lab += f" (trajectory {picks['theory'][0]})"
            key.append(Line2D([], [], color="0.2", lw=1.3, ls=dash, label=lab))
        _suptitle(fig, title if title is not None else _describe(theory, simulation))
        fig.legend(handles=key, loc="outside lower center", ncol=len(key), frameon=False)
    return fig


# ============================================================================ files
def _suptitle(fig, text: str):
    """A figure title wrapped to the figure's width."""
    import textwrap

    width = max(30, int(fig.get_figwidth() * 10.5))
    fig.suptitle("\n".join(textwrap.wrap(text, width)) if text else "", fontsize=11)


def _rc():
    import matplotlib

    return matplotlib.rc_context(_RC)


def has_samples(*results: Result | None) -> bool:
    return any(r is not None and r.sample is not None and len(r.sample.theta) > 0 for r in results)


def plot_file(main: Result, other: Result | None, output, what: str = "auto", dpi: int = 130, **kwargs) -> Path:
    """Draw ``main`` (and ``other``, if given; one theory and one simulation in either order)
    into the image ``output`` (its extension picks the format: png, pdf, svg, ...) and return its path.

    what: 'density' (:func:`plot_densities`), 'training' (:func:`plot_training`) or 'auto'
    (density when a file has /sample data, else training). Extra keyword arguments go to the
    plotting function.
    """
    if what not in ("auto", "density", "training"):
        raise ValueError(f"what must be 'auto', 'density' or 'training', not {what!r}")
    image_format(output)  # an unsupported extension fails before the drawing
    theory, sim = _split(main, other)
    if what == "auto":
        what = "density" if has_samples(theory, sim) else "training"
    if what == "density":
        if not has_samples(theory, sim):
            raise ValueError("no generated samples to draw: the file(s) have no /sample data "
                             "(simulate/solve with sampling on, or use --what training)")
        fig = plot_densities(theory, sim, **kwargs)
    else:
        fig = plot_training(theory, sim, **kwargs)
    return save_figure(fig, output, dpi)


def image_format(output) -> str:
    """The image format that ``output``'s extension names (``png``, ``pdf``, ``svg``, ... any format
    matplotlib writes); ValueError (one line) for a missing or unsupported extension."""
    from matplotlib.backend_bases import FigureCanvasBase

    supported = FigureCanvasBase.get_supported_filetypes()
    ext = Path(output).suffix.lower().lstrip(".")
    names = ", ".join(f".{k}" for k in sorted(supported))
    if not ext:
        raise ValueError(f"{str(output)!r} has no extension: name the image .png, .pdf or .svg (supported: {names})")
    if ext not in supported:
        raise ValueError(f"cannot write a {ext!r} image ({str(output)!r}): use .png, .pdf or .svg "
                         f"(supported: {names})")
    return ext


def save_figure(fig, output, dpi: int = 130) -> Path:
    """Write ``fig`` to ``output`` in the format its extension names (:func:`image_format`: png,
    pdf, svg, ...) atomically (never a half-written file, even on Ctrl-C or SIGTERM; missing
    folders are created) and return its path. An unsupported extension raises ValueError before
    anything is written."""
    output = Path(output)
    fmt = image_format(output)
    with atomic_path(output) as tmp:
        fig.savefig(tmp, dpi=dpi, format=fmt)
    return output

