"""hdae examples [NAME]"""
from __future__ import annotations

import click

import hdae
from hdae.tomlio import loads

from .options import user_errors


@click.command("examples")
@click.argument("name", required=False)
@user_errors
def command(name):
    """List the built-in problems, or print problem NAME as TOML.

    \b
    Save one to edit it:   hdae examples fig1 > my_problem.toml
    Use one anywhere:      hdae simulate --example fig1 -o sim.h5
    """
    if name is not None:
        click.echo(hdae.example_text(name), nl=False)
        return
    width = max(len(n) for n in hdae.example_names()) + 2
    for n in hdae.example_names():
        desc = loads(hdae.example_text(n)).get("description", "")
        default = " (default)" if n == hdae.config.DEFAULT_EXAMPLE else ""
        click.echo(f"{n:<{width}}{desc}{default}")
