"""hdae plot"""
from __future__ import annotations

from pathlib import Path

import click

import hdae
from hdae.results import check_writable

from . import options as o


@click.command("plot", epilog=o.EXIT_CODES)
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--against", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="A simulation file to draw under the theory (or a theory file over a simulation).")
@o.output
@click.option("--what", type=click.Choice(["auto", "density", "training"]), default="auto", show_default=True,
              help="density: generated densities per sampled training time (paper Figs. 1-3); "
                   "training: summary statistics against theta (Figs. 6-7); auto: density when samples exist.")
@o.force
@o.user_errors
def command(file, against, output, what, force):
    """Draw a result: generated densities or training curves, theory dashed over simulation.

    \b
    Examples:
      hdae plot theory.h5 --against sim.h5 -o densities.png
      hdae plot theory.h5 --against sim.h5 --what training -o training.png
    """
    from hdae import plotting

    check_writable(output, force)
    main = hdae.read(file)
    other = hdae.read(against) if against is not None else None
    try:
        plotting.plot_file(main, other, output, what)
    except ValueError as err:  # e.g. --what density for files without samples
        raise click.ClickException(str(err)) from None
    click.echo(f"wrote {output}", err=True)
