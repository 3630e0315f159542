"""Whole-process wall times of `hdae` commands, idle and with two CPU-burning processes running.

Usage: python validation/benchmark_commands.py [repeat=3] [busy=1]

Commands: `--help`, `examples`, `info FILE` (targets: under 0.5 s), `solve` of the default
example with and without sampling (target: under 1.5 s with sampling, after the first
compilation), and `simulate` of fig2 at d = 2000 (10^4 steps, no sampling). Each is run once
to warm the numba cache, then ``repeat`` times; the best time is printed. With busy=1 the same
commands run while two other processes keep both cores busy (``while True: pass``), and the
ratio busy/idle is printed (target: at most 2.2x). Threads: the default (the cores free now).
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cpu_burners  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def commands(tmp: Path) -> dict[str, list[str]]:
    hd = [sys.executable, "-m", "cli.main"]
    return {
        "hdae --help": hd + ["--help"],
        "hdae examples": hd + ["examples"],
        "hdae info FILE": hd + ["info", str(tmp / "theory.h5")],
        "solve --no-sample": hd + ["solve", "--no-sample", "-o", str(tmp / "t1.h5"), "--force", "-q"],
        "solve (sampling)": hd + ["solve", "-o", str(tmp / "t2.h5"), "--force", "-q"],
        "simulate d=2000 1e4 steps": hd + ["simulate", "--example", "fig2", "--d", "2000", "--set", "train.tau=2.0",
                                           "--set", "sample.thetas=[]", "--no-sample", "-o", str(tmp / "s.h5"),
                                           "--force", "-q"],
    }


def best_time(cmd, repeat):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
        best = min(best, time.perf_counter() - t)
        if out.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)}:\n{out.stderr[-1500:]}")
    return best


def block(cmds, repeat, label):
    print(f"\n{label}; uptime: {os.popen('uptime').read().strip()}")
    times = {}
    for name, cmd in cmds.items():
        times[name] = best_time(cmd, repeat)
        print(f"  {name:<28}{times[name]:>7.2f} s", flush=True)
    return times


def main():
    args = dict(a.split("=", 1) for a in sys.argv[1:] if "=" in a)
    repeat = int(args.get("repeat", 3))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cmds = commands(tmp)
        subprocess.run([sys.executable, "-m", "cli.main", "solve", "-o", str(tmp / "theory.h5"), "-q"], cwd=ROOT,
                       check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        for cmd in cmds.values():  # warm the numba cache
            best_time(cmd, 1)
        idle = block(cmds, repeat, "idle")
        if args.get("busy", "1") != "1":
            return
        with cpu_burners(2, settle=2.0):
            busy = block(cmds, repeat, "busy (two CPU-burning processes)")
    print("\nbusy / idle:")
    for name in cmds:
        print(f"  {name:<28}{busy[name] / idle[name]:>6.2f}x")


if __name__ == "__main__":
    main()
