"""Where a simulation step's time goes on CPU: the draws, the kernel, and the overlap of the two.

Usage: python validation/benchmark_draws.py [d=10000] [r=2] [chunk=50]

For one replica of fig2 at dimension d and width r, over one chunk of steps (best of 3):
* draws: :func:`hdae.simulation.normals.fill_training` (x0 and the mixture's x1: 2d normals a step);
* kernel: :func:`hdae.simulation.kernels.sgd_steps` on those data;
* overlapped: :func:`hdae.simulation.kernels.sgd_steps_overlapped`, the kernel on one thread while
  the other draws the next chunk, the rows shared between the two threads as they come;
* the machine's second-core factor: the throughput of two threads running a vectorised loop
  against one thread (2.0 on two real cores; near 1 where two vCPUs share vector units).
"""
from __future__ import annotations

import sys
import time

import numpy as np
from numba import njit, prange


@njit(fastmath=True)
def _vector_loop(a, reps):
    s = 0.0
    for _ in range(reps):
        for k in range(a.shape[0]):
            a[k] = a[k] * 0.999 + 0.001
        s += a[0]
    return s


@njit(parallel=True)
def _two_vector_loops(a, b, reps, out):
    for t in prange(2):
        out[t] = _vector_loop(a if t == 0 else b, reps)


def _best(f, repeat=3):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return min(times)


def main():
    import hdae
    from hdae import targets
    from hdae.simulation import kernels, normals
    from hdae.simulation.sgd import MixtureSampler, OnlineSGD

    args = dict(a.split("=", 1) for a in sys.argv[1:] if "=" in a)
    d, r, m = int(args.get("d", 10000)), int(args.get("r", 2)), int(args.get("chunk", 50))
    p = hdae.load_problem(example="fig2", d=d, overrides=[f"model.width={r}"])
    rt = targets.realise(p.target, p.observation_basis)
    tr = p.train
    sgd = OnlineSGD(MixtureSampler(rt), tr.interpolant.alpha(tr.times), tr.interpolant.beta(tr.times),
                    tr.time_weights, tr.lr, tr.weight_decay, p.model.activation)
    mixture = (*sgd.target.arrays(), normals.ZIG_X, normals.ZIG_R, normals.ZIG_F)
    x0, x1, n0, n1 = (np.empty((m, 1, d)) for _ in range(4))
    keys = (np.uint64(1), np.uint64(2))
    w = targets.initial_weights(p.target, p.init, r, d, 5, 1)
    b, skip, failed = np.zeros(1), np.zeros(1, bool), np.empty(1, np.int64)
    step = (*sgd._np_times, sgd.lr, sgd.weight_decay, sgd.act_code)
    draw = lambda: normals.fill_training(n0, n1, 0, m, *keys, m, *mixture)  # noqa: E731
    state = (np.full((1, r, r), np.nan), np.empty((1, 2 * r, d)))  # the kernel's w^T w and scratch
    train = lambda: kernels.sgd_steps(w, b, x0, x1, *step, m, skip, failed, *state)  # noqa: E731
    normals.fill_training(x0, x1, 0, m, *keys, 0, *mixture)
    draw(), train()
    t_draw, t_train = _best(draw) / m, _best(train) / m

    def both():
        kernels.sgd_steps_overlapped(w, b, x0, x1, *step, m, skip, failed, *state, n0, n1, m, *keys, m, *mixture)
    both()
    t_both = _best(both) / m
    a, c, out = np.random.rand(2048), np.random.rand(2048), np.zeros(2)
    _vector_loop(a, 1), _two_vector_loops(a, c, 1, out)
    one = _best(lambda: _vector_loop(a, 100_000))
    two = _best(lambda: _two_vector_loops(a, c, 100_000, out))
    print(f"d = {d}, r = {r}, chunk of {m} steps, one replica (us per step):")
    print(f"  draws       {t_draw * 1e6:8.1f}  ({t_draw / (2 * d) * 1e9:.2f} ns per normal)")
    print(f"  kernel      {t_train * 1e6:8.1f}")
    print(f"  serial      {(t_draw + t_train) * 1e6:8.1f}")
    print(f"  overlapped  {t_both * 1e6:8.1f}  (perfect sharing of two cores: "
          f"{(t_draw + t_train) / 2 * 1e6:.1f})")
    print(f"second-core factor for vectorised loops: x{2 * one / two:.2f}")


if __name__ == "__main__":
    main()
