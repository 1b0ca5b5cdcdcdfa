"""Exact derivatives of the optimal trajectory, by implicit differentiation of the KKT conditions.

At a local optimum ``(xs, us)`` of the problem with costates (Lagrange
multipliers of the dynamics) ``lams``, the Lagrangian

    ``L = sum_t l(x_t, u_t, t, p) + l_f(x_T, p)
          + sum_t lam_{t+1}' (f(x_t, u_t, t, p) - x_{t+1}) + lam_0' (x0 - x_0)``

is stationary in ``z = (xs, us, lams)``: ``R(z; p, x0) = grad_z L = 0``. By the
implicit function theorem ``dz = -(d R / d z)^-1 (d R / d(p, x0)) d(p, x0)``.
The matrix ``H = d R / d z = grad_z^2 L`` is the KKT matrix of a time-varying
LQR problem: dynamics ``fx, fu``, cost Hessian the Hessian of the Lagrangian
(``lxx + lam . fxx`` etc., the full-DDP second-order terms with the exact
costates) -- so a solve with ``H`` is one Riccati sweep
(:func:`~ilqg_jax.backward.backward_pass`, ``mu = 0``) plus two linear
rollouts: ``O(T)`` like one solver iteration, never a dense ``(T m) x (T m)``
factorisation. This is the LQR form of Amos et al. (2018), "Differentiable MPC
for end-to-end planning and control", and the ``custom_root`` pattern of jaxopt
(Blondel et al. 2022, "Efficient and modular implicit differentiation").

:func:`attach_gradients` is the entry point: an identity on ``(xs, us, cost)``
with a ``jax.custom_jvp`` whose tangent is that solve, wrapped in
``lax.custom_linear_solve`` (``H`` is symmetric, so the same LQR solve is its
own transpose). Forward mode (``jax.jvp``) therefore uses the LQR solve once per
tangent and reverse mode (``jax.grad``/``jax.vjp``) once per cotangent; JAX
transposes the rest. The cost's tangent comes from the envelope theorem,
``d cost = dL/dp . dp + lam_0 . dx0``, which needs no solve.

Conventions and limitations:

- **Control limits**: a control component that sits on a limit at the returned
  solution is treated as fixed -- its derivative is zero, and the others are
  differentiated with it held there (the active set is assumed not to change).
  Derivatives with respect to the limits themselves are not provided (zero).
- **Initial controls**: the optimum does not depend on ``us_init``, so its
  gradient is zero.
- **Feedback gains** ``K, k`` and ``history`` are constants (zero gradient).
- **Not converged**: the derivatives are those of the returned trajectory as if
  it were the optimum (exact only at a stationary point, good to first order
  in the gradient norm near one); check ``Solution.status``. If the Riccati
  sweep meets a ``Quu`` that is not positive definite (the returned point is
  not a strict local minimum), the derivatives are NaN.
- **Accuracy** is that of the returned optimum. The solver stops on a relative
  cost change ``tol``, which on a flat problem leaves errors up to
  ``~sqrt(tol)`` in the controls with iLQG's linear convergence (``1e-3`` at
  the default ``tol = 1e-7`` on the pendulum swing-up), and the gradients
  inherit them. Full DDP (``Options(second_order=True)``) converges
  quadratically, so its optimum -- and the gradients -- are exact to round-off
  at a tight ``tol``.

Names as in :mod:`ilqg_jax.backward`: ``fx, fu`` dynamics Jacobians; ``Lxx,
Luu, Lux`` the Hessians of the Lagrangian (a capital ``L`` to distinguish them
from the cost's ``lxx, ...``).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.flatten_util
import jax.numpy as jnp

from ilqg_jax.backward import backward_pass
from ilqg_jax.derivatives import Derivatives, _times, linearize, trajectory_cost
from ilqg_jax.problem import Problem

Array = jax.Array

__all__ = ["KKTHessian", "costates", "lagrangian", "kkt_residual", "kkt_hessian", "free_controls",
           "kkt_matvec", "solve_kkt", "attach_gradients", "FirstParams", "constraint_values", "lagrangian_problem",
           "ActiveConstraints", "active_constraints", "constrained_kkt_matvec", "solve_constrained_kkt",
           "attach_constrained_gradients"]


class KKTHessian(NamedTuple):
    """The blocks of ``H = grad^2 L`` along a trajectory.

    Attributes:
      fx: ``(T, n, n)``, fu: ``(T, n, m)`` dynamics Jacobians.
      Lxx: ``(T+1, n, n)`` Hessian of the Lagrangian in ``x_t`` (row ``T``: terminal cost).
      Luu: ``(T, m, m)``, Lux: ``(T, m, n)``.
    """

    fx: Array
    fu: Array
    Lxx: Array
    Luu: Array
    Lux: Array


def costates(problem: Problem, xs: Array, us: Array, params=None) -> Array:
    """Costates ``lams: (T+1, n)``: ``lam_T = grad l_f(x_T)``, ``lam_t = lx_t + fx_t' lam_{t+1}``.

    ``lam_t`` is the gradient of the cost-to-go with respect to ``x_t`` along
    the open-loop controls ``us``; ``lam_0`` is ``d cost / d x0``.
    """
    fx, _ = linearize(problem.dynamics, xs, us, params)
    lx = jax.vmap(jax.grad(problem.running_cost), in_axes=(0, 0, 0, None))(xs[:-1], us, _times(us), params)
    lam_T = jax.grad(problem.terminal_cost)(xs[-1], params)

    def step(lam_next, inp):
        fx_t, lx_t = inp
        lam = lx_t + fx_t.T @ lam_next
        return lam, lam

    _, lams = jax.lax.scan(step, lam_T, (fx, lx), reverse=True)
    return jnp.concatenate([lams, lam_T[None]])


def lagrangian(problem: Problem, xs: Array, us: Array, lams: Array, params, x0: Array) -> Array:
    """The scalar Lagrangian ``L(xs, us, lams; params, x0)`` of the module docstring."""
    ts = _times(us)
    running = jax.vmap(problem.running_cost, in_axes=(0, 0, 0, None))(xs[:-1], us, ts, params)
    f = jax.vmap(problem.dynamics, in_axes=(0, 0, 0, None))(xs[:-1], us, ts, params)
    return (jnp.sum(running) + problem.terminal_cost(xs[-1], params)
            + jnp.sum(lams[1:] * (f - xs[1:])) + lams[0] @ (x0 - xs[0]))


def kkt_residual(problem: Problem, xs: Array, us: Array, lams: Array, params, x0: Array):
    """``R = grad_(xs, us, lams) L``: a tuple ``((T+1, n), (T, m), (T+1, n))``, zero at a KKT point."""
    return jax.grad(lagrangian, argnums=(1, 2, 3))(problem, xs, us, lams, params, x0)


def kkt_hessian(problem: Problem, xs: Array, us: Array, lams: Array, params=None) -> KKTHessian:
    """Blocks of ``grad^2 L``: the dynamics Jacobians and the Hessians of ``l + lam_{t+1} . f``."""

    def stage(x, u, t, lam_next):
        return problem.running_cost(x, u, t, params) + lam_next @ problem.dynamics(x, u, t, params)

    (Lxx, _), (Lux, Luu) = jax.vmap(jax.hessian(stage, argnums=(0, 1)))(xs[:-1], us, _times(us), lams[1:])
    Lxx_T = jax.hessian(problem.terminal_cost)(xs[-1], params)
    fx, fu = linearize(problem.dynamics, xs, us, params)
    return KKTHessian(fx, fu, jnp.concatenate([Lxx, Lxx_T[None]]), Luu, Lux)


def free_controls(problem: Problem, us: Array) -> Array:
    """``(T, m)`` bool: True where ``u`` is strictly inside its limits (all True without limits).

    A control within a few ``eps`` of a limit (the solver clips onto it
    exactly) counts as clamped.
    """
    if not problem.has_limits:
        return jnp.ones(us.shape, bool)
    lo, hi = problem.control_lower.astype(us.dtype), problem.control_upper.astype(us.dtype)
    eps = 4 * jnp.finfo(us.dtype).eps
    at_lower = us <= lo + eps * jnp.maximum(1.0, jnp.abs(lo))
    at_upper = us >= hi - eps * jnp.maximum(1.0, jnp.abs(hi))
    return ~(at_lower | at_upper)


def _masked(h: KKTHessian, free: Array):
    """``fu, Luu, Lux`` with clamped controls removed: zero columns/rows, identity on the diagonal."""
    fu = h.fu * free[:, None, :]
    both = free[:, :, None] & free[:, None, :]
    eye = jnp.eye(free.shape[1], dtype=h.Luu.dtype)
    Luu = jnp.where(both, h.Luu, eye)
    Lux = h.Lux * free[:, :, None]
    return fu, Luu, Lux


def kkt_matvec(h: KKTHessian, free: Array, v):
    """``M v`` with ``M = P H P + (I - P)``, ``P`` the projection on free controls (symmetric).

    Args:
      h: :class:`KKTHessian`; free: ``(T, m)`` bool from :func:`free_controls`.
      v: ``(vx (T+1, n), vu (T, m), vl (T+1, n))``.

    Returns:
      A tuple shaped like ``v``.
    """
    vx, vu, vl = v
    fu, Luu, Lux = _masked(h, free)
    vu_free = jnp.where(free, vu, 0.0)
    ex = jnp.einsum
    out_x = ex("tij,tj->ti", h.Lxx, vx)
    out_x = out_x.at[:-1].add(ex("tji,tj->ti", Lux, vu_free) + ex("tji,tj->ti", h.fx, vl[1:])) - vl
    out_u = ex("tij,tj->ti", Lux, vx[:-1]) + ex("tij,tj->ti", Luu, vu_free) + ex("tji,tj->ti", fu, vl[1:])
    out_u = jnp.where(free, out_u, vu)
    out_l = jnp.concatenate([-vx[:1], ex("tij,tj->ti", h.fx, vx[:-1]) + ex("tij,tj->ti", fu, vu_free) - vx[1:]])
    return out_x, out_u, out_l


def solve_kkt(h: KKTHessian, free: Array, b, unroll: int = 1):
    """Solves ``M (dx, du, dl) = b`` (``M`` of :func:`kkt_matvec`) as one LQR problem.

    The system is the optimality condition of

        ``min sum_t 1/2 [dx; du]' [[Lxx, Lux'], [Lux, Luu]] [dx; du] - bx' dx - bu' du``
        ``s.t. dx_{t+1} = fx dx_t + fu du_t - bl_{t+1},  dx_0 = -bl_0``

    (clamped controls fixed at zero), with ``dl`` its costates. The affine
    term of the dynamics is carried by an extra state ``s = 1``, so the sweep
    is :func:`~ilqg_jax.backward.backward_pass` unchanged (``mu = 0``), then a
    closed-loop rollout, and ``dl_t = Vx_t + Vxx_t [dx_t; 1]``. Cost ``O(T)``.

    Args:
      h: :class:`KKTHessian`; free: ``(T, m)`` bool.
      b: ``(bx (T+1, n), bu (T, m), bl (T+1, n))``.

    Returns:
      ``(dx (T+1, n), du (T, m), dl (T+1, n))``; NaN if some ``Quu`` is not
      positive definite.
    """
    bx, bu, bl = b
    T, n = h.fx.shape[:2]
    dtype = h.fx.dtype
    fu, Luu, Lux = _masked(h, free)
    c = -bl[1:]
    # Augmented dynamics [dx; s] -> [fx dx + c s + fu du; s].
    top = jnp.concatenate([h.fx, c[:, :, None]], axis=2)
    bottom = jnp.broadcast_to(jnp.eye(1, n + 1, n, dtype=dtype), (T, 1, n + 1))
    fx_a = jnp.concatenate([top, bottom], axis=1)
    fu_a = jnp.concatenate([fu, jnp.zeros((T, 1, fu.shape[2]), dtype)], axis=1)
    Lxx_a = jnp.pad(h.Lxx, ((0, 0), (0, 1), (0, 1)))
    Lux_a = jnp.pad(Lux, ((0, 0), (0, 0), (0, 1)))
    lx_a = jnp.pad(-bx, ((0, 0), (0, 1)))
    lu = -jnp.where(free, bu, 0.0)
    d = Derivatives(fx=fx_a, fu=fu_a, lx=lx_a, lu=lu, lxx=Lxx_a, luu=Luu, lux=Lux_a)
    bw = backward_pass(d, jnp.zeros((), dtype), unroll=unroll)

    def step(xa, inp):
        fx_t, fu_t, K_t, k_t = inp
        du = k_t + K_t @ xa
        return fx_t @ xa + fu_t @ du, (xa, du)

    xa0 = jnp.concatenate([-bl[0], jnp.ones((1,), dtype)])
    xa_T, (xa, du) = jax.lax.scan(step, xa0, (fx_a, fu_a, bw.K, bw.k), unroll=unroll)
    xa = jnp.concatenate([xa, xa_T[None]])
    dl = bw.Vx[:, :n] + jnp.einsum("tij,tj->ti", bw.Vxx[:, :n, :], xa)
    du = jnp.where(free, du, 0.0)
    return xa[:, :n], du, dl


class _Functions(NamedTuple):
    """The static (hashable) part of a :class:`Problem`."""

    dynamics: Callable
    running_cost: Callable
    terminal_cost: Callable
    horizon: int
    path_constraint: Optional[Callable] = None
    terminal_constraint: Optional[Callable] = None

    def problem(self, lower, upper) -> Problem:
        return Problem(self.dynamics, self.running_cost, self.terminal_cost, self.horizon, lower, upper,
                       self.path_constraint, self.terminal_constraint)


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def _optimum(fns: _Functions, x0, params, lower, upper, xs, us, cost):
    del fns, x0, params, lower, upper
    return xs, us, cost


@_optimum.defjvp
def _optimum_jvp(fns: _Functions, primals, tangents):
    x0, params, lower, upper, xs, us, cost = primals
    dx0, dparams = tangents[0], tangents[1]
    problem = fns.problem(lower, upper)
    lams = costates(problem, xs, us, params)
    h = kkt_hessian(problem, xs, us, lams, params)
    free = free_controls(problem, us)

    residual = functools.partial(kkt_residual, problem, xs, us, lams)
    _, dR = jax.jvp(residual, (params, x0), (dparams, dx0))
    b = (-dR[0], jnp.where(free, -dR[1], 0.0), -dR[2])
    # One flat right-hand side: custom_linear_solve transposes only when every part of it depends on
    # the tangents, and here some parts may not (e.g. only x0 is differentiated).
    b_flat, unravel = jax.flatten_util.ravel_pytree(b)

    def flat(fn):
        return lambda v: jax.flatten_util.ravel_pytree(fn(unravel(v)))[0]

    z = jax.lax.custom_linear_solve(flat(functools.partial(kkt_matvec, h, free)), b_flat,
                                    solve=lambda _, rhs: flat(functools.partial(solve_kkt, h, free))(rhs),
                                    symmetric=True)
    dx, du, _ = unravel(z)
    # Envelope theorem: at the optimum d cost = dL/dparams . dparams + lam_0 . dx0.
    _, dcost = jax.jvp(functools.partial(lagrangian, problem, xs, us, lams), (params, x0), (dparams, dx0))
    return (xs, us, cost), (dx, du, dcost.astype(cost.dtype))


def attach_gradients(problem: Problem, x0: Array, params: Any, xs: Array, us: Array,
                     cost: Optional[Array] = None):
    """Returns ``(xs, us, cost)`` unchanged, differentiable in ``x0`` and ``params`` as the optimum.

    ``(xs, us)`` must be a (local) optimum of ``problem`` from ``x0`` with
    ``params`` -- typically the output of the solver computed on
    ``lax.stop_gradient`` inputs. Their derivatives with respect to ``x0`` and
    every leaf of ``params`` are those of the optimum, by implicit
    differentiation of the KKT conditions (module docstring): ``jax.jvp``,
    ``jax.grad``, ``jax.vjp``, ``jax.vmap`` and ``jax.jit`` all apply. Without
    a transform it costs nothing.

    Args:
      problem: the :class:`~ilqg_jax.Problem`.
      x0: ``(n,)`` initial state; params: the problem's parameter pytree (or ``None``).
      xs: ``(T+1, n)``, us: ``(T, m)`` the optimal trajectory.
      cost: its scalar cost (defaults to recomputing it).

    Returns:
      ``(xs, us, cost)``.
    """
    if cost is None:
        cost = trajectory_cost(problem, xs, us, params)
    fns = _Functions(problem.dynamics, problem.running_cost, problem.terminal_cost, problem.horizon)
    return _optimum(fns, x0, params, problem.control_lower, problem.control_upper, xs, us, cost)


# --- path and terminal constraints ------------------------------------------------------------------
#
# With ``g(x_t, u_t, t) <= 0`` (multipliers ``nu: (T, p)``) and ``h(x_T) = 0`` (``eta: (q,)``) the
# Lagrangian gains ``sum_t nu_t . g_t + eta . h``; the KKT system in ``(xs, us, lams, nu, eta)`` is
# ``H`` (the Hessian of that Lagrangian) bordered by the Jacobians ``J`` of the active constraints
# (``nu > 0``, and every ``h``); the inactive ones are held at ``nu = 0`` (identity rows, as for clamped
# controls). It is solved by a Schur complement on the multipliers with ``H + rho J'J``, which has the
# solution of the bordered system for any ``rho`` and is positive definite on the free controls for the
# augmented Lagrangian's final ``rho`` -- the inner solver factorised it. One Riccati sweep per
# constraint component (``T p + q``, vmapped) and one dense ``(T p + q)`` solve: the cost of a gradient.


@dataclasses.dataclass(frozen=True)
class FirstParams:
    """``fn(*args, params[0])``: a problem function called with the first entry of a params tuple (hashable)."""

    fn: Callable

    def __call__(self, *args):
        *head, params = args
        return self.fn(*head, params[0])


@dataclasses.dataclass(frozen=True)
class _RunningLagrangian:
    cost: Callable
    constraint: Optional[Callable]

    def __call__(self, x, u, t, pp):
        c = self.cost(x, u, t, pp[0])
        return c if self.constraint is None else c + pp[1][t] @ self.constraint(x, u, t, pp[0])


@dataclasses.dataclass(frozen=True)
class _TerminalLagrangian:
    cost: Callable
    constraint: Optional[Callable]

    def __call__(self, x, pp):
        c = self.cost(x, pp[0])
        return c if self.constraint is None else c + pp[2] @ self.constraint(x, pp[0])


def lagrangian_problem(problem: Problem) -> Problem:
    """An unconstrained problem with costs ``l + nu_t . g`` and ``l_f + eta . h``; params ``(params, nu, eta)``.

    Its :func:`costates`, :func:`lagrangian` and :func:`kkt_hessian` are those
    of the constrained problem's Lagrangian with fixed multipliers.
    """
    return Problem(FirstParams(problem.dynamics), _RunningLagrangian(problem.running_cost, problem.path_constraint),
                   _TerminalLagrangian(problem.terminal_cost, problem.terminal_constraint), problem.horizon,
                   problem.control_lower, problem.control_upper)


def constraint_values(problem: Problem, xs: Array, us: Array, params) -> tuple[Optional[Array], Optional[Array]]:
    """``(g: (T, p) or None, h: (q,) or None)`` along ``xs: (T+1, n)``, ``us: (T, m)``."""
    g = h = None
    if problem.path_constraint is not None:
        g = jax.vmap(problem.path_constraint, in_axes=(0, 0, 0, None))(xs[:-1], us, _times(us), params)
    if problem.terminal_constraint is not None:
        h = problem.terminal_constraint(xs[-1], params)
    return g, h


def _sized(g: Optional[Array], shape) -> Array:
    """``g``, or an empty array of ``shape`` (zero constraints) when ``None``."""
    return jnp.zeros(shape) if g is None else g


class ActiveConstraints(NamedTuple):
    """Jacobians of the constraints held active, zero rows for the others.

    Attributes:
      Gx: ``(T, p, n)``, Gu: ``(T, p, m)`` of ``g`` (rows zero where inactive,
        columns zero on clamped controls). active: ``(T, p)`` bool.
      Hx: ``(q, n)`` of ``h`` (every row active). ``p`` or ``q`` is 0 without that constraint.
    """

    Gx: Array
    Gu: Array
    active: Array
    Hx: Array


def active_constraints(problem: Problem, xs: Array, us: Array, params, nu: Optional[Array],
                       free: Array) -> ActiveConstraints:
    """The :class:`ActiveConstraints` at ``(xs, us)``: path constraints with ``nu > 0`` (strict complementarity)."""
    (T, m), n = us.shape, xs.shape[1]
    if problem.path_constraint is None:
        Gx, Gu, active = jnp.zeros((T, 0, n), xs.dtype), jnp.zeros((T, 0, m), xs.dtype), jnp.zeros((T, 0), bool)
    else:
        jac = jax.vmap(jax.jacfwd(problem.path_constraint, argnums=(0, 1)), in_axes=(0, 0, 0, None))
        Gx, Gu = jac(xs[:-1], us, _times(us), params)
        active = nu > 0
        Gx = Gx * active[:, :, None]
        Gu = Gu * (active[:, :, None] & free[:, None, :])
    if problem.terminal_constraint is None:
        Hx = jnp.zeros((0, n), xs.dtype)
    else:
        Hx = jax.jacfwd(problem.terminal_constraint)(xs[-1], params)
    return ActiveConstraints(Gx, Gu, active, Hx)


def _jt(J: ActiveConstraints, vn, ve, nl: int):
    """``J' (vn, ve)`` as an ``(x, u, lam)`` vector."""
    ex = jnp.einsum
    vx = jnp.concatenate([ex("tpi,tp->ti", J.Gx, vn), (J.Hx.T @ ve)[None]])
    return vx, ex("tpi,tp->ti", J.Gu, vn), jnp.zeros((J.Gx.shape[0] + 1, nl), vx.dtype)


def _j(J: ActiveConstraints, vx, vu):
    """``J (vx, vu)``: ``((T, p), (q,))``."""
    ex = jnp.einsum
    return ex("tpi,ti->tp", J.Gx, vx[:-1]) + ex("tpi,ti->tp", J.Gu, vu), J.Hx @ vx[-1]


def constrained_kkt_matvec(h: KKTHessian, free: Array, J: ActiveConstraints, v):
    """The bordered KKT matrix times ``v = (vx, vu, vl, vn (T, p), ve (q,))`` (symmetric).

    ``[[M, J'], [J, 0]]`` with ``M`` of :func:`kkt_matvec`; inactive path
    constraints get identity rows (their multipliers are held at zero).
    """
    vx, vu, vl, vn, ve = v
    ox, ou, ol = kkt_matvec(h, free, (vx, vu, vl))
    vn = jnp.where(J.active, vn, 0.0)
    tx, tu, _ = _jt(J, vn, ve, vl.shape[1])
    on, oe = _j(J, vx, jnp.where(free, vu, 0.0))
    return ox + tx, ou + jnp.where(free, tu, 0.0), ol, jnp.where(J.active, on, v[3]), oe


def _with_penalty(h: KKTHessian, J: ActiveConstraints, rho) -> KKTHessian:
    """``H + rho J'J`` (stage-wise: the constraints of stage ``t`` couple only ``x_t`` and ``u_t``)."""
    ex = jnp.einsum
    Lxx = h.Lxx.at[:-1].add(rho * ex("tpi,tpj->tij", J.Gx, J.Gx)).at[-1].add(rho * J.Hx.T @ J.Hx)
    return h._replace(Lxx=Lxx, Luu=h.Luu + rho * ex("tpi,tpj->tij", J.Gu, J.Gu),
                      Lux=h.Lux + rho * ex("tpi,tpj->tij", J.Gu, J.Gx))


def solve_constrained_kkt(h: KKTHessian, free: Array, J: ActiveConstraints, rho, b, unroll: int = 1):
    """Solves the system of :func:`constrained_kkt_matvec`, ``b = (bx, bu, bl, bn, be)``, by a Schur complement.

    With ``M_rho = M + rho J'J`` (:func:`solve_kkt` of :func:`_with_penalty`):
    ``w = M_rho^-1 (b_z + rho J' b_c)``, ``Y = M_rho^-1 J'`` (one sweep per
    constraint component), ``(J Y) nu = J w - b_c``, ``z = w - Y nu``.
    """
    bx, bu, bl, bn, be = b
    (T, p), q, nl = J.active.shape, J.Hx.shape[0], bl.shape[1]
    h_rho = _with_penalty(h, J, rho)
    solve = functools.partial(solve_kkt, h_rho, free, unroll=unroll)
    bn_active = jnp.where(J.active, bn, 0.0)
    tx, tu, _ = _jt(J, bn_active, be, nl)
    w = solve((bx + rho * tx, bu + rho * tu, bl))
    basis = jnp.eye(T * p + q, dtype=bx.dtype)
    Y = jax.vmap(lambda e: solve(_jt(J, e[:T * p].reshape(T, p), e[T * p:], nl)))(basis)
    S = jax.vmap(lambda y: jnp.concatenate([a.ravel() for a in _j(J, y[0], y[1])]))(Y)
    inactive = jnp.concatenate([~J.active.ravel(), jnp.zeros((q,), bool)])
    S = S + jnp.diag(inactive.astype(S.dtype))
    jw_n, jw_e = _j(J, w[0], w[1])
    rhs = jnp.concatenate([jnp.where(J.active, jw_n - bn, bn).ravel(), jw_e - be])
    nu = jnp.linalg.solve(S, rhs)
    z = jax.tree_util.tree_map(lambda a, ys: a - jnp.tensordot(nu, ys, axes=1), w, Y)
    return z[0], z[1], z[2], nu[:T * p].reshape(T, p), nu[T * p:]


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def _constrained_optimum(fns: _Functions, x0, params, lower, upper, xs, us, cost, nu, eta, rho):
    del fns, x0, params, lower, upper, nu, eta, rho
    return xs, us, cost


@_constrained_optimum.defjvp
def _constrained_optimum_jvp(fns: _Functions, primals, tangents):
    x0, params, lower, upper, xs, us, cost, nu, eta, rho = primals
    dx0, dparams = tangents[0], tangents[1]
    problem = fns.problem(lower, upper)
    lp, pp = lagrangian_problem(problem), (params, nu, eta)
    lams = costates(lp, xs, us, pp)
    h = kkt_hessian(lp, xs, us, lams, pp)
    free = free_controls(problem, us)
    J = active_constraints(problem, xs, us, params, nu, free)
    (T, p), q = J.active.shape, J.Hx.shape[0]

    def residual(params, x0):
        g, hT = constraint_values(problem, xs, us, params)
        return (*kkt_residual(lp, xs, us, lams, (params, nu, eta), x0), _sized(g, (T, p)).astype(xs.dtype),
                _sized(hT, (q,)).astype(xs.dtype))

    _, dR = jax.jvp(residual, (params, x0), (dparams, dx0))
    b = (-dR[0], jnp.where(free, -dR[1], 0.0), -dR[2], jnp.where(J.active, -dR[3], 0.0), -dR[4])
    b_flat, unravel = jax.flatten_util.ravel_pytree(b)

    def flat(fn):
        return lambda v: jax.flatten_util.ravel_pytree(fn(unravel(v)))[0]

    matvec = flat(functools.partial(constrained_kkt_matvec, h, free, J))
    schur = flat(functools.partial(solve_constrained_kkt, h, free, J, rho))

    def refined(_, rhs):  # one step of iterative refinement: rho J'J may be large next to H
        z = schur(rhs)
        return z + schur(rhs - matvec(z))

    z = jax.lax.custom_linear_solve(matvec, b_flat, solve=refined, symmetric=True)
    dx, du = unravel(z)[:2]
    _, dcost = jax.jvp(lambda p_, x0_: lagrangian(lp, xs, us, lams, (p_, nu, eta), x0_), (params, x0),
                       (dparams, dx0))
    return (xs, us, cost), (dx, du, dcost.astype(cost.dtype))


def attach_constrained_gradients(problem: Problem, x0: Array, params: Any, xs: Array, us: Array, cost: Array,
                                 path_multipliers: Optional[Array], terminal_multipliers: Optional[Array], penalty):
    """:func:`attach_gradients` for a problem with path/terminal constraints.

    Args:
      problem, x0, params, xs, us, cost: as for :func:`attach_gradients`.
      path_multipliers: ``(T, p)`` multipliers ``nu >= 0`` of ``path_constraint``
        at the optimum (``None`` without one); the constraints with ``nu > 0``
        are held active, the others inactive.
      terminal_multipliers: ``(q,)`` multipliers of ``terminal_constraint`` (or ``None``).
      penalty: scalar ``rho > 0`` for the Schur complement (the solver's final penalty).

    Returns:
      ``(xs, us, cost)``, differentiable in ``x0`` and ``params`` as the
      constrained optimum (active set assumed not to change).
    """
    fns = _Functions(problem.dynamics, problem.running_cost, problem.terminal_cost, problem.horizon,
                     problem.path_constraint, problem.terminal_constraint)
    return _constrained_optimum(fns, x0, params, problem.control_lower, problem.control_upper, xs, us, cost,
                                path_multipliers, terminal_multipliers, penalty)
