"""``python -m validation [--quick] [--only NAME ...] [--seed S] --out DIR``

Runs the experiments of :data:`validation.experiments.REGISTRY` (all, or those named), writes a
PNG per figure and ``report.md`` (every figure embedded with its numbers: deviations, noise
floors, tolerances, pass/fail, wall time, machine) into DIR, and exits with status 1 when any
tolerance fails or an experiment errs (skipped experiments do not fail the run).
"""
from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback
from pathlib import Path

from ._common import Context, Outcome
from .experiments import REGISTRY
from .report import write_report


def parse(argv=None):
    ap = argparse.ArgumentParser(prog="python -m validation", description=__doc__.split("\n\n")[1])
    ap.add_argument("--quick", action="store_true", help="small d, few replicas (the test-suite size)")
    ap.add_argument("--only", nargs="+", metavar="NAME", choices=sorted(REGISTRY),
                    help=f"run only these experiments ({', '.join(REGISTRY)})")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch and numba threads (default 1: the problems are small, and one thread stays fast "
                         "on a busy machine)")
    ap.add_argument("--seed", type=int, default=0, help="added to every problem's seed (default 0)")
    ap.add_argument("--out", required=True, type=Path, help="output folder (created; files in it are replaced)")
    return ap.parse_args(argv)


def run_one(ctx: Context, name: str) -> Outcome:
    entry = REGISTRY[name]
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        module = importlib.import_module(f".experiments.{entry.module}", __package__)
        outcome = module.run(ctx, name, entry.title, **entry.kwargs)
    except Exception as err:  # an experiment that crashes is a failure, reported with its traceback
        outcome = Outcome(name, entry.title, status="error", message=f"{type(err).__name__}: {err}")
        outcome.table("traceback", "```\n" + traceback.format_exc() + "```")
    outcome.wall_s = time.perf_counter() - t0
    outcome.cpu_s = time.process_time() - c0
    return outcome


def main(argv=None) -> int:
    args = parse(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    import numba
    import torch

    torch.set_num_threads(args.threads)
    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    ctx = Context(out=args.out, quick=args.quick, seed=args.seed)
    names = [n for n in REGISTRY if args.only is None or n in args.only]
    t0, c0 = time.perf_counter(), time.process_time()
    outcomes = []
    for name in names:
        print(f"[validation] {name} ...", flush=True)
        o = run_one(ctx, name)
        outcomes.append(o)
        bad = [c for c in o.checks if not c.passed]
        print(f"[validation] {name}: {o.verdict} ({len(o.checks) - len(bad)}/{len(o.checks)} checks, {o.wall_s:.1f} s wall, "
              f"{o.cpu_s:.1f} s CPU)"
              + (f" {o.message}" if o.message else ""), flush=True)
        for c in bad:
            print(f"    FAILED {c.label}: {c.value:.4g} vs tolerance {c.tolerance:.4g}", flush=True)
        # the report so far after every experiment: a long run that is stopped still leaves one
        write_report(ctx, outcomes, time.perf_counter() - t0, time.process_time() - c0,
                     argv if argv is not None else sys.argv[1:], pending=names[len(outcomes):])
    path = write_report(ctx, outcomes, time.perf_counter() - t0, time.process_time() - c0,
                        argv if argv is not None else sys.argv[1:])
    failed = [o.name for o in outcomes if o.failed]
    print(f"[validation] report: {path}; " + (f"FAILED: {', '.join(failed)}" if failed else "all passed"), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
