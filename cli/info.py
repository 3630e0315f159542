"""hdae info"""
from __future__ import annotations

from pathlib import Path

import click

import hdae

from .options import user_errors


@click.command("info")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--config", "show_config", is_flag=True, help="Also print the full resolved problem (TOML).")
@user_errors
def command(file, show_config):
    """Provenance and contents of a result FILE (kind, version, seed, device, wall time, shapes)."""
    r = hdae.read(file)
    click.echo(f"{file}: {r.kind}, status {r.status}{' (' + r.message + ')' if r.message else ''}")
    click.echo(f"  hdae {r.hdae_version}, created {r.created}, device {r.device}, wall time {r.wall_time_s:.3f} s")
    click.echo(f"  seed {r.seed}, d = {r.d}, replicas {r.n_replicas}, checkpoints {len(r.train.theta)} "
               f"(theta {r.train.theta[0]:.4g} .. {r.train.theta[-1]:.4g})")
    if r.sample is not None:
        click.echo(f"  samples: {r.sample.projected.shape[2]} per training time at theta = "
                   f"{', '.join(f'{t:.4g}' for t in r.sample.theta)}")
    for k, v in sorted(r.attrs.items()):
        click.echo(f"  {k}: {v}")
    if show_config:
        click.echo("\n" + r.config_text)
