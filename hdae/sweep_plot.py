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


def is_sweep_file(path) -> bool:
    """True when ``path`` is an HDF5 file written by :func:`hdae.sweep.run_sweep`."""
    import h5py

    try:
        with h5py.File(path, "r", locking=False) as f:
            return f.attrs.get("kind") == "sweep"
    except OSError:
        return False


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
    if values.ndim > len(sweep.shape):  # replicas: average
        values = np.nanmean(values, axis=tuple(range(len(sweep.shape), values.ndim))) \
            if np.isfinite(values).any() else values[..., 0]
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
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            out = np.nanmean(values, axis=red) if red else values
    frac = lambda a: a.mean(axis=red) if red else a.astype(float)  # noqa: E731
    notes = []
    if at:
        notes.append(", ".join(f"{k} = {v}" for k, v in at.items()))
    if averaged:
        notes.append("averaged over " + ", ".join(averaged))
    return out, {"diverged": frac(diverged), "failed": frac(failed), "missing": frac(missing)}, notes


def _coords(sweep: SweepFile, key: str):
    """(positions, edges, tick labels or None, log) of one axis."""
    v = sweep.axes[key]
    if v.dtype.kind == "S":
        pos = np.arange(len(v), dtype=float)
        return pos, np.arange(len(v) + 1) - 0.5, [x.decode() for x in v], False
    v = v.astype(float)
    log = sweep.is_log(key)
    if len(v) == 1:
        w = abs(v[0]) * 0.1 or 0.5
        return v, np.array([v[0] - w, v[0] + w]) if not log else np.array([v[0] / 1.2, v[0] * 1.2]), None, log
    t = np.log(v) if log else v
    mid = 0.5 * (t[1:] + t[:-1])
    edges = np.concatenate([[t[0] - (mid[0] - t[0])], mid, [t[-1] + (t[-1] - mid[-1])]])
    return v, np.exp(edges) if log else edges, None, log


def plot_sweep(path, output, summary: str = "modes", axes=None, at=None, run: str = "theory", dpi: int = 130) -> Path:
    """Draw ``summary`` of the sweep file ``path`` into ``output``: a heat map over two swept keys
    (``axes``; default the first two swept keys with more than one value) or a line over one.
    Diverged cells are crossed (x; size ~ diverged fraction when averaging), failed (invalid)
    cells hatched grey, cells not computed yet left white."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sweep = SweepFile(path)
    if axes is None or len(axes) == 0:
        axes = [k for k, n in zip(sweep.keys, sweep.shape) if n > 1 and k not in (at or {})][:2] or sweep.keys[:1]
    axes = list(axes)
    if len(axes) > 2:
        raise SweepError("axes", "plot one or two swept keys")
    values, status, notes = select(sweep, summary, axes, at, run)
    label = LABELS.get(summary, summary)
    if run != "theory":
        label += f" ({run})"
    title = sweep.spec.get("base", "")
    name = next((ln.split("=", 1)[1].strip().strip('"') for ln in title.splitlines() if ln.startswith("name")), "")
    done = int(np.sum(sweep.status != PENDING))
    header = f"{name + ': ' if name else ''}{label}" + (f" | {'; '.join(notes)}" if notes else "")
    header += f" | {done}/{len(sweep.status)} points stored" if done < len(sweep.status) else ""

    fig, ax = plt.subplots(figsize=(6.4, 5.0) if len(axes) == 2 else (6.4, 4.2))
    xs, xe, xt, xlog = _coords(sweep, axes[0])
    if len(axes) == 2:
        ys, ye, yt, ylog = _coords(sweep, axes[1])
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
        X, Y = np.meshgrid(xs, ys, indexing="ij")
        dv = status["diverged"]
        if dv.any():
            ax.scatter(X[dv > 0], Y[dv > 0], s=30 * np.sqrt(dv[dv > 0]), marker="x", color="crimson", lw=1.2,
                       label="diverged")
        fl = status["failed"] > 0
        for i, j in zip(*np.nonzero(fl)):  # all failed: grey and hatched; some: hatched over the mean
            full = status["failed"][i, j] >= 1 - 1e-9
            ax.add_patch(plt.Rectangle((xe[i], ye[j]), xe[i + 1] - xe[i], ye[j + 1] - ye[j], lw=0,
                                       facecolor="0.8" if full else "none", hatch="///", edgecolor="0.5"))
        if fl.any():
            ax.add_patch(plt.Rectangle((np.nan, np.nan), 0, 0, facecolor="0.8", hatch="///", edgecolor="0.5",
                                       label="invalid / failed (hatched only: some of the averaged points)"))
        ax.set_ylabel(axes[1])
        if ylog:
            ax.set_yscale("log")
        if yt:
            ax.set_yticks(ys, yt)
        if dv.any() or fl.any():
            ax.legend(loc="upper left", bbox_to_anchor=(0, -0.12), ncol=2, fontsize=8, frameon=False)
    else:
        ax.plot(xs, values, "o-", color="C0", ms=4)
        dv = status["diverged"] > 0
        if dv.any():
            ax.plot(xs[dv], np.full(dv.sum(), np.nanmin(values) if np.isfinite(values).any() else 0), "x",
                    color="crimson", ms=8, label="diverged")
            ax.legend(fontsize=8)
        ax.set_ylabel(label)
    ax.set_xlabel(axes[0])
    if xlog:
        ax.set_xscale("log")
    if xt:
        ax.set_xticks(xs, xt)
    ax.set_title(header, fontsize=9)
    fig.tight_layout()
    from .plotting import save_png

    output = save_png(fig, output, dpi)
    plt.close(fig)
    return output


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
