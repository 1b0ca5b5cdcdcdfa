"""Model-predictive control: iLQG re-solved at every step, warm-started.

A receding-horizon controller (Tassa, Erez & Todorov 2012, "Synthesis and
stabilization of complex behaviors through online trajectory optimization"):
at every control step, solve the finite-horizon problem from the
measured state with a small, fixed iteration budget, apply the first control,
and keep the solution, shifted by one step, as the initial guess of the next
solve. Few iterations suffice because consecutive problems differ by one step.

The warm start is the previous policy, not only its controls: with
``feedback=True`` the next solve starts from the closed-loop rollout
``u_t = u_bar_t + K_t (x_t - x_bar_t)`` of the shifted solution from the
*measured* state, so a disturbance (a mismatch between plant and model, a
kick) is already corrected by the local feedback gains ``K`` before the first
iteration; with ``feedback=False`` it starts from the shifted controls alone.
(The control applied is the first control of the new solution; its feedback
term is zero, since the solve starts at the measured state.)

A warm start only keeps the controller near the local optimum it started
in. Where a task has several (a pendulum can swing up to either side, with
one pump or two), :meth:`MPC.init` can plan before the first step: given
several initial guesses and solver options, it solves from every guess and
keeps the cheapest solution, so the receding horizon starts from the best
of them (a one-off cost before the loop, not per step). The plan may look
further ahead than the horizon (guesses longer than it): which local optimum
is best can depend on more than the horizon sees. And the plan's own cost
can be the wrong judge of which start is best: it prices what the plan sees,
while the controller re-plans at every step and need not follow it. With
``rehearse=S``, :meth:`MPC.init` runs the controller itself for ``S`` steps in
closed loop on its own model from every guess's plan and keeps the plan whose
closed loop costs least (a policy rollout: more one-off work, same per-step
cost).

Everything is a pure function of NamedTuple pytrees: :meth:`MPC.init` and
:meth:`MPC.step` are jit-compiled, :func:`simulate` runs a closed loop as one
``lax.scan`` and so ``vmap``-s over initial states. Inputs are validated in
Python before tracing; a solver failure inside the loop is reported in
:attr:`MPCState.status`, never raised.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from ilqg_jax.derivatives import rollout
from ilqg_jax.problem import Problem, _as_float_array, _check_finite, validate_inputs
from ilqg_jax.solver import Options, Solution, closed_loop_rollout, solve_unchecked, validate_options

Array = jax.Array

__all__ = ["MPC", "MPCState", "ClosedLoop", "simulate", "simulate_unchecked", "plan_unchecked"]

_FILLS = ("repeat", "zero")


class MPCState(NamedTuple):
    """The controller's state between steps (a pytree).

    Attributes:
      xs: ``(T+1, n)`` the plan the next solve starts from: the last solution
        shifted by one step (before the first step, the rollout of the
        initial controls).
      us: ``(T, m)`` its controls.
      K: ``(T, m, n)`` its feedback gains (zero before the first step).
      cost: scalar, the planned cost of the last solve (NaN before the first step).
      iterations: int32, iterations of the last solve.
      status: int32 :class:`~ilqg_jax.Status` of the last solve (-1 before the first step).
      t: int32, number of steps taken.
    """

    xs: Array
    us: Array
    K: Array
    cost: Array
    iterations: Array
    status: Array
    t: Array


class ClosedLoop(NamedTuple):
    """Result of :func:`simulate` (a pytree; ``vmap`` adds a leading axis to each field).

    Attributes:
      xs: ``(S+1, n)`` plant states, ``xs[0] == x0``.
      us: ``(S, m)`` controls applied.
      costs: ``(S,)`` the problem's running cost ``running_cost(x_t, u_t, 0, params)``
        of each step, with the controller's ``params``.
      plan_cost: ``(S,)`` the planned cost of each solve.
      iterations: ``(S,)`` int32 iterations of each solve.
      status: ``(S,)`` int32 :class:`~ilqg_jax.Status` of each solve.
      final_state: the controller's :class:`MPCState` after the last step
        (pass it to :func:`simulate` to go on).
    """

    xs: Array
    us: Array
    costs: Array
    plan_cost: Array
    iterations: Array
    status: Array
    final_state: MPCState


@dataclasses.dataclass(frozen=True, eq=False)
class MPC:
    """A receding-horizon iLQG controller (a pytree: ``problem`` and ``params`` are its leaves).

    Attributes:
      problem: the :class:`~ilqg_jax.Problem` solved at every step; its
        horizon is the look-ahead.
      options: solver :class:`~ilqg_jax.Options`; ``max_iter`` is the
        iteration budget per step (default 3).
      params: the problem's ``params`` (traced: batch or differentiate them).
      fill: how the shifted plan gets its new last control: ``"repeat"`` the
        last one (and its gain) or ``"zero"``.
      feedback: warm-start from the closed-loop rollout of the shifted policy
        from the measured state (``True``) or from its controls alone.

    Usage::

        mpc = MPC(problem, Options(max_iter=3))
        state = mpc.init(x0)
        u, state = mpc.step(state, x)          # once per control period
    """

    problem: Problem
    options: Options = Options(max_iter=3)
    params: Any = None
    fill: str = "repeat"
    feedback: bool = True

    def __post_init__(self):
        if not isinstance(self.problem, Problem):
            raise TypeError(f"problem must be an ilqg_jax.Problem, got {type(self.problem).__name__}.")
        validate_options(self.options)
        if self.fill not in _FILLS:
            raise ValueError(f"fill must be one of {_FILLS}, got {self.fill!r}.")
        if not isinstance(self.feedback, (bool, np.bool_)):
            raise TypeError(f"feedback must be a bool, got {type(self.feedback).__name__}.")

    def init(self, x0, us_init=None, options: Optional[Options] = None, rehearse: int = 0) -> MPCState:
        """The controller's state before the first step.

        Args:
          x0: ``(n,)`` the state the first step is expected at (it fixes ``n``
            and the dtype; the first step may be called with another state).
          us_init: ``(T, m)`` initial controls, or ``(G, T, m)`` several
            guesses (with ``options``); default zeros, with ``m`` taken
            from the problem's control limits. (Zeros at a symmetric state,
            e.g. a pendulum exactly hanging at rest, give a zero gradient:
            no local method can then pick a side; pass a nudge.)
          options: if given, plan before the first step: solve from ``x0``
            starting at every guess in ``us_init`` with these
            :class:`~ilqg_jax.Options` (say a larger ``max_iter`` than the
            per-step budget) and keep the solution of lowest cost, so the
            first step warm-starts from a good plan instead of a poor local
            minimum. The guesses may then be longer than the horizon,
            ``(G, L, m)`` with ``L > T``: the plan looks ``L`` steps ahead
            (the problem's running cost over all ``L`` steps, its terminal
            cost at the end) and the controller starts from its first ``T``
            steps, so the choice among the local minima sees further than
            the receding horizon does. ``None``: plan the rollout of
            ``us_init`` (one guess of ``T`` steps).
          rehearse: with ``options``, a number of steps ``S >= 1``: keep, instead
            of the cheapest plan, the plan from which the controller does
            best -- from every guess's solution the controller runs ``S``
            steps in closed loop on its own model (``problem.dynamics`` with
            ``params``, as :func:`simulate` without a plant), and the plan
            whose closed loop has the lowest sum of running costs is kept.
            ``0`` (default): keep the cheapest plan.

        Returns:
          :class:`MPCState` planning ``us_init`` (or the best solution) from ``x0``.
        """
        p = self.problem
        x0 = _as_float_array(x0, "x0")
        if us_init is None:
            if not p.has_limits:
                raise ValueError("us_init is required when the problem has no control limits "
                                 "(the number of controls m is not known otherwise).")
            us_init = np.zeros((p.horizon, np.shape(p.control_lower)[0]), jnp.result_type(x0, float))
        us_init = _as_float_array(us_init, "us_init")
        _validate_init(us_init, options, rehearse)
        # One dtype for the whole loop: a float32 measurement (say a gymnasium observation) is promoted
        # to the problem's limits' dtype, so the dynamics' carry keeps its type.
        dtype = jnp.result_type(x0, us_init, float, *((p.control_lower,) if p.has_limits else ()))
        guesses = jnp.asarray(us_init, dtype).reshape((-1,) + np.shape(us_init)[-2:])
        L = guesses.shape[1] if options is not None and np.ndim(us_init) >= 2 else p.horizon
        if L < p.horizon:
            raise ValueError(f"us_init must cover at least the horizon T = {p.horizon} steps, got shape "
                             f"{np.shape(us_init)}.")
        x0, _ = validate_inputs(_lookahead(p, L), jnp.asarray(x0, dtype), guesses[0], self.params)
        if options is None:
            return _init_jit(self, x0, guesses[0])
        _check_finite(guesses, "us_init")
        return _plan_jit(self, x0, guesses, options, int(rehearse))

    def step(self, state: MPCState, x) -> tuple[Array, MPCState]:
        """One control step: solve from the measured state ``x``, return the first control.

        Args:
          state: the :class:`MPCState` from :meth:`init` or the previous step.
          x: ``(n,)`` the measured state.

        Returns:
          ``(u, state)``: ``u: (m,)`` the control to apply now, within the
          problem's limits, and the next :class:`MPCState`.
        """
        x = _check_state_and_x(state, x, "x")
        return _step_jit(self, state, x)

    def step_unchecked(self, state: MPCState, x: Array) -> tuple[Array, MPCState]:
        """:meth:`step` without validation or ``jit``, for use inside ``jit``/``scan``/``vmap``."""
        return step_unchecked(self, state, x)


jax.tree_util.register_dataclass(MPC, data_fields=["problem", "params"],
                                 meta_fields=["options", "fill", "feedback"])


def _check_state_and_x(state, x, name: str) -> Array:
    if not isinstance(state, MPCState):
        raise TypeError(f"state must be an MPCState (from MPC.init or MPC.step), got {type(state).__name__}.")
    x = _as_float_array(x, name)
    n = np.shape(state.xs)[-1]
    if np.shape(x) != (n,):
        raise ValueError(f"{name} must have shape (n,) = ({n},) as the controller's state, got shape {np.shape(x)}.")
    _check_finite(x, name)
    dtype = state.xs.dtype
    if isinstance(x, jax.Array):
        return x if x.dtype == dtype else x.astype(dtype)
    return np.asarray(x, dtype)  # converted on the host: cheaper than a device op per step


def _validate_init(us_init, options: Optional[Options], rehearse) -> None:
    """Checks :meth:`MPC.init`'s ``options``, ``rehearse`` and the guesses' count against each other."""
    if options is not None:
        validate_options(options)
    if isinstance(rehearse, bool) or not isinstance(rehearse, (int, np.integer)) or rehearse < 0:
        raise ValueError(f"rehearse must be an int >= 0 (steps of closed loop per guess), got {rehearse!r}.")
    if rehearse and options is None:
        raise ValueError(f"rehearse = {rehearse} needs options: it chooses among the plans solved from the "
                         "guesses in us_init.")
    if np.ndim(us_init) == 3:
        if options is None:
            raise ValueError(f"us_init of shape (G, T, m) = {np.shape(us_init)} holds several guesses: "
                             "pass options to solve from them (init plans one rollout otherwise).")
        if np.shape(us_init)[0] < 1:
            raise ValueError(f"us_init must hold at least one guess, got shape {np.shape(us_init)}.")


def init_unchecked(mpc: MPC, x0: Array, us_init: Array) -> MPCState:
    """:meth:`MPC.init` without validation or ``jit``."""
    p = mpc.problem
    if p.has_limits:
        us_init = jnp.clip(us_init, p.control_lower, p.control_upper)
    T, m = us_init.shape
    dtype = x0.dtype
    return MPCState(xs=rollout(p.dynamics, x0, us_init, mpc.params), us=us_init,
                    K=jnp.zeros((T, m, x0.shape[0]), dtype), cost=jnp.asarray(jnp.nan, dtype),
                    iterations=jnp.zeros((), jnp.int32), status=jnp.full((), -1, jnp.int32),
                    t=jnp.zeros((), jnp.int32))


def _lookahead(problem: Problem, steps: int) -> Problem:
    """``problem`` over ``steps`` steps (itself when that is its horizon)."""
    return problem if steps == problem.horizon else dataclasses.replace(problem, horizon=steps)


def plan_unchecked(mpc: MPC, x0: Array, us_inits: Array, options: Options, rehearse: int = 0) -> MPCState:
    """:meth:`MPC.init` with ``options`` without validation or ``jit``: ``us_inits: (G, L, m)``, ``L >= T``
    (the plan looks ``L`` steps ahead; the state keeps its first ``T``); ``rehearse`` as in :meth:`MPC.init`."""
    T = mpc.problem.horizon
    p = _lookahead(mpc.problem, us_inits.shape[1])
    sols = jax.vmap(lambda u: solve_unchecked(p, x0, u, mpc.params, options))(us_inits)
    plans = MPCState(xs=sols.xs[:, :T + 1], us=sols.us[:, :T], K=sols.K[:, :T], cost=sols.cost,
                     iterations=sols.iterations, status=sols.status,
                     t=jnp.zeros(us_inits.shape[:1], jnp.int32))
    if rehearse:
        score = jax.vmap(lambda s: jnp.sum(simulate_unchecked(mpc, x0, rehearse, state=s).costs))(plans)
    else:
        score = plans.cost
    best = jnp.argmin(jnp.where(jnp.isfinite(score), score, jnp.inf))
    return jax.tree_util.tree_map(lambda a: a[best], plans)


def _shift(mpc: MPC, sol: Solution) -> tuple[Array, Array, Array]:
    """The solution advanced by one step: ``(xs, us, K)`` with a new last step per ``mpc.fill``."""
    T = mpc.problem.horizon
    if mpc.fill == "repeat":
        u_last, K_last = sol.us[-1], sol.K[-1]
    else:
        u_last, K_last = jnp.zeros_like(sol.us[-1]), jnp.zeros_like(sol.K[-1])
    x_next = mpc.problem.dynamics(sol.xs[-1], u_last, jnp.asarray(T - 1), mpc.params)
    xs = jnp.concatenate([sol.xs[1:], x_next[None]])
    us = jnp.concatenate([sol.us[1:], u_last[None]])
    K = jnp.concatenate([sol.K[1:], K_last[None]])
    return xs, us, K


def step_unchecked(mpc: MPC, state: MPCState, x: Array) -> tuple[Array, MPCState]:
    """:meth:`MPC.step` without validation or ``jit`` (usable inside ``jit``, ``scan``, ``vmap``)."""
    p = mpc.problem
    x = x.astype(state.xs.dtype)
    if mpc.feedback:
        _, us_init, _ = closed_loop_rollout(p, x, state.xs, state.us, state.K, jnp.zeros_like(state.us),
                                            0.0, mpc.params, unroll=mpc.options.unroll)
    else:
        us_init = state.us
    sol = solve_unchecked(p, x, us_init, mpc.params, mpc.options)
    xs, us, K = _shift(mpc, sol)
    new = MPCState(xs=xs, us=us, K=K, cost=sol.cost, iterations=sol.iterations, status=sol.status,
                   t=state.t + 1)
    return sol.us[0], new


_init_jit = jax.jit(init_unchecked)
_plan_jit = jax.jit(plan_unchecked, static_argnames=("options", "rehearse"))
_step_jit = jax.jit(step_unchecked)


# --- Closed loop ----------------------------------------------------------------------------------


def simulate_unchecked(mpc: MPC, x0: Array, steps: int, plant: Optional[Callable] = None, params=None,
                       disturbances: Optional[Array] = None, state: Optional[MPCState] = None,
                       noise: Optional[Array] = None) -> ClosedLoop:
    """:func:`simulate` without validation or ``jit`` (for use inside other transforms)."""
    plant = mpc.problem.dynamics if plant is None else plant
    params = mpc.params if params is None else params
    if state is None:
        if not mpc.problem.has_limits:
            raise ValueError("pass state=mpc.init(x0, us_init) when the problem has no control limits.")
        x0 = x0.astype(jnp.result_type(x0, mpc.problem.control_lower))
        m = np.shape(mpc.problem.control_lower)[0]
        state = init_unchecked(mpc, x0, jnp.zeros((mpc.problem.horizon, m), x0.dtype))
    x0 = x0.astype(state.xs.dtype)
    if disturbances is None:
        disturbances = jnp.zeros((steps, x0.shape[0]), x0.dtype)
    if noise is None:
        noise = jnp.zeros((steps, x0.shape[0]), x0.dtype)

    def body(carry, inp):
        x, s = carry
        t, d, v = inp
        u, s = step_unchecked(mpc, s, x + v)
        cost = mpc.problem.running_cost(x, u, jnp.zeros((), jnp.int32), mpc.params)
        x_next = plant(x, u, t, params) + d
        return (x_next, s), (x_next, u, cost, s.cost, s.iterations, s.status)

    ts = jnp.arange(steps, dtype=jnp.int32)
    (_, final), (xs, us, costs, plan_cost, iterations, status) = jax.lax.scan(
        body, (x0, state), (ts, disturbances.astype(x0.dtype), noise.astype(x0.dtype)))
    return ClosedLoop(xs=jnp.concatenate([x0[None], xs]), us=us, costs=costs, plan_cost=plan_cost,
                      iterations=iterations, status=status, final_state=final)


_simulate_jit = jax.jit(simulate_unchecked, static_argnames=("steps", "plant"))


def simulate(mpc: MPC, x0, steps: int, plant: Optional[Callable] = None, params=None,
             disturbances=None, state: Optional[MPCState] = None, noise=None) -> ClosedLoop:
    """Runs ``mpc`` in closed loop with a plant for ``steps`` steps, as one ``lax.scan``.

    ``x_{t+1} = plant(x_t, u_t, t, params) + disturbances[t]`` with
    ``u_t, state = mpc.step(state, x_t + noise[t])``. jit-compiled (``steps`` and
    ``plant`` static); it ``vmap``-s over ``x0``, ``params``, ``disturbances``
    and ``noise``.

    Args:
      mpc: the :class:`MPC` controller.
      x0: ``(n,)`` initial plant state.
      steps: number of control steps ``S >= 1``.
      plant: ``(x: (n,), u: (m,), t, params) -> (n,)``, a hashable function
        (default: the controller's own model, ``mpc.problem.dynamics``).
      params: the plant's ``params`` (default ``mpc.params``).
      disturbances: ``(S, n)`` added to the state after each plant step (a
        kick), default zeros.
      state: the controller's initial :class:`MPCState` (default
        ``mpc.init(x0)``), e.g. the ``final_state`` of an earlier run.
      noise: ``(S, n)`` measurement noise: added to the state the controller
        is given at each step, not to the plant's (default zeros).

    Returns:
      :class:`ClosedLoop` with ``xs: (S+1, n)``, ``us: (S, m)``, per-step
      ``costs``, ``plan_cost``, ``iterations``, ``status`` and ``final_state``.

    Raises:
      TypeError, ValueError: for malformed inputs, naming the argument.
    """
    if not isinstance(mpc, MPC):
        raise TypeError(f"mpc must be an ilqg_jax.MPC, got {type(mpc).__name__}.")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be an int >= 1, got {steps!r}.")
    steps = int(steps)
    if plant is not None and not callable(plant):
        raise TypeError(f"plant must be callable (x, u, t, params) -> x_next, got {type(plant).__name__}.")
    if state is None:
        state = mpc.init(x0)
    x0 = _check_state_and_x(state, x0, "x0")
    n = x0.shape[0]
    disturbances = _check_sequence(disturbances, "disturbances", steps, n)
    noise = _check_sequence(noise, "noise", steps, n)
    if plant is not None:
        m = np.shape(state.us)[-1]
        p = params if params is not None else mpc.params
        out = jax.eval_shape(plant, x0, jnp.zeros((m,), x0.dtype), jnp.zeros((), jnp.int32), p)
        if not hasattr(out, "shape") or tuple(out.shape) != (n,):
            raise ValueError(f"plant must return the next state with shape (n,) = ({n},), got "
                             f"{getattr(out, 'shape', type(out).__name__)}.")
    return _simulate_jit(mpc, x0, steps, plant, params, disturbances, state, noise)


def _check_sequence(value, name: str, steps: int, n: int):
    """``None``, or a finite real ``(steps, n)`` array (else an error naming ``name``)."""
    if value is None:
        return None
    value = _as_float_array(value, name)
    if np.shape(value) != (steps, n):
        raise ValueError(f"{name} must have shape (steps, n) = ({steps}, {n}), got shape {np.shape(value)}.")
    _check_finite(value, name)
    return value
