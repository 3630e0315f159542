"""Figures of model collapse (paper Fig. 5 and a collapse summary), for multi-generation results.

* :func:`plot_generations` -- one column per generation after the target: the generated density
  of generation g at its last sampled training time, the simulation's samples as a filled
  histogram and the theory's density (Corollary 2.3) as dark-blue contours, the original target
  as green dashed contours (the conventions of :mod:`hdae.plotting`); first column: the target.
* :func:`plot_collapse` -- against the generation: the variance of the projected samples along
  each observation direction and in total, the number of modes with their weights, and the
  energy distance to the original target (:mod:`hdae.collapse`), theory dashed over simulation.
"""
from __future__ import annotations

import numpy as np

from . import collapse
from .plotting import (DENSITY_MASSES, MAX_COMPONENTS, PALETTE, THEORY_COLOR, _draw_2d, _Panel, _rc, _split,
                       _Style, _suptitle, _TARGET_CMAP, density_grid, density_limits, hdr_levels, save_figure,
                       target_density)
from .results import Result


def _generations(theory: Result | None, sim: Result | None) -> int:
    return max(r.n_generations for r in (theory, sim) if r is not None)


def _last(result: Result | None, g: int):
    """(generation g of ``result`` or None, index of its last sampled time or None)."""
    if result is None or g >= result.n_generations:
        return None, None
    run = result.generation(g)
    if run.sample is None or len(run.sample.theta) == 0:
        return run, None
    return run, len(run.sample.theta) - 1


def plot_generations(theory: Result | None, simulation: Result | None, *, replica: int = 0, grid: int = 110,
                     bins: int = 70):
    """Paper Fig. 5: the target, then each generation's generated density (theory over simulation)."""
    from matplotlib.figure import Figure

    n_gen = _generations(theory, simulation)
    ref = theory if theory is not None else simulation
    lims = None
    for g in range(n_gen):
        th, _ = _last(theory, g)
        sm, _ = _last(simulation, g)
        lg = density_limits(th, sm, 2, replica=replica)
        lims = lg if lims is None else [(min(a[0], b[0]), max(a[1], b[1])) for a, b in zip(lims, lg)]
    style = _Style(smoothing="auto", grid=grid, bins=bins, max_components=MAX_COMPONENTS, masses=DENSITY_MASSES,
                   sim_reps=[replica], theory_replica=replica)
    with _rc():
        fig = Figure(figsize=(2.6 * (n_gen + 1), 3.5), layout="constrained")
        axes = fig.subplots(1, n_gen + 1, sharex=True, sharey=True, squeeze=False)[0]
        centres, points, cell = density_grid(lims, grid)
        X, Y = np.meshgrid(*centres)
        td = target_density(ref, points).reshape(X.shape)
        axes[0].contourf(X, Y, td, levels=np.r_[hdr_levels(td, cell, DENSITY_MASSES), td.max()],
                         cmap=_TARGET_CMAP(), alpha=0.8)
        axes[0].set_title("target")
        for g in range(n_gen):
            th, j_th = _last(theory, g)
            sm, j_sm = _last(simulation, g)
            theta = (th or sm).sample.theta[j_th if j_th is not None else j_sm] if (j_th is not None or j_sm is not None) else None
            _draw_2d(axes[g + 1], th, sm, _Panel(theta, j_sm, j_th), lims, style, ref)
            axes[g + 1].set_title(f"generation {g}")
        for ax in axes:
            ax.set_xlim(*lims[0])
            ax.set_ylim(*lims[1])
            ax.set_aspect("equal", adjustable="box")
        axes[0].set_ylabel("observation direction 2")
        for ax in axes:
            ax.set_xlabel("direction 1")
        keys = [k for k, r in (("simulation: orange histogram", simulation), ("theory: blue contours", theory))
                if r is not None] + ["target: green dashed"]
        _suptitle(fig, f"Model collapse: generation g+1 is trained on samples of generation g ({'; '.join(keys)})")
    return fig


def plot_collapse(theory: Result | None, simulation: Result | None, *, replica: int = 0):
    """Variance per direction and total, modes and their weights, distance to the target, per generation."""
    from matplotlib.figure import Figure

    columns = {}
    for name, r in (("simulation", simulation), ("theory", theory)):
        if r is not None:
            columns[name] = collapse.diagnostics(r, replica)
    with _rc():
        fig = Figure(figsize=(11, 3.3), layout="constrained")
        ax_var, ax_modes, ax_dist = fig.subplots(1, 3)
        for name, rows in columns.items():
            style = dict(ls="--", marker="s", mfc="none") if name == "theory" else dict(ls="-", marker="o")
            gens = [r.generation for r in rows]
            var = np.array([r.variance for r in rows])
            for i in range(var.shape[1]):
                ax_var.plot(gens, var[:, i], color=PALETTE[i % len(PALETTE)], **style,
                            label=f"{name}: direction {i + 1}")
            ax_var.plot(gens, [r.total for r in rows], color="k", **style, label=f"{name}: total")
            offset = -0.15 if name == "simulation" else 0.15
            for r in rows:
                bottom = 0.0
                for k, w in enumerate(r.mode_weights):
                    ax_modes.bar(r.generation + offset, w, bottom=bottom, width=0.28,
                                 color=PALETTE[k % len(PALETTE)], edgecolor="k" if name == "theory" else "none",
                                 hatch="//" if name == "theory" else None, alpha=0.85)
                    bottom += w
                ax_modes.text(r.generation + offset, bottom + 0.02, str(r.n_modes), ha="center", fontsize=8)
            ax_dist.plot(gens, [r.distance for r in rows], color=THEORY_COLOR if name == "theory" else "#d95f0e",
                         **style, label=name)
        ax_var.set_yscale("log")
        ax_var.set_title("variance of the projected samples")
        ax_modes.set_title("modes and their weights (left: sim, right: theory)")
        ax_modes.set_ylim(0, 1.15)
        ax_dist.set_title("energy distance to the target")
        for ax in (ax_var, ax_modes, ax_dist):
            ax.set_xlabel("generation")
            ax.set_xticks(range(_generations(theory, simulation)))
        ax_var.legend(fontsize=7, ncol=1, loc="lower left")
        ax_dist.legend(fontsize=8)
    return fig


def plot_collapse_file(main: Result, other: Result | None, output, what: str = "generations", dpi: int = 130):
    """Write :func:`plot_generations` (what='generations') or :func:`plot_collapse` (what='collapse')
    atomically into the image ``output`` (its extension picks the format: png, pdf, svg, ...)."""
    theory, sim = _split(main, other)
    return save_figure((plot_generations if what == "generations" else plot_collapse)(theory, sim), output, dpi)
