"""hdae: theory and finite-d simulation of generative models learned by a two-layer DAE.

\b
Typical session:
  hdae run --example fig1 -o out/fig1             # all of the below in one go
  hdae examples                                   # the built-in problems
  hdae simulate --example fig1 -o sim.h5          # finite-d SGD + sampler
  hdae solve --init-from sim.h5 -o theory.h5      # the ODE theory, from the same w_0
  hdae compare theory.h5 sim.h5                   # deviations, scales, replica spread
  hdae plot theory.h5 --against sim.h5 -o fig.png
  hdae sweep --grid train.lr=log:0.02:2:20 -o sweep.h5   # a grid of problems, on Dask

Every command reads one problem description (a TOML file or --example NAME, with
--set section.key=value overrides), so theory and simulation always solve the same problem.
"""
from __future__ import annotations

import signal as _signal
import sys as _sys

# Ctrl-C / SIGTERM while torch, numba and scipy load (seconds on a busy machine) would raise inside
# their imports (a traceback, or a C++ abort): hold the signal until the imports are done.
_held: list[int] = []
try:
    _previous = {s: _signal.signal(s, lambda signum, frame: _held.append(signum))
                 for s in (_signal.SIGINT, _signal.SIGTERM)}
except ValueError:  # imported outside the main thread
    _previous = {}
try:
    import click

    import hdae

    from . import compare, examples, info, plot, run, simulate, solve, sweep
    from .options import EXIT_CODES
finally:
    for _s, _h in _previous.items():
        _signal.signal(_s, _h)
if _held:
    _name = "Ctrl-C" if _held[0] == _signal.SIGINT else _signal.Signals(_held[0]).name
    _sys.stderr.write(f"Error: interrupted ({_name}); no partial output was left\n")
    raise SystemExit(128 + int(_held[0]))


class _OneLineUsageError(click.ClickException):
    """A usage error shown as one line (click's default adds the usage and a hint: three lines)."""

    exit_code = 2


def _one_line_usage(error: click.UsageError) -> _OneLineUsageError:
    cmd = error.ctx.command_path if error.ctx is not None else "hdae"
    return _OneLineUsageError(f"{error.format_message().rstrip('.')} (see '{cmd} --help')")


class _Group(click.Group):
    """The hdae group: every error, usage errors included, is one line on stderr."""

    def parse_args(self, ctx, args):
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as err:
            raise _one_line_usage(err) from None

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except click.UsageError as err:
            raise _one_line_usage(err) from None


@click.group(cls=_Group, help=__doc__, epilog=EXIT_CODES)
@click.version_option(hdae.__version__, prog_name="hdae")
def cli():
    pass


for module in (run, examples, simulate, solve, sweep, compare, plot, info):
    cli.add_command(module.command)

if __name__ == "__main__":  # pragma: no cover
    cli()
