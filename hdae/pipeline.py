"""The main job in one call: simulate a problem, solve its theory from the same initial
weights, compare the two, and draw them (what ``hdae run`` does)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import compare, safety
from .config import Problem
from .divergence import DivergedError
from .results import Result


@dataclass
class RunOutputs:
    simulation: Result
    theory: Result
    training: list  # compare.StatisticComparison rows
    samples: list  # compare.SampleComparison rows
    files: dict  # name -> path

    def report(self) -> str:
        text = compare.format_training(self.training)
        if self.samples:
            text += "\n\ngenerated samples (projections on the observation space):\n" + compare.format_samples(self.samples)
        return text


FILES = {"simulation": "simulation.h5", "theory": "theory.h5", "report": "comparison.txt",
         "densities": "densities.png", "training": "training.png"}


def run(problem: Problem, out_dir, replicas: int = 1, device: str = "auto", force: bool = False,
        progress: bool | None = False, plots: bool = True) -> RunOutputs:
    """Simulate ``problem`` (finite d), solve the theory from the simulation's initial weights,
    compare, and write everything into ``out_dir`` (simulation.h5, theory.h5, comparison.txt,
    densities.png, training.png). An existing run folder is replaced only with ``force``, and
    then as a whole (built as a temporary sibling, swapped in at the end; an interrupted run
    leaves the old folder as it was). A divergence raises :class:`~hdae.divergence.DivergedError`
    after the files computed so far are in place."""
    out = Path(out_dir)
    with safety.staged_folder(out, force, FILES.values()) as stage:
        result = _run_in(problem, stage, replicas, device, progress, plots)
    result.files = {k: out / Path(p).name for k, p in result.files.items()}
    return result


def _run_in(problem: Problem, out: Path, replicas, device, progress, plots) -> RunOutputs:
    paths = {k: out / v for k, v in FILES.items()}
    force = False
    from .simulation import simulate
    from .theory import solve

    sim = simulate(problem, replicas=replicas, device=device, progress=progress)
    sim.write(paths["simulation"], force=force)
    if not sim.ok:
        raise DivergedError(f"simulation stopped: {sim.message} (saved simulation.h5)")
    theory = solve(problem, init_from=sim, progress=progress)
    theory.write(paths["theory"], force=force)
    if not theory.ok:
        raise DivergedError(f"theory stopped: {theory.message} (saved simulation.h5 and theory.h5)")
    training = compare.compare_training(theory, sim)
    samples = compare.compare_samples(theory, sim) if theory.sample is not None and sim.sample is not None else []
    result = RunOutputs(sim, theory, training, samples, {k: paths[k] for k in ("simulation", "theory", "report")})
    paths["report"].write_text(result.report() + "\n")
    if plots:
        from . import plotting

        if samples:
            plotting.plot_file(theory, sim, paths["densities"], "density")
            result.files["densities"] = paths["densities"]
        plotting.plot_file(theory, sim, paths["training"], "training")
        result.files["training"] = paths["training"]
    return result
