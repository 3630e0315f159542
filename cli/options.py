"""Options shared by several commands, defined once."""
from __future__ import annotations

import functools
import os
import signal
import sys
from pathlib import Path

import click
import numpy as np

import hdae
from hdae import safety
from hdae.config import ConfigError
from hdae.divergence import EXIT_DIVERGED, DivergedError

problem_file = click.argument("problem_file", required=False, type=click.Path(dir_okay=False, path_type=Path))
example = click.option("--example", "-e", metavar="NAME",
                       help="A built-in problem (list them with `hdae examples`) instead of PROBLEM_FILE.")
overrides = click.option("--set", "-s", "overrides", multiple=True, metavar="SECTION.KEY=VALUE",
                         help="Override one key of the problem, e.g. --set train.lr=0.1 --set model.activation=relu "
                              "(values are TOML literals; repeatable).")
output = click.option("--output", "-o", required=True, type=click.Path(dir_okay=False, path_type=Path),
                      help="The HDF5 file to write (written atomically).")
image_output = click.option("--output", "-o", required=True, type=click.Path(dir_okay=False, path_type=Path),
                            help="The image file to write; its extension (.png, .pdf, .svg) picks the format "
                                 "(written atomically).")
force = click.option("--force", is_flag=True, help="Overwrite OUTPUT if it exists.")
quiet = click.option("--quiet", "-q", is_flag=True, help="No progress bar (it only shows on a terminal anyway).")
seed = click.option("--seed", type=click.IntRange(min=0, max=2**63 - 1), default=None, help="Override the problem's seed (0 .. 2^63 - 1).")
dimension = click.option("--d", "d", type=click.IntRange(min=2), default=None,
                         help="Ambient dimension (overrides target.d).")
generations = click.option(
    "--generations", "-g", type=click.IntRange(min=1), default=None, metavar="G",
    help="Model collapse: G generations (g = 0..G-1), generation g+1 trained on what generation g generates "
         "(default: generations.count of the problem, 1). Files then hold one group /generation/<g>/ each.")


def _set_threads(ctx, param, value):
    if not ctx.resilient_parsing:
        from hdae.parallel import set_threads

        set_threads(value)
    return value


threads = click.option("--threads", type=click.IntRange(min=1), default=None, expose_value=False,
                       callback=_set_threads,
                       help="CPU threads for numba and torch (default: the cores free now, i.e. the cores this "
                            "process may use minus the other tasks running at start, at least 1).")
device = click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
                      help="Where the finite-d simulation runs. auto: CUDA when torch sees a GPU, else CPU (torch is "
                           "imported only where an NVIDIA driver is installed, or for cuda).")
no_sample = click.option("--no-sample", is_flag=True, help="Skip the generative sampling (training only).")


def load(problem_file, example_name, overrides_, d=None, seed_=None):
    """The Problem from the shared problem options (default: the default example)."""
    default = problem_file is None and example_name is None
    if default:
        example_name = hdae.config.DEFAULT_EXAMPLE
    problem = hdae.load_problem(problem_file, example=example_name, overrides=overrides_, d=d, seed=seed_)
    if default:
        click.echo(f"note: no PROBLEM_FILE or --example given: using the built-in example {example_name!r} "
                   f"at d = {problem.d} (`hdae examples {example_name}` prints it)", err=True)
    return problem


EXIT_CODES = """\b
Exit status: 0 success; 1 bad input or a failed check (one line on stderr); 2 bad command
line; 3 a diverged computation (any replica; what was computed, the other replicas included, is
saved); 130 Ctrl-C, 143 SIGTERM (no partial output is left behind)."""


def _fail(message: str, code: int):
    click.echo(f"Error: {message}", err=True)
    raise SystemExit(code)


def user_errors(func):
    """Turn library errors about the user's input into one-line click errors (exit status 1), a
    divergence into exit status 3, Ctrl-C / SIGTERM into one line and exit status 130 / 143
    (temporary files are removed on the way out: the signals raise inside the computation)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            # non-finite numbers are reported as divergences (hdae.divergence), not as numpy warnings
            with safety.signals_as_exceptions(), np.errstate(all="ignore"):
                return func(*args, **kwargs)
        except BrokenPipeError:  # output piped into e.g. `head`: stop quietly
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise SystemExit(0) from None
        except KeyboardInterrupt as err:  # Ctrl-C, or SIGTERM (safety.Interrupted)
            _interrupted(getattr(err, "signum", signal.SIGINT))
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as err:
            if safety.last_signal() is not None:  # e.g. numba turns the KeyboardInterrupt into a SystemError
                _interrupted(safety.last_signal())
            _report(err)

    return wrapper


def _report(err: Exception):
    """One line (and the exit status) for an exception that stopped a command."""
    if isinstance(err, DivergedError):
        _fail(_first_line(err), EXIT_DIVERGED)
    if isinstance(err, (ConfigError, OSError, RuntimeError, ValueError)):
        # bad input (ConfigError names the key), files (OutputExistsError, ResultFileError, ...),
        # --device cuda without a GPU, the library's checks of values
        raise click.ClickException(_first_line(err)) from None
    if isinstance(err, MemoryError):
        raise click.ClickException("out of memory: reduce the sizes (d, replicas, sample.n, theory.nodes)") from None
    if os.environ.get("HDAE_DEBUG"):  # a bug: still one line, the traceback on request
        raise err
    raise click.ClickException(f"internal error, please report it: {type(err).__name__}: {_first_line(err)} "
                               "(HDAE_DEBUG=1 shows the traceback)") from None


def _first_line(err) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _interrupted(signum):
    name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
    _fail(f"interrupted ({name}); no partial output was left", 128 + int(signum))


def finish(result, path, force_, quiet_):
    """Write the result; on divergence report it (after saving) and exit with status 3."""
    result.write(path, force=force_)
    if not quiet_:
        click.echo(f"wrote {path} ({result.kind}, {result.wall_time_s:.2f} s, {result.device})", err=True)
    if not result.ok:
        click.echo(f"Error: {result.message} (the checkpoints computed before were saved)", err=True)
        raise SystemExit(3)
