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
    return operators_batch([(Q, Omega, M, b)], [setup])[0]


def operators_batch(stats, setups) -> list:
    """:func:`operators` for several trajectories at once: ``stats`` [(Q, Omega, M, b)] and ``setups``
    [TrainingSetup] per trajectory (the same activation, times and nodes; the reduced targets may
    differ). The Gaussian expectations of every cluster of every trajectory come from ONE kernel call;
    each trajectory's result equals its own :func:`operators` exactly (the same node slices and sums)."""
    maps = [_cluster_maps(Q, Omega, M, setup) for (Q, Omega, M, _), setup in zip(stats, setups)]
    first = setups[0]
    n_nodes = len(first.nodes.weights)
    rows, job_row, job_lo, job_hi, n_blocks = [], [], [], [], []
    for rep, (setup, mp) in enumerate(zip(setups, maps)):
        K = len(mp["active"])
        nb = _node_blocks(n_nodes, K)
        size = (n_nodes + nb - 1) // nb
        lo = np.minimum(np.arange(nb) * size, n_nodes)
        hi = np.minimum(lo + size, n_nodes)
        for c in range(K):
            job_row.append(np.full(nb, len(rows), dtype=np.int64))
            job_lo.append(lo if mp["active"][c] else lo * 0)
            job_hi.append(hi if mp["active"][c] else lo * 0)
            rows.append(rep)
        n_blocks.append(nb)
    cat = lambda key: np.ascontiguousarray(np.concatenate([mp[key] for mp in maps]))  # noqa: E731
    parts = clusters_expectations(first.nodes.points, first.nodes.weights, cat("Ls"), cat("means"), cat("Ms"),
                                  np.array(rows, dtype=np.int64), np.concatenate(job_row),
                                  np.concatenate(job_lo).astype(np.int64), np.concatenate(job_hi).astype(np.int64),
                                  first.alphas, first.betas, first.omegas,
                                  np.array([float(b) for (_, _, _, b) in stats]),
                                  np.ascontiguousarray(np.array([Q for (Q, _, _, _) in stats], dtype=float)),
                                  activations.code(first.activation), maps[0]["C"] is not None)
    out, at = [], 0
    for (Q, Omega, M, b), setup, mp, nb in zip(stats, setups, maps, n_blocks):
        K = len(mp["active"])
        mine = tuple(x[at:at + K * nb].reshape(K, nb, *x.shape[1:]).sum(1) for x in parts)
        at += K * nb
        out.append(_operators_from(mine, Q, Omega, b, mp["C"], setup))
    return out


def _cluster_maps(Q, Omega, M, setup: TrainingSetup) -> dict:
    """Per-cluster maps y = mean + L xi (+ zeta ~ N(0, C) for one training time), stacked (K, ...)."""
    r = Q.shape[0]
    K = Omega.shape[0]
    al, be = setup.alphas, setup.betas
    means = np.zeros((K, 2 * r))
    means[:, r:] = M.T
    if len(al) == 1:
        inv_sqrt = sym_sqrt(al[0] ** 2 * Q[None] + be[0] ** 2 * Omega, inverse=True)  # (K, r, r)
        Ls = np.concatenate([al[0] * Q[None] @ inv_sqrt, be[0] * Omega @ inv_sqrt], axis=1)  # (K, 2r, r)
        cov = np.zeros((K, 2 * r, 2 * r))
        cov[:, :r, :r], cov[:, r:, r:] = Q, Omega
        C = cov - Ls @ np.swapaxes(Ls, 1, 2)
    else:
        Ls = np.zeros((K, 2 * r, 2 * r))
        Ls[:, :r, :r], Ls[:, r:, r:] = sym_sqrt(Q), sym_sqrt(Omega)
        C = None
    return {"Ls": Ls, "means": means, "Ms": np.ascontiguousarray(M.T), "C": C,
            "active": np.asarray(setup.reduced.weights, dtype=float) != 0}


def _operators_from(parts, Q, Omega, b, C, setup: TrainingSetup):
    """U, K0, K1, D0, D1, sigma_h from one trajectory's kernel sums ``parts`` (summed per cluster)."""
    r = Q.shape[0]
    al, be, om = setup.alphas, setup.betas, setup.omegas
    T = len(al)
    pi = np.asarray(setup.reduced.weights, dtype=float)
    Qp = pinv_sym(Q)
    Uc, B0, B1, Sc, V0, V1, Ed, Edd, Esh = parts
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
    return rhs_batch([state], [setup])[0]


def rhs_batch(states, setups) -> list:
    """:func:`rhs` of several trajectories, their Gaussian expectations from one kernel call
    (:func:`operators_batch`); each entry equals its own :func:`rhs` exactly."""
    aggs = [st.aggregates(setup.reduced.s) for st, setup in zip(states, setups)]
    ops = operators_batch([(Q, Omega, M, st.b) for (Q, Omega, M, _), st in zip(aggs, states)], setups)
    return [_derivative(st, setup, op) for st, setup, op in zip(states, setups, ops)]


def _derivative(state: State, setup: TrainingSetup, ops) -> State:
    red = setup.reduced
    U, K0, K1, D0, D1, sigma_h = ops
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


def _rk4_batch(fun, y0s, t_outs, dts, bounds, callback):
    """Classical RK4 for several trajectories together: ``fun(t, [y], idx)`` returns the derivatives of
    the trajectories ``idx`` (one kernel call for all). Trajectory k has its own output times
    ``t_outs[k]``, step bound ``dts[k]`` and divergence bound ``bounds[k]``: the trajectories advance in
    lock-step by step count, each with its own steps (the right-hand side is autonomous). A trajectory
    that becomes non-finite or exceeds its bound is frozen (status 1) and the others go on; each one's
    arithmetic, its ``n_rhs`` included, is that of RK4 alone."""
    n = len(y0s)
    plans = []  # per trajectory: [(t, h, index of the output time reached after the step, or -1)]
    for t_out, dt in zip(t_outs, dts):
        steps = []
        for i in range(len(t_out) - 1):
            t0, t1 = t_out[i], t_out[i + 1]
            n_sub = max(1, math.ceil((t1 - t0) / dt - 1e-9))
            h = (t1 - t0) / n_sub
            steps.extend((t0 + j * h, h, i + 1 if j == n_sub - 1 else -1) for j in range(n_sub))
        plans.append(steps)
    ys = [[y0.copy()] for y0 in y0s]
    y = [y0.copy() for y0 in y0s]
    live = [k for k in range(n) if plans[k]]
    sols = [None] * n
    n_rhs = [0] * n
    step = 0
    while live:
        cur = [y[k] for k in live]
        hs = [plans[k][step][1] for k in live]
        t = [plans[k][step][0] for k in live]
        k1 = fun(t, cur, live)
        k2 = fun([a + h / 2 for a, h in zip(t, hs)], [a + h / 2 * b for a, b, h in zip(cur, k1, hs)], live)
        k3 = fun([a + h / 2 for a, h in zip(t, hs)], [a + h / 2 * b for a, b, h in zip(cur, k2, hs)], live)
        k4 = fun([a + h for a, h in zip(t, hs)], [a + h * b for a, b, h in zip(cur, k3, hs)], live)
        for k, a, b1, b2, b3, b4, h in zip(list(live), cur, k1, k2, k3, k4, hs):
            n_rhs[k] += 4
            y[k] = a + h / 6 * (b1 + 2 * b2 + 2 * b3 + b4)
            t_k, _, reached = plans[k][step]
            if not (np.all(np.isfinite(y[k])) and np.max(np.abs(y[k])) < bounds[k]):
                sols[k] = ODESolution(np.asarray(t_outs[k][:len(ys[k])]), np.array(ys[k]), 1, "", n_rhs[k], t_k + h)
                live.remove(k)
                continue
            if reached >= 0:
                ys[k].append(y[k].copy())
                callback(t_outs[k][reached])
            if step + 1 == len(plans[k]):
                sols[k] = ODESolution(np.asarray(t_outs[k]), np.array(ys[k]), 0, "", n_rhs[k])
                live.remove(k)
        step += 1
    for k in range(n):
        if sols[k] is None:  # a single output time: nothing to integrate
            sols[k] = ODESolution(np.asarray(t_outs[k]), np.array(ys[k]), 0, "", 0)
    return sols


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


INTEGRATORS = ("rk4", "adaptive")


def integrate(state0: State, setup: TrainingSetup, t_out, method: str = "rk4", dt: float = 0.02,
              rtol: float = 1e-6, atol: float = 1e-9, divergence: float = 1e6, callback=None) -> ODESolution:
    """Integrate the ODEs from ``state0`` (at ``t_out[0]``), reporting the state at every ``t_out``.

    method: 'rk4' (fixed step <= dt, landing exactly on every output time) or 'adaptive'
    (scipy DOP853 with rtol/atol). Divergence: a non-finite state or one with an entry
    beyond ``divergence`` stops the integration (status 1, ``theta_fail``).
    """
    return integrate_batch([state0], [setup], t_out, method, dt, rtol, atol, divergence, callback)[0]


def integrate_batch(states, setups, t_out, method: str = "rk4", dt=0.02, rtol: float = 1e-6,
                    atol: float = 1e-9, divergence=1e6, callback=None) -> list:
    """:func:`integrate` for several trajectories (e.g. the replicas of ``solve --init-from``, or the
    points of a sweep), one :class:`ODESolution` each, with its own status: one that diverges (or whose
    integrator fails) stops there, with a message naming theta, and the others go on to the end.

    ``t_out`` is one increasing array of output times shared by every trajectory, or a list of them,
    one per trajectory; ``dt`` and ``divergence`` are one number or one per trajectory.

    'rk4' advances all trajectories together (each with its own steps), their right-hand sides
    evaluated by one kernel call per stage (:func:`rhs_batch`); each trajectory's result equals its
    own integration exactly. 'adaptive' integrates them one after the other (each has its own steps).
    ``callback(theta)`` is called once per trajectory and output time reached."""
    if method not in INTEGRATORS:
        raise ValueError(f"unknown integrator {method!r}; choose one of {', '.join(INTEGRATORS)}")
    n = len(states)
    per_traj = isinstance(t_out, (list, tuple)) and len(t_out) > 0 and np.ndim(t_out[0]) == 1
    if per_traj and len(t_out) != n:
        raise ValueError(f"{len(t_out)} output grids for {n} trajectories")
    t_outs = [np.asarray(t, dtype=float) for t in t_out] if per_traj else [np.asarray(t_out, dtype=float)] * n
    for t in t_outs:
        if np.any(np.diff(t) <= 0):
            raise ValueError("output times must be strictly increasing")
    dts = [float(v) for v in np.broadcast_to(np.asarray(dt, dtype=float), (n,))]
    bounds = [float(v) for v in np.broadcast_to(np.asarray(divergence, dtype=float), (n,))]
    shapes = [st.shapes for st in states]
    # small problems: each trajectory's whole rhs in one serial compiled call (hdae.theory.fastrhs),
    # cheaper than the batched numpy assembly around the shared kernel; the others go through it together
    fast = {}
    for k, setup in enumerate(setups):
        n_clusters = len(setup.reduced.weights)
        if fastrhs.use_fast(setup, n_clusters):
            fast[k] = fastrhs.packed_rhs(setup, shapes[k], _node_blocks(len(setup.nodes.weights), n_clusters))

    def one(k, y):
        return fast[k](y) if k in fast else rhs(State.unpack(y, shapes[k]), setups[k]).pack()

    cb = callback or (lambda t: None)
    if method == "rk4":
        def fun(t, ys, idx):
            out = {k: fast[k](y) for y, k in zip(ys, idx) if k in fast}
            rest = [(y, k) for y, k in zip(ys, idx) if k not in fast]
            if rest:
                derivs = rhs_batch([State.unpack(y, shapes[k]) for y, k in rest], [setups[k] for _, k in rest])
                out.update((k, dv.pack()) for (_, k), dv in zip(rest, derivs))
            return [out[k] for k in idx]

        sols = _rk4_batch(fun, [st.pack() for st in states], t_outs, dts, bounds, cb)
    else:
        sols = [_adaptive(lambda t, y, k=k: one(k, y), st.pack(), t_outs[k], rtol, atol, bounds[k], cb)
                for k, st in enumerate(states)]
    for sol, setup, bound in zip(sols, setups, bounds):
        if sol.status == 1:
            sol.message = (f"ODE diverged at theta = {sol.theta_fail:.6g}: statistics became non-finite or "
                           f"exceeded {bound:g} (eta = {setup.lr:g} may be too large)")
        elif sol.status == -1:
            sol.message = f"integrator failed at theta = {sol.theta_fail:.6g}: {sol.message}"
    return sols
