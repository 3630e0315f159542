"""Parameter sweeps: one problem over a grid of overrides, every point solved (and optionally
simulated), on Dask or serially, gathered point by point into one HDF5 file.

Grid (:func:`parse_axis`): ``KEY=VALUES`` with VALUES one of

    0.05,0.1,0.2          a list of TOML literals (``relu,tanh`` bare words are strings)
    1:8                   integers 1, 2, ..., 8 (both ends included)
    lin:A:B:N             N linearly spaced floats from A to B (both included)
    log:A:B:N             N log-spaced floats from A to B (A, B > 0)

The points are the cartesian product of the axes (the first axis varies slowest). Each point is
the base problem with the point's ``key=value`` overrides, validated by
:func:`hdae.load_problem`; a point that fails validation is stored as failed with its error.
Every valid point travels to its worker as the TOML text of its fully resolved problem.

File layout (:class:`SweepFile` reads it)::

    /              attrs: kind = 'sweep', hdae_version, created, spec (JSON: base problem TOML,
                          grid, options), axes (JSON list of keys), shape, n_points, definitions
    /axes/KEY      (n_KEY,) the axis values (float, int, or TOML text), attrs spec, position
    /points/index  (P, n_axes)  each point's position on every axis
    /points/config (P,)  the point's resolved problem (TOML; empty for invalid points)
    /points/status (P,)  0 pending, 1 success, 2 diverged, 3 failed -- the commit flag
    /points/message, /points/worker (P,), /points/wall_time (P,) seconds, /points/dims (P, 5)
                         r, K (target components), R (observation dim), n_ckpt, n_sampled
    /theory/...    and, with simulate, /simulation/... (one more replica axis after P):
        status (P,), message (P,), wall_time (P,)       the run's own status and time
        train/theta (P, C), train/Q (P, C, r, r), Omega (P, C, K, r, r), M (P, C, r, K),
        G (P, C, r, R), b (P, C)                          full trajectories (NaN-padded)
        sample/theta (P, S) [+ sample/projected (P, S, n, R) with keep_samples]
        summary/theta_reached, b_final, Q_final (.., r, r), M_final (.., r, K), diverged,
        summary/theta, modes, distance, floor       the final generated density (hdae.diagnostics)

Shapes are padded with NaN to the largest point (axes like ``model.width`` change r).

Work: the valid points go in chunks (:func:`chunk_size`, :func:`chunks`) to Dask tasks (or, with
``serial``, run in this process); a chunk's theories are solved together in one process
(:func:`compute_points`, :func:`hdae.theory.solve_many`), each point's numbers equal to its problem
solved alone, and its points are stored one by one when the chunk completes.

Restartability and atomicity: the file and all its datasets are created once, at the start,
with contiguous storage allocated up front and no time stamps, then flushed; afterwards the
driver process only overwrites raw data inside those datasets and never changes HDF5 metadata,
so killing it at any moment leaves a readable file. A point is committed by writing its data,
flushing, then setting its ``/points/status`` entry and flushing again: it is either fully
stored or still pending. Running the same sweep again on the same file resumes: committed
points are skipped, pending ones computed; a different sweep on an existing file is refused
without ``force``.
"""
from __future__ import annotations

import datetime as _dt
import itertools
import json
import os
import re
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import config, diagnostics, tomlio
from ._version import __version__
from .config import ConfigError
from .results import TRAIN_STATS

PENDING, SUCCESS, DIVERGED, FAILED = 0, 1, 2, 3
STATUS_NAMES = {PENDING: "pending", SUCCESS: "success", DIVERGED: "diverged", FAILED: "failed"}
MESSAGE_LEN = 1024
THREAD_ENV = {k: "1" for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")}
SUMMARY_SCALARS = ("theta_reached", "b_final", "diverged", "theta", "modes", "distance", "floor", "wall_time")


class SweepError(ConfigError):
    """A bad sweep description (grid syntax, duplicate keys, an existing file of another sweep)."""


# ----------------------------------------------------------------------------- grid
@dataclass(frozen=True)
class Axis:
    """One swept key and its values (python scalars or lists, as TOML would parse them)."""

    key: str
    values: tuple
    spec: str  # the text it was parsed from

    @property
    def log(self) -> bool:
        return self.spec.split("=", 1)[1].strip().startswith("log:")


def _split_top(text: str) -> list[str]:
    """Split on commas outside brackets, braces and quotes."""
    out, depth, quote, cur = [], 0, None, []
    for ch in text:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append("".join(cur))
            cur = []
            continue
        cur.append(ch)
    out.append("".join(cur))
    return [s.strip() for s in out]


_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"


def parse_axis(spec: str) -> Axis:
    """``KEY=VALUES`` (see the module docstring) -> :class:`Axis`; :class:`SweepError` names the key."""
    if "=" not in spec:
        raise SweepError(spec, "a grid axis must look like section.key=VALUES")
    key, text = (s.strip() for s in spec.split("=", 1))
    if not key or any(not p for p in key.split(".")):
        raise SweepError(key or spec, "bad key in grid axis")
    m_int = re.fullmatch(r"([-+]?\d+):([-+]?\d+)", text)
    m_lin = re.fullmatch(rf"(lin|log):({_NUM}):({_NUM}):(\d+)", text)
    if m_int:
        a, b = int(m_int.group(1)), int(m_int.group(2))
        if b < a:
            raise SweepError(key, f"integer range {text!r} is empty (write a:b with a <= b)")
        values = tuple(range(a, b + 1))
    elif m_lin:
        kind, a, b, n = m_lin.group(1), float(m_lin.group(2)), float(m_lin.group(3)), int(m_lin.group(4))
        if n < 1:
            raise SweepError(key, f"{text!r}: the number of values must be >= 1")
        if kind == "log" and (a <= 0 or b <= 0):
            raise SweepError(key, f"{text!r}: log ranges need positive ends")
        arr = np.linspace(a, b, n) if kind == "lin" else np.geomspace(a, b, n)
        if n > 1:
            arr[0], arr[-1] = a, b  # exact ends
        values = tuple(float(v) for v in arr)
    elif re.match(r"(lin|log):", text):
        raise SweepError(key, f"{text!r}: expected lin:START:STOP:N or log:START:STOP:N")
    else:
        items = _split_top(text)
        if not text or any(not s for s in items):
            raise SweepError(key, f"empty value in {text!r}")
        values = tuple(config.parse_value(s) for s in items)
    if len({json.dumps(v, sort_keys=True) for v in values}) != len(values):
        raise SweepError(key, f"repeated values in {text!r}")
    return Axis(key, values, f"{key}={text}")


def toml_value(value) -> str:
    """A value as a TOML literal (what a ``--set`` override and the stored axis text use)."""
    return tomlio.dumps({"v": value}).split("=", 1)[1].strip()


# ----------------------------------------------------------------------------- plan
@dataclass
class Point:
    index: int
    position: tuple  # index along every axis
    overrides: list  # "key=value" strings
    config: str = ""  # resolved problem TOML ('' when invalid)
    error: str = ""
    dims: tuple = (0, 0, 0, 0, 0)  # r, K, R, n_ckpt, n_sampled
    batch_key: str = ""  # points with equal keys are likely to be integrated together (see chunks)


@dataclass
class SweepSpec:
    """What a sweep computes (stored as JSON in the file; resuming requires the same spec)."""

    base: str  # TOML text of the base problem (file or example + base overrides)
    axes: list  # [Axis]
    simulate: bool = False
    replicas: int = 1
    device: str = "cpu"
    sample: bool = True
    keep_samples: bool = False

    def to_json(self) -> str:
        out = {"base": self.base, "grid": [a.spec for a in self.axes], "simulate": self.simulate,
               "sample": self.sample, "keep_samples": self.keep_samples}
        if self.simulate:
            out.update(replicas=self.replicas, device=self.device)
        return json.dumps(out, sort_keys=True)

    @property
    def shape(self) -> tuple:
        return tuple(len(a.values) for a in self.axes)


def make_spec(source=None, *, example=None, overrides=(), grid=(), d=None, seed=None, **options) -> SweepSpec:
    """The sweep of ``source`` / ``example`` (+ ``overrides``, ``d``, ``seed``) over ``grid``
    (``KEY=VALUES`` strings or :class:`Axis`). ``options``: simulate, replicas, device, sample,
    keep_samples."""
    axes = [a if isinstance(a, Axis) else parse_axis(a) for a in grid]
    if not axes:
        raise SweepError("grid", "give at least one grid axis (--grid section.key=VALUES)")
    keys = [a.key for a in axes]
    for k in keys:
        if keys.count(k) > 1:
            raise SweepError(k, "swept twice (give each key one --grid)")
    set_keys = {o.split("=", 1)[0].strip() for o in overrides}
    if d is not None:
        set_keys.add("target.d")
    if seed is not None:
        set_keys.add("seed")
    for k in keys:
        if k in set_keys:
            raise SweepError(k, "both swept (--grid) and set (--set/--d/--seed); give it once")
    cfg = config.read_config(source, example=example)
    config.apply_overrides(cfg, overrides)
    if d is not None:
        config._set_path(cfg, "target.d", int(d))
    if seed is not None:
        cfg["seed"] = int(seed)
    return SweepSpec(base=tomlio.dumps(cfg), axes=axes, **options)


def plan(spec: SweepSpec) -> list[Point]:
    """Every grid point, validated (``load_problem``); invalid ones carry their one-line error."""
    points = []
    for i, pos in enumerate(itertools.product(*(range(len(a.values)) for a in spec.axes))):
        ov = [f"{a.key}={toml_value(a.values[j])}" for a, j in zip(spec.axes, pos)]
        p = Point(i, pos, ov)
        try:
            problem = config.load_problem(spec.base, overrides=ov)
            p.config = problem.config_text
            K = len(problem.target.projected(problem.observation_basis)[0])
            p.dims = (problem.model.width, K, problem.observation_basis.shape[1], len(problem.train.checkpoints),
                      len(problem.sample.thetas) if spec.sample else 0)
            p.batch_key = json.dumps([problem.model.width, problem.model.activation, [float(t) for t in problem.train.times],
                                      problem.theory.integrator, problem.generations.count], default=str)
        except ConfigError as err:
            p.error = str(err)
        points.append(p)
    if all(p.error for p in points):
        raise SweepError("grid", f"every point is invalid, e.g. {points[0].error}")
    return points


# ----------------------------------------------------------------------------- one point (on a worker)
def _set_threads(n: int | None, torch_too: bool = False):
    """Set numba (and, with ``torch_too`` or when torch is already imported, torch) thread counts
    (None: leave them); returns the previous ones."""
    import sys

    import numba

    before = [numba.get_num_threads(), None]
    torch = None
    if torch_too or "torch" in sys.modules:
        import torch

        before[1] = torch.get_num_threads()
    if n is not None:
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
        if torch is not None:
            torch.set_num_threads(n)
    return before


def _restore_threads(before):
    import numba

    numba.set_num_threads(before[0])
    if before[1] is not None:
        import torch

        torch.set_num_threads(before[1])


def _run_payload(result, keep_samples: bool) -> dict:
    """What the file keeps of one Result (arrays with the replica axis), plus its summaries."""
    tr = result.train
    out = {"status": SUCCESS if result.ok else DIVERGED, "message": result.message,
           "wall_time": float(result.wall_time_s), "train": {"theta": tr.theta}}
    for k in TRAIN_STATS:
        out["train"][k] = getattr(tr, k)
    n_rep = tr.Q.shape[0]
    reached = np.isfinite(tr.b)  # (n_rep, n_ckpt): a replica that stopped is NaN afterwards
    last = np.where(reached.any(1), reached.shape[1] - 1 - np.argmax(reached[:, ::-1], axis=1), -1)
    summ = {"theta_reached": np.array([tr.theta[i] if i >= 0 else np.nan for i in last]),
            "b_final": tr.b[:, -1], "Q_final": tr.Q[:, -1], "M_final": tr.M[:, -1],
            "diverged": (~result.replica_ok).astype(np.int8),
            "theta": np.full(n_rep, np.nan), "modes": np.full(n_rep, np.nan),
            "distance": np.full(n_rep, np.nan), "floor": np.full(n_rep, np.nan)}
    s = result.sample
    out["sample"] = {"theta": s.theta if s is not None else np.zeros(0)}
    if s is not None and len(s.theta):
        if keep_samples:
            out["sample"]["projected"] = s.projected
        for rep in range(n_rep):
            if not np.all(np.isfinite(s.projected[rep, -1])):  # e.g. a replica that stopped: the summary stays NaN
                continue
            try:
                d = diagnostics.summarise(result, -1, rep)
            except ValueError:  # e.g. non-finite samples: the summary stays NaN
                continue
            summ["theta"][rep], summ["modes"][rep] = d.theta, d.modes
            summ["distance"][rep], summ["floor"][rep] = d.distance, d.floor
    out["summary"] = summ
    return out


def compute_point(index: int, config_text: str, simulate: bool = False, replicas: int = 1, device: str = "cpu",
                  sample: bool = True, keep_samples: bool = False, threads: int | None = 1) -> dict:
    """Solve (and simulate) one point from its problem TOML; never raises: errors are returned.

    Runs with ``threads`` numba/torch threads (restored afterwards). Returns a plain dict of
    arrays: index, worker, wall_time, error ('' if none), theory and simulation payloads."""
    import socket

    t0 = time.perf_counter()
    out = {"index": index, "worker": f"{socket.gethostname()}:{os.getpid()}", "error": "",
           "theory": None, "simulation": None}
    if simulate and device != "cpu":
        from .simulation.run import nvidia_driver_present

        torch_too = nvidia_driver_present()  # a CPU simulation never imports torch
    else:
        torch_too = False
    before = _set_threads(threads, torch_too=torch_too)
    caught = warnings.catch_warnings()
    caught.__enter__()
    warnings.simplefilter("ignore", RuntimeWarning)  # overflow on the way to a divergence: the status says it
    try:
        from . import load_problem, solve

        problem = load_problem(config_text)
        out["theory"] = _run_payload(solve(problem, sample=sample), keep_samples)
        if simulate:
            from . import simulate as _simulate

            sim = _simulate(problem, replicas=replicas, device=device, sample=sample)
            out["simulation"] = _run_payload(sim, keep_samples)
    except Exception as err:  # noqa: BLE001 -- recorded with the point, the sweep goes on
        out["error"] = f"{type(err).__name__}: {err}"
    finally:
        caught.__exit__(None, None, None)
        _restore_threads(before)
    out["wall_time"] = time.perf_counter() - t0
    return out


def compute_points(indices, configs, simulate: bool = False, replicas: int = 1, device: str = "cpu",
                   sample: bool = True, keep_samples: bool = False, threads: int | None = 1) -> list[dict]:
    """:func:`compute_point` for a chunk of points in one process: their theories solved together
    (:func:`hdae.theory.solve_many`: compatible points go through the kernel in one integration), then
    each point's payload (and, with ``simulate``, its simulation, point by point). Never raises; an
    error belongs to its point only: a point whose problem fails gets its error, and an exception
    outside any one point's work makes the chunk be computed again point by point. Returns one
    payload per point, in order; each point's wall time is its own work plus its share of the
    shared integration."""
    import socket

    indices, configs = list(indices), list(configs)
    worker = f"{socket.gethostname()}:{os.getpid()}"
    before = _set_threads(threads, torch_too=simulate)
    caught = warnings.catch_warnings()
    caught.__enter__()
    warnings.simplefilter("ignore", RuntimeWarning)  # overflow on the way to a divergence: the status says it
    try:
        from . import load_problem
        from .theory import solve_many

        outs = [{"index": i, "worker": worker, "error": "", "theory": None, "simulation": None, "wall_time": 0.0}
                for i in indices]
        problems, where = [], []
        for k, text in enumerate(configs):
            t0 = time.perf_counter()
            try:
                problems.append(load_problem(text))
                where.append(k)
            except Exception as err:  # noqa: BLE001
                outs[k]["error"] = f"{type(err).__name__}: {err}"
            outs[k]["wall_time"] += time.perf_counter() - t0
        results = solve_many(problems, sample=sample, errors="return")
        for k, problem, res in zip(where, problems, results):
            t0 = time.perf_counter()
            out = outs[k]
            try:
                if isinstance(res, Exception):
                    raise res
                out["wall_time"] += res.wall_time_s
                out["theory"] = _run_payload(res, keep_samples)
                if simulate:
                    from . import simulate as _simulate

                    sim = _simulate(problem, replicas=replicas, device=device, sample=sample)
                    out["simulation"] = _run_payload(sim, keep_samples)
            except Exception as err:  # noqa: BLE001 -- recorded with the point, the chunk goes on
                out["error"] = f"{type(err).__name__}: {err}"
            out["wall_time"] += time.perf_counter() - t0
    except Exception:  # noqa: BLE001 -- not one point's: compute them one by one
        outs = None
    finally:
        caught.__exit__(None, None, None)
        _restore_threads(before)
    if outs is None:
        outs = [compute_point(i, c, simulate, replicas, device, sample, keep_samples, threads)
                for i, c in zip(indices, configs)]
    return outs


def chunk_size(n_points: int, workers: int = 1, per_worker: int = 4, largest: int = 32) -> int:
    """Points per chunk of :func:`compute_points`: about ``per_worker`` chunks per worker (so that the
    workers stay balanced), at most ``largest`` points (a chunk is committed to the file at once)."""
    return int(max(1, min(largest, -(-n_points // max(1, per_worker * workers)))))


def chunks(points, size: int) -> list:
    """The points in chunks of at most ``size``, each chunk of compatible points (the same width,
    activation, training times, integrator: see :func:`hdae.theory.solve_many`), in grid order within."""
    groups: dict = {}
    for p in points:
        groups.setdefault(p.batch_key, []).append(p)
    return [g[i:i + size] for g in groups.values() for i in range(0, len(g), size)]


# ----------------------------------------------------------------------------- the file
def _early_dcpl():
    import h5py

    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
    return dcpl


def _dataset(group, name, shape, dtype, fill):
    """A contiguous dataset allocated now (no later metadata change), filled with ``fill``."""
    import h5py

    dcpl = _early_dcpl()
    dt = np.dtype(dtype)
    dcpl.set_fill_time(h5py.h5d.FILL_TIME_ALLOC)
    if dt.kind != "S":  # fixed-length strings: the default fill (all zero bytes) is the empty string
        dcpl.set_fill_value(np.array(fill, dtype=dt))
    tid = h5py.h5t.py_create(dt)
    sid = h5py.h5s.create_simple(tuple(int(s) for s in shape))
    dcpl.set_obj_track_times(False)
    dsid = h5py.h5d.create(group.id, name.encode(), tid, sid, dcpl=dcpl)
    return h5py.Dataset(dsid)


def _str_dtype(n: int):
    return np.dtype(f"S{max(1, n)}")


def _axis_array(axis: Axis) -> np.ndarray:
    vals = axis.values
    if all(isinstance(v, bool) for v in vals) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                          for v in vals):
        return np.array([toml_value(v).encode() for v in vals])
    if all(isinstance(v, int) for v in vals):
        return np.array(vals, dtype=np.int64)
    return np.array(vals, dtype=float)


def _create(path: Path, spec: SweepSpec, points: list[Point]):
    """Create the whole file layout (datasets allocated, fill values = pending / NaN)."""
    import h5py

    P = len(points)
    valid = [p for p in points if not p.error]
    r, K, R, C, S = (max(p.dims[i] for p in valid) for i in range(5))
    n = max(config.load_problem(p.config).sample.n for p in valid) if spec.keep_samples else 0
    with h5py.File(path, "w", track_order=False) as f:
        attrs = {"kind": "sweep", "hdae_version": __version__,
                 "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                 "spec": spec.to_json(), "axes": json.dumps([a.key for a in spec.axes]),
                 "shape": np.array(spec.shape, dtype=np.int64), "n_points": P,
                 "definitions": diagnostics.__doc__}
        for k, v in attrs.items():
            f.attrs[k] = v
        ax = f.create_group("axes", track_order=True)
        for pos, a in enumerate(spec.axes):
            ds = ax.create_dataset(a.key, data=_axis_array(a), track_times=False)
            ds.attrs["spec"] = a.spec
            ds.attrs["position"] = pos
        g = f.create_group("points")
        g.create_dataset("index", data=np.array([p.position for p in points], dtype=np.int32).reshape(P, -1),
                         track_times=False)
        texts = [p.config.encode() for p in points]
        g.create_dataset("config", data=np.array(texts, dtype=_str_dtype(max(len(t) for t in texts))),
                         track_times=False)
        g.create_dataset("dims", data=np.array([p.dims for p in points], dtype=np.int32), track_times=False)
        _dataset(g, "status", (P,), np.int8, PENDING)
        _dataset(g, "message", (P,), _str_dtype(MESSAGE_LEN), b"")
        _dataset(g, "worker", (P,), _str_dtype(64), b"")
        _dataset(g, "wall_time", (P,), float, np.nan)
        runs = [("theory", None)] + ([("simulation", spec.replicas)] if spec.simulate else [])
        for name, reps in runs:
            g = f.create_group(name)
            lead = (P,) if reps is None else (P, reps)
            _dataset(g, "status", (P,), np.int8, PENDING)
            _dataset(g, "message", (P,), _str_dtype(MESSAGE_LEN), b"")
            _dataset(g, "wall_time", (P,), float, np.nan)
            t = g.create_group("train")
            _dataset(t, "theta", (P, C), float, np.nan)
            for k, shp in zip(TRAIN_STATS, ((r, r), (K, r, r), (r, K), (r, R), ())):
                _dataset(t, k, lead + (C,) + shp, float, np.nan)
            s = g.create_group("sample")
            _dataset(s, "theta", (P, S), float, np.nan)
            if spec.keep_samples:
                _dataset(s, "projected", lead + (S, n, R), float, np.nan)
            u = g.create_group("summary")
            for k in ("theta_reached", "b_final", "theta", "modes", "distance", "floor"):
                _dataset(u, k, lead, float, np.nan)
            _dataset(u, "diverged", lead, np.int8, -1)
            _dataset(u, "Q_final", lead + (r, r), float, np.nan)
            _dataset(u, "M_final", lead + (r, K), float, np.nan)
        f.flush()


def _put(ds, i: int, value, squeeze: bool):
    """Write ``value`` (with its replica axis, dropped when ``squeeze``) into row i of ``ds``,
    NaN-padded at the end of every axis."""
    a = np.asarray(value)
    if squeeze:
        a = a[0]
    if a.ndim == 0 or a.shape == ds.shape[1:]:
        ds[i] = a
        return
    ds[(i,) + tuple(slice(0, s) for s in a.shape)] = a


def _text(s: str, n: int = MESSAGE_LEN) -> bytes:
    b = s.encode("utf-8", "replace")
    return b if len(b) <= n else b[: n - 3] + b"..."


def _write_point(f, payload: dict, kill_hook=None):
    """Store one computed point and commit it (see the module docstring)."""
    i = payload["index"]
    worst = SUCCESS
    messages = []
    for name in ("theory", "simulation"):
        run = payload.get(name)
        if run is None or name not in f:
            continue
        g = f[name]
        squeeze = name == "theory"
        g["status"][i] = run["status"]
        g["message"][i] = _text(run["message"])
        g["wall_time"][i] = run["wall_time"]
        _put(g["train/theta"], i, run["train"]["theta"], False)
        for k in TRAIN_STATS:
            _put(g["train"][k], i, run["train"][k], squeeze)
        _put(g["sample/theta"], i, run["sample"]["theta"], False)
        if "projected" in run["sample"] and "projected" in g["sample"]:
            _put(g["sample/projected"], i, run["sample"]["projected"], squeeze)
        for k, v in run["summary"].items():
            _put(g["summary"][k], i, v, squeeze)
        if run["status"] != SUCCESS:
            worst = max(worst, run["status"])
            messages.append(f"{name}: {run['message']}")
    if payload["error"]:
        worst = FAILED
        messages.append(payload["error"])
        if payload.get("theory") is None and "theory" in f:
            f["theory/status"][i] = FAILED
    pts = f["points"]
    pts["message"][i] = _text("; ".join(messages))
    pts["worker"][i] = _text(payload.get("worker", ""), 64)
    pts["wall_time"][i] = payload.get("wall_time", np.nan)
    f.flush()
    if kill_hook is not None:
        kill_hook("mid")
    pts["status"][i] = worst
    f.flush()
    return worst


def _invalid_payload(p: Point) -> dict:
    return {"index": p.index, "worker": "driver", "error": f"invalid problem: {p.error}", "theory": None,
            "simulation": None, "wall_time": 0.0}


def _kill_hook_from_env():
    """Testing aid: HDAE_SWEEP_KILL=K (or K:mid) SIGKILLs the driver after committing K points
    (or in the middle of writing point K+1, after its data, before its commit flag)."""
    spec = os.environ.get("HDAE_SWEEP_KILL")
    if not spec:
        return None
    k, _, stage = spec.partition(":")
    k, stage = int(k), stage or "after"
    state = {"committed": 0}

    def hook(event):
        if event == "committed":
            state["committed"] += 1
            if stage == "after" and state["committed"] >= k:
                os.kill(os.getpid(), 9)
        elif event == "mid" and stage == "mid" and state["committed"] >= k:
            os.kill(os.getpid(), 9)

    return hook


# ----------------------------------------------------------------------------- driver
@dataclass
class SweepReport:
    path: Path
    n_points: int
    computed: int  # points computed by this call
    skipped: int  # points already stored (resumed)
    counts: dict = field(default_factory=dict)  # status name -> number of points in the file
    wall_time_s: float = 0.0


def open_or_create(path, spec: SweepSpec, force: bool = False):
    """(points, already stored mask): create the file, or check that it holds this same sweep."""
    import h5py

    path = Path(path)
    points = plan(spec)
    if path.exists() and not force:
        if path.is_dir():
            raise SweepError("output", f"{str(path)!r} is a directory")
        try:
            with h5py.File(path, "r") as f:
                same = f.attrs.get("kind") == "sweep" and f.attrs.get("spec") == spec.to_json()
                status = f["points/status"][()] if same else None
                stored = [c.decode() for c in f["points/config"][()]] if same else None
        except OSError as err:
            if "lock" in str(err):
                raise SweepError("output", f"{str(path)!r} is open in another process (a sweep still running?)") from None
            raise SweepError("output", f"{str(path)!r} exists and is not a readable sweep file ({err}); "
                                       "use --force to replace it") from None
        if not same:
            raise SweepError("output", f"{str(path)!r} holds a different sweep (or another kind of file); "
                                       "use --force to replace it, or another output")
        if stored != [p.config for p in points]:
            raise SweepError("output", f"{str(path)!r}: the same sweep resolves to other problems with this hdae "
                                       "version (changed defaults?); use --force to start it over")
        return points, status != PENDING
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        _create(tmp, spec, points)
        os.replace(tmp, path)  # an empty sweep file appears whole, or not at all
    finally:
        if tmp.exists():
            tmp.unlink()
    return points, np.zeros(len(points), dtype=bool)


def local_cluster(workers: int | None = None):
    """A Dask LocalCluster: ``workers`` processes (default: the usable cores), one thread each, with
    OMP/MKL/OpenBLAS/numba thread counts of 1 in the workers' environment."""
    import logging

    from distributed import LocalCluster

    if workers is None:
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                        silence_logs=logging.ERROR, env=dict(THREAD_ENV))


def _import_distributed():
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise SweepError("scheduler", "Dask is not installed: pip install 'hdae[sweep]' "
                                      "(or run with --serial)") from None


def run_sweep(spec: SweepSpec, output, *, scheduler: str | None = None, workers: int | None = None,
              serial: bool = False, force: bool = False, progress: bool | None = False, client=None,
              chunk: int | None = None) -> SweepReport:
    """Compute every pending point of ``spec`` into ``output`` (resuming a file of the same sweep).

    Parameters
    ----------
    scheduler : address of an existing Dask scheduler (``tcp://host:8786``); default: a local
        cluster of ``workers`` processes (default: the usable cores), one thread each.
    serial : compute in this process, no Dask (the same numbers).
    chunk : points per task (default :func:`chunk_size`: about 4 tasks per worker, at most 32 points).
        A task computes its points in one process (:func:`compute_points`: their theories integrated
        together); its points are stored, each committed on its own, when it completes.
    client : an existing ``distributed.Client`` (overrides scheduler/workers).
    progress : a bar over points (None: when stderr is a tty).
    """
    import h5py

    from .progress import progress_bar

    t0 = time.perf_counter()
    path = Path(output)
    if force and path.exists() and path.is_file():
        path.unlink()
    points, stored = open_or_create(path, spec, force=False)
    todo = [p for p in points if not stored[p.index]]
    opts = dict(simulate=spec.simulate, replicas=spec.replicas, device=spec.device, sample=spec.sample,
                keep_samples=spec.keep_samples)
    hook = _kill_hook_from_env()
    bar = progress_bar(len(todo), "sweep", progress)
    own_client = own_cluster = None
    try:
        with h5py.File(path, "r+") as f:
            def store(payload):
                _write_point(f, payload, hook)
                bar.update(1)
                if hook is not None:
                    hook("committed")

            for p in todo:
                if p.error:
                    store(_invalid_payload(p))
            valid = [p for p in todo if not p.error]
            n_workers = 1
            if valid and not serial:
                _import_distributed()
                from distributed import Client, as_completed

                if client is None:
                    if scheduler:
                        own_client = client = Client(scheduler)
                    else:
                        own_cluster = local_cluster(workers)
                        own_client = client = Client(own_cluster)
                n_workers = max(1, len(client.scheduler_info().get("workers", {})) or (workers or 1))
            size = chunk if chunk is not None else chunk_size(len(valid), n_workers)
            parts = chunks(valid, size)
            if serial:
                for part in parts:
                    for payload in compute_points([p.index for p in part], [p.config for p in part], **opts):
                        store(payload)
            elif parts:
                futures = [client.submit(compute_points, [p.index for p in part], [p.config for p in part], **opts,
                                         pure=False, key=f"hdae-sweep-chunk-{part[0].index}-{os.getpid()}-{id(spec)}")
                           for part in parts]
                by_key = {fut.key: part for fut, part in zip(futures, parts)}
                for fut in as_completed(futures):
                    try:
                        payloads = fut.result()
                    except Exception as err:  # noqa: BLE001 -- e.g. a worker died: record, go on
                        payloads = [{"index": p.index, "worker": "", "theory": None, "simulation": None,
                                     "wall_time": np.nan, "error": f"{type(err).__name__}: {err}"}
                                    for p in by_key[fut.key]]
                    for payload in payloads:
                        store(payload)
                    fut.release()
            status = f["points/status"][()]
    finally:
        bar.close()
        if own_client is not None:
            own_client.close()
        if own_cluster is not None:
            own_cluster.close()
    counts = {STATUS_NAMES[s]: int(np.sum(status == s)) for s in STATUS_NAMES}
    return SweepReport(path, len(points), len(todo), len(points) - len(todo), counts, time.perf_counter() - t0)


# ----------------------------------------------------------------------------- reading
class SweepFile:
    """A sweep file in memory: axes, per-point status, summaries and trajectories.

    ``grid(name, run)`` gives a summary reshaped to the grid shape (n_1, ..., n_A[, replicas])."""

    def __init__(self, path):
        import h5py

        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"no sweep file at {str(self.path)!r}")
        try:
            # no lock: the file's metadata never changes after creation, so a running sweep's file
            # can be read; only committed points (status != pending, read first) are used
            with h5py.File(self.path, "r", locking=False) as f:
                if f.attrs.get("kind") != "sweep":
                    raise SweepError("file", f"{str(self.path)!r} is not a sweep file")
                self.attrs = {k: (v.item() if hasattr(v, "item") and np.ndim(v) == 0 else v)
                              for k, v in f.attrs.items()}
                self.keys = json.loads(self.attrs["axes"])
                self.shape = tuple(int(s) for s in self.attrs["shape"])
                self.axes = {k: f["axes"][k][()] for k in self.keys}
                self.axis_specs = {k: str(f["axes"][k].attrs["spec"]) for k in self.keys}
                self.index = f["points/index"][()]
                self.status = f["points/status"][()]
                self.message = [m.decode("utf-8", "replace") for m in f["points/message"][()]]
                self.config = [c.decode("utf-8", "replace") for c in f["points/config"][()]]
                self.wall_time = f["points/wall_time"][()]
                self.runs = {}
                for name in ("theory", "simulation"):
                    if name in f:
                        g = f[name]
                        self.runs[name] = {"status": g["status"][()],
                                           "summary": {k: v[()] for k, v in g["summary"].items()},
                                           "train": {k: v[()] for k, v in g["train"].items()},
                                           "sample": {k: v[()] for k, v in g["sample"].items()}}
        except (OSError, KeyError) as err:
            raise SweepError("file", f"{str(self.path)!r} is not a readable sweep file ({err})") from None

    @property
    def spec(self) -> dict:
        return json.loads(self.attrs["spec"])

    def is_log(self, key: str) -> bool:
        return self.axis_specs[key].split("=", 1)[1].strip().startswith("log:")

    def summary(self, name: str, run: str = "theory") -> np.ndarray:
        """Per point (P[, replicas]): a stored summary, or a component ``Q[a,b]`` / ``M[a,k]`` of
        the final Q / M, or ``normM`` (Frobenius norm of the final M), ``trQ``, ``wall_time``."""
        if run not in self.runs:
            raise SweepError("run", f"the file holds no {run!r} results (runs: {', '.join(self.runs)})")
        s = self.runs[run]["summary"]
        m = re.fullmatch(r"([QM])\[(\d+),\s*(\d+)\]", name.replace(" ", ""))
        if m:
            arr = s[f"{m.group(1)}_final"]
            a, b = int(m.group(2)), int(m.group(3))
            if a >= arr.shape[-2] or b >= arr.shape[-1]:
                raise SweepError("summary", f"{name}: index out of range for shape {arr.shape[-2:]}")
            return arr[..., a, b]
        if name == "normM":
            return np.sqrt(np.nansum(s["M_final"] ** 2, axis=(-2, -1)))
        if name == "trQ":
            return np.nansum(np.diagonal(s["Q_final"], axis1=-2, axis2=-1), axis=-1)
        if name == "wall_time":
            return self.wall_time
        if name not in s or name in ("Q_final", "M_final"):
            raise SweepError("summary", f"unknown summary {name!r}; known: {', '.join(summary_names())}")
        return s[name].astype(float)

    def grid(self, name: str, run: str = "theory") -> np.ndarray:
        """:meth:`summary` on the grid (n_1, ..., n_A[, replicas]); NaN where not stored/invalid."""
        v = self.summary(name, run).astype(float)
        v = np.where((self.status != PENDING).reshape((-1,) + (1,) * (v.ndim - 1)), v, np.nan)
        out = np.full(self.shape + v.shape[1:], np.nan)
        out[tuple(self.index.T)] = v
        return out

    def status_grid(self) -> np.ndarray:
        out = np.zeros(self.shape, dtype=np.int8)
        out[tuple(self.index.T)] = self.status
        return out


def summary_names() -> list[str]:
    return ["modes", "distance", "floor", "b_final", "theta_reached", "diverged", "theta", "normM", "trQ",
            "Q[a,b]", "M[a,k]", "wall_time"]
