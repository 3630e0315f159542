"""hdae run"""
from __future__ import annotations

from pathlib import Path

import click


from . import options as o


@click.command("run", epilog=o.EXIT_CODES)
@o.problem_file
@o.example
@o.overrides
@click.option("--output", "-o", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for simulation.h5, theory.h5, comparison.txt, densities.png, training.png.")
@o.dimension
@click.option("--replicas", "-r", type=click.IntRange(min=1), default=1, show_default=True,
              help="Independent simulation runs (the theory follows each one from its own w_0).")
@o.device
@o.seed
@o.generations
@o.threads
@o.force
@o.quiet
@o.user_errors
def command(problem_file, example, overrides, out_dir, d, replicas, device, seed, generations, force, quiet):
    """The main job: simulate, solve the theory from the same initial weights, compare, plot.

    \b
    Example (the paper's Fig. 1 at d = 1000, about half a minute on a laptop CPU):
      hdae run --example fig1 -o out/fig1

    \b
    Model collapse (paper Fig. 5): three generations, each trained on the previous one's samples;
    adds generations.png (target and each generation's density) and collapse.png (variance, modes,
    distance to the target against the generation):
      hdae run --example fig1 --generations 3 -o out/fig1_collapse

    A replica that diverges stops alone: the theory, comparison (of the replicas that succeeded) and
    figures are still written, then the command exits with status 3 naming the stopped replicas; when
    every replica stopped, it exits 3 after saving what was computed.
    """
    problem = o.load(problem_file, example, overrides, d, seed)
    from hdae import pipeline
    from hdae.divergence import DivergedError

    try:
        outputs = pipeline.run(problem, out_dir, replicas=replicas, device=device, force=force,
                               progress=None if not quiet else False, generations=generations)
    except DivergedError as err:  # some replicas stopped: the others' outputs are written, then exit 3
        if getattr(err, "outputs", None) is None:
            raise
        _summary(err.outputs)
        raise
    _summary(outputs)


def _summary(outputs):
    """The comparison on stdout, the files written on stderr (one per line, label then path)."""
    click.echo(outputs.report())
    width = max(map(len, outputs.files)) + 2
    for name, path in outputs.files.items():
        click.echo(f"{name:<{width}}{path}", err=True)
