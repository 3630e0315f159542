"""hdae simulate"""
from __future__ import annotations

import click

from . import options as o


@click.command("simulate", epilog=o.EXIT_CODES)
@o.problem_file
@o.example
@o.overrides
@o.output
@o.dimension
@click.option("--replicas", "-r", type=click.IntRange(min=1), default=1, show_default=True,
              help="Independent runs batched into one computation (one replica axis in the file).")
@o.device
@o.seed
@o.generations
@click.option("--resume", type=click.Path(exists=True, dir_okay=False), default=None, metavar="SIM.h5",
              help="Continue a multi-generation simulation: keep its generations and train the next ones from "
                   "its last final weights, up to --generations (its problem and replicas are used).")
@o.threads
@o.no_sample
@o.force
@o.quiet
@o.user_errors
def command(problem_file, example, overrides, output, d, replicas, device, seed, generations, resume, no_sample,
            force, quiet):
    """Finite-d ground truth: online SGD of the DAE in d dimensions, then the d-dimensional sampler.

    Realises PROBLEM_FILE (or --example NAME) in d dimensions, trains by online SGD exactly as
    defined in the theory (fresh sample each step, learning rate eta for w and eta/d^2 for b),
    records Q, Omega, M, G, b at the checkpoints, and samples the generative SDE at every
    training time of sample.thetas, storing the projections E^T X.

    \b
    Examples:
      hdae simulate --example fig1 -o sim.h5
      hdae simulate my.toml --d 4000 --replicas 8 --device cuda -o sim.h5
      hdae simulate --example fig2 --set train.lr=0.1 --no-sample -o sim.h5
      hdae simulate --example fig1 --generations 3 --replicas 2 -o collapse.h5
      hdae simulate --resume collapse.h5 --generations 5 -o collapse5.h5
    """
    from hdae.results import check_writable
    from hdae.simulation import simulate

    check_writable(output, force)
    if resume is not None and problem_file is None and example is None:
        import hdae

        stored = hdae.read(resume)
        problem = stored.problem.with_overrides(*overrides, **({"seed": seed} if seed is not None else {}))
        replicas = stored.n_replicas
    else:
        problem = o.load(problem_file, example, overrides, d, seed)
    result = simulate(problem, replicas=replicas, device=device, progress=None if not quiet else False,
                      sample=not no_sample, generations=generations, resume=resume)
    o.finish(result, output, force, quiet)
