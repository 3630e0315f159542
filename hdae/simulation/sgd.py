"""Online SGD of the tied two-layer DAE in d dimensions, batched over independent replicas.

Exactly the definitions of section 1 of the derivation note:

    f(x) = b x + w sigma(w^T x/sqrt d)/sqrt d,            w: (d, r), b scalar
    l    = sum_j omega_j || f(x_{t_j}) - x1 ||^2,          x_t = alpha_t x0 + beta_t x1
    w   <- w - eta (grad_w l + (lambda/d) w),    b <- b - (eta/d^2) dl/db,
    theta = 2 eta mu / d after mu steps,

with a fresh (x0, x1) at every step (batch size 1) for each replica. The gradient is the
closed form of section 3 (checked against torch autograd in the tests):

    grad_w l = (2/sqrt d)(x0 v0^T - x1 v1^T) + (2/d) w sum_t omega_t sigma_t sigma_t^T,
    v0 = sum_t omega_t alpha_t (b sigma_t + c_t),  v1 = sum_t omega_t ((1 - b beta_t) sigma_t - beta_t c_t),
    c_t = (b h_t - lam1 + Q sigma_t) * sigma'(h_t),  h_t = alpha_t lam0 + beta_t lam1,

where lam0 = w^T x0/sqrt d, lam1 = w^T x1/sqrt d and Q = w^T w/d.

On CPU, :meth:`OnlineSGD.run` runs whole chunks of steps in the numba kernel of
:mod:`hdae.simulation.kernels` (same update, same draws, float rounding apart), on numpy arrays
(or CPU tensors), with x0 and a mixture's x1 from counter-based streams keyed by a numpy Generator
(:mod:`hdae.simulation.normals`): that path never imports torch. On CUDA it runs :meth:`OnlineSGD.step` on torch tensors (the
torch step also runs on CPU tensors: the tests' reference).
"""
from __future__ import annotations

import math
import sys

import numpy as np

from .. import activations


def is_torch(x) -> bool:
    """Whether ``x`` is a torch tensor (without importing torch: a program that never made one
    never loaded it)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def dtype_name(dtype) -> str:
    """'float64' or 'float32' from a torch dtype, a numpy dtype or a name."""
    return str(dtype).replace("torch.", "") if "torch." in str(dtype) else np.dtype(dtype).name


def device_type(device) -> str:
    """'cpu' or 'cuda' from a torch.device, a string such as 'cuda:0', or None (CPU)."""
    return "cpu" if device is None else str(getattr(device, "type", device)).split(":")[0]


def _torch_dtype(name: str):
    import torch

    return getattr(torch, name)


def _np_of(x):
    """A numpy view of a CPU tensor (shared memory), or the numpy array itself."""
    return x.numpy() if is_torch(x) else x


class MixtureSampler:
    """Draws x1 ~ sum_c pi_c N(mu_c, diag(s_c)) in d dimensions.

    ``draw(shape, generator)`` takes a numpy Generator (a float64/float32 numpy array: the CPU
    kernel's fast path, no torch) or a torch.Generator (a tensor on the generator's device; torch
    is imported only then)."""

    def __init__(self, realised, device="cpu", dtype="float64"):
        self.device, self.dtype_name = device, dtype_name(dtype)
        self.d = realised.d
        self._realised = realised
        self._np = (np.cumsum(np.asarray(realised.weights, dtype=float)), np.ascontiguousarray(realised.centroids,
                    dtype=float), np.sqrt(np.asarray(realised.eigenvalues, dtype=float)))
        self._np_dtype = np.dtype(self.dtype_name)
        self._torch = {}  # device -> (weights, centroids, std) tensors, made on first torch draw

    def arrays(self):
        """(cumulative weights (K,), centroids (K, d), standard deviations (K, d)) as float64 arrays:
        the mixture for the numba draws."""
        return self._np

    def _tensors(self, device):
        import torch

        key = str(torch.device(device))
        if key not in self._torch:
            rt, dt = self._realised, _torch_dtype(self.dtype_name)
            as_t = lambda a: torch.as_tensor(a, dtype=dt, device=device)  # noqa: E731
            self._torch[key] = (as_t(rt.weights), as_t(rt.centroids), as_t(rt.eigenvalues).sqrt())
        return self._torch[key]

    def draw(self, shape: tuple, generator):
        """x1 of shape ``shape + (d,)``: for a numpy Generator, samples 0, 1, ... (in C order) of the
        counter-based mixture stream keyed by one ``generator.integers(2**63)``
        (:func:`hdae.simulation.normals.fill_mixture`)."""
        n = math.prod(shape)
        if isinstance(generator, np.random.Generator):
            from . import normals

            x = np.empty((n, self.d), dtype=self._np_dtype)
            normals.fill_mixture_rows(x, np.uint64(generator.integers(2**63)), *self.arrays(), normals.ZIG_X,
                                      normals.ZIG_R, normals.ZIG_F)
            return x.reshape(*shape, self.d)
        import torch

        weights, centroids, std = self._tensors(generator.device)
        c = torch.multinomial(weights, n, replacement=True, generator=generator)
        z = torch.randn((n, self.d), generator=generator, device=weights.device, dtype=weights.dtype)
        return (centroids[c] + std[c] * z).reshape(*shape, self.d)


class OnlineSGD:
    """The SGD dynamics for a batch of replicas.

    Parameters: ``target`` has ``draw(shape, generator)``; ``alphas, betas, omegas`` are the
    training-time grid (T,); ``lr`` eta, ``weight_decay`` lambda; ``activation`` a name;
    ``device`` 'cpu', 'cuda' or a torch.device, ``dtype`` a torch or numpy dtype or its name.

    The weights w (n, d, r) and b (n,) given to :meth:`run` are numpy arrays or torch tensors,
    updated in place. backend 'kernel' (the default on CPU) runs the numba kernel and needs no
    torch for numpy weights; 'torch' (the default on CUDA) runs :meth:`step` and imports torch.
    """

    def __init__(self, target, alphas, betas, omegas, lr: float, weight_decay: float, activation: str,
                 device="cpu", dtype="float64", backend: str = "auto"):
        self.target = target
        self.d = target.d
        self._np_times = tuple(np.asarray(v, dtype="float64").reshape(-1).copy() for v in (alphas, betas, omegas))
        self.lr, self.weight_decay = float(lr), float(weight_decay)
        self.activation = activation
        self.act_code = activations.code(activation)
        self.device, self.dtype_name = device, dtype_name(dtype)
        self.device_type = device_type(device)
        if backend not in ("auto", "kernel", "torch"):
            raise ValueError(f"backend must be auto, kernel or torch, not {backend!r}")
        if backend == "kernel" and self.device_type != "cpu":
            raise ValueError("the SGD kernel runs on CPU only; use backend='torch' on " + str(self.device))
        self._t = None
        self._overlapped_chunks = 0  # chunks trained while the next was drawn on a second thread (see _run_keyed)
        self.backend = ("kernel" if self.device_type == "cpu" else "torch") if backend == "auto" else backend

    # ------------------------------------------------------------------ torch views, made on first use
    @property
    def dtype(self):
        """The torch dtype (imports torch)."""
        return _torch_dtype(self.dtype_name)

    def _torch_parts(self):
        if self._t is None:
            import torch

            as_t = lambda v: torch.as_tensor(v, dtype=self.dtype, device=self.device)  # noqa: E731
            self._t = (*(as_t(v) for v in self._np_times), *activations.torch_pair(self.activation))
        return self._t

    alphas = property(lambda self: self._torch_parts()[0])
    betas = property(lambda self: self._torch_parts()[1])
    omegas = property(lambda self: self._torch_parts()[2])
    sigma = property(lambda self: self._torch_parts()[3])
    dsigma = property(lambda self: self._torch_parts()[4])

    # ------------------------------------------------------------------ one step, exact
    def gradient(self, w, b, x0, x1):
        """(grad_w l, dl/db) for replicas: w (n, d, r), b (n,), x0 and x1 (n, d) torch tensors."""
        import torch

        d = self.d
        sd = math.sqrt(d)
        a, be, om = self.alphas, self.betas, self.omegas  # (T,)
        lam0 = torch.bmm(x0.unsqueeze(1), w).squeeze(1) / sd  # (n, r)
        lam1 = torch.bmm(x1.unsqueeze(1), w).squeeze(1) / sd
        Q = torch.bmm(w.transpose(1, 2), w) / d  # (n, r, r)
        h = a[None, :, None] * lam0[:, None, :] + be[None, :, None] * lam1[:, None, :]  # (n, T, r)
        s, sp = self.sigma(h), self.dsigma(h)
        bb = b[:, None, None]
        c = (bb * h - lam1[:, None, :] + torch.einsum("nab,ntb->nta", Q, s)) * sp
        v0 = torch.einsum("t,ntr->nr", om * a, bb * s + c)
        v1 = torch.einsum("t,ntr->nr", om, (1 - bb * be[None, :, None]) * s - be[None, :, None] * c)
        S = torch.einsum("t,nta,ntb->nab", om, s, s)
        grad = (2 / sd) * (x0.unsqueeze(2) * v0.unsqueeze(1) - x1.unsqueeze(2) * v1.unsqueeze(1))
        grad = grad + (2 / d) * torch.bmm(w, S)
        n00, n01, n11 = (x0 * x0).sum(1), (x0 * x1).sum(1), (x1 * x1).sum(1)  # (n,)
        xt2 = a[None] ** 2 * n00[:, None] + 2 * (a * be)[None] * n01[:, None] + be[None] ** 2 * n11[:, None]
        x1xt = a[None] * n01[:, None] + be[None] * n11[:, None]
        dldb = 2 * ((b[:, None] * xt2 + (s * h).sum(2) - x1xt) * om[None]).sum(1)
        return grad, dldb

    def loss(self, w, b, x0, x1):
        """Per-replica loss l (n,) straight from the definition (for autograd checks; torch tensors)."""
        import torch

        sd = math.sqrt(self.d)
        total = 0.0
        for a, be, om in zip(self.alphas, self.betas, self.omegas):
            xt = a * x0 + be * x1
            f = b[:, None] * xt + torch.bmm(self.sigma(torch.bmm(xt.unsqueeze(1), w) / sd), w.transpose(1, 2)).squeeze(1) / sd
            total = total + om * ((f - x1) ** 2).sum(1)
        return total

    def step(self, w, b, x0, x1):
        """One SGD step in place on w (n, d, r) and b (n,)."""
        grad, dldb = self.gradient(w, b, x0, x1)
        w.mul_(1.0 - self.lr * self.weight_decay / self.d).sub_(grad, alpha=self.lr)
        b.sub_(dldb, alpha=self.lr / self.d**2)

    def draw(self, m: int, n: int, generator):
        """Data for ``m`` steps of ``n`` replicas: x0 ~ N(0, I_d) of shape (m, n, d), then
        x1 = target.draw((m, n), generator). A torch.Generator gives tensors, a numpy Generator
        numpy arrays; both backends take either, so one generator gives one trajectory.

        With a numpy Generator and a mixture target this is ``training_data(data_keys(generator),
        0, m, n)``: what :meth:`run_replicas` trains on for m steps."""
        if isinstance(generator, np.random.Generator):
            if self.keyed:
                return self.training_data(self.data_keys(generator), 0, m, n)
            from .normals import standard_normal

            x0 = standard_normal(np.empty((m, n, self.d), dtype=np.dtype(self.dtype_name)), generator.integers(2**63))
        else:
            import torch

            x0 = torch.randn((m, n, self.d), generator=generator, device=generator.device, dtype=self.dtype)
        x1 = self.target.draw((m, n), generator)
        return x0, x1

    # ------------------------------------------------------------------ counter-based training data
    @property
    def keyed(self) -> bool:
        """Whether the CPU data are counter-based streams (a mixture target): replica i's data at
        step s are a function of (keys, i, s) alone, whatever the chunks, threads or replica count."""
        return hasattr(self.target, "arrays")

    @staticmethod
    def data_keys(generator):
        """The two stream keys of one :meth:`run_replicas` call (x0, x1), drawn from a numpy Generator."""
        return np.uint64(generator.integers(2**63)), np.uint64(generator.integers(2**63))

    def training_data(self, keys, start: int, m: int, n: int, out=None):
        """(x0, x1) of shape (m, n, d) for steps start .. start + m - 1 of the streams ``keys``
        (:func:`hdae.simulation.normals.fill_training`), in ``out`` if given."""
        from . import normals

        if out is None:
            out = tuple(np.empty((m, n, self.d), dtype=np.dtype(self.dtype_name)) for _ in range(2))
        normals.fill_training_parallel(*out, *keys, start, *self.target.arrays(), normals.ZIG_X, normals.ZIG_R,
                                       normals.ZIG_F)
        return out

    def default_generator(self, seed: int, torch_generator=None):
        """The data generator for :meth:`run`: a numpy Generator (PCG64) for the CPU kernel, which
        keys the counter-based normals of :mod:`hdae.simulation.normals`, else ``torch_generator``
        (or a new one) on the device."""
        if self.backend == "kernel":
            return np.random.default_rng(seed)
        import torch

        return torch_generator if torch_generator is not None else torch.Generator(self.device).manual_seed(seed)

    def run(self, w, b, n_steps: int, generator, chunk: int = 256):
        """``n_steps`` steps in place, noise drawn ``chunk`` steps at a time.

        Returns None, or the 0-based index of the first step after which some replica's
        weights (or w^T w) were non-finite (then w, b are left at the state just before that step)."""
        failed = self.run_replicas(w, b, n_steps, generator, chunk, stop_all=True)
        bad = failed[failed >= 0]
        return int(bad.min()) if bad.size else None

    def run_replicas(self, w, b, n_steps: int, generator, chunk: int = 256, skip=None, stop_all: bool = False):
        """``n_steps`` steps in place with a status per replica.

        w (n, d, r) and b (n,): numpy arrays or torch tensors (of one kind). Returns an int64
        array (n,): -1 for a replica that completed the steps, else the 0-based step after which it
        became non-finite; such a replica is left at the state just before that step and the others
        go on (``stop_all``: every replica stops there instead). ``skip`` (n,) bool marks replicas
        to leave untouched (e.g. diverged earlier); they still consume their draws, so a replica's
        trajectory never depends on another's fate.

        On the kernel with a numpy Generator and a mixture target the data come from two stream keys
        drawn at the start (:meth:`data_keys`): chunks of at most ``chunk`` steps, the next drawn on a
        second core while the kernel trains on the current one when a single replica leaves a core
        free; the result depends on neither."""

        n = w.shape[0]
        skip = np.zeros(n, dtype=bool) if skip is None else np.asarray(skip, dtype=bool).copy()
        failed = np.full(n, -1, dtype=np.int64)
        if self.backend == "torch" and not is_torch(w):  # numpy weights on the torch step: shared-memory views
            import torch

            w, b = torch.from_numpy(w), torch.from_numpy(b)
        keys = self.data_keys(generator) if self.keyed and isinstance(generator, np.random.Generator) else None
        gram = work = None
        if self.backend == "kernel":  # the kernel's state: w^T w, carried from chunk to chunk; scratch w^T
            gram = np.full((n, w.shape[2], w.shape[2]), np.nan)
            work = np.empty((n, 2 * w.shape[2], w.shape[1]))
        if self.backend == "kernel" and keys is not None:
            return self._run_keyed(w, b, n_steps, keys, chunk, skip, stop_all, failed, (gram, work))
        done = 0
        while done < n_steps:
            m = min(chunk, n_steps - done)
            x0, x1 = self.draw(m, n, generator) if keys is None else self.training_data(keys, done, m, n)
            if self.backend == "kernel":
                new = self._kernel_chunk(w, b, x0, x1, m, skip, stop_all, (gram, work))
            else:
                new = self._torch_chunk(w, b, x0, x1, m, skip, stop_all)
            if self._record(new, failed, skip, done, stop_all):
                return failed
            done += m
        return failed

    @staticmethod
    def _record(new, failed, skip, done, stop_all) -> bool:
        """Fold a chunk's failures (local steps) into ``failed``; whether to stop now."""
        hit = new >= 0
        failed[hit] = done + new[hit]
        skip |= hit
        return bool(stop_all and hit.any())

    _CACHE_BYTES = 8 * 2**20  # one replica's data of a chunk (x0 and x1) stay in cache at this size

    def _run_keyed(self, w, b, n_steps, keys, chunk, skip, stop_all, failed, state):
        """:meth:`run_replicas` on counter-based data. One replica with two threads: chunk c + 1 is
        drawn on the second thread while chunk c trains (with one replica, stopping every replica at
        a failure is stopping it, so ``stop_all`` needs no replay there)."""
        import numba

        from . import kernels, normals

        n, d, dtype = w.shape[0], self.d, np.dtype(self.dtype_name)
        if n_steps <= 0:
            return failed
        wn, bn = _np_of(w), _np_of(b)
        overlap = numba.get_num_threads() >= 2 and n == 1 and wn.flags.c_contiguous and bn.flags.c_contiguous
        # chunks small enough that a replica's data, written by the draws, are still in cache when trained
        # on: one replica on one thread at d = 10^4 took 83 us a step with chunks of 1677 steps (268 MB),
        # 62 with 256, 50 with 52 (8 MB)
        chunk = max(8, min(chunk, self._CACHE_BYTES // (2 * d * dtype.itemsize)))
        m0 = min(chunk, n_steps)
        buffers = [tuple(np.empty((m0, n, d), dtype=dtype) for _ in range(2)) for _ in range(2 if overlap else 1)]
        mixture = (*self.target.arrays(), normals.ZIG_X, normals.ZIG_R, normals.ZIG_F)
        self.training_data(keys, 0, m0, n, out=buffers[0])
        done, cur = 0, 0
        while done < n_steps:
            m = min(chunk, n_steps - done)
            m_next = min(chunk, n_steps - done - m)
            x0, x1 = (a[:m] for a in buffers[cur])
            cur = (cur + 1) % len(buffers)  # the next chunk's buffers (the same ones without overlap)
            nx0, nx1 = (a[:m_next] for a in buffers[cur])
            if not overlap or m_next == 0:
                new = self._kernel_chunk(w, b, x0, x1, m, skip, stop_all, state)
                if m_next > 0:
                    self.training_data(keys, done + m, m_next, n, out=(nx0, nx1))
            else:
                new = np.empty(n, dtype=np.int64)
                kernels.sgd_steps_overlapped(wn, bn, x0, x1, *self._np_times, self.lr, self.weight_decay,
                                             self.act_code, m, skip, new, *state, nx0, nx1, m_next, *keys, done + m,
                                             *mixture)
                self._overlapped_chunks += 1
            if self._record(new, failed, skip, done, stop_all):
                return failed
            done += m
        return failed

    def _kernel_chunk(self, w, b, x0, x1, m, skip, stop_all, state):
        """The kernel on a chunk (w, b and the kernel's state (gram, work) of :func:`kernels.sgd_steps`
        updated in place); with ``stop_all``, every replica is replayed up to the first failing step."""
        from . import kernels

        x0, x1 = (_np_of(x) for x in (x0, x1))
        wn, bn = _np_of(w), _np_of(b)  # for CPU tensors, shared memory: w, b updated in place
        if not (wn.flags.c_contiguous and bn.flags.c_contiguous):
            wc, bc = np.ascontiguousarray(wn), np.ascontiguousarray(bn)
            failed = self._kernel_chunk(wc, bc, x0, x1, m, skip, stop_all, state)
            wn[...], bn[...] = wc, bc
            return failed
        args = (np.ascontiguousarray(x0), np.ascontiguousarray(x1), self._np_times[0],
                self._np_times[1], self._np_times[2], self.lr, self.weight_decay, self.act_code)
        failed = np.empty(w.shape[0], dtype=np.int64)
        gram = state[0]
        start = (wn.copy(), bn.copy(), gram.copy()) if stop_all else None
        kernels.sgd_steps(wn, bn, *args, m, skip, failed, *state)
        if stop_all and (failed >= 0).any():  # replay the others up to the first failing step
            first = int(failed[failed >= 0].min())
            wn[...], bn[...], gram[...] = start
            kernels.sgd_steps(wn, bn, *args, first, skip, np.empty_like(failed), *state)
            failed = np.where(failed == first, first, -1)
        return failed

    def _torch_chunk(self, w, b, x0, x1, m, skip, stop_all):
        import torch

        x0, x1 = (torch.from_numpy(x).to(w.device) if isinstance(x, np.ndarray) else x for x in (x0, x1))
        n = w.shape[0]
        failed = np.full(n, -1, dtype=np.int64)
        frozen = torch.as_tensor(skip, device=w.device)
        w_start, b_start = w.clone(), b.clone()
        if not frozen.any():
            for j in range(m):
                self.step(w, b, x0[j], x1[j])
            if _finite(w, b):
                return failed
            w.copy_(w_start), b.copy_(b_start)
        for j in range(m):  # step by step, freezing each replica at its first non-finite step
            w_prev, b_prev = w.clone(), b.clone()
            self.step(w, b, x0[j], x1[j])
            bad = ~_finite_each(w, b)
            new = bad & ~frozen
            if new.any():
                failed[new.cpu().numpy()] = j
                if stop_all:
                    w.copy_(w_prev), b.copy_(b_prev)
                    return failed
                frozen = frozen | new
            keep = frozen
            if keep.any():
                w[keep], b[keep] = w_prev[keep], b_prev[keep]
        return failed


def _finite_each(w, b):
    """Per replica (n,) bool: b and every column norm of w finite (torch tensors)."""
    import torch

    return torch.isfinite(b) & torch.isfinite((w * w).sum(1)).all(1)


def _finite(w, b) -> bool:
    """w, b and the statistics built from them (w^T w/d) are finite (torch tensors)."""
    import torch

    return bool(torch.isfinite(b).all() and torch.isfinite((w * w).sum(1)).all())


def on_cpu(x) -> bool:
    """A numpy array, or a torch tensor on the CPU."""
    return not is_torch(x) or x.device.type == "cpu"


def namespace(*arrays):
    """(xp, wrap) for statistics of ``arrays``: numpy for numpy arrays and CPU tensors (the tensors'
    memory seen through numpy, so both give the same numbers bit for bit), torch for device tensors;
    ``wrap`` turns a result back into the input's kind."""
    if all(on_cpu(a) for a in arrays):
        if any(is_torch(a) for a in arrays):
            import torch

            return np, torch.from_numpy
        return np, lambda a: a
    import torch

    return torch, lambda a: a


def summary_statistics(w, b, eigenvalues, centroids, basis):
    """Q (n, r, r), Omega (n, K, r, r), M (n, r, K), G (n, r, R), b (n,) of weights w (n, d, r).

    Q = w^T w/d, Omega_c = w^T Sigma_c w/d, M = w^T mu/sqrt d, G = w^T E/sqrt d (section 1).
    numpy arrays in, numpy arrays out; torch tensors in, torch tensors out (computed by numpy on
    the CPU, by torch on a device: see :func:`namespace`)."""
    xp, wrap = namespace(w, b, eigenvalues, centroids, basis)
    if xp is np:
        w, b, eigenvalues, centroids, basis = (_np_of(a) for a in (w, b, eigenvalues, centroids, basis))
    d = w.shape[1]
    Q = xp.einsum("nia,nib->nab", w, w) / d
    Omega = xp.einsum("nia,ci,nib->ncab", w, eigenvalues, w) / d
    M = xp.einsum("nia,ci->nac", w, centroids) / math.sqrt(d)
    G = xp.einsum("nia,iR->naR", w, basis) / math.sqrt(d)
    return {k: wrap(v) for k, v in {"Q": Q, "Omega": Omega, "M": M, "G": G, "b": b.copy() if xp is np else b.clone()}.items()}
