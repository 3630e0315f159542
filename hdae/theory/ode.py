"""The summary-statistic ODEs of Result 2.1 (sections 4-5 of the derivation note) and their integrators.

State, per spectral bin l = 1..L: q_l (r, r), m_l (r, K), g_l (r, R), plus the skip connection b.
Aggregates: Q = sum_l q_l, Omega_c = sum_l s_l^c q_l, M = sum_l m_l, G = sum_l g_l.

    K_l   = K0 + sum_c s_l^c K1^c
    m_l'  = -U T_l - K_l m_l
    g_l'  = -U H_l - K_l g_l
    q_l'  = -(U m_l^T + K_l q_l) - (U m_l^T + K_l q_l)^T + 2 eta p_l (D0 + sum_c s_l^c D1^c)
            (p_l -> 0 for the latent bins also at finite d: ``ReducedTarget.noise_mass``)
    b'    = sum_t omega_t [beta_t (1 - b beta_t) Lambda - b alpha_t^2]   (+ O(1/d) terms at finite d, see rhs)

with U, K0, K1, D0, D1 from :func:`operators` (the Gaussian expectations of the kernel).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .. import activations
from ..targets import ReducedTarget
from . import fastrhs
from .kernels import clusters_expectations
from .linalg import pinv_sym, sym_sqrt
from .quadrature import Nodes


@dataclass(frozen=True)
class TrainingSetup:
    """Everything the right-hand side needs besides the state: the reduced target, the
    activation, the training-time grid (alphas, betas, omegas of shape (T,)), eta, lambda
    and the fixed quadrature nodes (dimension r for T = 1, 2r otherwise)."""

    reduced: ReducedTarget
    activation: str
    alphas: np.ndarray
    betas: np.ndarray
    omegas: np.ndarray
    lr: float
    weight_decay: float
    nodes: Nodes

    @staticmethod
    def integration_dim(width: int, n_times: int) -> int:
        return width if n_times == 1 else 2 * width


@dataclass
class State:
    """Per-bin statistics: q (L, r, r), m (L, r, K), g (L, r, R), and b."""

    q: np.ndarray
    m: np.ndarray
    g: np.ndarray
    b: float

    def pack(self) -> np.ndarray:
        return np.concatenate([self.q.ravel(), self.m.ravel(), self.g.ravel(), [self.b]])

    @classmethod
    def unpack(cls, y: np.ndarray, shapes) -> "State":
        (L, r, K, R) = shapes
        nq, nm, ng = L * r * r, L * r * K, L * r * R
        return cls(y[:nq].reshape(L, r, r), y[nq:nq + nm].reshape(L, r, K),
                   y[nq + nm:nq + nm + ng].reshape(L, r, R), float(y[-1]))

    @property
    def shapes(self):
        L, r, K = self.m.shape
        return (L, r, K, self.g.shape[2])

    def aggregates(self, s: np.ndarray):
        """Q (r, r), Omega (K, r, r), M (r, K), G (r, R) for bin eigenvalues s (L, K)."""
        return self.q.sum(0), np.einsum("lc,lab->cab", s, self.q), self.m.sum(0), self.g.sum(0)


def operators(Q, Omega, M, b, setup: TrainingSetup):
    """The global operators of section 4: U (r, K), K0 (r, r), K1 (K, r, r), D0 (r, r), D1 (K, r, r),
    and sum_c pi_c sum_t omega_t E[sigma_t . h_t] (the O(1/d) term of the skip connection's drift).

    Every cluster's Gaussian expectations come from one call of
    :func:`~hdae.theory.kernels.clusters_expectations` (parallel over clusters x node blocks); the
    per-cluster maps, zeta terms and pseudo-inverses are batched over clusters in numpy."""
    r = Q.shape[0]
    K = Omega.shape[0]
    al, be, om = setup.alphas, setup.betas, setup.omegas
    T = len(al)
    act = activations.code(setup.activation)
    pts, wts = setup.nodes.points, setup.nodes.weights
    pi = np.asarray(setup.reduced.weights, dtype=float)
    active = pi != 0
    Qp = pinv_sym(Q)
    # ---- per-cluster maps y = mean + L xi (+ zeta ~ N(0, C) for one training time), stacked (K, ...)
    means = np.zeros((K, 2 * r))
    means[:, r:] = M.T
    if T == 1:
        inv_sqrt = sym_sqrt(al[0] ** 2 * Q[None] + be[0] ** 2 * Omega, inverse=True)  # (K, r, r)
        Ls = np.concatenate([al[0] * Q[None] @ inv_sqrt, be[0] * Omega @ inv_sqrt], axis=1)  # (K, 2r, r)
        cov = np.zeros((K, 2 * r, 2 * r))
        cov[:, :r, :r], cov[:, r:, r:] = Q, Omega
        C = cov - Ls @ np.swapaxes(Ls, 1, 2)
    else:
        Ls = np.zeros((K, 2 * r, 2 * r))
        Ls[:, :r, :r], Ls[:, r:, r:] = sym_sqrt(Q), sym_sqrt(Omega)
        C = None
    n_blocks = _node_blocks(len(wts), K)
    parts = clusters_expectations(pts, wts, np.ascontiguousarray(Ls), means, np.ascontiguousarray(M.T), active,
                                  al, be, om, float(b), np.ascontiguousarray(Q), act, C is not None, n_blocks)
    Uc, B0, B1, Sc, V0, V1, Ed, Edd, Esh = (x.reshape(K, n_blocks, *x.shape[1:]).sum(1) for x in parts)
    if C is not None:  # exact zeta terms (module docstring of kernels), batched over clusters
        Rt = np.stack([np.hstack([b * al[t] * np.eye(r), -(1 - b * be[t]) * np.eye(r)]) for t in range(T)])
        for t in range(T):
            B0 += om[t] * al[t] * (C[:, :r] @ Rt[t].T) * Ed[:, t][:, None, :]
            B1 += om[t] * be[t] * (C[:, r:] @ Rt[t].T) * Ed[:, t][:, None, :]
            for u in range(T):
                rcr = Rt[t] @ C @ Rt[u].T
                V0 += om[t] * om[u] * al[t] * al[u] * rcr * Edd[:, t, u]
                V1 += om[t] * om[u] * be[t] * be[u] * rcr * Edd[:, t, u]
    U = (pi[:, None] * Uc).T
    K0 = 0.5 * setup.weight_decay * np.eye(r) + np.einsum("c,cba->ab", pi, B0) @ Qp + np.einsum("c,cab->ab", pi, Sc)
    K1 = pi[:, None, None] * np.swapaxes(B1, 1, 2) @ pinv_sym(Omega)
    D0 = np.einsum("c,cab->ab", pi, V0)
    D1 = pi[:, None, None] * V1
    sigma_h = float(pi @ Esh[:, 0])
    return U, K0, K1, D0, D1, sigma_h


def _node_blocks(n_nodes: int, n_clusters: int) -> int:
    """Node slices per cluster: enough (cluster, slice) jobs to keep 16 threads busy, none below
    ~512 nodes; a function of the problem only, so the sums never depend on the thread count."""
    return int(max(1, min(-(-32 // n_clusters), n_nodes // 512)))


def rhs(state: State, setup: TrainingSetup) -> State:
    """d/d theta of every per-bin statistic and of b (section 5 of the derivation note)."""
    red = setup.reduced
    Q, Omega, M, _ = state.aggregates(red.s)
    U, K0, K1, D0, D1, sigma_h = operators(Q, Omega, M, state.b, setup)
    Kl = K0[None] + np.einsum("lc,cab->lab", red.s, K1)
    dm = -np.einsum("ac,lck->lak", U, red.T) - Kl @ state.m
    dg = -np.einsum("ac,lcR->laR", U, red.H) - Kl @ state.g
    X = np.einsum("ac,lbc->lab", U, state.m) + Kl @ state.q
    Dl = D0[None] + np.einsum("lc,cab->lab", red.s, D1)
    dq = -(X + X.transpose(0, 2, 1)) + 2 * setup.lr * red.noise_mass[:, None, None] * Dl
    al, be, om = setup.alphas, setup.betas, setup.omegas
    # b' = -sum_t omega_t [b alpha_t^2 - beta_t (1 - b beta_t) E|x1|^2/d] - E[sigma.h]/d: the note's
    # equation plus its O(1/d) terms at finite d (E|x1|^2/d includes |mu_c|^2/d); both vanish as d -> inf.
    db = float(np.sum(om * (be * (1 - state.b * be) * red.second_moment - state.b * al**2)))
    if red.d is not None:
        db -= sigma_h / red.d
    return State(dq, dm, dg, db)


# ----------------------------------------------------------------------------- integrators
@dataclass
class ODESolution:
    """Output of :func:`integrate`: ``y`` (n_ok, n) at ``theta[:n_ok]``; ``status`` 0 = reached the
    end, 1 = diverged (``theta_fail``: where), -1 = integrator failure; ``n_rhs`` evaluations."""

    theta: np.ndarray
    y: np.ndarray
    status: int
    message: str
    n_rhs: int
    theta_fail: float | None = None

    @property
    def ok(self) -> bool:
        return self.status == 0


def _rk4(fun, y0, t_out, dt, bound, callback):
    ys, n_rhs = [y0.copy()], 0
    y = y0.copy()
    for i in range(len(t_out) - 1):
        t0, t1 = t_out[i], t_out[i + 1]
        n_sub = max(1, math.ceil((t1 - t0) / dt - 1e-9))
        h = (t1 - t0) / n_sub
        for j in range(n_sub):
            t = t0 + j * h
            k1 = fun(t, y)
            k2 = fun(t + h / 2, y + h / 2 * k1)
            k3 = fun(t + h / 2, y + h / 2 * k2)
            k4 = fun(t + h, y + h * k3)
            y = y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
            n_rhs += 4
            if not (np.all(np.isfinite(y)) and np.max(np.abs(y)) < bound):
                return ODESolution(np.asarray(t_out[:len(ys)]), np.array(ys), 1, "", n_rhs, t + h)
        ys.append(y.copy())
        callback(t1)
    return ODESolution(np.asarray(t_out), np.array(ys), 0, "", n_rhs)


def _adaptive(fun, y0, t_out, rtol, atol, bound, callback):
    from scipy.integrate import solve_ivp  # half a second to import: only when asked for

    counter = [0]

    def counted(t, y):
        counter[0] += 1
        return fun(t, y)

    def blowup(t, y):
        return bound - np.max(np.abs(y)) if np.all(np.isfinite(y)) else -1.0

    blowup.terminal = True
    sol = solve_ivp(counted, (t_out[0], t_out[-1]), y0, method="DOP853", t_eval=t_out, rtol=rtol, atol=atol,
                    events=blowup)
    callback(t_out[-1])
    ys = sol.y.T
    if sol.status == 1:
        return ODESolution(np.asarray(t_out[:len(ys)]), ys, 1, "", counter[0], float(sol.t_events[0][0]))
    if sol.status == -1:
        return ODESolution(np.asarray(t_out[:len(ys)]), ys, -1, sol.message, counter[0], float(sol.t[-1]))
    return ODESolution(np.asarray(t_out), ys, 0, "", counter[0])


INTEGRATORS = {"rk4": _rk4, "adaptive": _adaptive}


def integrate(state0: State, setup: TrainingSetup, t_out, method: str = "rk4", dt: float = 0.02,
              rtol: float = 1e-6, atol: float = 1e-9, divergence: float = 1e6, callback=None) -> ODESolution:
    """Integrate the ODEs from ``state0`` (at ``t_out[0]``), reporting the state at every ``t_out``.

    method: 'rk4' (fixed step <= dt, landing exactly on every output time) or 'adaptive'
    (scipy DOP853 with rtol/atol). Divergence: a non-finite state or one with an entry
    beyond ``divergence`` stops the integration (status 1, ``theta_fail``).
    """
    if method not in INTEGRATORS:
        raise ValueError(f"unknown integrator {method!r}; choose one of {', '.join(INTEGRATORS)}")
    t_out = np.asarray(t_out, dtype=float)
    if np.any(np.diff(t_out) <= 0):
        raise ValueError("output times must be strictly increasing")
    shapes = state0.shapes

    def fun(t, y):
        return rhs(State.unpack(y, shapes), setup).pack()

    n_clusters = len(setup.reduced.weights)
    if fastrhs.use_fast(setup, n_clusters):  # small problem: the whole rhs in one serial compiled call
        fast = fastrhs.packed_rhs(setup, shapes, _node_blocks(len(setup.nodes.weights), n_clusters))

        def fun(t, y):  # noqa: F811
            return fast(y)

    cb = callback or (lambda t: None)
    if method == "rk4":
        sol = _rk4(fun, state0.pack(), t_out, dt, divergence, cb)
    else:
        sol = _adaptive(fun, state0.pack(), t_out, rtol, atol, divergence, cb)
    if sol.status == 1:
        sol.message = (f"ODE diverged at theta = {sol.theta_fail:.6g}: statistics became non-finite or exceeded "
                       f"{divergence:g} (eta = {setup.lr:g} may be too large)")
    elif sol.status == -1:
        sol.message = f"integrator failed at theta = {sol.theta_fail:.6g}: {sol.message}"
    return sol
