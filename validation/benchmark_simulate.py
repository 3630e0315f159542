"""Finite-d simulation speed, whole processes: `hdae simulate` against the plain torch autograd loop.

Usage: python validation/benchmark_simulate.py [busy=0] [baselines=1] [steps=N] [sizes=2000x2:100000,2000x4:100000,10000x2:100000,10000x4:100000]

For every (d, r) of ``sizes`` (D x R : steps), the same number of online-SGD steps in both processes,
on fig2's trimodal mixture (tanh, t = 1/2); ``steps=N`` gives every size N steps. The default step
counts make the loop run for minutes, so that a process's one-time costs (importing torch, ~1.5 s,
loading numba's cache, ~1 s) weigh in both as they would in a real run:

* loader (the issue's reference, ``--baseline``): a fresh process running the loop as the paper's
  authors wrote it (HugoCui/AE_diffusion, Simulations.ipynb): an ``nn.Module`` DAE, the (x0, x1)
  pairs pre-drawn into a torch ``Dataset`` and iterated by ``DataLoader(batch_size=1, shuffle=True)``,
  the loss of section 1, ``loss.backward()`` and ``torch.optim.SGD.step()`` (learning rate eta for w
  with weight decay lambda/d, eta/d^2 for b), torch's default dtype (float32) and threads;
* plain (``--plain-baseline``): the same loop with a fresh (x0, x1) drawn by torch every step and
  no DataLoader: leaner than the authors' (about 2x faster); its ratio is printed too;
* hdae: a fresh process running ``hdae simulate --example fig2 --d D --set model.width=R --no-sample``
  with ``train.tau`` set so that it takes the same number of steps (the CPU path: the numba kernel
  of hdae/simulation/kernels.py, ziggurat draws), writing its HDF5 file.

Printed per row: whole-process wall times and their ratio, and the steps/s inside a process
(start-up excluded): the baseline's loop timed by itself, and hdae's ``simulate()`` timed in a
separate process after a short warm-up run. With busy=1 the rows are
repeated while two other processes keep both cores busy (``while True: pass``), and the
slowdown busy/idle is printed (target: at most 2.2x for hdae). With baselines=0 only hdae's
processes run (the baselines take minutes a row): hdae idle against hdae busy. The load average is printed before each block: this 2-core
machine is shared, so absolute times are noisy; the ratios of one run are what to compare.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cpu_burners  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def baseline(d: int, r: int, steps: int, loader: bool = True) -> None:
    """The plain autograd loop (imports torch only), printing its loop's steps/s.

    loader=True: the loop the issue measured, as the paper's authors wrote it (HugoCui/AE_diffusion,
    Simulations.ipynb): the (x0, x1) pairs pre-drawn into a ``Dataset``, iterated by a
    ``DataLoader(batch_size=1, shuffle=True)``; loader=False: fresh draws inside the loop, no
    DataLoader (a leaner loop than the authors'). Drawing the data is inside the timed loop for both."""
    import math

    import torch
    from torch import nn
    from torch.utils.data import DataLoader, Dataset

    class DAE(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(0.1 * torch.randn(d, r))
            self.b = nn.Parameter(torch.zeros(()))

        def forward(self, x):
            return self.b * x + torch.tanh(x @ self.w / math.sqrt(d)) @ self.w.T / math.sqrt(d)

    torch.manual_seed(2)
    model = DAE()
    eta, lam, t = 0.2, 1.5, 0.5
    opt = torch.optim.SGD([{"params": [model.w], "lr": eta, "weight_decay": lam / d},
                           {"params": [model.b], "lr": eta / d**2}])
    mu = torch.zeros(3, d)
    mu[0, 0], mu[1, 1], mu[2, 0] = 3.0, -3.0, -3.0

    def step(x0, x1):
        loss = ((model((1 - t) * x0 + t * x1) - x1) ** 2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()

    start = time.perf_counter()
    if loader:
        class Pairs(Dataset):
            def __init__(self, n):
                self.x0 = torch.randn(n, d)
                self.x1 = mu[torch.randint(3, (n,))] + torch.randn(n, d)

            def __getitem__(self, i):
                return self.x0[i], self.x1[i]

            def __len__(self):
                return len(self.x0)

        for x0, x1 in DataLoader(Pairs(steps), batch_size=1, shuffle=True):
            step(x0, x1)
    else:
        for _ in range(steps):
            x0 = torch.randn(1, d)
            step(x0, mu[torch.randint(3, (1,))] + torch.randn(1, d))
    print(f"loop {steps / (time.perf_counter() - start):.1f} steps/s")


def hdae_loop(d: int, r: int, steps: int) -> None:
    """hdae's simulate() in-process after a short warm-up run (numba cache loaded), printing steps/s."""
    import hdae
    from hdae.parallel import set_threads

    set_threads(None)
    p = hdae.load_problem(example="fig2", d=d, overrides=[f"model.width={r}", "train.checkpoints=2", "sample.thetas=[]",
                                                          f"train.tau={2 * 0.2 * steps / d!r}"])
    hdae.simulate(p.with_overrides(f"train.tau={2 * 0.2 * 10 / d!r}"), sample=False, device="cpu")
    res = hdae.simulate(p, sample=False, device="cpu")
    print(f"loop {res.attrs['n_steps'] / res.wall_time_s:.1f} steps/s")


def _timed(cmd: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    wall = time.perf_counter() - start
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{out.stderr[-2000:]}")
    return wall, out.stdout + out.stderr


def run_hdae(d: int, r: int, steps: int, path: Path) -> tuple[float, float]:
    tau = 2 * 0.2 * steps / d  # theta = 2 eta mu / d
    wall, text = _timed([sys.executable, "-m", "cli.main", "simulate", "--example", "fig2", "--d", str(d),
                         "--set", f"model.width={r}", "--set", f"train.tau={tau!r}", "--set", "train.checkpoints=2", "--set", "sample.thetas=[]",
                         "--no-sample", "-o", str(path), "--force"])
    _, text = _timed([sys.executable, __file__, "--hdae-loop", str(d), str(r), str(steps)])
    return wall, float(re.search(r"loop ([0-9.]+) steps/s", text).group(1))


def run_baseline(d: int, r: int, steps: int, flag: str = "--baseline") -> tuple[float, float]:
    wall, text = _timed([sys.executable, __file__, flag, str(d), str(r), str(steps)])
    return wall, float(re.search(r"loop ([0-9.]+) steps/s", text).group(1))


def block(sizes, label, baselines=True):
    print(f"\n{label}; uptime: {os.popen('uptime').read().strip()}")
    print("whole processes (s) and their ratio to hdae; steps/s inside the process (start-up excluded)")
    print(f"{'d':>6} {'r':>2} {'steps':>7} | {'loader s':>8} {'plain s':>8} {'hdae s':>7} {'ratio':>6} {'(plain)':>7} | "
          f"{'loader/s':>8} {'plain/s':>8} {'hdae/s':>8} {'ratio':>6} {'(plain)':>7}")
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for (d, r), steps in sizes.items():
            if baselines:
                wb, sb = run_baseline(d, r, steps)
                wp, sp = run_baseline(d, r, steps, "--plain-baseline")
            else:
                wb = sb = wp = sp = float("nan")
            wh, sh = run_hdae(d, r, steps, Path(tmp) / "sim.h5")
            rows[d, r] = (wb, wh)
            print(f"{d:>6} {r:>2} {steps:>7} | {wb:>8.2f} {wp:>8.2f} {wh:>7.2f} {wb / wh:>6.1f} {wp / wh:>7.1f} | "
                  f"{sb:>8.0f} {sp:>8.0f} {sh:>8.0f} {sh / sb:>6.1f} {sh / sp:>7.1f}", flush=True)
    return rows


def main():
    args = dict(a.split("=", 1) for a in sys.argv[1:] if "=" in a)
    sizes = {}
    for item in args.get("sizes", "2000x2:100000,2000x4:100000,10000x2:100000,10000x4:100000").split(","):
        dr, _, n = item.partition(":")
        sizes[tuple(int(v) for v in dr.split("x"))] = int(args.get("steps", n or 20000))
    baselines = args.get("baselines", "1") == "1"
    idle = block(sizes, "idle (no extra load)", baselines)
    if args.get("busy", "0") == "1":
        with cpu_burners(2, settle=1.0):
            busy = block(sizes, "busy (two CPU-burning processes)", baselines)
        print("\nslowdown busy/idle (whole process, target <= 2.2x): " + ", ".join(
            f"d={d} r={r}: " + (f"baseline {busy[d, r][0] / idle[d, r][0]:.2f}x, " if baselines else "")
            + f"hdae {busy[d, r][1] / idle[d, r][1]:.2f}x" for d, r in sizes))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] in ("--baseline", "--plain-baseline", "--hdae-loop"):
        size = (int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
        if sys.argv[1] == "--hdae-loop":
            hdae_loop(*size)
        else:
            baseline(*size, loader=sys.argv[1] == "--baseline")
    else:
        main()
