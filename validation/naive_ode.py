"""The naive way to integrate the summary-statistic ODEs: a baseline for ``benchmark_solve.py``.

Written from the equations of the derivation note (sections 3-5), independently of
:mod:`hdae.theory` (it shares only the problem's reduced target, i.e. the bins p_l, s_l^c, T_l,
H_l and the weights pi_c), in plain numpy, the way a research notebook does it:

* every Gaussian integral of the right-hand side gets its own fresh Monte-Carlo samples
  (``n_mc`` = 2000 draws of (lam0, lam1) ~ N(0, Q) x N(M_c, Omega_c) per integral, per
  cluster, per evaluation, from ``rng.multivariate_normal``);
* explicit Euler steps of ``dt`` = 0.01.

So the right-hand side is random (an unbiased estimate of the exact one) and the trajectory
carries Monte-Carlo noise; ``tests/test_naive_reference.py`` checks that its average over many
draws equals hdae's deterministic right-hand side, an independent check of hdae's algebra (the
exact zeta terms, the conditional-mean trick, the noise term D_l and the O(1/d) terms of b').
"""
from __future__ import annotations

import numpy as np
from scipy.special import erf as _erf


def activation(name: str):
    """(sigma, sigma') as numpy functions (the conventions of the note: erf(x/sqrt 2), relu'(0) = 0)."""
    if name == "tanh":
        return np.tanh, lambda x: 1.0 - np.tanh(x) ** 2
    if name == "relu":
        return lambda x: np.maximum(x, 0.0), lambda x: (x > 0).astype(float)
    if name == "erf":
        return lambda x: _erf(x / np.sqrt(2)), lambda x: np.sqrt(2 / np.pi) * np.exp(-x**2 / 2)
    if name == "sigmoid":
        sig = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
        return sig, lambda x: sig(x) * (1 - sig(x))
    if name == "linear":
        return lambda x: 1.0 * x, lambda x: np.ones_like(x)
    raise ValueError(name)


def naive_rhs(q, m, g, b, reduced, act, alphas, betas, omegas, lr, weight_decay, rng, n_mc=2000):
    """One Monte-Carlo estimate of (dq, dm, dg, db) for per-bin q (L, r, r), m (L, r, K), g (L, r, R), b.

    Section 4: U, K0, K1 from u_t^c, B0_t^c, B1_t^c, S_t^c; section 5: the ODEs, with D_l from the
    A, B, C coefficients; b' with the finite-d terms (E|x1|^2/d and -E[sigma . h]/d) when d is finite."""
    sigma, dsigma = activation(act)
    pi = np.asarray(reduced.weights, dtype=float)
    s_bins = reduced.s  # (L, K)
    L, r, K = m.shape
    sym = lambda a: 0.5 * (a + a.T)  # noqa: E731  (rounding makes the Euler iterates slightly asymmetric)
    Q = sym(q.sum(0))
    M = m.sum(0)
    Omega = [sym(np.einsum("l,lab->ab", s_bins[:, c], q)) for c in range(K)]
    Qp = np.linalg.pinv(Q)
    T = len(alphas)

    def draw(c):
        """Fresh samples of (lam0, lam1) for cluster c."""
        lam0 = rng.multivariate_normal(np.zeros(r), Q, size=n_mc)
        lam1 = rng.multivariate_normal(M[:, c], Omega[c], size=n_mc)
        return lam0, lam1

    def fields(lam0, lam1, t):
        h = alphas[t] * lam0 + betas[t] * lam1
        rho = b * alphas[t] * lam0 - (1 - b * betas[t]) * lam1
        sig = sigma(h)
        c_t = (rho + sig @ Q.T) * dsigma(h)  # (rho + Q sigma) * sigma', per sample
        return h, sig, c_t

    U = np.zeros((r, K))
    K0 = 0.5 * weight_decay * np.eye(r)
    K1 = np.zeros((K, r, r))
    D0 = np.zeros((r, r))  # D_l = D0 + sum_c s_l^c D1[c]: the s-independent and s-proportional parts
    D1 = np.zeros((K, r, r))
    sigma_h = 0.0
    for c in range(K):
        if pi[c] == 0:
            continue
        Omp = np.linalg.pinv(Omega[c])
        for t in range(T):
            al, be, om = alphas[t], betas[t], omegas[t]
            # u_t^c = E[-(1 - b beta) sigma + beta c]
            _, sig, ct = fields(*draw(c), t)
            U[:, c] += pi[c] * om * (-(1 - b * be) * sig + be * ct).mean(0)
            # B0_t^c = E[lam0 (b alpha sigma + alpha c)^T]
            lam0, lam1 = draw(c)
            _, sig, ct = fields(lam0, lam1, t)
            B0 = lam0.T @ (al * (b * sig + ct)) / n_mc
            # B1_t^c = E[(lam1 - M_c)(-(1 - b beta) sigma + beta c)^T]
            lam0, lam1 = draw(c)
            _, sig, ct = fields(lam0, lam1, t)
            B1 = (lam1 - M[:, c]).T @ (-(1 - b * be) * sig + be * ct) / n_mc
            # S_t^c = E[sigma sigma^T]
            _, sig, _ = fields(*draw(c), t)
            S = sig.T @ sig / n_mc
            K0 += pi[c] * om * (B0.T @ Qp + S)
            K1[c] += pi[c] * om * B1.T @ Omp
            # E[sigma . h]: the O(1/d) term of b'
            h, sig, _ = fields(*draw(c), t)
            sigma_h += pi[c] * om * np.mean(np.sum(sig * h, axis=1))
        # D_l: sum over (t, t') of A E[s s'^T] + B_tt' E[s c'^T] + B_t't E[c s'^T] + C E[c c'^T],
        # each expectation from its own fresh samples; A, B, C = (s-free part) + s_l^c (s part)
        for t in range(T):
            for u in range(T):
                at, au, bt, bu, wt = alphas[t], alphas[u], betas[t], betas[u], omegas[t] * omegas[u]
                coef = {"ss": (b**2 * at * au, (1 - b * bt) * (1 - b * bu)),
                        "sc": (b * at * au, -(1 - b * bt) * bu),
                        "cs": (b * at * au, -(1 - b * bu) * bt),
                        "cc": (at * au, bt * bu)}
                for kind, (free, prop) in coef.items():
                    lam0, lam1 = draw(c)
                    _, st, ctt = fields(lam0, lam1, t)
                    _, su, cu = fields(lam0, lam1, u)
                    left = st if kind[0] == "s" else ctt
                    right = su if kind[1] == "s" else cu
                    E = left.T @ right / n_mc
                    D0 += pi[c] * wt * free * E
                    D1[c] += pi[c] * wt * prop * E
    dq = np.empty_like(q)
    dm = np.empty_like(m)
    dg = np.empty_like(g)
    noise = reduced.noise_mass
    for ll in range(L):
        Kl = K0 + np.einsum("c,cab->ab", s_bins[ll], K1)
        Dl = D0 + np.einsum("c,cab->ab", s_bins[ll], D1)
        dm[ll] = -U @ reduced.T[ll] - Kl @ m[ll]
        dg[ll] = -U @ reduced.H[ll] - Kl @ g[ll]
        X = U @ m[ll].T + Kl @ q[ll]
        dq[ll] = -(X + X.T) + 2 * lr * noise[ll] * Dl
    db = float(np.sum(omegas * (betas * (1 - b * betas) * reduced.second_moment - b * alphas**2)))
    if reduced.d is not None:
        db -= sigma_h / reduced.d
    return dq, dm, dg, db


def naive_solve(q, m, g, b, reduced, act, alphas, betas, omegas, lr, weight_decay, t_out, rng, n_mc=2000,
                dt=0.01):
    """Euler steps of (at most) ``dt`` from theta = t_out[0]; returns the states at ``t_out`` as a list
    of (q, m, g, b)."""
    out = [(q.copy(), m.copy(), g.copy(), float(b))]
    theta = t_out[0]
    for t1 in t_out[1:]:
        n = max(1, int(np.ceil((t1 - theta) / dt - 1e-9)))
        h = (t1 - theta) / n
        for _ in range(n):
            dq, dm, dg, db = naive_rhs(q, m, g, b, reduced, act, alphas, betas, omegas, lr, weight_decay, rng, n_mc)
            q, m, g, b = q + h * dq, m + h * dm, g + h * dg, b + h * db
        theta = t1
        out.append((q.copy(), m.copy(), g.copy(), float(b)))
    return out
