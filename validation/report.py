"""report.md: a summary table, then per experiment its settings, figures, tables and checks."""
from __future__ import annotations

import datetime as _dt
import os
import subprocess
from pathlib import Path

import hdae

from ._common import Context, fmt, machine, md_table

VERDICT = {"pass": "PASS", "fail": "**FAIL**", "error": "**ERROR**", "skipped": "skipped"}


def _commit() -> str:
    try:
        root = Path(__file__).resolve().parents[1]
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             timeout=10)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return out.stdout.strip() + (" (with uncommitted changes)" if dirty else "") if out.returncode == 0 else "n/a"
    except (OSError, subprocess.SubprocessError):
        return "n/a"


def write_report(ctx: Context, outcomes, wall_s: float, cpu_s: float, argv, pending=()) -> Path:
    lines = ["# hdae validation report", ""]
    mode = "quick (small d, few replicas: the test-suite size)" if ctx.quick else "full (the paper's sizes)"
    lines += [f"- command: `python -m validation {' '.join(map(str, argv))}`",
              f"- mode: {mode}; seed offset {ctx.seed}",
              f"- date: {_dt.datetime.now(_dt.timezone.utc).isoformat(timespec='seconds')}; hdae {hdae.__version__}, "
              f"commit {_commit()}",
              f"- machine: {machine()}",
              f"- total wall time: {wall_s:.0f} s ({wall_s / 60:.1f} min); CPU time of the process {cpu_s:.0f} s "
              f"({cpu_s / 60:.1f} min: about the wall time on an idle machine with these threads)", ""]
    if pending:
        lines += [f"**Run in progress (or stopped): not yet run: {', '.join(pending)}**", ""]
    n_fail = sum(o.failed for o in outcomes)
    lines += [f"**{len(outcomes) - n_fail} of {len(outcomes)} experiments without failure**"
              + ("" if not n_fail else f"; failed: {', '.join(o.name for o in outcomes if o.failed)}"), ""]
    rows = [[f"[{o.name}](#{o.name.replace('_', '-')})", o.title, VERDICT[o.verdict],
             f"{sum(c.passed for c in o.checks)}/{len(o.checks)}", f"{o.wall_s:.0f} s", f"{o.cpu_s:.0f} s"]
            for o in outcomes]
    lines += [md_table(["experiment", "what", "verdict", "checks passed", "wall time", "CPU time"], rows), ""]
    for o in outcomes:
        lines += [f"## {o.name}", "", f"**{o.title}** -- {VERDICT[o.verdict]}, {o.wall_s:.1f} s wall, {o.cpu_s:.1f} s CPU"
                  + (f". {o.message}" if o.message else ""), ""]
        if o.settings:
            lines += [f"Settings: {o.settings}.", ""]
        for f in o.figures:
            rel = os.path.relpath(f.path, ctx.out)
            lines += [f"![{f.caption}]({rel})", "", f"*{f.caption}*", ""]
        if o.checks:
            rows = [[c.label, fmt(c.value, 4), ("<= " if c.upper else ">= ") + fmt(c.tolerance, 3),
                     "pass" if c.passed else "**FAIL**", c.note] for c in o.checks]
            lines += ["Checks:", "", md_table(["check", "value", "tolerance", "verdict", "note"], rows), ""]
        for heading, text in o.tables:
            lines += [f"{heading}:", "", text, ""]
        for n in o.notes:
            lines += [f"- {n}"]
        if o.notes:
            lines.append("")
    path = ctx.out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
