"""Ready-made systems: dynamics, costs and problems, one module per system.

:func:`get_task` returns a :class:`Task` -- a problem together with its
documented initial state, initial controls, parameters, labels and a drawing
function -- for the command line, the notebooks and the benchmarks::

    from ilqg_jax.systems import get_task
    task = get_task("cartpole")
    sol = ilqg_jax.solve(task.problem, task.x0, task.us_init, task.params)
    task.success(sol.xs)

Task names: ``pendulum`` (well-posed swing-up), ``pendulum-limited`` (torque
limit 2 N m), ``pendulum-seed`` (the research notebook's problem), ``arm``
(two-link arm reaching, Li & Todorov 2004), ``cartpole``, ``acrobot``,
``unicycle`` (Crocoddyl's ``ActionModelUnicycle``, driven to the origin),
``unicycle-obstacles`` (path and terminal constraints, :mod:`ilqg_jax.systems.obstacles`).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp

from ilqg_jax.problem import Problem

__all__ = ["Task", "TASKS", "get_task"]


class Task(NamedTuple):
    """A ready problem with everything needed to solve, judge and draw it.

    Attributes:
      name: registry name. description: one line.
      problem: the :class:`~ilqg_jax.Problem`.
      x0: ``(n,)`` documented initial state. us_init: ``(T, m)`` initial controls.
      params: parameters pytree passed to the problem's functions.
      dt: time step (s).
      state_labels, control_labels: axis labels with units.
      points: ``points(x) -> (k, 2)`` joint positions for animations (m).
      extent: half-width of the animation view (m).
      success: ``success(xs: (T+1, n)) -> bool`` whether the goal was reached.
      goal: text of the success criterion.
    """

    name: str
    description: str
    problem: Problem
    x0: jax.Array
    us_init: jax.Array
    params: Any
    dt: float
    state_labels: Sequence[str]
    control_labels: Sequence[str]
    points: Callable
    extent: float
    success: Callable
    goal: str


def _pendulum(kind: str, horizon: Optional[int]) -> Task:
    from ilqg_jax.systems import pendulum

    T = horizon or 100
    if kind == "seed":
        problem, params = pendulum.seed_problem(T), None
        desc = "the research notebook's pendulum: torque clipped at 8 N m and speed at 2 rad/s in the dynamics"
    elif kind == "limited":
        problem, params = pendulum.swing_up_limited(2.0, horizon=T), None
        desc = "pendulum swing-up with |u| <= 2 N m (must pump energy)"
    else:
        problem, params = pendulum.swing_up(T), None
        desc = "pendulum swing-up from hanging to upright"
    us_init = 0.1 * jax.random.normal(jax.random.PRNGKey(0), (T, 1))

    def points(x):
        return jnp.array([[0.0, 0.0], [jnp.sin(x[0]), jnp.cos(x[0])]])

    return Task(
        name="pendulum" + ("" if kind == "swing_up" else "-" + kind), description=desc, problem=problem,
        x0=jnp.array(pendulum.X0_HANGING), us_init=us_init, params=params, dt=pendulum.SEED_DT,
        state_labels=("angle θ (rad)", "velocity θ̇ (rad/s)"), control_labels=("torque u (N m)",),
        points=points, extent=1.2,
        success=lambda xs: bool(pendulum.upright(xs[-1])),
        goal="|wrap(θ_T)| < 0.05 rad and |θ̇_T| < 0.1 rad/s")


def _arm(horizon: Optional[int]) -> Task:
    from ilqg_jax.systems import two_link_arm as arm

    params = arm.default_params()
    problem = arm.reach(horizon=horizon) if horizon else arm.reach()
    T = problem.horizon
    target = jnp.asarray(arm.DEFAULT_TARGET)

    def points(x):
        elbow = jnp.array([params.l1 * jnp.cos(x[0]), params.l1 * jnp.sin(x[0])])
        return jnp.stack([jnp.zeros(2), elbow, arm.hand_position(x, params)])

    return Task(
        name="arm", description="two-link arm reaching (Li & Todorov 2004), torque limits ±10 N m",
        problem=problem, x0=arm.initial_state(), us_init=arm.initial_controls(T), params=params, dt=0.01,
        state_labels=("shoulder θ1 (rad)", "elbow θ2 (rad)", "θ̇1 (rad/s)", "θ̇2 (rad/s)"),
        control_labels=("shoulder torque (N m)", "elbow torque (N m)"), points=points, extent=0.7,
        success=lambda xs: bool(jnp.linalg.norm(arm.hand_position(xs[-1], params) - target) < 0.01),
        goal="hand within 1 cm of the target")


def _cartpole(horizon: Optional[int]) -> Task:
    from ilqg_jax.systems import angles, cartpole

    params = cartpole.default_params()
    problem = cartpole.swing_up(horizon) if horizon else cartpole.swing_up()
    T = problem.horizon

    def points(x):
        return jnp.stack([jnp.array([x[0], 0.0]), cartpole.pole_tip(x, params)])

    def success(xs):
        x = xs[-1]
        return bool((jnp.abs(angles.wrap(x[1])) < 0.05) & (jnp.abs(x[0]) < 0.05) & jnp.all(jnp.abs(x[2:]) < 0.1))

    return Task(
        name="cartpole", description="cart-pole swing-up, force limit ±10 N, cart back to the centre",
        problem=problem, x0=cartpole.initial_state(), us_init=cartpole.initial_controls(T),
        params=params, dt=0.05,
        state_labels=("cart p (m)", "pole θ (rad)", "ṗ (m/s)", "θ̇ (rad/s)"), control_labels=("force (N)",),
        points=points, extent=2.0, success=success,
        goal="|wrap(θ_T)| < 0.05 rad, |p_T| < 0.05 m, velocities < 0.1")


def _acrobot(horizon: Optional[int]) -> Task:
    from ilqg_jax.systems import acrobot, angles

    params = acrobot.default_params()
    problem = acrobot.swing_up(horizon) if horizon else acrobot.swing_up()
    T = problem.horizon

    def points(x):
        elbow = jnp.array([params.l1 * jnp.sin(x[0]), params.l1 * jnp.cos(x[0])])
        return jnp.stack([jnp.zeros(2), elbow, acrobot.tip_position(x, params)])

    def success(xs):
        x = xs[-1]
        return bool(jnp.all(jnp.abs(angles.wrap(x[:2])) < 0.05) & jnp.all(jnp.abs(x[2:]) < 0.2))

    return Task(
        name="acrobot", description="acrobot swing-up, torque on the elbow only",
        problem=problem, x0=acrobot.initial_state(), us_init=acrobot.initial_controls(T),
        params=params, dt=0.05,
        state_labels=("θ1 (rad)", "θ2 (rad)", "θ̇1 (rad/s)", "θ̇2 (rad/s)"), control_labels=("elbow torque (N m)",),
        points=points, extent=2.2, success=success, goal="both |wrap(θ_i)| < 0.05 rad, rates < 0.2 rad/s")


def _unicycle_obstacles(horizon: Optional[int]) -> Task:
    from ilqg_jax.systems import obstacles

    params = obstacles.default_params()
    problem = obstacles.problem(horizon or obstacles.HORIZON)
    T = problem.horizon

    def points(x):
        return jnp.stack([x[:2], x[:2] + 0.2 * jnp.array([jnp.cos(x[2]), jnp.sin(x[2])])])

    def success(xs):
        reached = jnp.linalg.norm(xs[-1, :2] - params.goal) < 1e-4
        return bool(reached & (jnp.min(obstacles.clearance(xs, params)) > -1e-4))

    return Task(
        name="unicycle-obstacles",
        description="unicycle around two circular obstacles to a goal it must reach exactly (path and terminal "
                    "constraints, augmented Lagrangian)",
        problem=problem, x0=obstacles.initial_state(), us_init=jnp.zeros((T, 2)), params=params, dt=obstacles.DT,
        state_labels=("x (m)", "y (m)", "heading θ (rad)"), control_labels=("speed v (m/s)", "turn rate ω (rad/s)"),
        points=points, extent=3.5, success=success,
        goal="final position within 1e-4 m of the goal, never more than 1e-4 m inside an obstacle")


def _unicycle(horizon: Optional[int]) -> Task:
    from ilqg_jax.systems import unicycle

    T = horizon or unicycle.HORIZON

    def points(x):
        return jnp.stack([x[:2], x[:2] + 0.15 * jnp.array([jnp.cos(x[2]), jnp.sin(x[2])])])

    return Task(
        name="unicycle", description="Crocoddyl's unicycle driven to the origin (cost 1/2 (100 |x|^2 + |u|^2))",
        problem=unicycle.problem(T), x0=unicycle.initial_state(), us_init=unicycle.initial_controls(T),
        params=unicycle.default_params(), dt=unicycle.DT,
        state_labels=("x (m)", "y (m)", "heading θ (rad)"),
        control_labels=("speed v (m/s)", "turn rate ω (rad/s)"), points=points, extent=1.5,
        success=lambda xs: bool(jnp.linalg.norm(xs[-1]) < 0.02), goal="|x_T| < 0.02 (m and rad together)")


TASKS: dict[str, Callable[[Optional[int]], Task]] = {
    "pendulum": lambda T: _pendulum("swing_up", T),
    "pendulum-limited": lambda T: _pendulum("limited", T),
    "pendulum-seed": lambda T: _pendulum("seed", T),
    "arm": _arm,
    "cartpole": _cartpole,
    "acrobot": _acrobot,
    "unicycle": _unicycle,
    "unicycle-obstacles": _unicycle_obstacles,
}


def get_task(name: str, horizon: Optional[int] = None) -> Task:
    """The ready :class:`Task` called ``name`` (see module docstring), optionally with another horizon."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose one of {sorted(TASKS)}.")
    return TASKS[name](horizon)
