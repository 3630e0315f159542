"""hdae plot"""
from __future__ import annotations

from pathlib import Path

import click

import hdae

from . import options as o


@click.command("plot", epilog=o.EXIT_CODES)
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--against", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="A simulation file to draw under the theory (or a theory file over a simulation).")
@o.image_output
@click.option("--what", type=click.Choice(["auto", "density", "training", "generations", "collapse"]), default="auto",
              show_default=True,
              help="density: generated densities per sampled training time (paper Figs. 1-3); "
                   "training: summary statistics against theta (Figs. 6-7); generations: model collapse, the "
                   "target and each generation's density (Fig. 5); collapse: variance, modes and distance to the "
                   "target per generation; auto: generations for multi-generation files, else density when "
                   "samples exist. density/training draw --generation G of a multi-generation file.")
@click.option("--generation", type=click.IntRange(min=0), default=0, show_default=True,
              help="Which generation density/training draw.")
@click.option("--summary", default="modes", show_default=True,
              help="Sweep files: the summary drawn (modes, distance, b_final, theta_reached, normM, trQ, Q[a,b], M[a,k], ...).")
@click.option("--axes", "sweep_axes", multiple=True, metavar="KEY",
              help="Sweep files: one or two swept keys to draw against (default: the first two).")
@click.option("--at", "sweep_at", multiple=True, metavar="KEY=VALUE",
              help="Sweep files: fix another swept key (the keys neither drawn nor fixed are averaged).")
@click.option("--run", "sweep_run", type=click.Choice(["theory", "simulation"]), default="theory", show_default=True,
              help="Sweep files: which run's summaries to draw.")
@o.force
@o.user_errors
def command(file, against, output, what, generation, summary, sweep_axes, sweep_at, sweep_run, force):
    """Draw a result: generated densities or training curves, theory dashed over simulation.

    \b
    Examples:
      hdae plot theory.h5 --against sim.h5 -o densities.png
      hdae plot theory.h5 --against sim.h5 --what training -o training.png
      hdae plot collapse_theory.h5 --against collapse.h5 -o fig5.png          # generations
      hdae plot collapse_theory.h5 --against collapse.h5 --what collapse -o collapse.png
      hdae plot sweep.h5 --summary distance --axes train.lr --axes train.weight_decay -o phase.png

    A sweep file (`hdae sweep`) is drawn as a phase diagram: a heat map of --summary over two
    swept keys (a line over one), diverged points crossed, invalid ones hatched. Options of the
    other kind of file are refused (--what, --generation, --against for a sweep file; --summary,
    --axes, --at, --run for a single run). The extension of OUTPUT picks the image format.
    """
    from hdae import plotting, sweep_plot

    from hdae.results import check_writable, is_sweep_file

    try:
        plotting.image_format(output)  # before anything else: an unsupported extension writes nothing
    except ValueError as err:
        raise click.ClickException(str(err)) from None
    given = _given(click.get_current_context())
    check_writable(output, force)
    if is_sweep_file(file):
        wrong = [n for n in ("--against", "--what", "--generation") if n in given]
        if wrong:
            raise click.UsageError(f"{', '.join(wrong)} {'does' if len(wrong) == 1 else 'do'} not apply to a sweep "
                                   "file (it is drawn as a phase diagram: --summary, --axes, --at, --run)")
        try:
            sweep_plot.plot_sweep(file, output, summary, list(sweep_axes), sweep_plot.parse_at(sweep_at), sweep_run)
        except ValueError as err:
            raise click.ClickException(str(err)) from None
        click.echo(f"wrote {output}", err=True)
        return
    wrong = [n for n in ("--summary", "--axes", "--at", "--run") if n in given]
    if wrong:
        raise click.UsageError(f"{', '.join(wrong)} {'applies' if len(wrong) == 1 else 'apply'} only to sweep files "
                               f"(`hdae sweep`); {file} is a single run")
    main = hdae.read(file)
    other = hdae.read(against) if against is not None else None
    multi = main.n_generations > 1 or (other is not None and other.n_generations > 1)
    if what == "auto" and multi:
        what = "generations"
    try:
        if what in ("generations", "collapse"):
            if not multi:
                raise ValueError(f"--what {what} draws files with several generations (--generations)")
            from hdae.plot_collapse import plot_collapse_file

            plot_collapse_file(main, other, output, what)
        else:
            pick = lambda r: None if r is None else r.generation(min(generation, r.n_generations - 1))  # noqa: E731
            if generation >= main.n_generations:
                raise ValueError(f"generation {generation} is not in {file} ({main.n_generations} generation(s))")
            plotting.plot_file(pick(main), pick(other), output, what)
    except (ValueError, IndexError) as err:  # e.g. --what density for files without samples
        raise click.ClickException(str(err)) from None
    click.echo(f"wrote {output}", err=True)


_OPTION_NAMES = {"against": "--against", "what": "--what", "generation": "--generation", "summary": "--summary",
                 "sweep_axes": "--axes", "sweep_at": "--at", "sweep_run": "--run"}


def _given(ctx) -> set:
    """The options of :data:`_OPTION_NAMES` set on the command line (not left at their defaults)."""
    from click.core import ParameterSource

    return {flag for name, flag in _OPTION_NAMES.items()
            if ctx.get_parameter_source(name) not in (None, ParameterSource.DEFAULT)}
