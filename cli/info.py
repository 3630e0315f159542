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
    """Provenance and contents of a result FILE (kind, version, seed, device, wall time, shapes).

    With --config the output is a valid problem file as it stands (the provenance lines become TOML
    comments), so `hdae info r.h5 --config > p.toml` re-runs the same problem; what the command line
    set outside the problem (replicas, device) is recorded in a comment.
    """
    r = hdae.read(file)
    lines = [f"{file}: {r.kind}, status {r.status}{' (' + r.message + ')' if r.message else ''}",
             f"  hdae {r.hdae_version}, created {r.created}, device {r.device}, wall time {r.wall_time_s:.3f} s",
             f"  seed {r.seed}, d = {r.d}, replicas {r.n_replicas}, checkpoints {len(r.train.theta)} "
             f"(theta {r.train.theta[0]:.4g} .. {r.train.theta[-1]:.4g})" if len(r.train.theta) else
             f"  seed {r.seed}, d = {r.d}, replicas {r.n_replicas}, no checkpoints"]
    if r.sample is not None:
        lines.append(f"  samples: {r.sample.projected.shape[2]} per training time at theta = "
                     f"{', '.join(f'{t:.4g}' for t in r.sample.theta)}")
    lines += [f"  {k}: {v}" for k, v in sorted(r.attrs.items())]
    if not show_config:
        click.echo("\n".join(lines))
        return
    lines.append(f"  not in the problem: replicas = {r.n_replicas}" + (
        f" (hdae simulate --replicas {r.n_replicas})" if r.kind == "simulation" else ""))
    click.echo("\n".join("# " + " ".join(ln.splitlines()) for ln in lines))
    click.echo("\n" + r.config_text)
