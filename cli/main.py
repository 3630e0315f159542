"""hdae: theory and finite-d simulation of generative models learned by a two-layer DAE.

\b
Typical session:
  hdae run --example fig1 -o out/fig1             # all of the below in one go
  hdae examples                                   # the built-in problems
  hdae simulate --example fig1 -o sim.h5          # finite-d SGD + sampler (torch)
  hdae solve --init-from sim.h5 -o theory.h5      # the ODE theory, from the same w_0
  hdae compare theory.h5 sim.h5                   # deviations, scales, replica spread
  hdae plot theory.h5 --against sim.h5 -o fig.png
  hdae sweep --grid train.lr=log:0.02:2:20 -o sweep.h5   # a grid of problems, on Dask

Every command reads one problem description (a TOML file or --example NAME, with
--set section.key=value overrides), so theory and simulation always solve the same problem.
"""
from __future__ import annotations

import click

import hdae

from . import compare, examples, info, plot, run, simulate, solve, sweep


@click.group(help=__doc__)
@click.version_option(hdae.__version__, prog_name="hdae")
def cli():
    pass


for module in (run, examples, simulate, solve, sweep, compare, plot, info):
    cli.add_command(module.command)

if __name__ == "__main__":  # pragma: no cover
    cli()
