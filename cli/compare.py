"""hdae compare"""
from __future__ import annotations

from pathlib import Path

import click
import numpy as np

import hdae

from .options import EXIT_CODES, _fail, user_errors
from hdae.divergence import EXIT_DIVERGED


def _finite_tol(ctx, param, value):
    if value is not None and not (np.isfinite(value) and value >= 0):
        raise click.BadParameter(f"must be a finite number >= 0, got {value}")
    return value


@click.command("compare", epilog=EXIT_CODES)
@click.argument("theory", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("simulation", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--tol", type=float, default=None, callback=_finite_tol,
              help="Exit with status 1 when a statistic's max deviation exceeds TOL times its scale "
                   "(or any deviation is not finite).")
@click.option("--allow-mismatch", is_flag=True,
              help="Compare even when the stored problems differ in what defines the problem (target, model, "
                   "init, observation, lr, weight decay, times, schedule, seed, sampler).")
@user_errors
def command(theory, simulation, tol, allow_mismatch):
    """Theory against simulation: per statistic, the max deviation over the common checkpoints,
    the statistic's scale (max |simulation|), the simulation's replica spread, and the deviation
    of the replica means; then, per sampled training time, the generated samples' moments and
    their energy distance next to its noise floor (two independent halves of the simulation).
    Files with several generations (--generations) are compared generation by generation, followed
    by the model-collapse table (variance, modes, distance to the target per generation).

    \b
    Example:
      hdae compare theory.h5 sim.h5 --tol 0.05
    """
    from hdae import compare as cmp

    th, sm = hdae.read(theory), hdae.read(simulation)
    try:
        cmp.check_comparable(th, sm, allow_mismatch)
        rows = cmp.compare_generations(th, sm)
    except ValueError as err:
        raise click.ClickException(str(err)) from None
    if not rows:
        raise click.ClickException("the two files share no generation with training statistics")
    click.echo(cmp.format_header(th, sm, rows))
    click.echo(cmp.format_generations(rows))
    if (th.n_generations > 1 or sm.n_generations > 1) and all(r.samples for r in rows):
        from hdae import collapse

        rep = collapse.reference_replica(th, sm)
        click.echo(f"\nmodel collapse (replica {rep}, last sampled training time; "
                   "dist: energy distance to the target):")
        click.echo(collapse.format_table({"theory": collapse.diagnostics(th, min(rep, th.n_replicas - 1)),
                                          "simulation": collapse.diagnostics(sm, rep)}))
    diverged = [f"{path} {r.status} ({r.message})" for path, r in ((theory, th), (simulation, sm)) if not r.ok]
    if diverged:  # a table of a diverged run is no success
        _fail(diverged[0], EXIT_DIVERGED)
    if tol is not None:
        bad = [f"{name} (generation {row.generation})" if len(rows) > 1 else name
               for row in rows for name in cmp.tolerance_failures(row.training, tol)]
        if bad:
            raise click.ClickException(f"deviation above tol = {tol:g} of scale (or not finite) for: {', '.join(bad)}")

