"""The unicycle of Crocoddyl (``crocoddyl.ActionModelUnicycle``), exactly.

A kinematic unicycle driven to the origin: state ``x = [px, py, theta]: (3,)``
(position in m, heading in rad), control ``u = [v, w]: (2,)`` (forward speed
in m/s, turn rate in rad/s). Crocoddyl's model, reproduced to rounding:

* dynamics, explicit Euler at ``dt = 0.1`` s with the heading of the current step:
  ``x' = x + dt [v cos(theta), v sin(theta), w]``;
* running cost ``1/2 (w_x^2 |x|^2 + w_u^2 |u|^2)`` per step (not scaled by
  ``dt``), with Crocoddyl's default ``costWeights = (w_x, w_u) = (10, 1)``;
* terminal cost ``1/2 w_x^2 |x_T|^2`` (Crocoddyl's model called without a
  control, as the terminal model of a ``ShootingProblem``).

The weights are a :class:`UnicycleParams` pytree (batch or differentiate
them); ``dt`` is static. Reference: C. Mastalli et al., "Crocoddyl: An
efficient and versatile framework for multi-contact optimal control", ICRA
2020 (``include/crocoddyl/core/actions/unicycle.hpp``).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from ilqg_jax.problem import Problem
from ilqg_jax.systems import integrators

Array = jax.Array

__all__ = ["UnicycleParams", "default_params", "continuous_dynamics", "dynamics", "running_cost",
           "terminal_cost", "problem", "initial_state", "initial_controls", "DT", "HORIZON"]

#: Crocoddyl's default time step (s).
DT = 0.1
#: Horizon of the ready task and of Crocoddyl's unicycle example.
HORIZON = 100


class UnicycleParams(NamedTuple):
    """Cost weights, Crocoddyl's ``costWeights`` (a pytree).

    Attributes:
      state_weight: ``w_x`` (the residual is ``w_x x``; the cost weighs ``|x|^2`` by ``w_x^2``).
      control_weight: ``w_u`` (likewise for ``u``).
    """

    state_weight: float | Array = 10.0
    control_weight: float | Array = 1.0


def default_params() -> UnicycleParams:
    """Crocoddyl's defaults ``costWeights = (10, 1)``."""
    return UnicycleParams()


def continuous_dynamics(x: Array, u: Array, params=None) -> Array:
    """``xdot = [v cos(theta), v sin(theta), w]`` for ``x: (3,)``, ``u: (2,)``; returns ``(3,)``."""
    del params
    return jnp.stack([u[0] * jnp.cos(x[2]), u[0] * jnp.sin(x[2]), u[1]])


def dynamics(dt: float = DT) -> integrators.Discretized:
    """Discrete ``dynamics(x, u, t, params) -> x_next``: explicit Euler at step ``dt`` (s), as Crocoddyl."""
    return integrators.discretize(continuous_dynamics, dt, "euler")


def _weights(params: UnicycleParams | None) -> UnicycleParams:
    return default_params() if params is None else params


def running_cost(x: Array, u: Array, t: Array, params: UnicycleParams | None = None) -> Array:
    """``1/2 (w_x^2 |x|^2 + w_u^2 |u|^2)`` for ``x: (3,)``, ``u: (2,)``; scalar."""
    del t
    w = _weights(params)
    return 0.5 * (jnp.sum((w.state_weight * x) ** 2) + jnp.sum((w.control_weight * u) ** 2))


def terminal_cost(x: Array, params: UnicycleParams | None = None) -> Array:
    """``1/2 w_x^2 |x|^2`` for ``x: (3,)``; scalar."""
    return 0.5 * jnp.sum((_weights(params).state_weight * x) ** 2)


@functools.lru_cache(maxsize=None)
def problem(horizon: int = HORIZON, dt: float = DT) -> Problem:
    """Crocoddyl's unicycle problem: ``ShootingProblem(x0, [ActionModelUnicycle()] * T, ActionModelUnicycle())``.

    Args:
      horizon: ``T`` steps (default 100, Crocoddyl's example).
      dt: Euler step (s), Crocoddyl's default 0.1.

    Returns:
      A :class:`~ilqg_jax.Problem` with ``n = 3``, ``m = 2``; ``params`` is a
      :class:`UnicycleParams` (``None``: Crocoddyl's default weights).
    """
    return Problem(dynamics(float(dt)), running_cost, terminal_cost, horizon)


def initial_state(dtype=None) -> Array:
    """The start of Crocoddyl's unicycle example: ``[-1, -1, 1]``."""
    return jnp.array([-1.0, -1.0, 1.0], dtype=dtype)


def initial_controls(horizon: int = HORIZON, dtype=None) -> Array:
    """Zero controls ``(horizon, 2)``, Crocoddyl's default guess."""
    return jnp.zeros((horizon, 2), dtype=dtype)
