"""The inverted pendulum: the seed notebook's model, and a well-posed swing-up.

State ``x = [theta, theta_dot]`` with ``theta = 0`` upright and ``theta = pi``
hanging down; control ``u = [torque]``. The model is gym's classic pendulum:
a uniform rod of mass ``m`` and length ``l`` about one end,

    ``theta_ddot = 3 g / (2 l) sin(theta) + 3 / (m l^2) u``,

stepped with semi-implicit Euler at ``dt = 0.05`` s.

Two problem families:

* :func:`seed_problem` -- exactly the research notebook this project started
  from: torque clipped to +-8 and speed to +-2 *inside* the dynamics, horizon
  100, running cost ``0.01 u^2`` and terminal cost
  ``(1 - cos theta)^2 + 0.1 theta_dot^2``. With no state cost along the way
  and clipping that hides the limits from the derivatives, it is a poor swing
  -up task, but iLQG now converges on it (the notebook printed
  "Dit not converge!").
* :func:`swing_up` -- smooth dynamics, a periodic state cost along the way and
  a heavy terminal cost: from hanging down it ends upright.
  :func:`swing_up_limited` adds a torque limit too small to lift the pendulum
  directly, so the solution pumps energy over several swings.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from ilqg_jax.problem import Problem
from ilqg_jax.systems import angles, integrators

Array = jax.Array

__all__ = ["PendulumParams", "SwingUpParams", "default_params", "swing_up_params", "acceleration",
           "continuous_dynamics", "energy", "seed_dynamics", "seed_running_cost", "seed_terminal_cost",
           "seed_model", "seed_problem", "swing_up", "swing_up_limited", "upright", "X0_HANGING"]

SEED_DT = 0.05
SEED_HORIZON = 100
SEED_MAX_TORQUE = 8.0
SEED_MAX_SPEED = 2.0
X0_HANGING = (jnp.pi, 0.0)


class PendulumParams(NamedTuple):
    """Physical parameters (a pytree: batch or differentiate them).

    Attributes:
      g: gravity, m/s^2. m: rod mass, kg. l: rod length, m.
    """

    g: float | Array = 10.0
    m: float | Array = 1.0
    l: float | Array = 1.0


class SwingUpParams(NamedTuple):
    """Model and cost weights of :func:`swing_up` (a pytree).

    The running cost is ``dt * (q_angle (1 - cos theta) + q_velocity theta_dot^2
    / 2 + r_torque u^2 / 2)``; the terminal cost ``qf_angle (1 - cos theta) +
    qf_velocity theta_dot^2 / 2``.
    """

    model: PendulumParams = PendulumParams()
    q_angle: float | Array = 1.0
    q_velocity: float | Array = 0.1
    r_torque: float | Array = 0.1
    qf_angle: float | Array = 100.0
    qf_velocity: float | Array = 10.0


def default_params() -> PendulumParams:
    """The seed's (and gym's) model: ``g = 10, m = 1, l = 1``."""
    return PendulumParams()


def swing_up_params() -> SwingUpParams:
    """Default model and weights of :func:`swing_up`."""
    return SwingUpParams()


def acceleration(theta: Array, u: Array, p: PendulumParams) -> Array:
    """Angular acceleration ``3 g / (2 l) sin(theta) + 3 / (m l^2) u``."""
    return 3.0 * p.g / (2.0 * p.l) * jnp.sin(theta) + 3.0 / (p.m * p.l**2) * u


def continuous_dynamics(x: Array, u: Array, params: PendulumParams | None) -> Array:
    """``xdot = [theta_dot, theta_ddot]`` for ``x: (2,)``, ``u: (1,)``."""
    p = default_params() if params is None else params
    return jnp.stack([x[1], acceleration(x[0], u[0], p)])


def energy(x: Array, params: PendulumParams | None = None) -> Array:
    """Total mechanical energy (J), zero hanging at rest: ``m l^2 w^2 / 6 + m g l (1 + cos theta) / 2``."""
    p = default_params() if params is None else params
    return p.m * p.l**2 * x[..., 1] ** 2 / 6.0 + p.m * p.g * p.l * (1.0 + jnp.cos(x[..., 0])) / 2.0


def upright(x: Array, angle_tol: float = 0.05, velocity_tol: float = 0.1) -> Array:
    """Whether ``x`` (``(..., 2)``) is upright: ``|wrap(theta)| < angle_tol`` and ``|theta_dot| < velocity_tol``."""
    return (jnp.abs(angles.wrap(x[..., 0])) < angle_tol) & (jnp.abs(x[..., 1]) < velocity_tol)


# --- The seed notebook's problem -------------------------------------------------------------------


def seed_dynamics(x: Array, u: Array, t: Array, params: PendulumParams | None = None) -> Array:
    """The notebook's ``dynamics``, verbatim in JAX: clips torque to +-8, integrates, clips speed to +-2.

    Note the order (kept from the seed): the angle is advanced with the
    *unclipped* new speed, then the speed is clipped.
    """
    del t
    p = default_params() if params is None else params
    torque = jnp.clip(u[0], -SEED_MAX_TORQUE, SEED_MAX_TORQUE)
    # The seed writes -3g/(2l) sin(theta + pi), which is +3g/(2l) sin(theta).
    thdot = x[1] + (-3.0 * p.g / (2.0 * p.l) * jnp.sin(x[0] + jnp.pi) + 3.0 / (p.m * p.l**2) * torque) * SEED_DT
    th = x[0] + thdot * SEED_DT
    return jnp.stack([th, jnp.clip(thdot, -SEED_MAX_SPEED, SEED_MAX_SPEED)])


def seed_running_cost(x: Array, u: Array, t: Array, params=None) -> Array:
    """The notebook's ``calc_cost``: ``0.01 u^2`` (no state cost)."""
    del x, t, params
    return 0.01 * jnp.sum(u**2)


def seed_terminal_cost(x: Array, params=None) -> Array:
    """The notebook's ``calc_final_cost`` at ``u = 0``: ``(1 - cos theta)^2 + 0.1 theta_dot^2``."""
    del params
    return (1.0 - jnp.cos(x[0])) ** 2 + 0.1 * x[1] ** 2


def seed_model():
    """The notebook's model as ``(dynamics, params)``: g=10, m=1, l=1, dt=0.05, clipping at 8 N m and 2 rad/s."""
    return seed_dynamics, default_params()


def seed_problem(horizon: int = SEED_HORIZON) -> Problem:
    """The notebook's problem: seed dynamics and weights, ``T = 100``; start from ``x0 = [pi, 0]``."""
    return _seed_problem(horizon)


@functools.lru_cache(maxsize=None)
def _seed_problem(horizon: int) -> Problem:
    return Problem(seed_dynamics, seed_running_cost, seed_terminal_cost, horizon)


# --- A well-posed swing-up -------------------------------------------------------------------------


def _model(params: SwingUpParams | None) -> PendulumParams:
    return swing_up_params().model if params is None else params.model


def _swing_up_f(x: Array, u: Array, params: SwingUpParams | None) -> Array:
    return continuous_dynamics(x, u, _model(params))


@dataclasses.dataclass(frozen=True)
class _SwingUpCost:
    """Running and terminal cost of :func:`swing_up` for a given ``dt`` (hashable by value)."""

    dt: float

    def running(self, x: Array, u: Array, t: Array, params: SwingUpParams | None = None) -> Array:
        del t
        w = swing_up_params() if params is None else params
        return self.dt * (w.q_angle * angles.angle_cost(x[0]) + 0.5 * w.q_velocity * x[1] ** 2
                          + 0.5 * w.r_torque * jnp.sum(u**2))

    def terminal(self, x: Array, params: SwingUpParams | None = None) -> Array:
        w = swing_up_params() if params is None else params
        return w.qf_angle * angles.angle_cost(x[0]) + 0.5 * w.qf_velocity * x[1] ** 2


@functools.lru_cache(maxsize=None)
def swing_up(horizon: int = 100, dt: float = SEED_DT, u_max: float | None = None) -> Problem:
    """Swing-up from hanging (``x0 = [pi, 0]``) to upright, smooth dynamics.

    Args:
      horizon: number of steps ``T`` (default 100: 5 s at ``dt = 0.05``).
      dt: time step, s.
      u_max: optional torque limit ``|u| <= u_max`` (a box limit the solver
        respects exactly, unlike the seed's clipping).

    Returns:
      A :class:`~ilqg_jax.Problem`; ``params`` is a :class:`SwingUpParams`
      (``None`` means :func:`swing_up_params`). Solved from ``x0 = [pi, 0]`` it
      ends upright (see :func:`upright`).
    """
    cost = _SwingUpCost(float(dt))
    dynamics = integrators.discretize(_swing_up_f, float(dt), "semi_implicit_euler")
    limits = {}
    if u_max is not None:
        limits = dict(control_lower=jnp.array([-float(u_max)]), control_upper=jnp.array([float(u_max)]))
    return Problem(dynamics, cost.running, cost.terminal, horizon, **limits)


def swing_up_limited(u_max: float = 2.0, horizon: int = 100, dt: float = SEED_DT) -> Problem:
    """:func:`swing_up` with ``|u| <= u_max``; at the default 2 N m (less than the 5 N m that gravity
    exerts on the horizontal rod) the pendulum cannot be lifted directly and must be pumped up."""
    return swing_up(horizon, dt, u_max)
