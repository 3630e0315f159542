"""Finite-d simulation speed: SGD steps per second and sampler throughput, CPU and CUDA.

Usage: python validation/benchmark_simulate.py [device=auto]
Prints, for d = 1000 (and 4000), the time of 10^4 SGD steps for 1, 8 and 64 replicas batched,
and of the d-dim sampler (49 steps) for 4000 samples per replica.
"""
from __future__ import annotations

import time

import numpy as np
import torch

import hdae
from hdae import schedules, targets
from hdae.simulation.run import describe_device, resolve_device
from hdae.simulation.sampler import sample_finite_d
from hdae.simulation.sgd import MixtureSampler, OnlineSGD

from _common import arg


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def main():
    dev = resolve_device(arg(1, "auto"))
    print(f"device: {describe_device(dev)}, torch {torch.__version__}")
    p = hdae.load_problem(example="fig1")
    tr = p.train
    for dtype in (torch.float64, torch.float32):
        for d in (1000, 4000):
            real = targets.realise(p.target, p.observation_basis, d)
            sgd = OnlineSGD(MixtureSampler(real, dev, dtype), tr.interpolant.alpha(tr.times),
                            tr.interpolant.beta(tr.times), tr.time_weights, tr.lr, tr.weight_decay,
                            p.model.activation, dev, dtype)
            for reps in (1, 8, 64):
                w = torch.as_tensor(targets.initial_weights(p.target, p.init, 4, d, 0, reps), dtype=dtype, device=dev)
                b = torch.zeros(reps, dtype=dtype, device=dev)
                gen = torch.Generator(device=dev).manual_seed(0)
                sgd.run(w, b, 256, gen)
                sync(dev)
                n = 10_000
                t = time.perf_counter()
                sgd.run(w, b, n, gen)
                sync(dev)
                el = time.perf_counter() - t
                coeffs = schedules.sampler_coefficients(tr.interpolant, p.sample.noise, p.sample.grid)
                basis = torch.as_tensor(real.basis, dtype=dtype, device=dev)
                t = time.perf_counter()
                sample_finite_d(w, b, coeffs, 4000, basis, p.model.activation, gen)
                sync(dev)
                es = time.perf_counter() - t
                print(f"{str(dtype)[6:]:>8} d={d:>5} replicas={reps:>3}: 10^4 SGD steps {el:7.2f} s "
                      f"({n * reps / el:>10.0f} replica-steps/s); sampler 4000 x 49 steps {es:6.2f} s")


if __name__ == "__main__":
    main()
