"""iLQG / DDP as one jit-compiled program.

Tassa, Erez & Todorov (2012), "Synthesis and stabilization of complex
behaviors through online trajectory optimization" (iLQG with the
regularisation schedule and line search used here); Tassa, Mansard & Todorov
(2014), "Control-limited differential dynamic programming" (box limits).

One iteration: quadratize the current trajectory
(:func:`~ilqg_jax.derivatives.trajectory_derivatives`), run the backward pass
(:func:`~ilqg_jax.backward.backward_pass`) with ``Quu + mu I`` (again with a
larger ``mu`` until that is positive definite), then a closed-loop forward
pass ``u = u_bar + alpha k + K (x - x_bar)`` re-simulated through the
dynamics, accepting the largest step ``alpha`` that lowers the cost. The
outer loop is a ``lax.while_loop``; nothing leaves the device until the solve
is done, and failures are reported as a :class:`Status`, never raised.
"""

from __future__ import annotations

import enum
import functools
import numbers
import time
from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from ilqg_jax.backward import BackwardResult, backward_pass, expected_change
from ilqg_jax.derivatives import (Derivatives, convexify, dynamics_hessians, rollout, trajectory_cost,
                                  trajectory_derivatives)
from ilqg_jax import implicit, linalg, parallel
from ilqg_jax.problem import Problem, validate_inputs, validate_states, with_dtype

Array = jax.Array

__all__ = ["Options", "Solution", "History", "Status", "solve"]

_RUNNING = -1
#: Iterations in a row that lower the cost by less than ``Options.tol`` (relative) without reaching
#: stationarity before a solve is declared ``STALLED``: near the optimum Newton steps often gain nothing
#: visible in the cost for an iteration or two while they still refine the controls, and raising ``mu``
#: after a rejected step takes a few iterations to pay off.
STALL_ITERATIONS = 10
#: A full step whose actual gain matches the expected one to this fraction (0.1%) ends the regularisation
#: (``mu = 0``): the model is exact there (a linear-quadratic problem, or a Newton step near the optimum).
EXACT_MODEL = 1e-3
#: Newton (DDP) steps continue after a rejected step (or a failed backward pass) while ``mu`` stays below
#: this; beyond it the solver falls back to Gauss-Newton steps on convexified costs.
DDP_MU_MAX = 1.0
#: The DDP switch applies to problems with at most this many states: the dynamics' Hessians cost
#: ``T n (n+m)^2`` numbers of memory and ``n + m`` Jacobian-vector passes per time step, which outgrow the
#: rest of an iteration beyond a dozen states (``Options(second_order=True)`` still forces full DDP).
DDP_MAX_STATE = 12
#: Multiple shooting: a step that closes gaps may raise the cost by up to ``1 + GAP_SLACK`` times the
#: rise the model predicted and still be accepted.
GAP_SLACK = 2.0


class Status(enum.IntEnum):
    """Why a solve stopped.

    - ``CONVERGED``: the trajectory is *stationary* and the cost has stopped
      moving: with the regularisation off (``mu <= Options.mu_min``), the
      Newton step of the backward pass is below ``Options.stationarity_tol``
      (``max_t,i |k_t,i| / (1 + |u_t,i|)``, :func:`stationarity`; with limits,
      the step of the box QP, zero on a limit the gradient pushes against),
      and a full step is expected to lower the cost by at most ``Options.tol``
      (relative); the backward pass that certifies it used the problem's own
      cost Hessians, not convexified ones, and the state trajectory has no
      gaps left (``xs_init``). The implicit gradients of :func:`solve`
      describe this point.
    - ``MAX_ITER``: ``Options.max_iter`` iterations without converging; the
      result is the best trajectory found.
    - ``REGULARIZATION_LIMIT``: ``mu`` exceeded ``Options.mu_max``: no step
      lowered the cost even with heavy regularisation (a local minimum that
      the tolerance could not certify, or a non-convexity the solver cannot
      leave).
    - ``STALLED``: the cost stopped moving (``STALL_ITERATIONS`` iterations in
      a row each lowered it by less than ``Options.tol`` relative), but the
      trajectory could not be certified stationary: a non-smooth cost (the
      seed notebook's clipping) where the model never earns full steps, a
      saddle point (the pendulum hanging with zero torque: the gradient
      vanishes by symmetry but the unregularised model is not positive
      definite), or a float32 solve asked for more than float32 resolves. The result is the
      best trajectory found; check ``Solution.stationarity``.
    - ``NONFINITE``: NaN/inf stopped the solver: the initial rollout or its
      cost or derivatives are not finite (``iterations == 0``); the derivatives
      are not finite at an accepted step (the step is not taken); or the
      solver stalled -- a decrease below the tolerance, or ``mu`` past
      ``mu_max`` -- while steps it tried ran into NaN/inf (a non-finite
      region, or an overflow of a cost that is unbounded below). The result
      is the last finite trajectory.
    - ``INFEASIBLE``: a problem with path/terminal constraints stopped with
      its largest violation above ``Options.constraint_tol`` (the outer
      iterations spent, or the penalty at its maximum and the violation no
      longer shrinking); see :mod:`ilqg_jax.constrained`.

    Every solve stops after at most ``Options.max_iter`` iterations (per
    inner solve of a constrained problem, at most ``Options.max_outer`` of them).
    """

    CONVERGED = 0
    MAX_ITER = 1
    REGULARIZATION_LIMIT = 2
    NONFINITE = 3
    STALLED = 4
    INFEASIBLE = 5


class Options(NamedTuple):
    """Solver settings (static: changing one recompiles).

    Attributes:
      max_iter: maximum number of iterations (backward + forward pass).
      tol: the largest relative cost decrease a full step may still promise at convergence (see
        :class:`Status`). The effective tolerance is never below ``64 * eps`` of the dtype (float32
        cannot resolve a 1e-7 relative change of a sum of many terms).
      convexify: once a backward pass fails (``Quu + mu I`` not positive
        definite), Gauss-Newton steps use the cost Hessians projected onto the
        positive semi-definite cone per time step
        (:func:`~ilqg_jax.derivatives.convexify`; gradients unchanged) until
        the regularisation is off again (``mu = 0``): a concave cost such as
        ``(1 - cos theta)^2`` near hanging, propagated through unstable
        dynamics, can otherwise make the backward pass fail at every ``mu``.
        Always projecting was measured to lead the pendulum and acrobot
        swing-ups into worse local minima. Newton (DDP) steps always use the
        exact Hessians.
      stationarity_tol: the largest normalised Newton step ``max_t,i |k_t,i| / (1 + |u_t,i|)`` at
        convergence (:func:`stationarity`): tight enough that finite differences of re-solved problems
        agree with the implicit gradients; never below ``1000 eps^(3/4)`` of the dtype (1.8e-9 in float64,
        6.4e-3 in float32: what rounding in the backward pass resolves).
      mu_init, mu_min, mu_max, mu_factor: Levenberg-Marquardt schedule of
        Tassa et al. (2012), Sec. II-F: ``mu`` below ``mu_min`` snaps to 0.
        With ``mu_init > 0`` the first iteration tries the unregularised
        full step first and keeps it when the quadratic model predicted its
        gain (an LQ problem: solved in one iteration, certified in the
        second; a warm start at the optimum); otherwise it starts from
        ``mu_init`` (see ``_newton_probe``). A backward pass that fails
        (``Quu + mu I`` not positive definite) raises ``mu`` and runs again
        within the same iteration, as in Tassa et al.'s and Crocoddyl's
        solvers; a line search that finds no step raises it for the next.
      line_search: ``"backtracking"`` (try ``alpha = 1, ...`` one rollout at a
        time in a ``lax.while_loop``) or ``"parallel"`` (all step sizes at
        once with ``vmap``).
      line_search_steps: number of step sizes, log-spaced from 1 to ``min_step``.
      min_step: smallest step size ``alpha``.
      min_reduction_ratio: accept a step when actual / expected cost decrease
        exceeds this (0: any decrease).
      second_order: full DDP at every iteration: add the dynamics' second
        derivatives contracted with ``Vx`` to the ``Q`` expansion
        (``jax.hessian`` of the dynamics).
      ddp_switch: with ``second_order=False``, switch those terms on (for the
        rest of the solve) once an accepted step with ``mu = 0`` lowers the
        cost by less than this fraction with ``alpha = 1``, or its model
        promised less for a full step: Gauss-Newton (iLQG) steps far
        from the optimum, where they are robust, and Newton (DDP) steps near
        it, where iLQG only converges linearly. ``0``: plain iLQG throughout.
        A positive value keeps the dynamics' Hessians of the trajectory in the
        solver state (``T n (n+m)^2`` numbers); it applies only up to
        :data:`DDP_MAX_STATE` states.
      backward: Riccati schedule of the backward pass: ``"sequential"`` (a
        reverse ``lax.scan``), ``"parallel"`` (an associative scan, O(log T)
        depth; :mod:`ilqg_jax.parallel`), or ``"auto"``
        (:func:`ilqg_jax.parallel.choose_backward`: by backend and size).
        Problems with control limits always use the sequential box-QP pass.
      unroll: ``lax.scan`` unroll factor for backward and forward passes.
      verbose: print one line per iteration while solving (iteration, cost,
        ``mu``, ``alpha``, expected decrease, wall time) through
        ``jax.debug.callback``; for single solves, not batches.
      constraint_tol: largest constraint violation a ``CONVERGED`` constrained
        solve may leave (path and terminal constraints, :mod:`ilqg_jax.constrained`).
      penalty_init, penalty_factor, penalty_max: the augmented-Lagrangian
        penalty: its first value, its growth per outer iteration while
        infeasible, its cap.
      max_outer: maximum number of outer (multiplier-update) iterations of a
        constrained solve; each runs an inner solve of up to ``max_iter`` iterations.
    """

    max_iter: int = 100
    tol: float = 1e-7
    mu_init: float = 1.0
    mu_min: float = 1e-6
    mu_max: float = 1e10
    mu_factor: float = 1.6
    line_search: str = "backtracking"
    line_search_steps: int = 11
    min_step: float = 1e-3
    min_reduction_ratio: float = 0.0
    second_order: bool = False
    ddp_switch: float = 1e-3
    convexify: bool = True
    stationarity_tol: float = 1e-8
    backward: str = "auto"
    unroll: int = 1
    verbose: bool = False
    constraint_tol: float = 1e-6
    penalty_init: float = 1.0
    penalty_factor: float = 10.0
    penalty_max: float = 1e8
    max_outer: int = 20


class History(NamedTuple):
    """Per-iteration record, fixed length ``max_iter + 1``, NaN after the last iteration.

    Row 0 is the initial rollout; row ``i`` the state after iteration ``i``.

    Attributes:
      cost: total cost of the current trajectory.
      mu: regularisation after the iteration.
      alpha: accepted step size (NaN when the iteration was rejected).
      expected: expected decrease of a full step, ``-(dV[0] + dV[1])``.
      stationarity: :func:`stationarity` of the trajectory the iteration started from.
    """

    cost: Array
    mu: Array
    alpha: Array
    expected: Array
    stationarity: Array


class Solution(NamedTuple):
    """Result of :func:`solve` (a pytree: ``vmap`` adds a leading axis to each field).

    Attributes:
      xs: ``(T+1, n)`` states, ``xs[0] == x0``.
      us: ``(T, m)`` controls.
      K: ``(T, m, n)`` feedback gains at the returned trajectory.
      k: ``(T, m)`` feed-forward terms at the returned trajectory.
      cost: scalar total cost.
      iterations: int32 number of iterations run.
      converged: bool, ``status == Status.CONVERGED``.
      status: int32 :class:`Status`.
      history: :class:`History`.
      stationarity: :func:`stationarity` at the returned trajectory (the
        convergence certificate: at most ``Options.stationarity_tol`` when
        ``CONVERGED``).
      multipliers: :class:`~ilqg_jax.constrained.Multipliers` of the path and
        terminal constraints (``None`` for a problem without them).
      violation: scalar, the largest constraint violation ``max(max(g, 0), |h|)``
        (0 for a problem without constraints).
    """

    xs: Array
    us: Array
    K: Array
    k: Array
    cost: Array
    iterations: Array
    converged: Array
    status: Array
    history: History
    stationarity: Array = jnp.nan
    multipliers: Any = None
    violation: Array = 0.0


class _State(NamedTuple):
    xs: Array
    us: Array
    cost: Array
    derivs: Derivatives
    d2: tuple
    second: Array
    convex: Array
    stalls: Array
    stall_ref: Array
    mu: Array
    dmu: Array
    iteration: Array
    status: Array
    K: Array
    k: Array
    history: History
    gaps: Optional[Array] = None  # (T, n) multiple-shooting defects f(x_t, u_t) - x_{t+1}; None: a rollout


def effective_tol(options: Options, dtype) -> float:
    """The stopping tolerance actually used: ``max(tol, 64 eps(dtype))``."""
    return max(float(options.tol), _floor(dtype))


def effective_stationarity_tol(options: Options, dtype) -> float:
    """The stationarity tolerance actually used: ``max(stationarity_tol, 1000 eps(dtype)^(3/4))``.

    Rounding in the backward pass (sums over the horizon, amplified by unstable
    linearisations) leaves the Newton step noisy: measured up to 5e-4 in
    float32 on the pendulum swing-up. The floor is 1.8e-9 in float64 and
    6.4e-3 in float32.
    """
    return max(float(options.stationarity_tol), 1000.0 * float(jnp.finfo(dtype).eps) ** 0.75)


def _floor(dtype) -> float:
    return 64.0 * float(jnp.finfo(dtype).eps)


def stationarity(k: Array, us: Array) -> Array:
    """Normalised Newton step ``max_t,i |k_t,i| / (1 + |u_t,i|)``: zero exactly at a stationary point.

    ``k: (T, m)`` is the feed-forward of the backward pass at ``us: (T, m)``
    (Tassa, Erez & Todorov 2012 stop on its mean over time; the maximum is
    stricter). It is the Newton step ``-Quu^-1 Qu`` on the controls, relative
    to their size, so it does not depend on the scale of the cost; with
    control limits it is the box QP's step, zero where a limit holds a control
    the gradient pushes against.
    """
    return jnp.max(jnp.abs(k) / (1.0 + jnp.abs(us)))


def expected_decrease(dV: Array, alpha=1.0) -> Array:
    """The decrease of the cost the quadratic model predicts for a step of size ``alpha``.

    ``-(alpha dV[0] + alpha^2 dV[1])`` for the backward pass's ``dV: (..., 2)``
    (leading axes: batch members), ``alpha`` a scalar or an array that
    broadcasts against them (step sizes of a line search).
    """
    return -(alpha * dV[..., 0] + alpha**2 * dV[..., 1])


def step_sizes(options: Options, dtype) -> Array:
    """Line-search step sizes ``alpha``: log-spaced from 1 down to ``min_step``."""
    return jnp.asarray(np.logspace(0.0, np.log10(options.min_step), options.line_search_steps), dtype)


def _increase(mu, dmu, options: Options):
    f = options.mu_factor
    dmu = jnp.maximum(dmu * f, f)
    return jnp.maximum(mu * dmu, options.mu_min), dmu


def _decrease(mu, dmu, options: Options):
    f = options.mu_factor
    dmu = jnp.minimum(dmu / f, 1.0 / f)
    mu = mu * dmu
    return jnp.where(mu > options.mu_min, mu, 0.0), dmu


def closed_loop_rollout(problem: Problem, x0, xs_bar, us_bar, K, k, alpha, params=None, unroll: int = 1,
                        gaps=None):
    """Forward pass ``u_t = u_bar_t + alpha k_t + K_t (x_t - x_bar_t)``, re-simulated.

    Controls are clipped to the problem's limits. Returns ``(xs, us, cost)``.
    With ``gaps: (T, n)`` (multiple shooting, Mastalli et al. 2020) the step
    keeps ``1 - alpha`` of each gap, ``x_{t+1} = f(x_t, u_t) - (1 - alpha)
    gap_t``: a full step is a rollout, a partial one stays as infeasible as
    the linearised model's step of that size.
    """

    def step(carry, inp):
        x, c = carry
        t, xb, ub, Kt, kt, gap = inp
        u = ub + alpha * kt + linalg.matmul(Kt, x - xb)
        if problem.has_limits:
            u = jnp.clip(u, problem.control_lower, problem.control_upper)
        c = c + problem.running_cost(x, u, t, params)
        x_next = problem.dynamics(x, u, t, params)
        if gap is not None:
            x_next = x_next - (1.0 - alpha) * gap
        return (x_next, c), (x_next, u)

    ts = jnp.arange(us_bar.shape[0])
    (xT, c), (xs, us) = jax.lax.scan(step, (x0, jnp.zeros((), x0.dtype)), (ts, xs_bar[:-1], us_bar, K, k, gaps),
                                     unroll=unroll)
    cost = c + problem.terminal_cost(xT, params)
    return jnp.concatenate([x0[None], xs]), us, cost


def _accept(cost, new_cost, expected, ratio, gapped=False):
    """Step acceptance on actual vs expected decrease (Tassa et al. 2012, Sec. II-F).

    With gaps to close (``gapped``, multiple shooting) the model may predict
    that the cost rises (``expected < 0``): such a step is accepted when it
    rose by at most ``1 +`` :data:`GAP_SLACK` times the predicted rise
    (Mastalli et al. 2020 accept within a factor too).

    A step whose expected gain is below what the dtype resolves in the cost
    (``64 eps |cost|``) cannot be judged by its actual gain, which is rounding
    noise: it is accepted when the cost did not rise beyond that noise. Then
    ``mu`` falls instead of rising, the right move when heavy regularisation
    is what shrank the step, and near the optimum Newton steps still refine
    the controls (the stationarity test, not the cost, decides convergence).
    """
    actual = cost - new_cost
    resolution = _floor(cost.dtype) * jnp.abs(cost)
    z = jnp.where(expected > 0, actual / expected, jnp.sign(actual))
    decrease = (actual > 0) & (z > ratio)
    unresolved = (expected <= resolution) & (actual >= -resolution)
    rise = gapped & (expected < -resolution) & (actual >= (1.0 + GAP_SLACK) * expected)
    return jnp.isfinite(new_cost) & (decrease | unresolved | rise)


def _line_search(problem, params, options, state: _State, bw: BackwardResult, alphas):
    """Returns ``(accepted, alpha, xs, us, cost, hit_nonfinite)``.

    ``hit_nonfinite``: a step size tried before (or instead of) the accepted one
    gave a non-finite cost -- progress was blocked by NaN/inf.
    """
    x0 = state.xs[0]
    roll = functools.partial(closed_loop_rollout, problem, x0, state.xs, state.us, bw.K, bw.k,
                             params=params, unroll=options.unroll, gaps=state.gaps)
    gapped = _has_gaps(state)

    if options.line_search == "parallel":
        xs, us, costs = jax.vmap(roll)(alphas)
        ok = _accept(state.cost, costs, expected_decrease(bw.dV, alphas), options.min_reduction_ratio, gapped)
        i = jnp.argmax(ok)
        tried = jnp.where(ok[i], jnp.arange(alphas.shape[0]) < i, True)
        return ok[i], alphas[i], xs[i], us[i], costs[i], jnp.any(tried & ~jnp.isfinite(costs))

    def cond(c):
        i, accepted = c[0], c[1]
        return (~accepted) & (i < alphas.shape[0])

    def body(c):
        i, _, _, _, _, _, hit_nonfinite = c
        alpha = alphas[i]
        xs, us, cost = roll(alpha)
        ok = _accept(state.cost, cost, expected_decrease(bw.dV, alpha), options.min_reduction_ratio, gapped)
        return i + 1, ok, alpha, xs, us, cost, hit_nonfinite | ~jnp.isfinite(cost)

    init = (jnp.array(0), jnp.array(False), alphas[0], state.xs, state.us, state.cost, jnp.array(False))
    _, accepted, alpha, xs, us, cost, hit_nonfinite = jax.lax.while_loop(cond, body, init)
    return accepted, alpha, xs, us, cost, hit_nonfinite


def _hybrid(options: Options, n: int) -> bool:
    """Whether the DDP switch is on: ``ddp_switch > 0`` and at most :data:`DDP_MAX_STATE` states."""
    return options.ddp_switch > 0 and not options.second_order and n <= DDP_MAX_STATE


def _uses_second_order(options: Options, n: int) -> bool:
    return options.second_order or _hybrid(options, n)


def _derivatives(problem, xs, us, params, options, derivatives_fn, second=None, any_second=None):
    """Derivatives at ``(xs, us)``; the dynamics' Hessians where full DDP may need them.

    With ``ddp_switch`` they are computed only once ``second`` is set (zeros
    before: the DDP terms vanish and the backward pass is iLQG's). Under
    ``vmap`` a ``lax.cond`` on the batched ``second`` computes both branches;
    ``any_second``, unbatched, skips the Hessians when no member needs them.
    """
    d = derivatives_fn(problem, xs, us, params)
    if not _uses_second_order(options, xs.shape[1]):
        return d, ()
    hessians = functools.partial(dynamics_hessians, problem.dynamics, xs, us, params)
    if options.second_order:
        return d, hessians()
    zeros = lambda: jax.tree_util.tree_map(jnp.zeros_like, jax.eval_shape(hessians))  # noqa: E731
    if any_second is None:
        return d, jax.lax.cond(second, hessians, zeros)
    masked = lambda: jax.tree_util.tree_map(lambda a: jnp.where(second, a, 0.0), hessians())  # noqa: E731
    return d, jax.lax.cond(any_second, masked, zeros)


def _all_finite(tree) -> Array:
    leaves = jax.tree_util.tree_leaves(tree)
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(leaf)) for leaf in leaves]))


def _backward(problem, state: _State, mu, options, any_convex=None) -> BackwardResult:
    """The backward pass at ``state`` with regularisation ``mu``.

    Gauss-Newton (iLQG) on the exact cost Hessians, or on convexified ones
    after a failed backward pass while ``mu > 0`` (``state.convex``); full DDP
    (the dynamics' curvature too, exact Hessians) once ``state.second``.
    ``any_convex``: under ``vmap`` (:mod:`ilqg_jax.batch`), an unbatched flag
    whether any member needs the projection, so that a batch where none does
    skips it (a batched ``lax.cond`` would compute both branches).
    """
    d, d2 = state.derivs, None
    if _uses_second_order(options, state.xs.shape[1]):
        d2 = jax.tree_util.tree_map(lambda a: jnp.where(state.second, a, 0.0), state.d2)
    if options.convexify and not options.second_order:
        use = ~state.second & (mu > 0) & state.convex
        if any_convex is None:
            d = jax.lax.cond(use, lambda: convexify(d), lambda: d)
        else:
            d = jax.lax.cond(any_convex, lambda: jax.tree_util.tree_map(
                lambda a, b: jnp.where(use, a, b), convexify(d), d), lambda: d)
    if not problem.has_limits and _schedule(options, state.us.shape, state.xs.shape[1]) == "parallel":
        bw = parallel.parallel_backward_pass(d, mu, second_order=d2, gaps=state.gaps)
    else:
        bw = backward_pass(
            d, mu, state.us, problem.control_lower, problem.control_upper,
            k_warm=state.k if problem.has_limits else None, second_order=d2, unroll=options.unroll,
            gaps=state.gaps)
    if state.gaps is None:
        return bw
    # Multiple shooting: while gaps remain, the expected change is the model's along the gap-closing step.
    dV = jax.lax.cond(_has_gaps(state), lambda: expected_change(d, bw.K, bw.k, state.gaps), lambda: bw.dV)
    return bw._replace(dV=dV)


def _has_gaps(state: _State) -> Array:
    """Whether the nominal trajectory has a nonzero gap (``False`` for a rollout)."""
    if state.gaps is None:
        return jnp.array(False)
    return jnp.any(state.gaps != 0)


def _schedule(options: Options, us_shape, n: int) -> str:
    """The Riccati schedule ``options.backward`` names (``"auto"``: :func:`ilqg_jax.parallel.choose_backward`)."""
    if options.backward != "auto":
        return options.backward
    T, m = us_shape
    return parallel.choose_backward(jax.default_backend(), T, n, m)


def _regularised_backward(problem, options, state: _State) -> tuple[_State, BackwardResult]:
    """Backward passes at a rising ``mu`` until one succeeds (``Quu + mu I`` positive definite everywhere).

    Tassa, Erez & Todorov (2012) and Crocoddyl raise the regularisation and
    run the backward pass again within the iteration; only a failed line
    search costs one. Each failure raises ``mu`` (:func:`_raised`); past
    ``Options.mu_max`` (or where ``mu`` cannot rise: ``mu = mu_min = 0``) the
    pass stays failed (``ok = False``). Returns the state the rest of the
    iteration sees (its ``mu`` the one that succeeded) and the pass.
    :mod:`ilqg_jax.batch` runs the retries for the failed members only.
    """
    bw = _backward(problem, state, state.mu, options)

    def body(c):
        s = _raised(options, c[0])
        return s, _backward(problem, s, s.mu, options)

    state, bw = jax.lax.while_loop(lambda c: _failed_with_room(options, *c), body, (state, bw))
    return state, bw


def _failed_with_room(options: Options, state: _State, bw: BackwardResult) -> Array:
    """Whether the backward pass ``bw`` at ``state`` failed with room left to raise ``mu`` (at most
    ``mu_max``, and ``mu`` would rise: it grows geometrically, so retries end)."""
    return ~bw.ok & (state.mu <= options.mu_max) & (_increase(state.mu, state.dmu, options)[0] > state.mu)


#: The fields of :class:`_State` that :func:`_raised` changes.
_REGULARISATION = ("mu", "dmu", "convex", "second")


def _raised(options: Options, state: _State) -> _State:
    """``state`` after a failed backward pass: ``mu`` raised by the schedule, the cost Hessians convexified
    (``state.convex``) and Newton (DDP) steps ended once ``mu`` reaches :data:`DDP_MU_MAX`."""
    mu, dmu = _increase(state.mu, state.dmu, options)
    second = (state.second & (mu < DDP_MU_MAX)) | options.second_order
    return state._replace(mu=mu, dmu=dmu, convex=jnp.ones_like(state.convex), second=second)


def _iteration(problem, params, options, alphas, tol, derivatives_fn, state: _State) -> _State:
    state, bw = _regularised_backward(problem, options, state)

    def search(_):
        return _line_search(problem, params, options, state, bw, alphas)

    def skip(_):
        return _no_step(state)

    step = jax.lax.cond(bw.ok, search, skip, None)
    return _update(problem, params, options, tol, derivatives_fn, state, bw, step)


def _no_step(state: _State):
    """The line search's result when the backward pass failed: no step taken."""
    return jnp.array(False), jnp.asarray(jnp.nan, state.cost.dtype), state.xs, state.us, state.cost, jnp.array(False)


def _next_second(options: Options, state: _State, step, full_expected) -> Array:
    """Whether the next iteration is a Newton (DDP) one, given this iteration's ``step``.

    Newton steps once Gauss-Newton ones only crawl: an accepted, unregularised
    step from a trajectory without gaps that gained less than ``ddp_switch``
    (relative) with ``alpha = 1``, or whose model's full step
    (``full_expected``) promised less, whatever step size the line search
    took (Gauss-Newton steps shortened to ``alpha < 1`` near a minimum where
    the dynamics' curvature matters would otherwise crawl on and stall). A
    step that closes gaps (``xs_init``) may raise the cost: that is no crawl.
    Back to Gauss-Newton as soon as a Newton step fails at ``mu >= DDP_MU_MAX``.
    """
    if not _hybrid(options, state.xs.shape[1]):
        return state.second
    accepted, alpha, cost = step[0], step[1], step[4]
    scale = jnp.abs(state.cost)
    gained_little = (alpha == 1) & (state.cost - cost < options.ddp_switch * scale)
    small = gained_little | (full_expected < options.ddp_switch * scale)
    crawl = accepted & (state.mu <= options.mu_min) & small & ~_has_gaps(state)
    return (state.second & (accepted | (state.mu < DDP_MU_MAX))) | crawl


def _update(problem, params, options, tol, derivatives_fn, state: _State, bw: BackwardResult, step,
            any_second=None) -> _State:
    """The rest of an iteration, given the backward pass ``bw`` and the line search's ``step``.

    ``step = (accepted, alpha, xs, us, cost, hit_nonfinite)`` as returned by
    :func:`_line_search` (or :func:`_no_step`); :mod:`ilqg_jax.batch` runs its
    own batched line search and then this same update on every member, with
    ``any_second`` an unbatched flag whether any member needs the dynamics'
    Hessians (see :func:`_derivatives`).
    """
    accepted, alpha, xs, us, cost, hit_nonfinite = step
    full_expected = expected_decrease(bw.dV)
    stat = jnp.where(bw.ok, stationarity(bw.k, state.us), jnp.inf)
    second = _next_second(options, state, step, full_expected)
    derivs, d2 = jax.lax.cond(
        accepted, lambda _: _derivatives(problem, xs, us, params, options, derivatives_fn, second, any_second),
        lambda _: (state.derivs, state.d2), None)
    derivs_finite = _all_finite((derivs, d2))

    mu_down, dmu_down = _decrease(state.mu, state.dmu, options)
    mu_up, dmu_up = _increase(state.mu, state.dmu, options)
    mu = jnp.where(accepted, mu_down, mu_up)
    dmu = jnp.where(accepted, dmu_down, dmu_up)
    # Regularisation off (mu = 0) after a full step the model predicted exactly, and after a step whose
    # expected gain the dtype cannot resolve: nothing is at stake, and the unregularised model is what
    # certifies stationarity (a warm start at the optimum converges in two iterations).
    # (A model that needed mu > 1 to be positive definite keeps its regularisation.)
    exact = (accepted & (alpha == 1) & (state.mu <= 1.0)
             & (jnp.abs((state.cost - cost) / full_expected - 1) < EXACT_MODEL))
    unresolved = accepted & (full_expected <= _floor(state.cost.dtype) * jnp.abs(state.cost))
    mu = jnp.where(exact | unresolved, 0.0, mu)
    it = state.iteration + 1
    status, stalls, stall_ref = _status(options, state, bw, stat, full_expected, tol, accepted, cost,
                                        hit_nonfinite, derivs_finite, mu, it)
    gaps = state.gaps
    if gaps is not None:  # a step of size alpha keeps 1 - alpha of every gap; a full one is a rollout
        gaps = jnp.where(accepted & derivs_finite, jnp.where(alpha == 1, 0.0, 1.0 - alpha) * gaps, gaps)

    # A step into a region where the derivatives are not finite is not taken.
    keep = accepted & derivs_finite
    pick = lambda new, old: jax.tree_util.tree_map(lambda a, b: jnp.where(keep, a, b), new, old)  # noqa: E731
    history = _record(state.history, it, jnp.where(keep, cost, state.cost), mu, jnp.where(keep, alpha, jnp.nan),
                      full_expected, stat)
    if options.verbose:
        jax.debug.callback(_log_iteration, it, history.cost[it], mu, history.alpha[it], full_expected, stat,
                           status, ordered=True)
    return _State(
        xs=pick(xs, state.xs), us=pick(us, state.us), cost=pick(cost, state.cost),
        derivs=pick(derivs, state.derivs), d2=pick(d2, state.d2), second=(second & (keep | ~accepted)) | options.second_order,
        stalls=stalls, stall_ref=stall_ref, mu=mu, convex=(state.convex | ~bw.ok) & (mu > 0), dmu=dmu, iteration=it, status=status,
        K=jnp.where(bw.ok, bw.K, state.K), k=jnp.where(bw.ok, bw.k, state.k), history=history, gaps=gaps)


def _close_gaps(problem, params, options, derivatives_fn, state: _State) -> _State:
    """A solve that stops with gaps left returns a trajectory, not nodes: the rollout from ``x0`` of the
    nodes' controls with the last feedback gains, ``u_t = u_t + K_t (x_t - x_bar_t)`` (no feed-forward)."""
    xs, us, cost = closed_loop_rollout(problem, state.xs[0], state.xs, state.us, state.K, jnp.zeros_like(state.k),
                                       0.0, params, options.unroll)
    derivs, d2 = _derivatives(problem, xs, us, params, options, derivatives_fn, state.second)
    status = jnp.where(jnp.isfinite(cost) & _all_finite((xs, derivs, d2)), state.status, Status.NONFINITE)
    return state._replace(xs=xs, us=us, cost=cost, derivs=derivs, d2=d2, gaps=jnp.zeros_like(state.gaps),
                          status=status.astype(jnp.int32))


def _status(options, state: _State, bw, stat, full_expected, tol, accepted, cost, hit_nonfinite, derivs_finite,
            mu, it) -> tuple[Array, Array, Array]:
    """The :class:`Status` after an iteration (``_RUNNING`` to go on), the stall count and its reference.

    Converged: the trajectory the iteration started from is stationary with
    the regularisation off (or exactly stationary, ``k = 0``, whatever ``mu``)
    for the problem's own cost Hessians (not convexified ones), and a full
    step promises at most ``tol`` relative (``<=``: a trajectory of cost 0
    with nothing to gain has converged).
    Stalled: :data:`STALL_ITERATIONS` accepted iterations in a row that
    lowered the cost by less than ``tol`` relative, without reaching
    stationarity and without halving the unregularised stationarity measure
    since the run began (slow but steady Newton progress is not a stall) --
    or NaN/inf cut the steps short (``NONFINITE``).
    """
    stol = effective_stationarity_tol(options, state.cost.dtype)
    # The model must be the problem's own: not the convexified one (a saddle -- e.g. hanging with zero
    # torque -- has k = 0 under the projection, and is no minimum).
    own_model = ~(state.convex & (state.mu > 0)) | state.second
    certified = own_model & ((state.mu <= options.mu_min) & (stat <= stol) | (stat == 0))
    gapped = _has_gaps(state)
    converged = bw.ok & certified & (full_expected <= tol * jnp.abs(state.cost)) & ~gapped
    # Only accepted steps count: a rejected one (``mu`` rising) neither stalls nor progresses, and neither
    # does a step closing gaps (the cost may rise).
    progress = (state.mu <= options.mu_min) & (stat < 0.5 * state.stall_ref)
    still = accepted & (state.cost - cost <= tol * jnp.abs(state.cost)) & ~converged & ~progress & ~gapped
    restart = accepted & ~still
    stalls = jnp.where(still, state.stalls + 1, jnp.where(restart, 0, state.stalls)).astype(jnp.int32)
    unregularised_stat = jnp.where(state.mu <= options.mu_min, stat, jnp.inf)
    stall_ref = jnp.where(restart, unregularised_stat, jnp.minimum(state.stall_ref, jnp.where(
        state.stalls == 0, unregularised_stat, state.stall_ref)))
    stalled = stalls >= STALL_ITERATIONS
    stuck = ~accepted & (mu > options.mu_max)
    status = jnp.select(
        [accepted & ~derivs_finite, converged, (stalled | stuck) & hit_nonfinite, stalled, stuck,
         it >= options.max_iter],
        [Status.NONFINITE, Status.CONVERGED, Status.NONFINITE, Status.STALLED, Status.REGULARIZATION_LIMIT,
         Status.MAX_ITER],
        _RUNNING).astype(jnp.int32)
    return status, stalls, stall_ref


def _record(h: History, it, cost, mu, alpha, expected, stat) -> History:
    """``h`` with row ``it`` written."""
    return History(cost=h.cost.at[it].set(cost), mu=h.mu.at[it].set(mu), alpha=h.alpha.at[it].set(alpha),
                   expected=h.expected.at[it].set(expected), stationarity=h.stationarity.at[it].set(stat))


_clock = {"last": None}


def _log_iteration(it, cost, mu, alpha, expected, stat, status):
    now = time.perf_counter()
    last = _clock["last"] if _clock["last"] is not None else now
    _clock["last"] = now
    step = f"{float(alpha):8.4f}" if np.isfinite(alpha) else "  reject"
    end = "" if int(status) == _RUNNING else f"  -> {Status(int(status)).name}"
    print(f"iter {int(it):4d}  cost {float(cost):.10g}  mu {float(mu):9.3g}  alpha {step}  "
          f"expected {float(expected):10.3g}  stationarity {float(stat):9.3g}  time {1e3 * (now - last):7.2f} ms"
          f"{end}", flush=True)


def _log_start(cost, status):
    _clock["last"] = time.perf_counter()
    end = "" if int(status) == _RUNNING else f"  -> {Status(int(status)).name}"
    print(f"iter    0  cost {float(cost):.10g}  (initial rollout){end}", flush=True)


def _init_state(problem, x0, us_init, params, options, derivatives_fn, xs_init=None) -> _State:
    """The state before the first iteration: the rollout of ``us_init`` from ``x0``, or with ``xs_init``
    the nodes ``xs_init`` (first row replaced by ``x0``) and their gaps (multiple shooting)."""
    dtype = x0.dtype
    T, m = us_init.shape
    n = x0.shape[0]
    if problem.has_limits:
        us_init = jnp.clip(us_init, problem.control_lower, problem.control_upper)
    gaps = None
    if xs_init is None:
        xs = rollout(problem.dynamics, x0, us_init, params)
    else:
        xs = xs_init.astype(dtype).at[0].set(x0)
        f = jax.vmap(problem.dynamics, in_axes=(0, 0, 0, None))(xs[:-1], us_init, jnp.arange(T), params)
        gaps = f - xs[1:]
    cost = trajectory_cost(problem, xs, us_init, params)
    second = jnp.array(options.second_order)
    derivs, d2 = _derivatives(problem, xs, us_init, params, options, derivatives_fn, second)
    finite = jnp.isfinite(cost) & _all_finite((xs, gaps, derivs, d2))
    nan = jnp.full((options.max_iter + 1,), jnp.nan, dtype)
    history = History(cost=nan.at[0].set(cost), mu=nan.at[0].set(options.mu_init), alpha=nan, expected=nan,
                      stationarity=nan)
    state = _State(
        xs=xs, us=us_init, cost=cost, derivs=derivs, d2=d2, second=second, convex=jnp.array(False), stalls=jnp.array(0, jnp.int32),
        stall_ref=jnp.asarray(jnp.inf, dtype),
        mu=jnp.asarray(options.mu_init, dtype), dmu=jnp.asarray(1.0, dtype),
        iteration=jnp.array(0, jnp.int32),
        status=jnp.where(finite, _RUNNING if options.max_iter > 0 else Status.MAX_ITER,
                         Status.NONFINITE).astype(jnp.int32),
        K=jnp.zeros((T, m, n), dtype), k=jnp.zeros((T, m), dtype), history=history, gaps=gaps)
    if options.mu_init > 0 and options.max_iter > 0:
        state = _newton_probe(problem, params, options, derivatives_fn, state)
    return state


def _newton_probe(problem, params, options, derivatives_fn, state: _State) -> _State:
    """Iteration 1 as an unregularised full step, kept only where the quadratic model predicted it.

    ``mu_init`` damps the first steps of a nonlinear problem far from its
    optimum, where the model is poor. Where it is exact -- a linear-quadratic
    problem, or a warm start already at (or next to) the optimum -- the
    damping only costs iterations: the Newton step ``mu = 0`` is tried first
    and kept when its actual gain matches the predicted one to
    :data:`EXACT_MODEL` (then ``mu`` stays 0: an LQ problem is solved in one
    iteration and certified in the second). Otherwise the state is returned
    unchanged, at ``mu_init``; the probe cost one backward pass and one rollout.
    """
    zero = jnp.zeros((), state.cost.dtype)
    # At mu = 0 the cost Hessians are never convexified; an unbatched False says so under vmap too (a
    # batched cond would compute the projection for every member of a batch).
    bw = _backward(problem, state._replace(mu=zero), zero, options, any_convex=jnp.array(False))
    xs, us, cost = closed_loop_rollout(problem, state.xs[0], state.xs, state.us, bw.K, bw.k, 1.0, params,
                                       options.unroll, gaps=state.gaps)
    full_expected = expected_decrease(bw.dV)
    exact = (bw.ok & (state.status == _RUNNING) & jnp.isfinite(cost) & (full_expected != 0)
             & (jnp.abs((state.cost - cost) / full_expected - 1) < EXACT_MODEL))
    tol = effective_tol(options, state.cost.dtype)
    step = (exact, jnp.ones((), state.cost.dtype), xs, us, cost, jnp.array(False))
    return jax.lax.cond(exact, lambda: _update(problem, params, options, tol, derivatives_fn,
                                               state._replace(mu=zero), bw, step), lambda: state)


def solve_unchecked(problem: Problem, x0: Array, us_init: Array, params=None, options: Options = Options(),
                    derivatives_fn=trajectory_derivatives, xs_init: Optional[Array] = None) -> Solution:
    """:func:`solve` without input validation or ``jit`` (for use inside other transforms).

    ``derivatives_fn(problem, xs, us, params) -> Derivatives`` replaces automatic
    differentiation; benchmarks pass
    :func:`~ilqg_jax.derivatives.finite_difference` to compare. It is not part
    of :func:`solve`.
    """
    if problem.has_constraints:  # an augmented Lagrangian around this function
        from ilqg_jax import constrained
        return constrained.solve_unchecked(problem, x0, us_init, params, options, xs_init=xs_init)
    dtype = x0.dtype
    us_init = us_init.astype(dtype)
    problem = with_dtype(problem, dtype)  # limits in the solve's dtype (float32 solves under x64)
    alphas = step_sizes(options, dtype)
    tol = effective_tol(options, dtype)
    state = _init_state(problem, x0, us_init, params, options, derivatives_fn, xs_init)
    if options.verbose:
        jax.debug.callback(_log_start, state.cost, state.status, ordered=True)
    body = functools.partial(_iteration, problem, params, options, alphas, tol, derivatives_fn)
    state = jax.lax.while_loop(lambda s: s.status == _RUNNING, body, state)
    if state.gaps is not None:
        close = functools.partial(_close_gaps, problem, params, options, derivatives_fn)
        state = jax.lax.cond(_has_gaps(state), close, lambda s: s, state)
    return _solution(problem, options, state)


def _solution(problem, options, state: _State, any_convex=None) -> Solution:
    """The :class:`Solution` of a finished ``state``, with the gains at the returned trajectory.

    ``any_convex``: as for :func:`_backward` (:mod:`ilqg_jax.batch` finishes members under ``vmap``).
    """
    final = _backward(problem, state, state.mu, options, any_convex)  # what a feedback controller needs
    K = jnp.where(final.ok, final.K, state.K)
    k = jnp.where(final.ok, final.k, state.k)
    stat = jnp.where(final.ok, stationarity(final.k, state.us), jnp.inf)
    return Solution(xs=state.xs, us=state.us, K=K, k=k, cost=state.cost, iterations=state.iteration,
                    converged=state.status == Status.CONVERGED, status=state.status, history=state.history,
                    stationarity=stat)


def differentiable_solve_unchecked(problem: Problem, x0: Array, us_init: Array, params=None,
                                   options: Options = Options(), derivatives_fn=trajectory_derivatives,
                                   xs_init: Optional[Array] = None) -> Solution:
    """:func:`solve_unchecked` made differentiable in ``x0`` and ``params`` (no validation, no ``jit``).

    The solver runs on ``lax.stop_gradient`` inputs (its iterations are never
    differentiated); :func:`ilqg_jax.implicit.attach_gradients` then gives
    ``xs``, ``us`` and ``cost`` the derivatives of the optimum by implicit
    differentiation. Without a transform it computes exactly what
    :func:`solve_unchecked` does.
    """
    if problem.has_constraints:
        from ilqg_jax import constrained
        return constrained.differentiable_solve_unchecked(problem, x0, us_init, params, options, xs_init=xs_init)
    stop = jax.lax.stop_gradient
    sol = solve_unchecked(stop(problem), stop(x0), stop(us_init), stop(params), options, derivatives_fn,
                          None if xs_init is None else stop(xs_init))
    xs, us, cost = implicit.attach_gradients(problem, x0, params, sol.xs, sol.us, sol.cost)
    return sol._replace(xs=xs, us=us, cost=cost)


_solve_jit = jax.jit(differentiable_solve_unchecked, static_argnames=("options", "derivatives_fn"))


def _option_integer(options: Options, name: str, low: int) -> None:
    v = getattr(options, name)
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Integral):
        raise TypeError(f"Options.{name} must be an int >= {low}, got {type(v).__name__} ({v!r:.40}).")
    if v < low:
        raise ValueError(f"Options.{name} must be an int >= {low}, got {v}.")


def _option_real(options: Options, name: str, expected: str, ok) -> None:
    v = getattr(options, name)
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
        raise TypeError(f"Options.{name} must be a real number {expected} (a Python or NumPy scalar: options are "
                        f"static), got {type(v).__name__} ({v!r:.40}).")
    if not (np.isfinite(v) and ok(float(v))):
        raise ValueError(f"Options.{name} must be a finite number {expected}, got {v!r}.")


def validate_options(options: Options) -> None:
    """Checks every field of ``options``: ``TypeError`` for a wrong type, ``ValueError`` for a bad value.

    Options are static (hashed by ``jit``), so numbers must be Python or NumPy
    scalars, not JAX arrays; ``bool`` is not accepted where a number is meant.
    """
    if not isinstance(options, Options):
        raise TypeError(f"options must be an ilqg_jax.Options, got {type(options).__name__}.")
    _option_integer(options, "max_iter", 0)
    _option_integer(options, "line_search_steps", 1)
    _option_integer(options, "unroll", 1)
    _option_real(options, "tol", "> 0", lambda v: v > 0)
    _option_real(options, "mu_init", ">= 0", lambda v: v >= 0)
    _option_real(options, "mu_min", ">= 0", lambda v: v >= 0)
    _option_real(options, "mu_max", "> 0", lambda v: v > 0)
    _option_real(options, "mu_factor", "> 1", lambda v: v > 1)
    _option_real(options, "min_step", "in (0, 1]", lambda v: 0 < v <= 1)
    _option_real(options, "min_reduction_ratio", "in [0, 1)", lambda v: 0 <= v < 1)
    _option_real(options, "ddp_switch", "in [0, 1]", lambda v: 0 <= v <= 1)
    _option_real(options, "stationarity_tol", "> 0", lambda v: v > 0)
    _option_real(options, "constraint_tol", "> 0", lambda v: v > 0)
    _option_real(options, "penalty_init", "> 0", lambda v: v > 0)
    _option_real(options, "penalty_factor", "> 1", lambda v: v > 1)
    _option_real(options, "penalty_max", ">= penalty_init", lambda v: v >= options.penalty_init)
    _option_integer(options, "max_outer", 1)
    if not options.mu_min <= options.mu_max:
        raise ValueError(f"Options need mu_min <= mu_max, got mu_min={options.mu_min}, mu_max={options.mu_max}.")
    if not (options.mu_init == 0 or options.mu_min <= options.mu_init <= options.mu_max):
        raise ValueError("Options need mu_min <= mu_init <= mu_max (or mu_init = 0), got "
                         f"mu_min={options.mu_min}, mu_init={options.mu_init}, mu_max={options.mu_max}.")
    if not isinstance(options.line_search, str):
        raise TypeError(f"Options.line_search must be a str, 'backtracking' or 'parallel', got "
                        f"{type(options.line_search).__name__} ({options.line_search!r:.40}).")
    if not isinstance(options.backward, str):
        raise TypeError(f"Options.backward must be a str ('auto', 'sequential' or 'parallel'), got "
                        f"{type(options.backward).__name__} ({options.backward!r:.40}).")
    if options.backward not in ("auto", "sequential", "parallel"):
        raise ValueError(f"Options.backward must be 'auto', 'sequential' or 'parallel', got {options.backward!r:.40}.")
    if options.line_search not in ("backtracking", "parallel"):
        raise ValueError(f"Options.line_search must be 'backtracking' or 'parallel', got {options.line_search!r}.")
    for name in ("second_order", "convexify", "verbose"):
        v = getattr(options, name)
        if not isinstance(v, (bool, np.bool_)):
            raise TypeError(f"Options.{name} must be a bool, got {type(v).__name__} ({v!r:.40}).")


def solve(problem: Problem, x0, us_init, params=None, options: Options = Options(), *, xs_init=None) -> Solution:
    """Solves ``problem`` from ``x0`` by iLQG, starting from the controls ``us_init``.

    The whole solve is one jit-compiled XLA program (``problem``'s functions
    and ``options`` are static). Inputs are validated in Python first.

    Args:
      problem: the :class:`~ilqg_jax.Problem`.
      x0: ``(n,)`` initial state.
      us_init: ``(T, m)`` initial controls, ``T = problem.horizon``.
      params: any pytree passed to every problem function (traced: it can be
        batched with ``vmap`` and differentiated).
      options: :class:`Options`.
      xs_init: optional ``(T+1, n)`` state guess (its first row is replaced by
        ``x0``): an interpolation, a demonstration, a previous solution. It
        need not be a rollout of ``us_init``: the solve starts from these
        nodes with their *gaps* ``f(x_t, u_t) - x_{t+1}`` and closes them over
        its iterations (multiple shooting, feasibility-driven DDP: Mastalli
        et al. 2020) -- a full step closes all of them. ``CONVERGED`` needs
        every gap closed; a solve stopping earlier returns the rollout of its
        nodes' controls with the last feedback gains. ``None`` (default):
        start from the rollout of ``us_init``.

    Returns:
      :class:`Solution` with ``xs: (T+1, n)``, ``us: (T, m)``, ``K: (T, m, n)``,
      ``k: (T, m)``, ``cost``, ``iterations``, ``converged``, ``status``, ``history``.

    Raises:
      TypeError, ValueError: for malformed inputs (before tracing). Numerical
        failure is reported in ``Solution.status``, never raised.

    Gradients: ``jax.grad``/``jax.vjp``/``jax.jvp`` of ``xs``, ``us`` and
    ``cost`` with respect to ``x0`` and every leaf of ``params`` are those of
    the optimum, by implicit differentiation of its optimality conditions
    (one LQR sweep, see :mod:`ilqg_jax.implicit`), not through the iterations.
    ``us_init`` gets a zero gradient (the optimum does not depend on it), and
    so do ``K``, ``k`` and ``history``; controls on a limit are held fixed.
    Away from convergence the gradients are those of the returned point taken
    as the optimum (check ``status``).
    """
    validate_options(options)
    x0, us_init = validate_inputs(problem, x0, us_init, params)
    if xs_init is None:  # the same call (and compilation cache entry) as without the keyword
        return _solve_jit(problem, x0, us_init, params, options)
    return _solve_jit(problem, x0, us_init, params, options, xs_init=validate_states(xs_init, problem.horizon, x0))
