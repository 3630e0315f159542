"""hdae compare"""
from __future__ import annotations

from pathlib import Path

import click

import hdae

from .options import user_errors


@click.command("compare")
@click.argument("theory", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("simulation", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--tol", type=float, default=None,
              help="Exit with status 1 when a statistic's max deviation exceeds TOL times its scale.")
@user_errors
def command(theory, simulation, tol):
    """Theory against simulation: per statistic, the max deviation over the common checkpoints,
    the statistic's scale (max |simulation|), the simulation's replica spread, and the deviation
    of the replica means; then, per sampled training time, the generated samples' moments and
    their energy distance next to its noise floor (two independent halves of the simulation).

    \b
    Example:
      hdae compare theory.h5 sim.h5 --tol 0.05
    """
    from hdae import compare as cmp

    th, sm = hdae.read(theory), hdae.read(simulation)
    try:
        rows = cmp.compare_training(th, sm)
    except ValueError as err:
        raise click.ClickException(str(err)) from None
    click.echo(f"training: {len(cmp.common_checkpoints(th.train.theta, sm.train.theta)[0])} common checkpoints, "
               f"theta up to {min(th.train.theta[-1], sm.train.theta[-1]):.4g}; simulation d = {sm.d}, "
               f"{sm.n_replicas} replica(s)")
    click.echo(cmp.format_training(rows))
    if th.sample is not None and sm.sample is not None:
        click.echo("\ngenerated samples (projections on the observation space):")
        click.echo(cmp.format_samples(cmp.compare_samples(th, sm)))
    if tol is not None:
        bad = [r.name for r in rows if r.scale > 0 and r.relative > tol]
        if bad:
            raise click.ClickException(f"deviation above tol = {tol:g} of scale for: {', '.join(bad)}")
