"""Problem files: TOML text + ``--set`` overrides -> validated, typed :class:`Problem`.

One problem file drives theory and simulation alike. Resolution happens once, here:
defaults are filled in, every key is checked (unknown keys, types, ranges), and the
physics receives typed objects, never the raw dict. The fully resolved dict is kept
(``Problem.config``) and written into every output file as TOML text, so a run can
always be rebuilt from its file.

Every error is a :class:`ConfigError` whose message is one line naming the key.
"""
from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from . import activations, schedules, tomlio
from .validate import (REQUIRED, ConfigError, _check_table, _choice, _int, _matrix, _num,  # noqa: F401
                       _num_list, _plain, _raise, _weights)


MAX_SEED = 2**63 - 1  # seeds are stored as 64-bit signed integers (HDF5 attributes)
MAX_NODES = 2**22  # quadrature nodes: 4M nodes x (2r T) coordinates is already GiBs
MAX_SAMPLES = 10**8  # generated samples per training time


def _int_at_most(key, v, lo, hi):
    v = _int(key, v, lo)
    if v > hi:
        raise ConfigError(key, f"must be <= {hi}, got {v}")
    return v


SECTIONS: dict[str, dict] = {
    "model": {
        "width": (lambda k, v: _int(k, v, 1), 2),
        "activation": (lambda k, v: _choice(k, v, activations.NAMES), "tanh"),
        "skip": (_num, 0.0),
    },
    "init": {
        "scale": (lambda k, v: _num(k, v, 0.0), 0.0),
        "warm_norm": (lambda k, v: _num(k, v, 0.0), 0.0),
        "warm_directions": (lambda k, v: v if v == "centroids" else _matrix(k, v).tolist(), "centroids"),
    },
    "train": {
        "lr": (lambda k, v: _num(k, v, 0.0, lo_open=True), 0.2),
        "weight_decay": (lambda k, v: _num(k, v, 0.0), 0.0),
        "times": (lambda k, v: _num_list(k, v, 0.0, 1.0, True, True), [0.5]),
        "time_weights": (lambda k, v: _num_list(k, v, 0.0), None),
        "schedule": (lambda k, v: _choice(k, v, schedules.INTERPOLANTS), "linear"),
        "tau": (lambda k, v: _num(k, v, 0.0, lo_open=True), 3.0),
        "checkpoints": (lambda k, v: _int(k, v, 2) if isinstance(v, int) else _num_list(k, v, 0.0), 31),
    },
    "sample": {
        "n": (lambda k, v: _int_at_most(k, v, 2, MAX_SAMPLES), 4000),
        "steps": (lambda k, v: _int_at_most(k, v, 1, 10**6), 49),
        "t_end": (lambda k, v: _num(k, v, 0.0, 1.0, True, True), 0.98),
        "eps": (lambda k, v: _num(k, v, 0.0), 0.0),
        "eps_schedule": (lambda k, v: _choice(k, v, schedules.NOISE_SCHEDULES), "constant"),
        "thetas": (lambda k, v: _num_list(k, v, 0.0, min_len=0), None),
        "density_grid": (lambda k, v: _int_at_most(k, v, 0, 4096), 0),
    },
    "observation": {
        "kind": (lambda k, v: _choice(k, v, ("centroids", "principal", "explicit")), None),
        "dim": (lambda k, v: _int(k, v, 1), 2),
        "basis": (lambda k, v: _matrix(k, v).tolist(), None),
    },
    "theory": {
        "integrator": (lambda k, v: _choice(k, v, ("rk4", "adaptive")), "rk4"),
        "dt": (lambda k, v: _num(k, v, 0.0, lo_open=True), 0.05),
        "rtol": (lambda k, v: _num(k, v, 0.0, lo_open=True), 1e-6),
        "atol": (lambda k, v: _num(k, v, 0.0, lo_open=True), 1e-9),
        "quadrature": (lambda k, v: _choice(k, v, ("auto", "gauss-hermite", "sobol")), "auto"),
        "nodes": (lambda k, v: _int_at_most(k, v, 0, MAX_NODES), 0),
        "init": (lambda k, v: _choice(k, v, ("realised", "limit")), "realised"),
        "spectral_bins": (lambda k, v: _int(k, v, 0), 0),
        "divergence": (lambda k, v: _num(k, v, 0.0, lo_open=True), 1e6),
    },
    "generations": {
        "count": (lambda k, v: _int(k, v, 1), 1),
        "discretisation": (lambda k, v: _choice(k, v, ("kmeans", "histogram", "samples")), "kmeans"),
        "points": (lambda k, v: _int(k, v, 1), 256),
        "latent_samples": (lambda k, v: _int(k, v, 1), 20000),
        "chain": (lambda k, v: _choice(k, v, ("simulation", "theory")), "simulation"),
    },
    "simulation": {
        "dtype": (lambda k, v: _choice(k, v, ("float64", "float32")), "float64"),
        "chunk": (lambda k, v: _int(k, v, 1), 256),
        "sample_batch": (lambda k, v: _int(k, v, 1), 4096),
    },
}
TOP_LEVEL = {
    "name": (lambda k, v: v if isinstance(v, str) else _raise(k, "expected a string"), ""),
    "description": (lambda k, v: v if isinstance(v, str) else _raise(k, "expected a string"), ""),
    "seed": (lambda k, v: _int_at_most(k, v, 0, MAX_SEED), 0),
}


# ----------------------------------------------------------------------------- typed sections
@dataclass(frozen=True)
class ModelSpec:
    width: int
    activation: str
    skip: float  # initial skip connection b_0


@dataclass(frozen=True)
class InitSpec:
    scale: float  # std of the iid Gaussian entries of w_0
    warm_norm: float  # ||w_j||/sqrt(d) of the warm-start part along direction j
    warm_directions: np.ndarray  # (n_warm, k) latent-coordinate directions (unnormalised)


@dataclass(frozen=True)
class TrainSpec:
    lr: float
    weight_decay: float
    times: np.ndarray  # (T,)
    time_weights: np.ndarray  # (T,), sums to 1
    interpolant: schedules.Interpolant
    tau: float
    checkpoints: np.ndarray  # increasing thetas in [0, tau], includes 0 and tau and every sample theta


@dataclass(frozen=True)
class SampleSpec:
    n: int
    grid: np.ndarray  # t_0 .. t_n
    noise: schedules.NoiseSchedule
    thetas: np.ndarray  # training times at which generated samples are drawn
    density_grid: int = 0  # theory: store the projected density on an N x N grid (0: no)


@dataclass(frozen=True)
class TheorySpec:
    integrator: str
    dt: float
    rtol: float
    atol: float
    quadrature: str
    nodes: int
    init: str
    spectral_bins: int
    divergence: float


@dataclass(frozen=True)
class GenerationsSpec:
    """Model collapse (Remark 4.1): ``count`` generations g = 0..count-1, generation g+1 trained on
    what generation g generates. The theory discretises the law of Z at the last training time into
    ``points`` weighted points (``discretisation``: weighted k-means of ``latent_samples`` samples of
    the r-dim recursion, a histogram, or raw samples); derivation note section 7. ``chain``: with
    ``solve --init-from``, generation g's target is what the simulation's generation g-1 generates
    ("simulation") or what the theory's does ("theory")."""

    count: int
    discretisation: str
    points: int
    latent_samples: int
    chain: str = "simulation"


@dataclass(frozen=True)
class SimulationSpec:
    """[simulation]: ``dtype`` of the weights; ``chunk``: at most this many SGD steps per kernel call
    (memory and speed only: on CPU a mixture target's data are counter-based streams, so results do
    not depend on it); ``sample_batch``: samples per call of the d-dimensional sampler."""
    dtype: str
    chunk: int
    sample_batch: int


@dataclass(frozen=True)
class Problem:
    """A validated problem: the single description shared by ``solve`` and ``simulate``.

    ``config`` is the fully resolved dict (defaults filled in); ``config_text`` its TOML.
    ``observation_basis`` is the (k, R) orthonormal basis E of the observation space in the
    target's latent coordinates (see :mod:`hdae.targets`).
    """

    config: dict
    seed: int
    target: "object"  # hdae.targets.MixtureTarget
    observation_basis: np.ndarray
    model: ModelSpec
    init: InitSpec
    train: TrainSpec
    sample: SampleSpec
    theory: TheorySpec
    simulation: SimulationSpec
    generations: GenerationsSpec = GenerationsSpec(1, "kmeans", 256, 20000, "simulation")
    name: str = ""
    description: str = field(default="", repr=False)

    @property
    def d(self) -> int:
        return self.target.d

    @property
    def config_text(self) -> str:
        return tomlio.dumps(self.config)

    def with_overrides(self, *overrides: str, **values) -> "Problem":
        """A new problem with ``section.key=value`` overrides (and/or ``{"section.key": value}``)."""
        cfg = copy.deepcopy(self.config)
        apply_overrides(cfg, overrides)
        for key, value in values.items():
            _set_path(cfg, key.replace("__", "."), value)
        return build_problem(cfg)


# ----------------------------------------------------------------------------- overrides
def _set_path(cfg: dict, dotted: str, value):
    parts = dotted.split(".")
    node = cfg
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(dotted, f"{p!r} is not a table")
    node[parts[-1]] = value


def parse_value(text: str):
    """A ``--set`` value: a TOML literal (number, string in quotes, array, bool), else a bare string."""
    try:
        return tomlio.loads(f"v = {text}")["v"]
    except tomlio.tomllib.TOMLDecodeError:
        return text


def apply_overrides(cfg: dict, overrides) -> dict:
    """Apply ``section.key=value`` strings to ``cfg`` in place (and return it)."""
    for item in overrides or ():
        if "=" not in item:
            raise ConfigError(item, "an override must look like section.key=value")
        key, text = item.split("=", 1)
        key = key.strip()
        if not key or any(not p for p in key.split(".")):
            raise ConfigError(key, "bad key in override")
        _set_path(cfg, key, parse_value(text.strip()))
    return cfg


# ----------------------------------------------------------------------------- examples
def example_names() -> list[str]:
    """Names of the built-in example problems (``hdae examples``)."""
    files = resources.files("hdae.examples").iterdir()
    return sorted(p.name[:-5] for p in files if p.name.endswith(".toml"))


def example_text(name: str) -> str:
    """TOML text of built-in example ``name``."""
    if name not in example_names():
        raise ConfigError("example", f"unknown example {name!r}; available: {', '.join(example_names())}")
    return resources.files("hdae.examples").joinpath(f"{name}.toml").read_text()


DEFAULT_EXAMPLE = "fig1"


# ----------------------------------------------------------------------------- building
def read_config(source=None, *, example: str | None = None) -> dict:
    """Raw config dict from a TOML file path, TOML text, or a built-in example name."""
    if source is not None and example is not None:
        raise ConfigError("example", "give either a problem file or an example, not both")
    if source is None:
        text = example_text(example or DEFAULT_EXAMPLE)
    elif isinstance(source, dict):
        return copy.deepcopy(source)
    elif isinstance(source, str) and not source.strip():
        raise ConfigError("file", "empty problem: give a TOML file, TOML text or an example")
    elif isinstance(source, os.PathLike) or (isinstance(source, str) and "\n" not in source
                                              and ("=" not in source or Path(source).is_file())):
        path = Path(source)
        if not path.is_file():
            raise ConfigError("file", f"no problem file at {str(path)!r}")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as err:
            raise ConfigError("file", f"{str(path)!r} is not a text (UTF-8) TOML file (byte {err.start}: "
                                      f"{err.reason})") from None
        except OSError as err:
            raise ConfigError("file", f"cannot read {str(path)!r} ({err.strerror or err})") from None
    else:
        text = source
    try:
        return tomlio.loads(text)
    except tomlio.tomllib.TOMLDecodeError as err:
        raise ConfigError("file", f"not valid TOML ({err})") from None


def resolve(cfg: dict) -> dict:
    """Fill defaults and check every key; returns the resolved plain dict (no arrays)."""
    from . import targets

    if not isinstance(cfg, dict):
        raise ConfigError("", "a problem is a TOML table")
    known = set(TOP_LEVEL) | set(SECTIONS) | {"target"}
    unknown = sorted(set(cfg) - known)
    if unknown:
        raise ConfigError(unknown[0], f"unknown key; known top-level keys: {', '.join(sorted(known))}")
    out = _check_table({k: v for k, v in cfg.items() if k in TOP_LEVEL}, TOP_LEVEL, "")
    if "target" not in cfg:
        raise ConfigError("target", "missing required table [target]")
    out["target"] = targets.resolve_target_config(_plain(cfg["target"]))
    for name, spec in SECTIONS.items():
        table = cfg.get(name, {})
        if name == "observation" and isinstance(table, dict) and "kind" not in table:
            table = {"kind": targets.default_observation(out["target"]["kind"]), **table}
        out[name] = _check_table(table, spec, name)
    train = out["train"]
    if "time_weights" in train and len(train["time_weights"]) != len(train["times"]):
        raise ConfigError("train.time_weights", f"expected {len(train['times'])} weights (one per train.times entry)")
    if "time_weights" in train:
        _weights("train.time_weights", train["time_weights"], len(train["times"]))
    if isinstance(train["checkpoints"], list):
        _check_increasing("train.checkpoints", train["checkpoints"], train["tau"])
    sample = out["sample"]
    sample.setdefault("thetas", [train["tau"]])
    if out["generations"]["count"] > 1 and not any(abs(t - train["tau"]) <= 1e-12 * max(1.0, train["tau"])
                                                   for t in sample["thetas"]):
        # every generation is sampled where it hands its density on to the next: recorded in the config
        sample["thetas"] = sorted(sample["thetas"] + [train["tau"]])
    _check_increasing("sample.thetas", sample["thetas"], train["tau"], allow_empty=True)
    return out


def _check_increasing(key, values, tau, allow_empty=False):
    if not values and not allow_empty:
        raise ConfigError(key, "must not be empty")
    if any(b <= a for a, b in zip(values, values[1:])):
        raise ConfigError(key, "must be strictly increasing")
    if values and values[-1] > tau * (1 + 1e-12):
        raise ConfigError(key, f"values must lie in [0, train.tau = {tau!r}], got {values[-1]!r}"
                          + (" (a shorter train.tau needs its own list, e.g. --set 'sample.thetas=[0.0, "
                             f"{tau!r}]', or sample.thetas=[] with --no-sample)" if key == "sample.thetas" else ""))


def _check_distinct_steps(checkpoints, sample_thetas, d: int, lr: float):
    """Refuse training times that the finite-d SGD cannot tell apart.

    SGD reaches theta only at whole steps mu (theta = 2 eta mu/d): every asked theta is reported
    at its nearest step (moved by at most eta/d, and the files store the theta reached). Two
    asked thetas on the same step would silently merge into one checkpoint or one sampled time."""
    step = 2 * lr / d
    for key, values in (("sample.thetas", sample_thetas), ("train.checkpoints", checkpoints)):
        values = np.asarray(values, dtype=float)
        mu = np.rint(values / step)
        apart = np.diff(values) > 1e-9 * np.maximum(1.0, np.abs(values[1:]))  # not the same theta written twice
        same = np.flatnonzero((np.diff(mu) == 0) & apart)
        if len(same):
            a, b = values[same[0]], values[same[0] + 1]
            raise ConfigError(key, f"thetas {a:.6g} and {b:.6g} fall on the same SGD step {int(mu[same[0]])} "
                                   f"(theta {mu[same[0]] * step:.6g}; one step is 2 eta/d = {step:.4g} at eta = "
                                   f"{lr:g}, d = {d}): ask for fewer, or use a larger d or a smaller train.lr")


def build_problem(cfg: dict) -> Problem:
    """Resolve ``cfg`` and build the typed :class:`Problem` (loads data for ``mnist`` targets)."""
    from . import targets

    cfg = resolve(cfg)
    target = targets.build_target(cfg["target"])
    obs = cfg["observation"]
    basis = targets.observation_basis(target, obs["kind"], obs.get("dim", 2), obs.get("basis"))
    model = ModelSpec(**cfg["model"])

    ini = cfg["init"]
    if ini["scale"] == 0.0 and ini["warm_norm"] == 0.0:
        raise ConfigError("init", "w_0 = 0 is a fixed point of SGD: set init.scale and/or init.warm_norm > 0")
    if ini["warm_directions"] == "centroids":
        directions = target.centroids
    else:
        directions = np.array(ini["warm_directions"], dtype=float)
        if directions.shape[1] != target.latent_dim:
            raise ConfigError("init.warm_directions",
                              f"directions live in the {target.latent_dim}-dim latent space, got length {directions.shape[1]}")
    norms = np.linalg.norm(directions, axis=1) if directions.size else np.zeros(0)
    if ini["warm_norm"] > 0 and (directions.shape[0] == 0 or np.any(norms[: model.width] == 0)):
        raise ConfigError("init.warm_directions", "warm start needs non-zero directions (a zero centroid cannot be one)")
    if ini["warm_norm"] > 0 and ini["scale"] == 0 and directions.shape[0] < model.width:
        raise ConfigError("init.scale", f"only {directions.shape[0]} warm direction(s) for width {model.width}: "
                                        "the other units would start (and stay) at zero; set init.scale > 0")
    init = InitSpec(scale=ini["scale"], warm_norm=ini["warm_norm"], warm_directions=directions)

    tr = cfg["train"]
    times = np.array(tr["times"])
    tw = np.array(tr["time_weights"]) if "time_weights" in tr else np.full(len(times), 1.0 / len(times))
    tw = tw / tw.sum()
    tau = tr["tau"]
    if isinstance(tr["checkpoints"], int):
        ckpts = np.linspace(0.0, tau, tr["checkpoints"])
    else:
        ckpts = np.array(tr["checkpoints"])
    sm = cfg["sample"]
    sample_thetas = np.array(sm["thetas"], dtype=float)
    ckpts = np.unique(np.concatenate([[0.0, tau], ckpts, sample_thetas]))
    if cfg["theory"]["init"] != "limit":  # the limit theory reports at the exact thetas
        _check_distinct_steps(ckpts, sample_thetas, target.d, tr["lr"])
    train = TrainSpec(lr=tr["lr"], weight_decay=tr["weight_decay"], times=times, time_weights=tw,
                      interpolant=schedules.Interpolant(tr["schedule"]), tau=tau, checkpoints=ckpts)
    sample = SampleSpec(n=sm["n"], grid=schedules.sampling_grid(sm["steps"], sm["t_end"]),
                        noise=schedules.NoiseSchedule(sm["eps"], sm["eps_schedule"]), thetas=sample_thetas,
                        density_grid=sm["density_grid"])
    return Problem(config=cfg, seed=cfg["seed"], target=target, observation_basis=basis, model=model,
                   init=init, train=train, sample=sample, theory=TheorySpec(**cfg["theory"]),
                   simulation=SimulationSpec(**cfg["simulation"]),
                   generations=GenerationsSpec(**cfg["generations"]), name=cfg["name"],
                   description=cfg["description"])


def load_problem(source=None, *, example: str | None = None, overrides=(), d: int | None = None,
                 seed: int | None = None) -> Problem:
    """Load and validate a problem.

    Parameters
    ----------
    source : path to a TOML file, TOML text, or a config dict; ``None`` with ``example``
        (or neither: the default example, Fig. 1 of the paper).
    example : name of a built-in example (see :func:`example_names`).
    overrides : iterable of ``"section.key=value"`` strings (``--set`` on the command line).
    d, seed : shortcuts for ``target.d`` and ``seed``.
    """
    cfg = read_config(source, example=example)
    apply_overrides(cfg, overrides)
    if d is not None:
        _set_path(cfg, "target.d", d)
    if seed is not None:
        cfg["seed"] = seed
    return build_problem(cfg)
