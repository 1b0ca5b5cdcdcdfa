"""NumPy iLQR with central finite-difference derivatives: the benchmark baseline.

This is the original research notebook's method with its bugs fixed:

* the dynamics are already discrete, so ``fx`` is the Jacobian of ``f`` itself
  (no extra ``I + A dt``), and the cost derivatives are not scaled by ``dt``
  (the cost is not);
* ``Quu`` is inverted as a matrix (Cholesky of ``Quu + mu I``), not
  multiplied elementwise;
* the value update is ``Vx = Qx + Kᵀ Quu k + Kᵀ Qu + Quxᵀ k`` (and the
  matching ``Vxx``);
* the control update is ``u = ū + α k + K (x̂ − x̄)``, re-simulated from ``x0``
  with a backtracking line search over ``α``.

The algorithm is iLQR with the regularisation schedule of Tassa, Erez &
Todorov, "Synthesis and stabilization of complex behaviors through online
trajectory optimization", IROS 2012 — exactly the one ``ilqg_jax.solve``
implements, so both reach the same cost. Names follow the paper: ``fx, fu, lx,
lu, lxx, luu, lux, Qx, Qu, Qxx, Quu, Qux, K, k, mu``. Shapes: ``xs: (T+1, n)``,
``us: (T, m)``, ``K: (T, m, n)``, ``k: (T, m)``.

A problem is three plain NumPy callables::

    dynamics(x: (n,), u: (m,), t: int) -> (n,)       # discrete time
    running_cost(x: (n,), u: (m,), t: int) -> float
    terminal_cost(x: (n,)) -> float

With ``vectorized=True`` the callables must also broadcast over leading axes
(``x: (..., n)``, ``u: (..., m)``, ``t: (...)``); the finite differences of a
whole trajectory are then evaluated in one call per function instead of one
call per point (the seed's way). The rollouts are sequential in both modes.
"""

from __future__ import annotations

import math
import time
from typing import Callable, NamedTuple, Optional, Sequence

import numpy as np

__all__ = ["solve", "fd_derivatives", "backward_pass", "FDDerivatives", "NumpyResult", "DEFAULT_ALPHAS", "rollout",
           "trajectory_cost"]

DEFAULT_ALPHAS = tuple(10.0 ** np.linspace(0.0, -3.0, 11))


class FDDerivatives(NamedTuple):
    """Derivatives along a trajectory; index ``T`` of ``lx``/``lxx`` is the terminal cost."""

    fx: np.ndarray   # (T, n, n)
    fu: np.ndarray   # (T, n, m)
    lx: np.ndarray   # (T+1, n)
    lu: np.ndarray   # (T, m)
    lxx: np.ndarray  # (T+1, n, n)
    luu: np.ndarray  # (T, m, m)
    lux: np.ndarray  # (T, m, n)


class NumpyResult(NamedTuple):
    """What :func:`solve` returns (a NumPy mirror of ``ilqg_jax.Solution``)."""

    xs: np.ndarray          # (T+1, n)
    us: np.ndarray          # (T, m)
    K: np.ndarray           # (T, m, n)
    k: np.ndarray           # (T, m)
    cost: float
    iterations: int
    converged: bool
    status: str             # "converged" | "max iterations" | "regularization limit" | "nonfinite"
    history_cost: list      # cost after each iteration
    history_mu: list        # regularisation used in each iteration's backward pass
    history_alpha: list     # accepted step size per iteration (nan when none)
    time_derivatives: float  # seconds spent in finite differences
    time_total: float        # seconds for the whole solve


# ----------------------------------------------------------------------------- evaluation

def _steps(z: np.ndarray, eps: float) -> np.ndarray:
    """Relative steps ``eps * max(1, |z|)``, rounded so that ``z + h`` is exact."""
    h = eps * np.maximum(1.0, np.abs(z))
    return (z + h) - z


def _eval_points(fn: Callable, points: np.ndarray, n: int, ts: np.ndarray, vectorized: bool,
                 has_u: bool = True) -> np.ndarray:
    """Evaluates ``fn`` at ``points: (T, k, d)`` (``d = n + m``, or ``n`` when ``not has_u``).

    Returns ``(T, k, ...)``. Loop mode calls ``fn`` once per point, like the seed.
    """
    T, k, _ = points.shape
    if vectorized:
        tt = np.broadcast_to(ts[:, None], (T, k))
        if has_u:
            return np.asarray(fn(points[..., :n], points[..., n:], tt))
        return np.asarray(fn(points))
    out = []
    for i in range(T):
        t = int(ts[i])
        if has_u:
            row = [fn(p[:n], p[n:], t) for p in points[i]]
        else:
            row = [fn(p) for p in points[i]]
        out.append(np.asarray(row))
    return np.asarray(out)


def _jacobian_points(z: np.ndarray, h: np.ndarray) -> np.ndarray:
    """``z ± h_i e_i``: ``z: (T, d)`` -> ``(T, 2d, d)`` (all plus first, then all minus)."""
    d = z.shape[-1]
    E = np.eye(d)[None] * h[:, None, :]          # (T, d, d), row i = h_i e_i
    return np.concatenate([z[:, None, :] + E, z[:, None, :] - E], axis=1)


def _hessian_points(z: np.ndarray, h: np.ndarray):
    """Central second-order stencil points for ``z: (T, d)``.

    Returns ``(points (T, k, d), pairs)`` with the centre, ``z ± h_i e_i`` and, for
    ``i < j``, ``z ± h_i e_i ± h_j e_j``.
    """
    T, d = z.shape
    pts = [z]
    for i in range(d):
        e = np.zeros((T, d)); e[:, i] = h[:, i]
        pts += [z + e, z - e]
    pairs = [(i, j) for i in range(d) for j in range(i + 1, d)]
    for i, j in pairs:
        ei = np.zeros((T, d)); ei[:, i] = h[:, i]
        ej = np.zeros((T, d)); ej[:, j] = h[:, j]
        pts += [z + ei + ej, z + ei - ej, z - ei + ej, z - ei - ej]
    return np.stack(pts, axis=1), pairs


def _hessian_from_values(v: np.ndarray, h: np.ndarray, pairs) -> np.ndarray:
    """Hessians ``(T, d, d)`` from the values ``v: (T, k)`` at :func:`_hessian_points`."""
    T, d = h.shape
    H = np.empty((T, d, d))
    f0 = v[:, 0]
    for i in range(d):
        H[:, i, i] = (v[:, 1 + 2 * i] - 2.0 * f0 + v[:, 2 + 2 * i]) / h[:, i] ** 2
    base = 1 + 2 * d
    for p, (i, j) in enumerate(pairs):
        a, b, c, e = (v[:, base + 4 * p + q] for q in range(4))
        H[:, i, j] = H[:, j, i] = (a - b - c + e) / (4.0 * h[:, i] * h[:, j])
    return H


def _gradient_from_values(v: np.ndarray, h: np.ndarray) -> np.ndarray:
    d = h.shape[-1]
    return (v[:, :d] - v[:, d:]) / (2.0 * h)


def fd_derivatives(dynamics: Callable, running_cost: Callable, terminal_cost: Callable,
                   xs: np.ndarray, us: np.ndarray, eps: float = 1e-6, eps_hess: float = 1e-4,
                   vectorized: bool = False) -> FDDerivatives:
    """Central finite-difference derivatives of a trajectory.

    ``fx, fu`` and the cost gradients use ``z ± h e_i`` with ``h = eps·max(1, |z_i|)``;
    the cost Hessians use the second-order central stencil
    ``(f(z+h_i+h_j) − f(z+h_i−h_j) − f(z−h_i+h_j) + f(z−h_i−h_j)) / (4 h_i h_j)``
    (and ``(f(z+h_i) − 2f(z) + f(z−h_i)) / h_i²`` on the diagonal) with
    ``eps_hess`` (≈ machine-epsilon^¼, the step that balances truncation and
    round-off for a second difference).

    Args:
      xs: ``(T+1, n)`` states; us: ``(T, m)`` controls.
      vectorized: evaluate all points of the trajectory in one call per function.

    Returns:
      :class:`FDDerivatives` with no ``dt`` scaling and no ``I + A dt``.
    """
    xs = np.asarray(xs, dtype=float)
    us = np.asarray(us, dtype=float)
    T, m = us.shape
    n = xs.shape[1]
    ts = np.arange(T)
    z = np.concatenate([xs[:-1], us], axis=1)                      # (T, d)

    # Dynamics Jacobian.
    h = _steps(z, eps)
    fvals = _eval_points(dynamics, _jacobian_points(z, h), n, ts, vectorized)   # (T, 2d, n)
    d = n + m
    J = (fvals[:, :d] - fvals[:, d:]) / (2.0 * h[:, :, None])                  # (T, d, n)
    J = np.swapaxes(J, 1, 2)                                                    # (T, n, d)
    fx, fu = J[:, :, :n], J[:, :, n:]

    # Running cost gradient and Hessian.
    g = _gradient_from_values(
        _eval_points(running_cost, _jacobian_points(z, h), n, ts, vectorized), h)
    hh = _steps(z, eps_hess)
    pts, pairs = _hessian_points(z, hh)
    H = _hessian_from_values(_eval_points(running_cost, pts, n, ts, vectorized), hh, pairs)

    # Terminal cost.
    xT = xs[-1:]
    hT = _steps(xT, eps)
    gT = _gradient_from_values(
        _eval_points(terminal_cost, _jacobian_points(xT, hT), n, ts[:1], vectorized, has_u=False), hT)
    hhT = _steps(xT, eps_hess)
    ptsT, pairsT = _hessian_points(xT, hhT)
    HT = _hessian_from_values(
        _eval_points(terminal_cost, ptsT, n, ts[:1], vectorized, has_u=False), hhT, pairsT)

    lx = np.concatenate([g[:, :n], gT], axis=0)
    lxx = np.concatenate([H[:, :n, :n], HT], axis=0)
    return FDDerivatives(fx=fx, fu=fu, lx=lx, lu=g[:, n:], lxx=lxx,
                         luu=H[:, n:, n:], lux=H[:, n:, :n])


# ----------------------------------------------------------------------------- iLQR pieces

def trajectory_cost(running_cost: Callable, terminal_cost: Callable, xs: np.ndarray,
                    us: np.ndarray) -> float:
    """``sum_t running_cost(x_t, u_t, t) + terminal_cost(x_T)``."""
    total = 0.0
    for t in range(us.shape[0]):
        total += float(running_cost(xs[t], us[t], t))
    return total + float(terminal_cost(xs[-1]))


def rollout(dynamics: Callable, x0: np.ndarray, us: np.ndarray, xs_ref: Optional[np.ndarray] = None,
            us_ref: Optional[np.ndarray] = None, K: Optional[np.ndarray] = None,
            k: Optional[np.ndarray] = None, alpha: float = 1.0):
    """Simulates ``us`` from ``x0``; with ``K, k`` it applies ``u = ū + α k + K (x̂ − x̄)``.

    Returns ``(xs (T+1, n), us (T, m))``.
    """
    T = us.shape[0]
    xs = np.empty((T + 1, x0.shape[0]))
    xs[0] = x0
    us_new = np.array(us, dtype=float, copy=True)
    for t in range(T):
        if K is not None:
            us_new[t] = us_ref[t] + alpha * k[t] + K[t] @ (xs[t] - xs_ref[t])
        xs[t + 1] = dynamics(xs[t], us_new[t], t)
    return xs, us_new


def backward_pass(D: FDDerivatives, mu: float):
    """Riccati-like recursion of iLQR.

    Returns ``(ok, K (T, m, n), k (T, m), dV (2,))``; ``ok`` is False when
    ``Quu + mu I`` is not positive definite at some step (Cholesky fails).
    """
    T, n, m = D.fu.shape
    K = np.zeros((T, m, n))
    k = np.zeros((T, m))
    Vx, Vxx = D.lx[T], D.lxx[T]
    dV = np.zeros(2)
    eye = np.eye(m)
    for t in range(T - 1, -1, -1):
        fx, fu = D.fx[t], D.fu[t]
        Qx = D.lx[t] + fx.T @ Vx
        Qu = D.lu[t] + fu.T @ Vx
        Qxx = D.lxx[t] + fx.T @ Vxx @ fx
        Quu = D.luu[t] + fu.T @ Vxx @ fu
        Qux = D.lux[t] + fu.T @ Vxx @ fx
        Quu_reg = 0.5 * (Quu + Quu.T) + mu * eye
        try:
            np.linalg.cholesky(Quu_reg)            # positive-definiteness test, as the JAX solver
        except np.linalg.LinAlgError:
            return False, K, k, dV
        if not np.isfinite(Quu_reg).all():
            return False, K, k, dV
        kK = -np.linalg.solve(Quu_reg, np.concatenate([Qu[:, None], Qux], axis=1))
        kt, Kt = kK[:, 0], kK[:, 1:]
        Vx = Qx + Kt.T @ Quu @ kt + Kt.T @ Qu + Qux.T @ kt
        Vxx = Qxx + Kt.T @ Quu @ Kt + Kt.T @ Qux + Qux.T @ Kt
        Vxx = 0.5 * (Vxx + Vxx.T)
        dV += np.array([kt @ Qu, 0.5 * kt @ Quu @ kt])
        K[t], k[t] = Kt, kt
    return True, K, k, dV


# ----------------------------------------------------------------------------- solver

def solve(dynamics: Callable, running_cost: Callable, terminal_cost: Callable, x0, us_init, *,
          max_iter: int = 100, tol: float = 1e-7, mu_init: float = 1.0, mu_min: float = 1e-6,
          mu_max: float = 1e10, mu_factor: float = 1.6, line_search_steps: int = 11,
          min_step: float = 1e-3, alphas: Optional[Sequence[float]] = None,
          eps: float = 1e-6, eps_hess: float = 1e-4, vectorized: bool = False,
          verbose: bool = False) -> NumpyResult:
    """Solves ``min sum_t l(x_t, u_t, t) + l_f(x_T)`` s.t. ``x_{t+1} = f(x_t, u_t, t)`` by iLQR.

    The iteration mirrors ``ilqg_jax.solver`` step for step, so both take the
    same steps up to the derivative error and reach the same cost:

    1. backward pass with ``Quu + mu I``; a failed Cholesky ends the iteration
       (no step, ``mu`` raised);
    2. ``converged`` if the expected reduction of a full step
       ``-(dV1 + dV2) <= tol |J|`` (the line search still runs and its step is
       kept if it lowers the cost, as in the JAX solver);
    3. backtracking line search over ``alphas`` (default ``10**linspace(0, -3, 11)``),
       accepting the first finite cost below ``J``;
    4. accepted: finite-difference derivatives at the new trajectory, ``mu``
       lowered, ``converged`` if ``(J_old - J_new) / |J_old| < tol``;
       rejected: ``mu`` raised, ``regularization limit`` once ``mu > mu_max``;
    5. ``max iterations`` after ``max_iter`` iterations.

    Regularisation schedule of Tassa, Erez & Todorov (2012):
    ``dmu = max(dmu f, f); mu = max(mu dmu, mu_min)`` up,
    ``dmu = min(dmu / f, 1 / f); mu = mu dmu`` (0 unless ``> mu_min``) down.
    The keyword names mirror ``ilqg_jax.Options`` (``alphas``, if given,
    overrides ``line_search_steps``/``min_step``).

    Args:
      x0: ``(n,)``; us_init: ``(T, m)``.
      eps, eps_hess: relative finite-difference steps (first, second derivatives).
      vectorized: see the module docstring.

    Returns:
      :class:`NumpyResult`; ``history_*`` have one entry for the initial
      rollout and one per iteration (``history_mu``: ``mu`` after the iteration).
    """
    t_start = time.perf_counter()
    if alphas is None:
        alphas = np.logspace(0.0, np.log10(min_step), line_search_steps)
    alphas = tuple(float(a) for a in alphas)
    x0 = np.asarray(x0, dtype=float)
    us = np.array(us_init, dtype=float, copy=True)
    T, m = us.shape
    n = x0.shape[0]
    tol = max(float(tol), 64.0 * float(np.finfo(float).eps))   # as ilqg_jax.solver.effective_tol
    t_deriv = 0.0

    def derivatives(xs, us):
        nonlocal t_deriv
        t0 = time.perf_counter()
        D = fd_derivatives(dynamics, running_cost, terminal_cost, xs, us, eps=eps,
                           eps_hess=eps_hess, vectorized=vectorized)
        t_deriv += time.perf_counter() - t0
        return D

    def increase(mu, dmu):
        dmu = max(dmu * mu_factor, mu_factor)
        return max(mu * dmu, mu_min), dmu

    def decrease(mu, dmu):
        dmu = min(dmu / mu_factor, 1.0 / mu_factor)
        mu = mu * dmu
        return (mu if mu > mu_min else 0.0), dmu

    xs, _ = rollout(dynamics, x0, us)
    J = trajectory_cost(running_cost, terminal_cost, xs, us)
    K = np.zeros((T, m, n))
    k = np.zeros((T, m))
    mu, dmu = float(mu_init), 1.0
    hist_cost, hist_mu, hist_alpha = [J], [mu], [float("nan")]
    iterations = 0
    derivs = derivatives(xs, us) if math.isfinite(J) else None
    if derivs is None or not all(np.isfinite(a).all() for a in derivs):
        status = "nonfinite"
    elif max_iter <= 0:
        status = "max iterations"
    else:
        status = None

    while status is None:
        iterations += 1
        ok, K_new, k_new, dV = backward_pass(derivs, mu)
        expected = -(dV[0] + dV[1])
        small_gradient = ok and expected <= tol * abs(J)

        accepted, any_finite = None, False
        if ok:
            for alpha in alphas:
                xs_try, us_try = rollout(dynamics, x0, us, xs, us, K_new, k_new, alpha)
                J_try = trajectory_cost(running_cost, terminal_cost, xs_try, us_try)
                any_finite |= math.isfinite(J_try)
                if math.isfinite(J_try) and J_try < J:
                    accepted = (alpha, xs_try, us_try, J_try)
                    break
            K, k = K_new, k_new

        new_derivs = None
        if accepted is not None:
            new_derivs = derivatives(accepted[1], accepted[2])
            derivs_finite = all(np.isfinite(a).all() for a in new_derivs)
            mu, dmu = decrease(mu, dmu)
        else:
            derivs_finite = True
            mu, dmu = increase(mu, dmu)

        rel = (J - accepted[3]) / abs(J) if accepted is not None else float("nan")
        if accepted is not None and not derivs_finite:
            status = "nonfinite"
        elif (accepted is not None and rel < tol) or small_gradient:
            status = "converged"
        elif accepted is None and mu > mu_max:
            status = "nonfinite" if (ok and not any_finite) else "regularization limit"
        elif iterations >= max_iter:
            status = "max iterations"

        if accepted is not None and derivs_finite:
            alpha, xs, us, J = accepted
            derivs = new_derivs
            hist_alpha.append(alpha)
        else:
            hist_alpha.append(float("nan"))
        hist_cost.append(J)
        hist_mu.append(mu)
        if verbose:
            print(f"iter {iterations:3d}  cost {J:.12g}  mu {mu:.3g}  alpha {hist_alpha[-1]:.3g}")

    # Gains at the returned trajectory, as the JAX solver returns them.
    if derivs is not None and status != "nonfinite":
        ok, K_fin, k_fin, _ = backward_pass(derivs, mu)
        if ok:
            K, k = K_fin, k_fin
    return NumpyResult(xs=xs, us=us, K=K, k=k, cost=float(J), iterations=iterations,
                       converged=status == "converged", status=status, history_cost=hist_cost,
                       history_mu=hist_mu, history_alpha=hist_alpha, time_derivatives=t_deriv,
                       time_total=time.perf_counter() - t_start)
