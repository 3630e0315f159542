"""hdae info"""
from __future__ import annotations

from pathlib import Path

import click
import numpy as np

import hdae

from .options import user_errors


def replica_lines(run, indent: str = "  ") -> list[str]:
    """The per-replica status (several replicas, or any that did not succeed): a count, then one
    line per replica that stopped, with where and why."""
    status = run.replica_status
    if status is None or (len(status) == 1 and run.replica_ok.all()):
        return []
    counts = {s: int((status == s).sum()) for s in ("success", "diverged", "failed") if (status == s).any()}
    lines = [f"{indent}replicas: " + ", ".join(f"{v} {k}" for k, v in counts.items())]
    for i in np.flatnonzero(~run.replica_ok):
        stop = run.replica_theta_stop[i]
        where = f" at theta {stop:.4g}" if np.isfinite(stop) else ""
        lines.append(f"{indent}  replica {i}: {status[i]}{where} ({run.replica_message[i]})")
    return lines


def sweep_lines(path) -> list[str]:
    """A sweep file: provenance, its axes and their values, the points by status, the runs it holds,
    and the first few points that did not succeed, with why."""
    from hdae.sweep import STATUS_NAMES, SweepFile

    s = SweepFile(path)
    counts = ", ".join(f"{int((s.status == c).sum())} {name}" for c, name in STATUS_NAMES.items()
                       if (s.status == c).any())
    lines = [f"{path}: sweep, {len(s.status)} points ({counts})",
             f"  hdae {s.attrs.get('hdae_version')}, created {s.attrs.get('created')}, "
             f"total wall time {np.nansum(s.wall_time):.3f} s",
             f"  runs: {', '.join(s.runs) or 'none'}"]
    for key in s.keys:
        values = [_value(v) for v in s.axes[key]]
        lines.append(f"  axis {key} ({len(values)}): {', '.join(values)}")
    bad = [i for i, c in enumerate(s.status) if STATUS_NAMES.get(int(c)) not in ("success", "pending")]
    for i in bad[:10]:
        at = ", ".join(f"{k} = {_value(s.axes[k][j])}" for k, j in zip(s.keys, s.index[i]))
        lines.append(f"  point {i} ({at}): {STATUS_NAMES[int(s.status[i])]}: {s.message[i]}")
    if len(bad) > 10:
        lines.append(f"  ... and {len(bad) - 10} more points that did not succeed")
    return lines


def _value(v) -> str:
    return v.decode() if isinstance(v, bytes) else f"{v:g}"


@click.command("info", epilog="\b\nExit status: 0 the file was read; 1 not a readable hdae file (one line on stderr); "
                              "2 bad command line.")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--config", "show_config", is_flag=True, help="Also print the full resolved problem (TOML).")
@user_errors
def command(file, show_config):
    """Provenance and contents of a result FILE (kind, version, seed, device, wall time, shapes), or of
    a sweep file (its axes, its points by status, why points failed).

    With --config the output is a valid problem file as it stands (the provenance lines become TOML
    comments), so `hdae info r.h5 --config > p.toml` re-runs the same problem; what the command line
    set outside the problem (replicas, device) is recorded in a comment.
    """
    from hdae.results import is_sweep_file

    if is_sweep_file(file):
        if show_config:
            raise click.UsageError("--config prints one problem; a sweep file holds one per point "
                                   "(hdae.sweep.SweepFile(path).config[i])")
        click.echo("\n".join(sweep_lines(file)))
        return
    r = hdae.read(file)
    lines = [f"{file}: {r.kind}, status {r.status}{' (' + r.message + ')' if r.message else ''}",
             f"  hdae {r.hdae_version}, created {r.created}, device {r.device}, wall time {r.wall_time_s:.3f} s",
             f"  seed {r.seed}, d = {r.d}, replicas {r.n_replicas}"
             + (f", generations {r.n_generations}" if r.n_generations > 1 else "")]
    for g in range(r.n_generations):
        run = r.generation(g)
        head = f"  generation {g} ({run.status}, {run.wall_time_s:.3f} s): " if r.n_generations > 1 else "  "
        lines.append(f"{head}checkpoints {len(run.train.theta)} (theta {run.train.theta[0]:.4g} .. "
                     f"{run.train.theta[-1]:.4g})" if len(run.train.theta) else f"{head}no checkpoints")
        lines += replica_lines(run, "    " if r.n_generations > 1 else "  ")
        if run.sample is not None:
            lines.append(f"  {'  ' if r.n_generations > 1 else ''}samples: {run.sample.projected.shape[2]} per "
                         f"training time at theta = {', '.join(f'{t:.4g}' for t in run.sample.theta)}")
    if r.n_generations > 1 and all(r.generation(g).sample is not None for g in range(r.n_generations)):
        from hdae import collapse

        rep = collapse.reference_replica(r)
        lines.append(f"  model collapse (replica {rep}):")
        lines += ["    " + ln for ln in collapse.format_table({r.kind: collapse.diagnostics(r, rep)}).splitlines()]
    lines += [f"  {k}: {v}" for k, v in sorted(r.attrs.items())]
    if not show_config:
        click.echo("\n".join(lines))
        return
    lines.append(f"  not in the problem: replicas = {r.n_replicas}" + (
        f" (hdae simulate --replicas {r.n_replicas})" if r.kind == "simulation" else ""))
    click.echo("\n".join("# " + " ".join(ln.splitlines()) for ln in lines))
    click.echo("\n" + r.config_text)
