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
    generations: list  # compare.GenerationComparison per generation (one for a single run)
    files: dict  # name -> path

    @property
    def training(self) -> list:
        """Generation 0's compare.StatisticComparison rows."""
        return self.generations[0].training

    @property
    def samples(self) -> list:
        """Generation 0's compare.SampleComparison rows."""
        return self.generations[0].samples

    def report(self) -> str:
        text = compare.format_generations(self.generations)
        if self.simulation.n_generations > 1:
            from . import collapse

            text += ("\n\nmodel collapse (replica 0, last sampled training time; dist: energy distance to the target):\n"
                     + collapse.format_table({"theory": collapse.diagnostics(self.theory),
                                              "simulation": collapse.diagnostics(self.simulation)}))
        return text


FILES = {"simulation": "simulation.h5", "theory": "theory.h5", "report": "comparison.txt",
         "densities": "densities.png", "training": "training.png", "generations": "generations.png",
         "collapse": "collapse.png"}


def run(problem: Problem, out_dir, replicas: int = 1, device: str = "auto", force: bool = False,
        progress: bool | None = False, plots: bool = True, generations: int | None = None) -> RunOutputs:
    """Simulate ``problem`` (finite d), solve the theory from the simulation's initial weights,
    compare, and write everything into ``out_dir`` (simulation.h5, theory.h5, comparison.txt,
    densities.png, training.png; with several generations also generations.png (paper Fig. 5)
    and collapse.png, the densities and training curves then being generation 0's). An existing run
    folder is replaced only with ``force``, and then as a whole (built as a temporary sibling,
    swapped in at the end; an interrupted run leaves the old folder as it was). A divergence raises
    :class:`~hdae.divergence.DivergedError` after the files computed so far are in place."""
    out = Path(out_dir)
    with safety.staged_folder(out, force, FILES.values()) as stage:
        result = _run_in(problem, stage, replicas, device, progress, plots, generations)
    result.files = {k: out / Path(p).name for k, p in result.files.items()}
    return result


def _run_in(problem: Problem, out: Path, replicas, device, progress, plots, generations) -> RunOutputs:
    paths = {k: out / v for k, v in FILES.items()}
    force = False
    from .simulation import simulate
    from .theory import solve

    sim = simulate(problem, replicas=replicas, device=device, progress=progress, generations=generations)
    sim.write(paths["simulation"], force=force)
    if not sim.ok:
        raise DivergedError(f"simulation stopped: {sim.message} (saved simulation.h5)")
    theory = solve(problem, init_from=sim, progress=progress)
    theory.write(paths["theory"], force=force)
    if not theory.ok:
        raise DivergedError(f"theory stopped: {theory.message} (saved simulation.h5 and theory.h5)")
    rows = compare.compare_generations(theory, sim)
    result = RunOutputs(sim, theory, rows, {k: paths[k] for k in ("simulation", "theory", "report")})
    paths["report"].write_text(result.report() + "\n")
    if plots:
        from . import plotting

        th0, sim0 = theory.generation(0), sim.generation(0)
        if rows[0].samples:
            plotting.plot_file(th0, sim0, paths["densities"], "density")
            result.files["densities"] = paths["densities"]
        plotting.plot_file(th0, sim0, paths["training"], "training")
        result.files["training"] = paths["training"]
        if sim.n_generations > 1 and all(r.samples for r in rows):
            from .plot_collapse import plot_collapse_file

            for what in ("generations", "collapse"):
                plot_collapse_file(theory, sim, paths[what], what)
                result.files[what] = paths[what]
    return result
