"""IPOPT (through CasADi) on the discrete transcription that ilqg_jax solves: the independent oracle.

Multiple shooting on the same discrete problem: decision variables
``xs: (T+1, n)``, ``us: (T, m)``; equality constraints ``x_0 = x0`` and
``x_{t+1} = f(x_t, u_t, t)``; ``g(x_t, u_t, t) <= 0`` for ``t < T``,
``h(x_T) = 0``, ``lower <= u_t <= upper``; objective
``sum_t l(x_t, u_t, t) + l_f(x_T)``. Exact Hessians (CasADi's automatic
differentiation), IPOPT's interior-point method (Wächter & Biegler 2006).

The problem functions are written once for both back ends: each takes a
``lib`` (:data:`CASADI` or :data:`JAX`) with ``sin``, ``cos``, ``vec`` (stack
scalars into a vector) and ``dot``. :func:`obstacle_functions` is the unicycle
of :mod:`ilqg_jax.systems.obstacles` in that form (a twin checked against the
JAX model in the tests).
"""

from __future__ import annotations

import time
from typing import Callable, NamedTuple, Optional

import numpy as np

__all__ = ["Lib", "JAX", "casadi_lib", "IpoptResult", "solve", "obstacle_functions"]


class Lib(NamedTuple):
    """The few operations the problem functions need, from one back end."""

    sin: Callable
    cos: Callable
    vec: Callable
    dot: Callable


def _jax_lib() -> Lib:
    import jax.numpy as jnp

    return Lib(jnp.sin, jnp.cos, lambda *a: jnp.stack(a), lambda a, b: jnp.sum(a * b))


def casadi_lib() -> Lib:
    """CasADi's symbolic operations (imported here: casadi is a test/benchmark dependency)."""
    import casadi as cs

    return Lib(cs.sin, cs.cos, lambda *a: cs.vertcat(*a), lambda a, b: cs.dot(a, b))


JAX = _jax_lib()


class IpoptResult(NamedTuple):
    """``xs: (T+1, n)``, ``us: (T, m)``, the objective, IPOPT's iteration count, status text, wall time (s)."""

    xs: np.ndarray
    us: np.ndarray
    cost: float
    iterations: int
    status: str
    success: bool
    seconds: float


def _transcribe(f, l, lf, g, h, x0, T, m, lower, upper):
    import casadi as cs

    n = len(x0)
    X = cs.SX.sym("X", n, T + 1)
    U = cs.SX.sym("U", m, T)
    cost, eqs, ineqs = 0, [X[:, 0] - np.asarray(x0, float)], []
    for t in range(T):
        cost += l(X[:, t], U[:, t], t)
        eqs.append(X[:, t + 1] - f(X[:, t], U[:, t], t))
        if g is not None:
            ineqs.append(g(X[:, t], U[:, t], t))
    cost += lf(X[:, T])
    if h is not None:
        eqs.append(h(X[:, T]))
    z = cs.vertcat(cs.vec(X), cs.vec(U))
    c_eq, c_in = cs.vertcat(*eqs), cs.vertcat(*ineqs) if ineqs else cs.SX(0, 1)
    lbz = np.full(z.shape[0], -np.inf)
    ubz = np.full(z.shape[0], np.inf)
    if lower is not None:
        lbz[n * (T + 1):] = np.tile(np.asarray(lower, float), T)
        ubz[n * (T + 1):] = np.tile(np.asarray(upper, float), T)
    lbg = np.concatenate([np.zeros(c_eq.shape[0]), np.full(c_in.shape[0], -np.inf)])
    ubg = np.zeros(c_eq.shape[0] + c_in.shape[0])
    return dict(x=z, f=cost, g=cs.vertcat(c_eq, c_in)), (lbz, ubz, lbg, ubg), n


def solve(f, l, lf, x0, T: int, m: int, g=None, h=None, us_init=None, xs_init=None, lower=None, upper=None,
          tol: float = 1e-10, max_iter: int = 3000) -> IpoptResult:
    """Solves the transcription with IPOPT; the functions take CasADi ``SX`` columns.

    Args:
      f: ``(x, u, t) -> x_next``; l: ``(x, u, t) -> scalar``; lf: ``x -> scalar``.
      x0: ``(n,)``; T: horizon; m: number of controls.
      g: ``(x, u, t) -> (p,)``, ``<= 0`` (or ``None``); h: ``x -> (q,)``, ``== 0``.
      us_init, xs_init: initial guess ``(T, m)``, ``(T+1, n)`` (default zeros; ``xs_init``
        defaults to the rollout of ``us_init`` through ``f`` evaluated numerically).
      lower, upper: ``(m,)`` control bounds or ``None``.
      tol: IPOPT's ``tol`` (and ``constr_viol_tol``).

    Returns:
      :class:`IpoptResult`; ``seconds`` is IPOPT's own solve (the transcription excluded).
    """
    import casadi as cs

    nlp, (lbz, ubz, lbg, ubg), n = _transcribe(f, l, lf, g, h, x0, T, m, lower, upper)
    us_init = np.zeros((T, m)) if us_init is None else np.asarray(us_init, float)
    if xs_init is None:
        xs_init = [np.asarray(x0, float)]
        for t in range(T):
            xs_init.append(np.asarray(cs.DM(f(cs.DM(xs_init[-1]), cs.DM(us_init[t]), t))).ravel())
    z0 = np.concatenate([np.asarray(xs_init, float).ravel(), us_init.ravel()])
    opts = {"ipopt.tol": tol, "ipopt.constr_viol_tol": tol, "ipopt.print_level": 0, "print_time": False,
            "ipopt.max_iter": max_iter, "ipopt.sb": "yes"}
    nlpsol = cs.nlpsol("ocp", "ipopt", nlp, opts)
    start = time.perf_counter()
    out = nlpsol(x0=z0, lbx=lbz, ubx=ubz, lbg=lbg, ubg=ubg)
    seconds = time.perf_counter() - start
    stats = nlpsol.stats()
    z = np.asarray(out["x"]).ravel()
    xs = z[:n * (T + 1)].reshape(T + 1, n)
    us = z[n * (T + 1):].reshape(T, m)
    return IpoptResult(xs, us, float(out["f"]), int(stats["iter_count"]), str(stats["return_status"]),
                       bool(stats["success"]), seconds)


def obstacle_functions(lib: Lib, params, dt: float):
    """``(f, l, lf, g, h)`` of :mod:`ilqg_jax.systems.obstacles` with NumPy ``params``, on back end ``lib``."""
    centers, radii, goal = (np.asarray(a, float) for a in (params.centers, params.radii, params.goal))
    r_u, r_th, q_th = (float(params.control_weight), float(params.heading_weight),
                       float(params.terminal_heading_weight))

    def f(x, u, t=None):
        return x + dt * lib.vec(u[0] * lib.cos(x[2]), u[0] * lib.sin(x[2]), u[1])

    def l(x, u, t=None):
        return 0.5 * (r_u * lib.dot(u, u) + r_th * x[2] ** 2)

    def lf(x):
        return 0.5 * q_th * x[2] ** 2

    def g(x, u=None, t=None):
        return lib.vec(*[radii[i] ** 2 - (x[0] - centers[i, 0]) ** 2 - (x[1] - centers[i, 1]) ** 2
                         for i in range(len(radii))])

    def h(x):
        return lib.vec(x[0] - goal[0], x[1] - goal[1])

    return f, l, lf, g, h


def rollout(f, x0, us: np.ndarray, lib: Optional[Lib] = None) -> np.ndarray:
    """``xs: (T+1, n)`` of ``us`` through ``f`` (CasADi numeric evaluation)."""
    import casadi as cs

    xs = [np.asarray(x0, float)]
    for t, u in enumerate(us):
        xs.append(np.asarray(cs.DM(f(cs.DM(xs[-1]), cs.DM(u), t))).ravel())
    return np.asarray(xs)
