"""Finite-d SGD with weight snapshots, from the library's pieces (``hdae.targets.realise`` /
``initial_weights``, ``hdae.simulation.sgd.OnlineSGD``, ``summary_statistics``): what
``hdae.simulate`` does, but keeping the trained weights at chosen times (for the d-dim images of
Fig. 4) and accepting any target object with ``draw(shape, generator)`` and ``.d`` (the real
MNIST sevens of Fig. 7). Same initial weights and generator seeding as ``hdae.simulate``."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from hdae import targets
from hdae.schedules import checkpoint_steps
from hdae.simulation.sgd import MixtureSampler, OnlineSGD, summary_statistics


@dataclass
class Trained:
    theta: np.ndarray  # (n_ckpt,)
    stats: dict  # name -> (n_rep, n_ckpt, ...) as in TrainRecord
    snapshots: dict  # SGD step -> (w (n_rep, d, r), b (n_rep,)) torch tensors
    realised: targets.RealisedTarget
    w0: np.ndarray


def train(problem, replicas: int = 1, target=None, snapshot_thetas=(), chunk: int = 256) -> Trained:
    """Online SGD of ``problem``'s DAE on ``target`` (default: the problem's own Gaussian mixture
    in d dimensions); statistics at ``train.checkpoints``, weights kept at ``snapshot_thetas``."""
    d, tr = problem.d, problem.train
    dev, dtype = torch.device("cpu"), getattr(torch, problem.simulation.dtype)
    realised = targets.realise(problem.target, problem.observation_basis, d)
    w0 = targets.initial_weights(problem.target, problem.init, problem.model.width, d, problem.seed, replicas)
    source = target if target is not None else MixtureSampler(realised, dev, dtype)
    sgd = OnlineSGD(source, tr.interpolant.alpha(tr.times), tr.interpolant.beta(tr.times), tr.time_weights, tr.lr,
                    tr.weight_decay, problem.model.activation, dev, dtype)
    # the data generator hdae.simulate uses on CPU (a numpy Generator seeds the SGD kernel's draws)
    generator = np.random.default_rng(problem.seed)
    as_t = lambda a: torch.as_tensor(a, dtype=dtype, device=dev)  # noqa: E731
    eig, cents, basis = as_t(realised.eigenvalues), as_t(realised.centroids), as_t(realised.basis)
    w, b = as_t(w0).clone(), torch.full((replicas,), float(problem.model.skip), dtype=dtype)
    steps = checkpoint_steps(tr.checkpoints, d, tr.lr)
    keep = set(checkpoint_steps(snapshot_thetas, d, tr.lr).tolist()) if len(snapshot_thetas) else set()
    records, snaps, done = [], {}, 0
    for step in steps:
        failed = sgd.run(w, b, int(step - done), generator, chunk)
        if failed is not None:
            raise RuntimeError(f"SGD diverged at step {done + failed + 1}")
        done = int(step)
        records.append({k: v.numpy() for k, v in summary_statistics(w, b, eig, cents, basis).items()})
        if done in keep:
            snaps[done] = (w.clone(), b.clone())
    stats = {k: np.stack([r[k] for r in records], axis=1) for k in records[0]}
    return Trained(2 * tr.lr * steps / d, stats, snaps, realised, w0)


class RealImages:
    """Target that cycles through real data (e.g. MNIST sevens) in the coordinates of the
    Gaussian-equivalent target: x = V^T (image/pixel_scale - mean), V the eigenvectors of the
    empirical covariance in descending eigenvalue order (how ``hdae.targets`` realises the mnist
    target: coordinate i is the i-th principal direction). Each replica walks through its own
    random permutation of the images, a fresh one per epoch.

    images (n, d) raw pixels. Attributes: d, mean (d,) and basis V (d, d) in scaled pixel units,
    eigenvalues (d,) (equal to ``hdae.targets.mnist_spectrum``)."""

    def __init__(self, images: np.ndarray, pixel_scale: float, dtype=torch.float64):
        x = images.astype(float) / pixel_scale
        self.mean = x.mean(0)
        x = x - self.mean
        ev, vec = np.linalg.eigh(x.T @ x / len(x))
        order = np.argsort(-ev, kind="stable")
        self.eigenvalues, self.basis = np.clip(ev[order], 0, None), vec[:, order]
        self.coords = torch.as_tensor(x @ self.basis, dtype=dtype)  # (n, d)
        self.n, self.d = self.coords.shape
        self.pixel_scale = pixel_scale
        self._order, self._pos = {}, {}

    def draw(self, shape: tuple, generator) -> torch.Tensor:
        """x1 of shape ``shape + (d,)``: shape = (steps, replicas); replica j takes its next images
        (``generator``: a torch or numpy Generator, which shuffles each epoch)."""
        steps, reps = shape
        idx = torch.empty((steps, reps), dtype=torch.long)
        for j in range(reps):
            got = 0
            while got < steps:
                if self._pos.get(j, self.n) >= self.n:
                    order = (torch.from_numpy(generator.permutation(self.n)) if isinstance(generator, np.random.Generator)
                             else torch.randperm(self.n, generator=generator))
                    self._order[j], self._pos[j] = order, 0
                take = min(steps - got, self.n - self._pos[j])
                idx[got:got + take, j] = self._order[j][self._pos[j]:self._pos[j] + take]
                self._pos[j] += take
                got += take
        return self.coords[idx]

    def to_pixels(self, x: np.ndarray) -> np.ndarray:
        """Coordinates (..., d) back to raw pixel values (..., d) (mean added back)."""
        return (np.asarray(x) @ self.basis.T + self.mean) * self.pixel_scale
