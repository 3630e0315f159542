"""Helpers shared by the validation experiments and scripts: what an experiment reports
(checks with tolerances, figures, tables), deviations, fits, and the run context."""
from __future__ import annotations

import contextlib
import math
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent / "out"


# ============================================================================ numbers
@contextlib.contextmanager
def cpu_burners(n: int = 2, settle: float = 1.0):
    """``n`` processes spinning ``while True: pass`` for the duration of the block (a busy machine for
    the busy/idle benchmarks); killed on exit."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        time.sleep(settle)
        yield procs
    finally:
        for p in procs:
            p.kill()


def relative_deviation(theory, simulation, name: str) -> np.ndarray:
    """Per replica: max over checkpoints and components of |theory - sim|, over the stat's scale (that
    of the replicas' finite values): NaN for a replica that stopped (per-replica status)."""
    th, sm = getattr(theory.train, name), getattr(simulation.train, name)
    if th.shape[0] == 1 and sm.shape[0] > 1:
        th = np.broadcast_to(th, sm.shape)
    scale = np.nanmax(np.abs(sm))
    return np.abs(th - sm).reshape(sm.shape[0], -1).max(1) / scale


def fit_exponent(ds, values) -> float:
    """Slope of log(values) against log(d)."""
    return float(np.polyfit(np.log(ds), np.log(values), 1)[0])


def arg(i: int, default):
    return type(default)(sys.argv[i]) if len(sys.argv) > i else default


def scaled_tolerance(tol_at_1000: float, d: int, power: float = 0.5) -> float:
    """A finite-d tolerance stated at d = 1000 and carried to d by the d^-power law of the
    theory-simulation gap (fluctuations of the statistics are O(d^-1/2))."""
    return tol_at_1000 * (1000.0 / d) ** power


# ============================================================================ outcome
def se_tolerance(n_replicas: int, quantile: float = 0.999) -> float:
    """Tolerance of |theory mean - simulation mean| / (standard error estimated from n replicas):
    the Student-t quantile with n - 1 degrees of freedom (the standard error itself is estimated
    from few replicas: 22 for 3, 4.8 for 8)."""
    from scipy.stats import t

    return float(t.ppf(quantile, max(1, n_replicas - 1)))


@dataclass
class Check:
    """One tolerance: ``value`` must be <= ``tolerance`` (``upper``) or >= it (not ``upper``)."""

    label: str
    value: float
    tolerance: float
    upper: bool = True
    note: str = ""

    @property
    def passed(self) -> bool:
        if not math.isfinite(self.value):
            return False
        return self.value <= self.tolerance if self.upper else self.value >= self.tolerance


@dataclass
class Figure:
    path: Path
    caption: str


@dataclass
class Outcome:
    """What one experiment hands to the report."""

    name: str
    title: str
    checks: list = field(default_factory=list)
    figures: list = field(default_factory=list)
    tables: list = field(default_factory=list)  # (heading, markdown or preformatted text)
    notes: list = field(default_factory=list)
    status: str = ""  # '' = from the checks; 'skipped' or 'error' set explicitly
    message: str = ""
    wall_s: float = 0.0
    cpu_s: float = 0.0  # CPU time of this process: the wall time on an idle machine, single-threaded
    settings: str = ""

    def check(self, label, value, tolerance, upper=True, note=""):
        self.checks.append(Check(label, float(value), float(tolerance), upper, note))

    def table(self, heading: str, text: str):
        self.tables.append((heading, text))

    @property
    def verdict(self) -> str:
        if self.status:
            return self.status
        return "pass" if all(c.passed for c in self.checks) else "fail"

    @property
    def failed(self) -> bool:
        return self.verdict in ("fail", "error")


@dataclass
class Context:
    """Run settings every experiment sees."""

    out: Path
    quick: bool = False
    seed: int = 0  # added to each problem's seed (tolerances must hold for any)
    cache: dict = field(default_factory=dict)  # results shared between experiments (same problem, same run)

    def figure(self, outcome: Outcome, fig, name: str, caption: str, dpi: int = 110) -> Path:
        """Save a matplotlib Figure as ``out/name.png`` and list it in ``outcome``."""
        path = self.out / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=dpi, format="png")
        outcome.figures.append(Figure(path, caption))
        return path

    def problem(self, example: str, d=None, overrides=()):
        import hdae

        p = hdae.load_problem(example=example, d=d, overrides=list(overrides))
        return p.with_overrides(seed=p.seed + self.seed) if self.seed else p


def mnist_missing(outcome: Outcome) -> bool:
    """True (and ``outcome`` marked skipped) when the MNIST IDX files cannot be found."""
    import hdae
    from hdae.targets import DEFAULT_MNIST_DIR, resolve_data_dir

    try:
        resolve_data_dir(DEFAULT_MNIST_DIR)
        return False
    except hdae.ConfigError as err:
        outcome.status, outcome.message = "skipped", f"no MNIST data ({err}; set HDAE_MNIST_DIR)"
        return True


def machine() -> str:
    """CPU, cores, threads, load and library versions, in one line."""
    import numba
    import torch

    try:
        load = " ".join(f"{x:.2f}" for x in __import__("os").getloadavg())
    except OSError:
        load = "n/a"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{cpu}, {__import__('os').cpu_count()} cores, torch {torch.__version__} "
            f"({torch.get_num_threads()} threads), numba {numba.__version__} ({numba.get_num_threads()} threads), "
            f"python {platform.python_version()}, load average {load}")


class Timer:
    def __enter__(self):
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.elapsed = time.perf_counter() - self.t0


def md_table(header, rows) -> str:
    """A markdown table from a header and rows of already formatted cells."""
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def fmt(x, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x:.{digits}g}"
