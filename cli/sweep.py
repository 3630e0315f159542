"""hdae sweep"""
from __future__ import annotations

from pathlib import Path

import click

from . import options as o


@click.command("sweep")
@o.problem_file
@o.example
@o.overrides
@click.option("--grid", "-g", "grid", multiple=True, required=True, metavar="KEY=VALUES",
              help="A swept key: a list 0.05,0.1,0.2; integers 1:8 (both ends); lin:A:B:N; log:A:B:N. "
                   "Repeat for more axes (cartesian product).")
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The sweep's HDF5 file (an existing file of the same sweep is resumed).")
@o.dimension
@o.seed
@click.option("--simulate", is_flag=True, help="Also run the finite-d simulation at every point.")
@click.option("--replicas", "-r", type=click.IntRange(min=1), default=1, show_default=True,
              help="Simulation replicas per point (with --simulate).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="cpu", show_default=True,
              help="Simulation device on the workers.")
@o.no_sample
@click.option("--keep-samples", is_flag=True, help="Also store every point's generated projected samples.")
@click.option("--scheduler", metavar="ADDRESS", default=None,
              help="An existing Dask scheduler (e.g. tcp://host:8786); default: a local cluster.")
@click.option("--workers", "-w", type=click.IntRange(min=1), default=None,
              help="Worker processes of the local cluster (default: the usable cores), one thread each.")
@click.option("--serial", is_flag=True, help="No Dask: compute the points in this process.")
@click.option("--chunk", type=click.IntRange(min=1), default=None,
              help="Points per task, solved together in one process (default: about 4 tasks per worker, "
                   "at most 32 points).")
@o.force
@o.quiet
@o.user_errors
def command(problem_file, example, overrides, grid, output, d, seed, simulate, replicas, device, no_sample,
            keep_samples, scheduler, workers, serial, chunk, force, quiet):
    """Sweep a problem over a grid of keys: solve (and simulate) every point, on Dask.

    Every point is PROBLEM_FILE (or --example NAME, default fig1) with --set overrides and the
    point's grid values, validated like any problem (an invalid combination is stored as a
    failed point with its error). Results go point by point into OUTPUT: the swept keys as
    coordinates, each point's trajectories and summaries (final Q, M, b; number of modes of the
    final generated density and its energy distance to the target; divergence and where; wall
    time). Killing the sweep loses no stored point; running the same command again resumes.
    Draw it with `hdae plot OUTPUT`. The exit status is 0 once every point is stored, failed and
    diverged ones included (the closing line counts them).

    \b
    Examples:
      hdae sweep --grid train.lr=log:0.02:2:20 --grid train.weight_decay=lin:0:3:20 -o lr_wd.h5
      hdae sweep my.toml --grid model.width=1:8 --grid model.activation=relu,tanh -o width.h5
      hdae sweep --example fig2 --grid train.tau=0.5,1,2 --simulate --replicas 4 --workers 2 -o s.h5
      hdae sweep --grid train.lr=0.1,0.2 --scheduler tcp://10.0.0.5:8786 -o cluster.h5
    """
    if simulate is False and replicas != 1:
        raise click.UsageError("--replicas needs --simulate")
    if serial and (scheduler or workers):
        raise click.UsageError("--serial runs without Dask: drop --scheduler/--workers")
    if scheduler and workers:
        raise click.UsageError("--workers sizes the local cluster; an existing --scheduler has its own workers")
    from hdae import sweep  # at run time: it loads numba

    spec = sweep.make_spec(problem_file, example=example, overrides=overrides, grid=grid, d=d, seed=seed,
                           simulate=simulate, replicas=replicas, device=device, sample=not no_sample,
                           keep_samples=keep_samples)
    report = sweep.run_sweep(spec, output, scheduler=scheduler, workers=workers, serial=serial, force=force,
                             chunk=chunk, progress=None if not quiet else False)
    if not quiet:
        c = report.counts
        resumed = f", {report.skipped} already stored" if report.skipped else ""
        click.echo(f"wrote {output}: {report.n_points} points ({report.computed} computed{resumed}; "
                   f"{c['success']} success, {c['diverged']} diverged, {c['failed']} failed) "
                   f"in {report.wall_time_s:.1f} s", err=True)
