"""Projected-Newton solver for box-constrained quadratic programs.

Implements ``boxQP`` of Tassa, Mansard & Todorov (2014), "Control-limited
differential dynamic programming", ICRA, Algorithm 1 and ``boxQP.m``::

    minimise    0.5 x^T H x + g^T x
    subject to  lower <= x <= upper.

It is used by the backward pass to compute the feed-forward control ``k``
(``H = Quu``, ``g = Qu``, box = control limits minus the nominal control, warm
started from the previous ``k``); the feedback gains ``K`` are then computed on
the free subspace only (rows of clamped controls are zero), see
:func:`free_subspace_solve`.

Names follow the paper: ``H`` the (symmetric) Hessian, ``g`` the gradient of
the objective at ``x = 0``, ``grad = g + H x`` the gradient at ``x``, the
*clamped* set ``c`` = indices at a bound whose gradient points out of the box,

    c_i = (x_i == lower_i and grad_i > 0) or (x_i == upper_i and grad_i < 0),

and the *free* set ``f`` its complement. Each iteration factorises ``H_ff``
(Cholesky), takes the Newton step on the free subspace, ``delta_f =
-H_ff^{-1} grad_f`` (``delta_c = 0``), and backtracks (factor ``step_dec``)
along the projected path ``x_new = clip(x + step * delta)`` until the Armijo
condition ``value(x_new) - value(x) <= armijo * step * grad^T delta`` holds.

Differences from ``boxQP.m``, all deliberate:

- The Newton direction is computed from the gradient at ``x`` rather than as
  ``-H_ff^{-1}(g + H x_c)_f - x_f`` (identical in exact arithmetic, but the
  former does not cancel near the optimum).
- The change of objective in the Armijo test is computed as
  ``grad^T d + 0.5 d^T H d`` with ``d = x_new - x`` (exact for a quadratic),
  not as a difference of two values, which cancels to noise near the optimum
  and made float32 line searches fail there.
- A variable with ``lower_i == upper_i`` is always clamped (it has no free
  direction, so it must not get a feedback gain).
- The gradient tolerance never goes below the round-off level of
  ``grad = g + H x`` in the working dtype (see :func:`box_qp`).
- A failed line search leaves ``x`` where it was, and the free set returned is
  always the one at the returned ``x`` (its ``H_ff`` checked positive
  definite, unless the status is ``NOT_POSITIVE_DEFINITE``).

Everything is fixed-shape and free of Python control flow on values (the free
subspace is handled by masking: ``H_ff`` is represented by
``where(free_i & free_j, H, I)``), so :func:`box_qp` can be ``jit``-ed,
``vmap``-ed, and called inside ``lax.scan``.
"""

from __future__ import annotations

import enum
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from ilqg_jax import linalg

Array = jax.Array

__all__ = ["BoxQPStatus", "BoxQPResult", "box_qp", "free_subspace_solve"]


class BoxQPStatus(enum.IntEnum):
    """Why :func:`box_qp` stopped.

    The values are the ``result`` codes of ``boxQP.m`` (code 3, "no bounds",
    is not needed: without bounds the first Newton step lands on the optimum
    and the solver stops with ``SMALL_GRADIENT``). As in ``iLQG.m``, a status
    ``< 1`` (``NOT_POSITIVE_DEFINITE``, ``NO_DESCENT``) is a failure the
    caller should answer by increasing the regularisation; every other status
    returns a feasible ``x`` that is optimal or as good as the tolerances
    allow.
    """

    #: ``H`` restricted to the free set is not positive definite (its Cholesky
    #: factorisation failed). ``x`` is the last iterate (the clipped ``x0`` if
    #: it fails on the first iteration), finite and feasible.
    NOT_POSITIVE_DEFINITE = -1
    #: The Newton direction is not a descent direction (round-off, or
    #: non-finite ``g``/``H``); ``x`` is the last iterate.
    NO_DESCENT = 0
    #: ``max_iter`` Newton steps taken without meeting a stopping criterion.
    MAX_ITER = 1
    #: The Armijo line search reached ``step < min_step``; ``x`` is the last
    #: iterate (the failed step is not taken).
    MAX_LINE_SEARCH = 2
    #: The last step improved the objective by less than
    #: ``min_rel_improve * |value|``.
    SMALL_IMPROVEMENT = 4
    #: The norm of the gradient on the free set is below the tolerance
    #: (converged; also the outcome of the unconstrained case, in one step).
    SMALL_GRADIENT = 5
    #: Every variable is clamped at a bound (converged; ``free`` is all False).
    ALL_CLAMPED = 6


_RUNNING = 7  # internal: the loop goes on; never returned.


class BoxQPResult(NamedTuple):
    """Result of :func:`box_qp` (a pytree; batched under ``vmap``).

    Attributes:
      x: ``(m,)`` the solution, always inside the box and finite.
      free: ``(m,)`` bool, True where the variable is not clamped at ``x`` (the
        free set used for the feedback gains, see :func:`free_subspace_solve`).
      status: ``()`` int32, a :class:`BoxQPStatus`.
      iterations: ``()`` int32, the number of Newton steps (line searches)
        performed.
    """

    x: Array
    free: Array
    status: Array
    iterations: Array


def _masked_hessian(H: Array, free: Array) -> Array:
    """``H_ff`` embedded in an ``(m, m)`` matrix: ``where(free_i & free_j, H, I)``."""
    eye = jnp.eye(H.shape[-1], dtype=H.dtype)
    return jnp.where(free[:, None] & free[None, :], H, eye)


def free_subspace_solve(H: Array, B: Array, free: Array) -> Array:
    """Solve ``H_ff X_f = B_f`` on the free set, with ``X = 0`` on the clamped set.

    This is how the feedback gains are computed with control limits (Tassa,
    Mansard & Todorov 2014, eq. 9 / ``iLQG.m``): ``K = -free_subspace_solve(
    Quu, Qux, free)`` has the rows of clamped controls equal to zero. It
    computes ``solve(where(free_i & free_j, H, I), where(free_i, B, 0))`` by a
    Cholesky factorisation.

    Args:
      H: ``(m, m)`` symmetric matrix, positive definite on the free set.
      B: ``(m,)`` or ``(m, n)`` right-hand side(s).
      free: ``(m,)`` bool free set, e.g. ``BoxQPResult.free``.

    Returns:
      ``X`` with the shape of ``B``; rows of clamped variables are zero. If
      ``H_ff`` is not positive definite the result is NaN (use
      ``BoxQPResult.status`` to detect that beforehand).
    """
    H = jnp.asarray(H)
    B = jnp.asarray(B, dtype=jnp.result_type(H, B))
    free = jnp.asarray(free, dtype=bool)
    row_mask = free.reshape(free.shape + (1,) * (B.ndim - 1))
    chol = linalg.cholesky(_masked_hessian(H.astype(B.dtype), free))
    return linalg.cho_solve(chol, jnp.where(row_mask, B, jnp.zeros((), B.dtype)))


class _State(NamedTuple):
    x: Array
    value: Array
    old_value: Array
    improvement: Array
    free: Array
    status: Array
    iterations: Array


def _check_shapes(H, g, lower, upper, x0):
    if H.ndim != 2 or H.shape[0] != H.shape[1]:
        raise ValueError(f"box_qp: H must be a square (m, m) matrix, got shape {H.shape}.")
    m = H.shape[0]
    for name, a in (("g", g), ("x0", x0)):
        if a.shape != (m,):
            raise ValueError(f"box_qp: {name} must have shape ({m},) to match H, got {a.shape}.")
    for name, a in (("lower", lower), ("upper", upper)):
        if a.shape not in ((), (m,)):
            raise ValueError(
                f"box_qp: {name} must be a scalar or have shape ({m},) to match H, got {a.shape}."
            )


def box_qp(H: Array, g: Array, lower: Array, upper: Array, x0: Array, *, max_iter: int = 100,
           min_grad: float = 1e-8, min_rel_improve: float = 1e-8, step_dec: float = 0.6, min_step: float = 1e-22,
           armijo: float = 0.1) -> BoxQPResult:
    """Minimise ``0.5 x^T H x + g^T x`` subject to ``lower <= x <= upper``.

    Projected Newton with an Armijo line search along the projected path
    (Tassa, Mansard & Todorov 2014, Algorithm 1, ``boxQP.m``; defaults are
    theirs). Pure and fixed-shape: ``jit``, ``vmap`` and ``lax.scan`` friendly;
    it never raises on values, failures are reported in ``status``.

    Each iteration, at ``x``, checks the stopping rules (:class:`BoxQPStatus`;
    the gradient tolerance is ``max(min_grad, 8 m eps |(|g| + |H| |x|)_f|)``,
    the round-off level of ``grad = g + H x``), else takes a projected Newton
    step (``MAX_LINE_SEARCH`` if no step size passes the Armijo test).

    The loop is a ``lax.while_loop``, so reverse-mode differentiation through
    it is not supported; differentiate the solution implicitly instead. With
    one variable (``m = 1``, most of the systems here) the minimiser is
    ``clip(-g / H, lower, upper)`` in closed form: it is computed directly,
    with the statuses the iteration would give, and no loop (a loop inside
    every step of the backward pass's scan costs more than the QP itself).

    Args:
      H: ``(m, m)`` symmetric Hessian (only needs to be positive definite on
        the free subspaces visited).
      g: ``(m,)`` linear term.
      lower: ``(m,)`` or scalar lower bounds, ``-inf`` allowed.
      upper: ``(m,)`` or scalar upper bounds, ``+inf`` allowed;
        ``lower <= upper`` is assumed (``lower == upper`` fixes a variable).
      x0: ``(m,)`` warm start; clipped into the box (non-finite entries are
        replaced by the clipped 0).
      max_iter: maximum number of Newton steps.
      min_grad: absolute tolerance on the norm of the free gradient.
      min_rel_improve: minimum relative improvement of the objective per step.
      step_dec: backtracking factor of the line search, in (0, 1).
      min_step: the line search fails below this step size.
      armijo: fraction of the linear decrease a step must achieve.

    Returns:
      A :class:`BoxQPResult` ``(x: (m,), free: (m,) bool, status: () int32,
      iterations: () int32)``, in the floating dtype of the inputs.
    """
    dtype = jnp.result_type(H, g, x0, float)
    H, g, x0 = (jnp.asarray(a, dtype) for a in (H, g, x0))
    lower, upper = jnp.asarray(lower, dtype), jnp.asarray(upper, dtype)
    _check_shapes(H, g, lower, upper, x0)
    m = H.shape[0]
    lower, upper = jnp.broadcast_to(lower, (m,)), jnp.broadcast_to(upper, (m,))
    if m == 1:
        return _box_qp_scalar(H, g, lower, upper, x0, max_iter=max_iter, min_grad=min_grad)
    return _projected_newton(H, g, lower, upper, x0, max_iter=max_iter, min_grad=min_grad,
                             min_rel_improve=min_rel_improve, step_dec=step_dec, min_step=min_step, armijo=armijo)


def _start(x0, lower, upper):
    """The clipped warm start (non-finite entries replaced by the clipped 0)."""
    x = jnp.clip(x0, lower, upper)
    return jnp.where(jnp.isfinite(x), x, jnp.clip(jnp.zeros_like(x), lower, upper))


def _clamped(x, grad, lower, upper):
    """The clamped set of the module docstring (a variable with ``lower == upper`` is always clamped)."""
    return ((x == lower) & (grad > 0)) | ((x == upper) & (grad < 0)) | (lower == upper)


def _grad_tol(g, H, x, free, min_grad):
    """``max(min_grad, 8 m eps |(|g| + |H| |x|)_f|)``: the tolerance on the free gradient's norm."""
    m = g.shape[0]
    roundoff = jnp.where(free, jnp.abs(g) + jnp.abs(H) @ jnp.abs(x), jnp.zeros((), g.dtype))
    return jnp.maximum(min_grad, 8 * m * jnp.finfo(g.dtype).eps * jnp.linalg.norm(roundoff))


def _box_qp_scalar(H, g, lower, upper, x0, *, max_iter, min_grad) -> BoxQPResult:
    """:func:`box_qp` for ``m = 1``: the first check of the iteration at the warm start, then the exact step.

    At the clipped warm start the checks of :func:`_projected_newton` run in
    its order (all clamped, not positive definite, small gradient,
    ``max_iter``, no descent); otherwise one step lands on
    ``clip(-g / H, lower, upper)``, where the gradient is zero or points out
    of the box, so the iteration would stop there with ``SMALL_GRADIENT`` or
    ``ALL_CLAMPED``.
    """
    x = _start(x0, lower, upper)
    h, g1 = H[0, 0], g[0]
    grad = g + H[:, 0] * x
    clamped = _clamped(x, grad, lower, upper)
    newton = jnp.clip(-g1 / jnp.where(h > 0, h, 1.0), lower[0], upper[0])
    finite_step = jnp.isfinite(newton) & jnp.isfinite(grad[0])
    x_new = jnp.where(finite_step, newton, x[0])[None]
    grad_new = g + H[:, 0] * x_new
    conditions = [
        clamped[0],
        ~(h > 0),
        jnp.abs(grad[0]) < _grad_tol(g, H, x, ~clamped, min_grad),
        max_iter <= 0,
        ~finite_step,
    ]
    stop = jnp.select(conditions, [BoxQPStatus.ALL_CLAMPED, BoxQPStatus.NOT_POSITIVE_DEFINITE,
                                   BoxQPStatus.SMALL_GRADIENT, BoxQPStatus.MAX_ITER, BoxQPStatus.NO_DESCENT],
                      _RUNNING)
    stepped = stop == _RUNNING
    clamped_new = _clamped(x_new, grad_new, lower, upper)
    status = jnp.where(stepped, jnp.where(clamped_new[0], BoxQPStatus.ALL_CLAMPED, BoxQPStatus.SMALL_GRADIENT),
                       stop)
    return BoxQPResult(x=jnp.where(stepped, x_new, x), free=~jnp.where(stepped, clamped_new, clamped),
                       status=status.astype(jnp.int32), iterations=stepped.astype(jnp.int32))


class _Settings(NamedTuple):
    """The QP and the options of one :func:`box_qp` call (after checks and broadcasting)."""

    H: Array
    g: Array
    lower: Array
    upper: Array
    max_iter: int
    min_grad: float
    min_rel_improve: float
    step_dec: float
    min_step: float
    armijo: float


def _trial(p: _Settings, x, grad, search, sdotg, step):
    """Projected point, its change of objective, and the Armijo test."""
    xc = jnp.clip(x + step * search, p.lower, p.upper)
    d = xc - x
    # Exact for a quadratic, and free of the cancellation of objective(xc) - objective(x) near the optimum.
    dv = grad @ d + 0.5 * d @ (p.H @ d)
    return xc, dv, dv <= p.armijo * step * sdotg


def _line_search(p: _Settings, x, grad, search, sdotg, active):
    """Backtrack ``step`` until Armijo holds; returns (accepted, x_new, change)."""

    def cond(c):
        step, _, _, accepted = c
        return active & ~accepted & (step >= p.min_step)

    def body(c):
        step = c[0] * p.step_dec
        return (step, *_trial(p, x, grad, search, sdotg, step))

    step = jnp.ones((), p.g.dtype)
    _, xc, dv, accepted = lax.while_loop(cond, body, (step, *_trial(p, x, grad, search, sdotg, step)))
    return accepted, xc, dv


def _stop_status(p: _Settings, s: _State, clamped, chol, grad, sdotg):
    """Why the iteration stops at ``s.x`` (``_RUNNING`` if it goes on), checked in this order.

    Every variable clamped (``ALL_CLAMPED``); the Cholesky factorisation of
    ``H_ff`` failed (``NOT_POSITIVE_DEFINITE``); ``|grad_f| < max(min_grad,
    tol_eps)`` with ``tol_eps = 8 m eps |(|g| + |H| |x|)_f|`` the round-off
    level of ``grad`` (``SMALL_GRADIENT``); the previous step reduced the
    objective by at most ``min_rel_improve * |previous value|``
    (``SMALL_IMPROVEMENT``); ``max_iter`` steps taken (``MAX_ITER``); the
    Newton direction is not a descent direction (``NO_DESCENT``).
    """
    free = ~clamped
    gnorm = jnp.linalg.norm(jnp.where(free, grad, jnp.zeros((), grad.dtype)))
    small_improvement = (s.iterations > 0) & (s.improvement <= p.min_rel_improve * jnp.abs(s.old_value))
    conditions = [jnp.all(clamped), ~jnp.all(jnp.isfinite(chol)), gnorm < _grad_tol(p.g, p.H, s.x, free, p.min_grad),
                  small_improvement, s.iterations >= p.max_iter, ~(sdotg < 0)]
    statuses = [BoxQPStatus.ALL_CLAMPED, BoxQPStatus.NOT_POSITIVE_DEFINITE, BoxQPStatus.SMALL_GRADIENT,
                BoxQPStatus.SMALL_IMPROVEMENT, BoxQPStatus.MAX_ITER, BoxQPStatus.NO_DESCENT]
    return jnp.select(conditions, statuses, _RUNNING).astype(jnp.int32)


def _iteration(p: _Settings, s: _State) -> _State:
    """One projected Newton step with its line search (or the stop, see :func:`_stop_status`)."""
    x = s.x
    grad = p.g + p.H @ x
    clamped = _clamped(x, grad, p.lower, p.upper)
    free = ~clamped
    chol = linalg.cholesky(_masked_hessian(p.H, free))
    # Newton direction on the free subspace (zero on the clamped set).
    search = -linalg.cho_solve(chol, jnp.where(free, grad, jnp.zeros((), grad.dtype)))
    sdotg = search @ grad
    status = _stop_status(p, s, clamped, chol, grad, sdotg)
    # `active` also guards lanes already finished under vmap, whose body is
    # still evaluated: they must not spin in the line search.
    active = (s.status == _RUNNING) & (status == _RUNNING)
    accepted, xc, dv = _line_search(p, x, grad, search, sdotg, active)
    take = active & accepted
    status = jnp.where(active & ~accepted, BoxQPStatus.MAX_LINE_SEARCH, status)
    return _State(
        x=jnp.where(take, xc, x),
        value=jnp.where(take, s.value + dv, s.value),
        old_value=jnp.where(take, s.value, s.old_value),
        improvement=jnp.where(take, -dv, s.improvement),
        free=free,
        status=status.astype(jnp.int32),
        iterations=s.iterations + active.astype(jnp.int32),
    )


def _projected_newton(H, g, lower, upper, x0, *, max_iter, min_grad, min_rel_improve, step_dec, min_step,
                      armijo) -> BoxQPResult:
    """:func:`box_qp`'s iteration (Algorithm 1 of the paper) for any ``m``; arguments already checked."""
    p = _Settings(H, g, lower, upper, max_iter, min_grad, min_rel_improve, step_dec, min_step, armijo)
    x = _start(x0, lower, upper)
    value = g @ x + 0.5 * x @ (H @ x)
    init = _State(x=x, value=value, old_value=value, improvement=jnp.zeros((), g.dtype), free=~(lower == upper),
                  status=jnp.asarray(_RUNNING, jnp.int32), iterations=jnp.zeros((), jnp.int32))
    final = lax.while_loop(lambda s: s.status == _RUNNING, lambda s: _iteration(p, s), init)
    return BoxQPResult(final.x, final.free, final.status, final.iterations)
