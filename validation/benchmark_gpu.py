"""Replica ensembles on a GPU: throughput of the torch SGD step, and the bandwidth it reaches.

Usage: python validation/benchmark_gpu.py [device=cuda] [dtype=float32] [d=1000,100000] [r=2]
                                          [steps=200] [fill=0.5] [max_replicas=65536]

Skips (exit 0, saying so) when ``device`` is cuda and no CUDA device is present; ``device=cpu``
runs the same measurement on torch's CPU step (a dry run of the script: the CPU simulation proper
is the numba kernel of `benchmark_simulate.py`).

For each d: fig2's trimodal mixture (tanh, t = 1/2) at width r, ensembles of n = 1, 4, 16, ...
replicas, up to the largest whose weights and one chunk of data fit in ``fill`` of the device's
free memory (or ``max_replicas``). Each ensemble runs ``steps`` online-SGD steps through
:meth:`hdae.simulation.sgd.OnlineSGD.run_replicas` (the path of `hdae simulate --device cuda`: data
drawn on the device by torch, chunk by chunk, the finiteness check per chunk), after one warm-up
chunk, synchronised before and after. Printed per row:

* replica-steps/s (n x steps / wall) and the time of one step of the whole ensemble;
* traffic: the least memory traffic a step must make, per replica (4 d + 2 d r) x itemsize bytes
  (the draws write x0 and x1, the step reads them, and reads and writes w), times the replica-steps
  per second, in GB/s;
* that traffic over the device's bandwidth, measured here as a large device-to-device copy
  (2 x bytes / time): how far the step is from being bound by memory. The torch step makes several
  passes over its tensors (about 30 kernels a step), so 100% is out of reach; a low share at small n
  means the launches, not the memory, bound the step (fill the device with more replicas).

Peak device memory (torch.cuda.max_memory_allocated) is printed per row on CUDA.
"""
from __future__ import annotations

import sys
import time


def copy_bandwidth(torch, device, dtype, nbytes: int) -> float:
    """Bytes/s of a device-to-device copy of ``nbytes`` (read + write counted), best of 5."""
    n = max(1, nbytes // torch.tensor([], dtype=dtype).element_size())
    a = torch.empty(n, dtype=dtype, device=device).normal_()
    b = torch.empty_like(a)
    best = float("inf")
    for _ in range(6):
        _sync(torch, device)
        t = time.perf_counter()
        b.copy_(a)
        _sync(torch, device)
        best = min(best, time.perf_counter() - t)
    del a, b
    return 2 * n * torch.tensor([], dtype=dtype).element_size() / best


def _sync(torch, device):
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def replica_counts(per_replica: int, budget: int, most: int) -> list[int]:
    """1, 4, 16, ... while n x per_replica bytes fit in ``budget`` and n <= ``most``."""
    counts, n = [], 1
    while n <= most and n * per_replica <= budget:
        counts.append(n)
        n *= 4
    return counts or [1]


def measure(torch, device, dtype, d: int, r: int, n: int, steps: int, chunk: int):
    """(replica-steps/s, peak bytes or None) of n replicas at (d, r) for ``steps`` steps."""
    import hdae
    from hdae import targets
    from hdae.simulation.sgd import MixtureSampler, OnlineSGD

    p = hdae.load_problem(example="fig2", d=d, overrides=[f"model.width={r}"])
    tr = p.train
    rt = targets.realise(p.target, p.observation_basis)
    sgd = OnlineSGD(MixtureSampler(rt, device, dtype), tr.interpolant.alpha(tr.times), tr.interpolant.beta(tr.times),
                    tr.time_weights, tr.lr, tr.weight_decay, p.model.activation, device, dtype, backend="torch")
    w0 = targets.initial_weights(p.target, p.init, r, d, 5, n)
    w = torch.as_tensor(w0, dtype=sgd.dtype, device=device).contiguous()
    b = torch.zeros(n, dtype=sgd.dtype, device=device)
    gen = torch.Generator(device).manual_seed(1)
    if str(device).startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    sgd.run_replicas(w, b, min(chunk, steps), gen, chunk)  # warm-up: kernels, allocator
    _sync(torch, device)
    t = time.perf_counter()
    failed = sgd.run_replicas(w, b, steps, gen, chunk)
    _sync(torch, device)
    wall = time.perf_counter() - t
    if (failed >= 0).any():
        raise RuntimeError(f"d = {d}, n = {n}: {(failed >= 0).sum()} replicas diverged")
    peak = torch.cuda.max_memory_allocated() if str(device).startswith("cuda") else None
    return n * steps / wall, peak


def main():
    args = dict(a.split("=", 1) for a in sys.argv[1:] if "=" in a)
    device = args.get("device", "cuda")
    import hdae  # noqa: F401  (sets the thread policy before torch starts)
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA device here: nothing measured (run this on a machine with one; device=cpu is a dry run)")
        return
    dtype = getattr(torch, args.get("dtype", "float32"))
    item = torch.tensor([], dtype=dtype).element_size()
    r, steps = int(args.get("r", 2)), int(args.get("steps", 200))
    dims = [int(v) for v in args.get("d", "1000,100000").split(",")]
    fill, most = float(args.get("fill", 0.5)), int(args.get("max_replicas", 65536))
    if device.startswith("cuda"):
        free, total = torch.cuda.mem_get_info()
        name = torch.cuda.get_device_name()
    else:
        free = total = 2 * 2**30  # the dry run stays small
        name = "cpu (torch step)"
    bandwidth = copy_bandwidth(torch, device, dtype, min(2**30, free // 4))
    print(f"device: {name}; memory free {free / 2**30:.1f} of {total / 2**30:.1f} GiB; {dtype}; "
          f"copy bandwidth {bandwidth / 1e9:.0f} GB/s")
    print(f"{'d':>7} {'r':>2} {'replicas':>8} {'chunk':>5} | {'replica-steps/s':>15} {'ms/step':>8} | "
          f"{'traffic GB/s':>12} {'of copy bw':>10} | {'peak GiB':>8}")
    for d in dims:
        # per replica: w, its copy for the rollback and the step's temporaries (about 8 d r), a chunk of 8
        # steps' x0 and x1 and the draws' temporaries (about 32 d)
        chunk = 8
        for n in replica_counts((8 * d * r + 4 * chunk * d) * item, int(fill * free), most):
            rate, peak = measure(torch, device, dtype, d, r, n, steps, chunk)
            traffic = rate * (4 * d + 2 * d * r) * item
            print(f"{d:>7} {r:>2} {n:>8} {chunk:>5} | {rate:>15.0f} {n / rate * 1e3:>8.3f} | {traffic / 1e9:>12.1f} "
                  f"{traffic / bandwidth:>10.1%} | " + (f"{peak / 2**30:>8.2f}" if peak is not None else f"{'-':>8}"),
                  flush=True)


if __name__ == "__main__":
    main()
