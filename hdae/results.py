"""Result objects and their HDF5 files (the same names for theory and simulation).

Layout (``Result.write``)::

    /            attrs: kind ('theory'|'simulation'), hdae_version, created, config (TOML),
                        seed, device, wall_time_s, status, message, d, replica_axis, + extras
    /train/theta (n_ckpt)       /train/Q (.., n_ckpt, r, r)    /train/Omega (.., n_ckpt, K, r, r)
    /train/M (.., n_ckpt, r, K) /train/G (.., n_ckpt, r, R)    /train/b (.., n_ckpt)
    /train/overlap (.., n_ckpt, r, r)   [generations >= 1: C = w^T w_prev/d, overlap with the previous
                                         generation's final weights]
    /init/w (n_replicas, d, r)  /init/b (n_replicas)           [when explicit weights exist]
    /final/w (n_replicas, d, r) /final/b (n_replicas)          [simulation: the trained weights]
    /sample/theta (n_s)         /sample/projected (.., n_s, n, R)   [+ /sample/Z, /sample/S, and on
                                request /sample/density (.., n_s, N, N) with /sample/density_x, _y (.., n_s, N)]
    /target/weights (K) /target/means (K, R) /target/covariances (K, R, R): projected target
    /replicas/status (n_replicas) [str]  /replicas/message (n_replicas) [str]
    /replicas/theta_stop (n_replicas)   the status of every replica (see below)
    /extra/...                  producer-specific arrays (e.g. the theory's per-bin trajectories)

Per-replica status (the same form for theory and simulation): every replica (theory: every
trajectory) has a status in ``REPLICA_STATUSES`` ('success', 'diverged', 'failed' = the integrator
gave up), a one-line message and ``theta_stop``, the training time where it stopped (NaN for a
replica that succeeded; for a sampler that diverged, the sampled training time). A replica that
stops is frozen: its statistics (and samples) after ``theta_stop`` are NaN while the others go on
to the end, so the arrays keep the full checkpoint grid as long as one replica reaches it (only
checkpoints that no replica reached are left out). The run's ``status`` is 'success' only when
every replica succeeded, else 'diverged' (or 'failed' when no replica diverged), and its
``message`` names the replicas that stopped. Files written before /replicas existed read back
with every replica given the run's status and message.

A run with several generations (model collapse, ``generations.count`` > 1) has no /train,
/sample, /init, /final at the root; instead one group per generation, each with exactly the
layout above and its own status attributes::

    /generation/<g>/train/...  /generation/<g>/sample/...  /generation/<g>/init/...  ...

``..`` is the leading replica axis (n_replicas): always present in simulation files, present
in theory files only when the theory was started from a multi-replica simulation
(``replica_axis`` attribute). In memory a :class:`Result` always carries the replica axis.

Files are written to a temporary name in the same folder and renamed into place, so a
crash never leaves a half-written file, and an existing file is never replaced unless
``force=True``.
"""
from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from ._version import __version__
from .safety import check_output_path

TRAIN_STATS = ("Q", "Omega", "M", "G", "b")
REPLICA_STATUSES = ("success", "diverged", "failed")
TRAIN_OPTIONAL = ("overlap",)
SAMPLE_OPTIONAL = ("Z", "S", "density", "density_x", "density_y")


def combine_replicas(status, message) -> tuple[str, str]:
    """The run's (status, message) from its replicas' statuses and messages (see the module docstring):
    'success' and '' when every replica succeeded; one replica's own status and message when there is
    one; else 'diverged' (any replica diverged) or 'failed', with a message naming the replicas that
    stopped and quoting the first one's message."""
    status, message = list(status), list(message)
    bad = [i for i, s in enumerate(status) if s != "success"]
    if not bad:
        return "success", ""
    if len(status) == 1:
        return status[0], message[0]
    overall = "diverged" if any(status[i] == "diverged" for i in bad) else "failed"
    which = f"replica {bad[0]}" if len(bad) == 1 else f"replicas {', '.join(map(str, bad))}"
    rest = len(status) - len(bad)
    return overall, (f"{len(bad)} of {len(status)} replicas stopped ({which}; "
                     f"{rest if rest else 'none'} completed); replica {bad[0]}: {message[bad[0]]}")


class OutputExistsError(FileExistsError):
    """Refusing to overwrite an existing result file."""


class ResultFileError(OSError):
    """A file that is not a readable hdae result."""


def checkpoint_index(grid, theta: float, rtol: float = 1e-9) -> int | None:
    """Index of training time ``theta`` in the checkpoint ``grid``, or None when no entry equals
    it up to ``rtol`` (relative, absolute below 1)."""
    if grid is None or len(grid) == 0:
        return None
    i = int(np.argmin(np.abs(np.asarray(grid) - theta)))
    return i if abs(grid[i] - theta) <= rtol * max(1.0, abs(theta)) else None


@dataclass
class TrainRecord:
    """Summary statistics at the checkpoints; every array has a leading replica axis."""

    theta: np.ndarray  # (n_ckpt,)
    Q: np.ndarray  # (n_rep, n_ckpt, r, r)
    Omega: np.ndarray  # (n_rep, n_ckpt, K, r, r)
    M: np.ndarray  # (n_rep, n_ckpt, r, K)
    G: np.ndarray  # (n_rep, n_ckpt, r, R)
    b: np.ndarray  # (n_rep, n_ckpt)
    overlap: np.ndarray | None = None  # (n_rep, n_ckpt, r, r): w^T w_prev/d (generations >= 1)

    def truncated(self, n: int) -> "TrainRecord":
        """The first ``n`` checkpoints (what was computed before a divergence)."""
        return TrainRecord(self.theta[:n], *(getattr(self, k)[:, :n] for k in TRAIN_STATS),
                           overlap=None if self.overlap is None else self.overlap[:, :n])


@dataclass
class SampleRecord:
    """Generated samples projected on the observation space, per sampled training time."""

    theta: np.ndarray  # (n_s,)
    projected: np.ndarray  # (n_rep, n_s, n, R)
    Z: np.ndarray | None = None  # (n_rep, n_s, n, r): samples in the span of the weights
    S: np.ndarray | None = None  # (n_rep, n_s): variance of the part orthogonal to the weights
    density: np.ndarray | None = None  # (n_rep, n_s, N, N): projected density on a grid (first two coords)
    density_x: np.ndarray | None = None  # (n_rep, n_s, N): grid of the first observation coordinate
    density_y: np.ndarray | None = None  # (n_rep, n_s, N): grid of the second


@dataclass
class Result:
    """One run (theory or simulation) of one problem. See the module docstring for the file layout."""

    kind: str
    config_text: str
    seed: int
    d: int
    train: TrainRecord | None  # None for a run of several generations (see ``generations``)
    device: str = "cpu"
    wall_time_s: float = 0.0
    init_w: np.ndarray | None = None  # (n_rep, d, r)
    init_b: np.ndarray | None = None  # (n_rep,)
    final_w: np.ndarray | None = None  # (n_rep, d, r): trained weights (simulation)
    final_b: np.ndarray | None = None  # (n_rep,)
    sample: SampleRecord | None = None
    target: dict | None = None  # {'weights','means','covariances'} of the projected target
    status: str = "success"  # 'success' | 'diverged' | 'failed': 'success' only if every replica succeeded
    message: str = ""
    replica_status: np.ndarray | None = None  # (n_rep,) str in REPLICA_STATUSES (None: from ``status``)
    replica_message: np.ndarray | None = None  # (n_rep,) str
    replica_theta_stop: np.ndarray | None = None  # (n_rep,) where each replica stopped; NaN when it succeeded
    replica_axis: bool = True
    extras: dict = field(default_factory=dict)  # name -> array, stored under /extra
    attrs: dict = field(default_factory=dict)  # more root attributes (str/number)
    generations: list = field(default_factory=list)  # [Result] per generation g = 0, 1, ... (model collapse)
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    hdae_version: str = __version__

    def __post_init__(self):
        if self.replica_status is None:
            self._derive_replicas()
        else:
            self.replica_status = np.asarray(self.replica_status, dtype=str)
            n = len(self.replica_status)
            self.replica_message = (np.full(n, "", dtype=object) if self.replica_message is None
                                    else np.asarray(self.replica_message, dtype=object))
            self.replica_theta_stop = (np.full(n, np.nan) if self.replica_theta_stop is None
                                       else np.asarray(self.replica_theta_stop, dtype=float))

    def _derive_replicas(self):
        """Per-replica status where none was given: the last generation's (several generations), else
        the run's status and message for every replica (files written before /replicas existed)."""
        if self.generations:
            last = self.generations[-1]
            self.replica_status, self.replica_message, self.replica_theta_stop = (
                last.replica_status, last.replica_message, last.replica_theta_stop)
            return
        if self.train is None:
            return
        n = self.train.Q.shape[0]
        self.replica_status = np.full(n, self.status, dtype=object).astype(str)
        self.replica_message = np.full(n, self.message, dtype=object)
        self.replica_theta_stop = np.full(n, np.nan)

    @property
    def replica_ok(self) -> np.ndarray:
        """(n_rep,) bool: the replicas that succeeded."""
        return np.asarray(self.replica_status) == "success"

    @property
    def n_replicas(self) -> int:
        return (self.train if self.train is not None else self.generations[0].train).Q.shape[0]

    @property
    def n_generations(self) -> int:
        """1 for a single run, else the number of generations stored."""
        return len(self.generations) or 1

    def generation(self, g: int) -> "Result":
        """Generation ``g`` as a Result with today's layout (generation 0 of a single run is itself)."""
        if not self.generations:
            if g != 0:
                raise IndexError(f"this result holds a single generation, not generation {g}")
            return self
        if not 0 <= g < len(self.generations):
            raise IndexError(f"generation {g} is not stored (0..{len(self.generations) - 1})")
        return self.generations[g]

    @property
    def ok(self) -> bool:
        return self.status == "success"

    @property
    def problem(self):
        """The :class:`~hdae.config.Problem` this result was computed for (rebuilt from its config)."""
        from .config import load_problem

        return load_problem(self.config_text)

    # ------------------------------------------------------------------ HDF5
    def write(self, path, force: bool = False) -> Path:
        """Write atomically to ``path``; refuse to replace an existing file unless ``force``."""
        path = Path(path)
        check_writable(path, force)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with h5py.File(tmp, "w") as f:
                self._fill(f)
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()
        return path

    def _fill(self, f: h5py.File):
        attrs = {
            "kind": self.kind, "hdae_version": self.hdae_version, "created": self.created,
            "config": self.config_text, "seed": self.seed, "device": self.device,
            "wall_time_s": float(self.wall_time_s), "status": self.status, "message": self.message,
            "d": self.d, "replica_axis": self.replica_axis, "n_replicas": self.n_replicas,
        }
        attrs.update(self.attrs)
        if self.generations:
            attrs["n_generations"] = len(self.generations)
        _set_attrs(f, attrs)
        if not self.generations:
            self._fill_data(f)
        else:
            for name, values in (("target", self.target), ("extra", self.extras)):
                if values:
                    grp = f.create_group(name)
                    for k, v in values.items():
                        grp.create_dataset(k, data=v)
        for g, sub in enumerate(self.generations):
            grp = f.create_group(f"generation/{g}")
            _set_attrs(grp, {"status": sub.status, "message": sub.message, "wall_time_s": float(sub.wall_time_s),
                             **sub.attrs})
            sub._fill_data(grp)

    def _fill_data(self, f):
        drop = (lambda a: a) if self.replica_axis else (lambda a: a[0])
        g = f.create_group("train")
        g.create_dataset("theta", data=self.train.theta)
        for k in TRAIN_STATS + TRAIN_OPTIONAL:
            if getattr(self.train, k) is not None:
                g.create_dataset(k, data=drop(getattr(self.train, k)), compression="gzip")
        for name, w, b in (("init", self.init_w, self.init_b), ("final", self.final_w, self.final_b)):
            if w is not None or b is not None:
                g = f.create_group(name)
                if w is not None:
                    g.create_dataset("w", data=w, compression="gzip")
                if b is not None:
                    g.create_dataset("b", data=b)
        if self.sample is not None:
            g = f.create_group("sample")
            g.create_dataset("theta", data=self.sample.theta)
            g.create_dataset("projected", data=drop(self.sample.projected), compression="gzip")
            for k in SAMPLE_OPTIONAL:
                if getattr(self.sample, k) is not None:
                    g.create_dataset(k, data=drop(getattr(self.sample, k)), compression="gzip")
        if self.target is not None:
            g = f.create_group("target")
            for k, v in self.target.items():
                g.create_dataset(k, data=v)
        if self.replica_status is not None:
            g = f.create_group("replicas")
            text = h5py.string_dtype()
            g.create_dataset("status", data=np.asarray(self.replica_status, dtype=object), dtype=text)
            g.create_dataset("message", data=np.asarray(self.replica_message, dtype=object), dtype=text)
            g.create_dataset("theta_stop", data=np.asarray(self.replica_theta_stop, dtype=float))
        if self.extras:
            g = f.create_group("extra")
            for k, v in self.extras.items():
                g.create_dataset(k, data=v, compression="gzip" if np.ndim(v) else None)

    @classmethod
    def read(cls, path) -> "Result":
        """Read a result file written by :meth:`write`."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no result file at {str(path)!r}")
        try:
            return cls._read(path)
        except ResultFileError:
            raise
        except (OSError, KeyError) as err:
            raise ResultFileError(f"{str(path)!r} is not a readable hdae result file ({err})") from None

    @classmethod
    def _read(cls, path: Path) -> "Result":
        with h5py.File(path, "r") as f:
            a = dict(f.attrs)
            if a.get("kind") == "sweep":
                raise ResultFileError(f"{str(path)!r} is a sweep file (many runs), not one run's result: "
                                      "`hdae info` describes it, `hdae plot` draws it, hdae.sweep.SweepFile reads it")
            rep = bool(a.pop("replica_axis"))
            core = {k: a.pop(k) for k in ("kind", "config", "seed", "d", "device", "wall_time_s", "status",
                                          "message", "created", "hdae_version")}
            a.pop("n_replicas", None)
            n_gen = int(a.pop("n_generations", 0))
            common = dict(kind=str(core["kind"]), config_text=str(core["config"]), seed=int(core["seed"]),
                          d=int(core["d"]), device=str(core["device"]), replica_axis=rep,
                          created=str(core["created"]), hdae_version=str(core["hdae_version"]))
            generations = []
            for g in range(n_gen):
                grp = f[f"generation/{g}"]
                ga = {k: _plain_attr(v) for k, v in grp.attrs.items()}
                generations.append(cls(**common, **_read_data(grp, rep), status=str(ga.pop("status")),
                                       message=str(ga.pop("message")), wall_time_s=float(ga.pop("wall_time_s")),
                                       attrs=ga))
            data = _read_data(f, rep) if not n_gen else {
                "train": None, "target": {k: v[()] for k, v in f["target"].items()} if "target" in f else None,
                "extras": {k: v[()] for k, v in f["extra"].items()} if "extra" in f else {}}
        return cls(**common, **data, wall_time_s=float(core["wall_time_s"]), status=str(core["status"]),
                   message=str(core["message"]), attrs={k: _plain_attr(v) for k, v in a.items()},
                   generations=generations)


def _plain_attr(v):
    return v.item() if hasattr(v, "item") else v


def _set_attrs(obj, attrs: dict):
    for k, v in attrs.items():
        obj.attrs[k] = str(v) if isinstance(v, str) else v  # plain str (e.g. torch's version type)


def _read_data(f, rep: bool) -> dict:
    """The data groups of one run (the root of a single run, or /generation/<g>)."""
    add = (lambda x: x) if rep else (lambda x: x[None])
    tr = f["train"]
    train = TrainRecord(tr["theta"][()], *(add(tr[k][()]) for k in TRAIN_STATS),
                        **{k: add(tr[k][()]) for k in TRAIN_OPTIONAL if k in tr})
    out = {"train": train}
    for name in ("init", "final"):
        out[f"{name}_w"] = f[f"{name}/w"][()] if f"{name}/w" in f else None
        out[f"{name}_b"] = f[f"{name}/b"][()] if f"{name}/b" in f else None
    if "sample" in f:
        s = f["sample"]
        out["sample"] = SampleRecord(s["theta"][()], add(s["projected"][()]),
                                     *(add(s[k][()]) if k in s else None for k in SAMPLE_OPTIONAL))
    out["target"] = {k: v[()] for k, v in f["target"].items()} if "target" in f else None
    out["extras"] = {k: v[()] for k, v in f["extra"].items()} if "extra" in f else {}
    if "replicas" in f:  # else derived from the run's status (Result.__post_init__)
        out["replica_status"] = f["replicas/status"].asstr()[()].astype(str)
        out["replica_message"] = f["replicas/message"].asstr()[()].astype(object)
        out["replica_theta_stop"] = f["replicas/theta_stop"][()]
    return out


def check_writable(path, force: bool = False):
    """Raise :class:`OutputExistsError` if ``path`` exists and ``force`` is not set."""
    path = Path(path)
    if path.exists() and not force:
        raise OutputExistsError(f"{str(path)!r} exists; refusing to overwrite it (use --force / force=True)")
    if path.exists() and path.is_dir():
        raise OutputExistsError(f"{str(path)!r} is a directory")
    check_output_path(path)  # a folder that cannot be written is found before computing


def is_sweep_file(path) -> bool:
    """True when ``path`` is an HDF5 file written by :func:`hdae.sweep.run_sweep` (read with h5py
    alone: no numba, so `hdae info` of one run stays light)."""
    try:
        with h5py.File(path, "r", locking=False) as f:
            return f.attrs.get("kind") == "sweep"
    except OSError:
        return False


def read(path) -> Result:
    """Shortcut for :meth:`Result.read`."""
    return Result.read(path)
