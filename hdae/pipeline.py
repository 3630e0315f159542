"""The main job in one call: simulate a problem, solve its theory from the same initial
weights, compare the two, and draw them (what ``hdae run`` does)."""
from __future__ import annotations

from dataclasses import dataclass, field
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
    stopped: list = field(default_factory=list)  # one line per result with a stopped replica ('simulation: ...')
    generations_asked: int = 1

    @property
    def ok(self) -> bool:
        """Every replica of simulation and theory succeeded (in every generation asked for)."""
        return not self.stopped and self.simulation.n_generations >= self.generations_asked

    @property
    def training(self) -> list:
        """Generation 0's compare.StatisticComparison rows."""
        return self.generations[0].training

    @property
    def samples(self) -> list:
        """Generation 0's compare.SampleComparison rows."""
        return self.generations[0].samples

    def report(self) -> str:
        """The text of comparison.txt: what ``hdae compare`` prints for the two files."""
        text = (compare.format_header(self.theory, self.simulation, self.generations) + "\n"
                + compare.format_generations(self.generations))
        if self.simulation.n_generations > 1 and all(r.samples for r in self.generations):
            from . import collapse

            rep = collapse.reference_replica(self.theory, self.simulation)
            text += (f"\n\nmodel collapse (replica {rep}, last sampled training time; "
                     "dist: energy distance to the target):\n"
                     + collapse.format_table({"theory": collapse.diagnostics(self.theory,
                                                                             min(rep, self.theory.n_replicas - 1)),
                                              "simulation": collapse.diagnostics(self.simulation, rep)}))
        return text

    def stop_message(self) -> str:
        """One line on the replicas that stopped and what the outputs then cover ('' when ok)."""
        if self.ok:
            return ""
        reps = list(self.generations[-1].replicas) if self.generations else []
        compared = f"replica{'s' if len(reps) > 1 else ''} {', '.join(map(str, reps))}" if reps else "none"
        gens = (f"; {self.simulation.n_generations} of {self.generations_asked} generations computed"
                if self.simulation.n_generations < self.generations_asked else "")
        return (f"{'; '.join(self.stopped)}{gens}; the comparison and figures cover the replicas that succeeded "
                f"({compared}) (saved {', '.join(Path(p).name for p in self.files.values())})")


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
    swapped in at the end; an interrupted run leaves the old folder as it was; a folder that holds
    other files is never replaced).

    A divergence raises :class:`~hdae.divergence.DivergedError` after the files computed so far are
    in place: when every replica stopped (in the simulation, or in the theory), right there; when only
    some did, at the end, after the theory, the comparison (of the replicas that succeeded in both) and
    the figures are written -- the error's ``outputs`` attribute then holds the :class:`RunOutputs`."""
    out = Path(out_dir)
    with safety.staged_folder(out, force, FILES.values()) as stage:
        result = _run_in(problem, stage, replicas, device, progress, plots, generations)
    result.files = {k: out / Path(p).name for k, p in result.files.items()}
    if not result.ok:
        err = DivergedError(result.stop_message())
        err.outputs = result
        raise err
    return result


def _run_in(problem: Problem, out: Path, replicas, device, progress, plots, generations) -> RunOutputs:
    paths = {k: out / v for k, v in FILES.items()}
    force = False
    from .simulation import simulate
    from .theory import solve

    sim = simulate(problem, replicas=replicas, device=device, progress=progress, generations=generations)
    sim.write(paths["simulation"], force=force)
    if not sim.replica_ok.any():  # nothing left to compare
        raise DivergedError(f"simulation stopped: {sim.message} (saved simulation.h5)")
    theory = solve(problem, init_from=sim, progress=progress)
    theory.write(paths["theory"], force=force)
    if not (theory.replica_ok & sim.replica_ok).any():
        raise DivergedError(f"theory stopped: {theory.message} (saved simulation.h5 and theory.h5)"
                            + ("" if sim.ok else f"; simulation stopped: {sim.message}"))
    rows = compare.compare_generations(theory, sim)
    stopped = [f"{name} stopped: {res.message}" for name, res in (("simulation", sim), ("theory", theory))
               if not res.ok]
    asked = generations if generations is not None else problem.generations.count
    result = RunOutputs(sim, theory, rows, {k: paths[k] for k in ("simulation", "theory", "report")}, stopped, asked)
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
            from .collapse import reference_replica
            from .plot_collapse import plot_collapse, plot_generations
            from .plotting import save_figure

            rep = reference_replica(theory, sim)  # the first replica that succeeded throughout
            for what, draw in (("generations", plot_generations), ("collapse", plot_collapse)):
                save_figure(draw(theory, sim, replica=rep), paths[what], 130)
                result.files[what] = paths[what]
    return result
