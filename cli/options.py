"""Options shared by several commands, defined once."""
from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

import click

import hdae
from hdae.config import ConfigError

problem_file = click.argument("problem_file", required=False, type=click.Path(dir_okay=False, path_type=Path))
example = click.option("--example", "-e", metavar="NAME",
                       help="A built-in problem (list them with `hdae examples`) instead of PROBLEM_FILE.")
overrides = click.option("--set", "-s", "overrides", multiple=True, metavar="SECTION.KEY=VALUE",
                         help="Override one key of the problem, e.g. --set train.lr=0.1 --set model.activation=relu "
                              "(values are TOML literals; repeatable).")
output = click.option("--output", "-o", required=True, type=click.Path(dir_okay=False, path_type=Path),
                      help="The HDF5 file to write (written atomically).")
force = click.option("--force", is_flag=True, help="Overwrite OUTPUT if it exists.")
quiet = click.option("--quiet", "-q", is_flag=True, help="No progress bar (it only shows on a terminal anyway).")
seed = click.option("--seed", type=click.IntRange(min=0), default=None, help="Override the problem's seed.")
dimension = click.option("--d", "d", type=click.IntRange(min=2), default=None,
                         help="Ambient dimension (overrides target.d).")
generations = click.option(
    "--generations", "-g", type=click.IntRange(min=1), default=None, metavar="G",
    help="Model collapse: G generations (g = 0..G-1), generation g+1 trained on what generation g generates "
         "(default: generations.count of the problem, 1). Files then hold one group /generation/<g>/ each.")
no_sample = click.option("--no-sample", is_flag=True, help="Skip the generative sampling (training only).")


def load(problem_file, example_name, overrides_, d=None, seed_=None):
    """The Problem from the shared problem options (default: the default example)."""
    if problem_file is None and example_name is None:
        example_name = hdae.config.DEFAULT_EXAMPLE
    return hdae.load_problem(problem_file, example=example_name, overrides=overrides_, d=d, seed=seed_)


def user_errors(func):
    """Turn library errors about the user's input into one-line click errors (exit status 1)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except BrokenPipeError:  # output piped into e.g. `head`: stop quietly
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise SystemExit(0) from None
        except (ConfigError, OSError) as err:  # incl. OutputExistsError, FileNotFoundError, ResultFileError
            raise click.ClickException(str(err)) from None
        except RuntimeError as err:  # e.g. --device cuda without a GPU
            raise click.ClickException(str(err)) from None

    return wrapper


def finish(result, path, force_, quiet_):
    """Write the result; on divergence report it (after saving) and exit with status 3."""
    result.write(path, force=force_)
    if not quiet_:
        click.echo(f"wrote {path} ({result.kind}, {result.wall_time_s:.2f} s, {result.device})", err=True)
    if not result.ok:
        click.echo(f"Error: {result.message} (the checkpoints computed before were saved)", err=True)
        raise SystemExit(3)
