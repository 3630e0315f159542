"""Phase diagrams of a sweep file: a heat map of one summary over two swept keys, or a line over
one; the other swept keys fixed (``at``) or averaged; diverged and failed points marked."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .sweep import DIVERGED, FAILED, PENDING, SweepError, SweepFile, toml_value

LABELS = {"modes": "number of modes of the generated density", "distance": "energy distance to the target",
          "floor": "energy-distance noise floor", "b_final": "final skip b", "theta_reached": "training time reached",
          "diverged": "diverged", "normM": "|M| (final, Frobenius)", "trQ": "tr Q (final)",
          "wall_time": "wall time per point (s)", "theta": "training time of the generated density"}
KEEP_DIVERGED = ("theta_reached", "diverged", "wall_time")  # summaries that mean something for a diverged run


def _axis_value_index(sweep: SweepFile, key: str, text: str) -> int:
    from .config import parse_value

    vals = sweep.axes[key]
    target = parse_value(text)
    if vals.dtype.kind == "S":
        want = toml_value(target).encode()
        hits = [i for i, v in enumerate(vals) if v == want or v == text.encode()]
    else:
        if not isinstance(target, (int, float)) or isinstance(target, bool):
            raise SweepError(key, f"--at {key}={text}: expected a number")
        hits = [i for i, v in enumerate(vals) if np.isclose(v, target, rtol=1e-5, atol=0)]
    if not hits:
        shown = ", ".join(v.decode() if isinstance(v, bytes) else f"{v:.6g}" for v in vals)
        raise SweepError(key, f"--at {key}={text}: not a swept value ({shown})")
    return hits[0]


def nan_mean(values: np.ndarray, axis) -> np.ndarray:
    """The mean over ``axis`` of the finite entries; NaN (and no warning) where there are none."""
    values = np.asarray(values, dtype=float)
    ok = np.isfinite(values)
    n = ok.sum(axis=axis)
    total = np.where(ok, values, 0.0).sum(axis=axis)
    return np.divide(total, n, out=np.full(np.shape(n), np.nan), where=n > 0)


def available_summaries(sweep: SweepFile, run: str = "theory") -> list[str]:
    """The summaries (of :func:`hdae.sweep.summary_names`) with a value at some stored point of ``run``."""
    from .sweep import summary_names

    out = []
    for name in summary_names():
        probe = {"Q[a,b]": "Q[0,0]", "M[a,k]": "M[0,0]"}.get(name, name)
        try:
            v = sweep.grid(probe, run)
        except (SweepError, KeyError, IndexError):
            continue
        if np.isfinite(v).any():
            out.append(name)
    return out


def select(sweep: SweepFile, summary: str, axes, at=None, run: str = "theory"):
    """The summary on the plotted ``axes`` (1 or 2 keys): (values, status, notes).

    values (n_x[, n_y]): the summary, with the keys in ``at`` ({key: value text}) fixed and every
    other swept key (and simulation replicas) averaged (NaN-mean over stored, non-diverged points;
    diverged points count only for ``theta_reached``, ``diverged``, ``wall_time``).
    status (n_x[, n_y]): per cell 'diverged' fraction, 'failed' fraction, 'missing' fraction."""
    at = dict(at or {})
    for k in list(at) + list(axes):
        if k not in sweep.keys:
            raise SweepError(k, f"not a swept key (swept: {', '.join(sweep.keys)})")
    if len(set(axes)) != len(axes):
        raise SweepError(axes[0], "the two plotted keys must differ")
    for k in axes:
        if k in at:
            raise SweepError(k, "plotted on an axis and fixed by --at")
    values = sweep.grid(summary, run)
    if values.ndim > len(sweep.shape):  # replicas: average (NaN where no replica has a value)
        values = nan_mean(values, axis=tuple(range(len(sweep.shape), values.ndim)))
    st = sweep.status_grid()
    run_status = np.zeros(sweep.shape, dtype=np.int8)
    run_status[tuple(sweep.index.T)] = sweep.runs[run]["status"]
    diverged = (st == DIVERGED) | (run_status == DIVERGED)
    if summary not in KEEP_DIVERGED:
        values = np.where(diverged, np.nan, values)
    index = []
    averaged = []
    for k in sweep.keys:
        if k in at:
            index.append(_axis_value_index(sweep, k, at[k]))
        else:
            index.append(slice(None))
            if k not in axes:
                averaged.append(k)
    index = tuple(index)
    values, diverged, failed, missing = (a[index] for a in (values, diverged, st == FAILED, st == PENDING))
    kept = [k for k in sweep.keys if k not in at]  # the axes left, in file order
    order = [kept.index(k) for k in axes] + [kept.index(k) for k in averaged]
    values, diverged, failed, missing = (np.transpose(a, order) for a in (values, diverged, failed, missing))
    red = tuple(range(len(axes), len(order)))
    out = nan_mean(values, axis=red) if red else values
    frac = lambda a: a.mean(axis=red) if red else a.astype(float)  # noqa: E731
    notes = []
    if at:
        notes.append(", ".join(f"{k} = {v}" for k, v in at.items()))
    if averaged:
        notes.append("averaged over " + ", ".join(averaged))
    return out, {"diverged": frac(diverged), "failed": frac(failed), "missing": frac(missing)}, notes


SAMPLE_SUMMARIES = ("modes", "distance", "floor", "theta")  # need the generated samples
MAX_TICKS = 12


def tick_labels(sweep: SweepFile, key: str) -> list[str]:
    """The swept values of ``key`` as tick labels: numbers to 4 digits, strings without TOML quotes."""
    from .config import parse_value

    v = sweep.axes[key]
    if v.dtype.kind == "S":
        out = []
        for x in v:
            text = x.decode("utf-8", "replace")
            val = parse_value(text)
            out.append(val if isinstance(val, str) else text)
        return out
    return [f"{x:.4g}" for x in v.astype(float)]


def _ticks(n: int) -> np.ndarray:
    """Which of n swept values get a labelled tick (all, or every k-th for many)."""
    return np.arange(0, n, int(np.ceil(n / MAX_TICKS)))


def _line_coords(sweep: SweepFile, key: str):
    """(positions, x limits, log, categorical) of the one plotted key of a line plot: the swept
    values (their indices for strings), limits covering every one of them."""
    v = sweep.axes[key]
    if v.dtype.kind == "S":
        pos = np.arange(len(v), dtype=float)
        return pos, (-0.5, len(v) - 0.5), False, True
    v = v.astype(float)
    log = sweep.is_log(key) and bool(np.all(v > 0))
    t = np.log(v) if log else v
    span = float(t.max() - t.min())
    pad = 0.06 * span if span > 0 else (0.1 if log else (abs(float(t[0])) * 0.1 or 0.5))
    lo, hi = t.min() - pad, t.max() + pad
    lims = (np.exp(lo), np.exp(hi)) if log else (lo, hi)
    return v, lims, log, False


def _band(t: np.ndarray, i: int, span: float) -> tuple[float, float]:
    """A narrow band around the i-th of the (sorted or not) positions t: 30% of the gap to the
    nearest other value, at most 2% of the span."""
    gaps = np.abs(np.delete(t, i) - t[i])
    gaps = gaps[gaps > 0]
    half = min(0.3 * gaps.min() if gaps.size else np.inf, 0.02 * span if span > 0 else 0.05)
    return t[i] - half, t[i] + half


def _check_drawable(sweep: SweepFile, path, summary: str, run: str, values, status):
    """ValueError (one line) when the figure would show nothing: no point drawn has a value of
    ``summary`` although some succeeded (e.g. a --no-sample sweep and a sample summary), or no
    point is stored yet."""
    if np.isfinite(values).any():
        return
    succeeded = (1 - status["diverged"] - status["failed"] - status["missing"]) > 1e-9
    marked = (status["diverged"] > 0) | (status["failed"] > 0)
    if marked.any() and not succeeded.any():
        return  # every point diverged or failed: the markers are the figure
    if not succeeded.any():
        raise SweepError("summary", f"nothing to draw: no point of {str(path)!r} is stored yet")
    why = ""
    if summary in SAMPLE_SUMMARIES and not sweep.spec.get("sample", True):
        why = " (the sweep ran with --no-sample: modes, distance, floor and theta need generated samples)"
    elif summary in SAMPLE_SUMMARIES:
        why = " (these points have no generated samples)"
    have = [n for n in available_summaries(sweep, run) if n != "diverged"]
    raise SweepError("summary", f"no values of {summary!r} to draw in the {run} run of {str(path)!r}{why}; "
                                f"summaries with values: {', '.join(have) or 'none'}")


def plot_sweep(path, output, summary: str = "modes", axes=None, at=None, run: str = "theory", dpi: int = 130) -> Path:
    """Draw ``summary`` of the sweep file ``path`` into the image ``output`` (its extension picks
    the format): a heat map over two swept keys (``axes``; default the first two swept keys with
    more than one value) or a line over one. See :func:`figure`."""
    from .plotting import image_format, save_figure

    image_format(output)  # an unsupported extension fails before the drawing
    fig = figure(path, summary, axes, at, run)
    import matplotlib.pyplot as plt

    try:
        return save_figure(fig, output, dpi)
    finally:
        plt.close(fig)


def figure(path, summary: str = "modes", axes=None, at=None, run: str = "theory"):
    """The phase diagram of ``summary`` (a matplotlib Figure; :func:`plot_sweep` writes it).

    Heat map (two keys): one cell per pair of swept values, drawn on index coordinates with ticks
    labelled by the swept values (no cell implies a value that was not swept); diverged cells
    crossed (size ~ diverged fraction when averaging), failed (invalid) cells hatched grey, cells
    not computed yet left white. Line (one key): the x-axis spans every swept value, ticks at the
    swept values; a diverged point with a value (e.g. ``theta_reached``) is crossed at its value,
    one without a value is marked by a dotted vertical line with a cross on the bottom axis (no
    value implied); failed points are hatched vertical bands."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.transforms import blended_transform_factory

    sweep = SweepFile(path)
    if axes is None or len(axes) == 0:
        axes = [k for k, n in zip(sweep.keys, sweep.shape) if n > 1 and k not in (at or {})][:2] or sweep.keys[:1]
    axes = list(axes)
    if len(axes) > 2:
        raise SweepError("axes", "plot one or two swept keys")
    values, status, notes = select(sweep, summary, axes, at, run)
    _check_drawable(sweep, path, summary, run, values, status)
    label = LABELS.get(summary, summary)
    if run != "theory":
        label += f" ({run})"
    title = sweep.spec.get("base", "")
    name = next((ln.split("=", 1)[1].strip().strip('"') for ln in title.splitlines() if ln.startswith("name")), "")
    done = int(np.sum(sweep.status != PENDING))
    header = f"{name + ': ' if name else ''}{label}" + (f" | {'; '.join(notes)}" if notes else "")
    header += f" | {done}/{len(sweep.status)} points stored" if done < len(sweep.status) else ""

    fig, ax = plt.subplots(figsize=(6.4, 5.0) if len(axes) == 2 else (6.4, 4.2))
    if len(axes) == 2:
        nx, ny = values.shape
        xe, ye = np.arange(nx + 1) - 0.5, np.arange(ny + 1) - 0.5
        data = np.ma.masked_invalid(values.T)
        if summary == "modes" and np.isfinite(values).any():
            top = int(np.nanmax(values))
            lo = int(np.nanmin(values))
            cmap = plt.get_cmap("viridis", top - lo + 1)
            mesh = ax.pcolormesh(xe, ye, data, cmap=cmap, vmin=lo - 0.5, vmax=top + 0.5, shading="flat")
            cb = fig.colorbar(mesh, ax=ax, ticks=range(lo, top + 1))
        else:
            mesh = ax.pcolormesh(xe, ye, data, cmap="viridis", shading="flat")
            cb = fig.colorbar(mesh, ax=ax)
        cb.set_label(label)
        X, Y = np.meshgrid(np.arange(nx), np.arange(ny), indexing="ij")
        dv = status["diverged"]
        if dv.any():
            ax.scatter(X[dv > 0], Y[dv > 0], s=60 * np.sqrt(dv[dv > 0]), marker="x", color="crimson", lw=1.5,
                       label="diverged")
        fl = status["failed"] > 0
        for i, j in zip(*np.nonzero(fl)):  # all failed: grey and hatched; some: hatched over the mean
            full = status["failed"][i, j] >= 1 - 1e-9
            ax.add_patch(plt.Rectangle((xe[i], ye[j]), 1, 1, lw=0, facecolor="0.8" if full else "none",
                                       hatch="///", edgecolor="0.5"))
        if fl.any():
            partial = bool((status["failed"][fl] < 1 - 1e-9).any())
            ax.add_patch(plt.Rectangle((np.nan, np.nan), 0, 0, facecolor="0.8", hatch="///", edgecolor="0.5",
                                       label="invalid / failed" + (" (hatched over a colour: some of the averaged "
                                                                   "points)" if partial else "")))
        ax.set_xlim(xe[0], xe[-1])
        ax.set_ylim(ye[0], ye[-1])
        for key, n, set_ticks, set_label in ((axes[0], nx, ax.set_xticks, ax.set_xlabel),
                                             (axes[1], ny, ax.set_yticks, ax.set_ylabel)):
            shown = _ticks(n)
            labels = tick_labels(sweep, key)
            set_ticks(shown, [labels[i] for i in shown])
            set_label(key + (" (log-spaced)" if sweep.axes[key].dtype.kind != "S" and sweep.is_log(key) else ""))
        if dv.any() or fl.any():
            ax.legend(loc="upper left", bbox_to_anchor=(0, -0.12), ncol=2, fontsize=8, frameon=False)
    else:
        xs, xlim, xlog, categorical = _line_coords(sweep, axes[0])
        if xlog:
            ax.set_xscale("log")
        finite = np.isfinite(values)
        ax.plot(xs, values, "o-", color="C0", ms=4)
        dv = status["diverged"] > 0
        fl = status["failed"] > 0
        bottom = blended_transform_factory(ax.transData, ax.transAxes)
        if (dv & finite).any():
            ax.plot(xs[dv & finite], values[dv & finite], "x", color="crimson", ms=9, mew=1.8,
                    label="diverged (its value)" if summary in KEEP_DIVERGED
                    else "diverged (some averaged points; mean of the others)")
        if (dv & ~finite).any():
            for x in xs[dv & ~finite]:
                ax.axvline(x, color="crimson", ls=":", lw=1)
            ax.plot(xs[dv & ~finite], np.zeros(int((dv & ~finite).sum())), "x", color="crimson", ms=9, mew=1.8,
                    transform=bottom, clip_on=False, label="diverged (no value)")
        if fl.any():
            t = np.log(xs) if xlog else xs
            span = float(t.max() - t.min()) if len(t) > 1 else 0.0
            for i in np.nonzero(fl)[0]:
                lo, hi = (xs[i] - 0.3, xs[i] + 0.3) if categorical else _band(t, i, span)
                if xlog and not categorical:
                    lo, hi = np.exp(lo), np.exp(hi)
                ax.axvspan(lo, hi, facecolor="0.85" if not finite[i] else "none", hatch="///", edgecolor="0.5",
                           lw=0, label="invalid / failed" if i == np.nonzero(fl)[0][0] else None)
        if not finite.any():  # nothing measured: no value scale to show
            ax.set_yticks([])
            ax.text(0.5, 0.5, f"no point has a value of {summary}", transform=ax.transAxes, ha="center",
                    va="center", color="0.4", fontsize=9)
        if dv.any() or fl.any():
            ax.legend(fontsize=8)
        ax.set_ylabel(label)
        ax.set_xlim(*xlim)
        labels = tick_labels(sweep, axes[0])
        if categorical or len(xs) <= MAX_TICKS:
            shown = _ticks(len(xs))
            ax.set_xticks(xs[shown], [labels[i] for i in shown])
            if xlog:
                from matplotlib.ticker import NullLocator

                ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xlabel(axes[0])
    ax.set_title(header, fontsize=9)
    fig.tight_layout()
    return fig


def parse_at(items) -> dict:
    """``KEY=VALUE`` strings -> {key: value text}."""
    out = {}
    for item in items or ():
        if "=" not in item:
            raise SweepError(item, "--at must look like section.key=value")
        k, v = item.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def describe(path) -> str:
    """One paragraph: axes, point counts (for `hdae plot` messages)."""
    s = SweepFile(path)
    counts = {n: int(np.sum(s.status == c)) for c, n in ((1, "success"), (2, "diverged"), (3, "failed"), (0, "pending"))}
    return f"{len(s.status)} points over {json.dumps(s.keys)}: " + ", ".join(f"{v} {k}" for k, v in counts.items())
