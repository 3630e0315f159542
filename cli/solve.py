"""hdae solve"""
from __future__ import annotations

from pathlib import Path

import click

import hdae

from . import options as o


@click.command("solve", epilog=o.EXIT_CODES)
@o.problem_file
@o.example
@o.overrides
@o.output
@click.option("--init-from", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="A simulation file: start from its exact initial weights (one trajectory per replica) and "
                   "report at its checkpoints. Without PROBLEM_FILE/--example, its stored problem is used.")
@o.dimension
@o.seed
@o.generations
@o.threads
@o.no_sample
@o.force
@o.quiet
@o.user_errors
def command(problem_file, example, overrides, output, init_from, d, seed, generations, no_sample, force, quiet):
    """Theory: integrate the summary-statistic ODEs (Result 2.1), then the generated density (Result 2.2).

    The theory's cost does not depend on d. Its starting point is, in order of precedence:
    --init-from SIM.h5 (the simulation's exact w_0), theory.init = "realised" (the w_0 that
    `hdae simulate` draws for the same d and seed; the default), or theory.init = "limit"
    (the d -> infinity statistics of the initialisation). Numerical settings live in the
    [theory] table: integrator (rk4 | adaptive), dt, quadrature (auto | gauss-hermite | sobol),
    nodes, spectral_bins.

    \b
    Examples:
      hdae solve --example fig1 -o theory.h5
      hdae solve --init-from sim.h5 -o theory.h5
      hdae solve my.toml --set theory.init=limit --set theory.dt=0.02 -o theory.h5
      hdae solve --init-from collapse.h5 -o collapse_theory.h5   # every generation of the simulation
    """
    from hdae.results import check_writable
    from hdae.theory import solve

    check_writable(output, force)
    if init_from is not None and d is not None:
        raise click.UsageError("--d conflicts with --init-from: the simulation file fixes d")
    if init_from is not None and seed is not None:
        raise click.UsageError("--seed conflicts with --init-from: the simulation file fixes the initial weights "
                               "and its seed (a different seed would not change the theory, and `compare` "
                               "would refuse the pair)")
    if init_from is not None and problem_file is None and example is None:
        problem = None
        if overrides:
            problem = hdae.read(init_from).problem.with_overrides(*overrides)
    else:
        problem = o.load(problem_file, example, overrides, d, seed)
    result = solve(problem, init_from=init_from, progress=None if not quiet else False, sample=not no_sample,
                   generations=generations)
    o.finish(result, output, force, quiet)
