"""A unicycle steered around circular obstacles to a goal it must reach exactly.

The unicycle of :mod:`ilqg_jax.systems.unicycle` (Crocoddyl's model: state
``x = [px, py, theta]: (3,)``, control ``u = [v, w]: (2,)``, explicit Euler at
``dt``) with

* running cost ``1/2 (r_u |u|^2 + r_theta theta^2)`` (effort, a mild heading term);
* terminal cost ``1/2 q_theta theta_T^2``;
* path constraint, one entry per obstacle ``i`` (circle of centre ``c_i``,
  radius ``r_i``): ``g_i(x) = r_i^2 - |p - c_i|^2 <= 0`` (stay outside);
* terminal constraint ``h(x_T) = p_T - goal = 0`` (reach the goal exactly).

Obstacles, goal and weights are an :class:`ObstacleParams` pytree (traced:
move the obstacles, batch or differentiate them). Solved by the augmented
Lagrangian of :mod:`ilqg_jax.constrained` (Howell, Jackson & Manchester 2019).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from ilqg_jax.problem import Problem
from ilqg_jax.systems import unicycle

Array = jax.Array

__all__ = ["ObstacleParams", "default_params", "running_cost", "terminal_cost", "path_constraint",
           "terminal_constraint", "problem", "initial_state", "clearance", "HORIZON", "DT"]

#: Horizon and step of the ready task (5 s).
HORIZON = 50
DT = 0.1


class ObstacleParams(NamedTuple):
    """Obstacles, goal and weights (a pytree).

    Attributes:
      centers: ``(k, 2)`` obstacle centres (m). radii: ``(k,)`` radii (m).
      goal: ``(2,)`` goal position (m).
      control_weight: ``r_u``. heading_weight: ``r_theta``. terminal_heading_weight: ``q_theta``.
    """

    centers: Array
    radii: Array
    goal: Array
    control_weight: float | Array = 1.0
    heading_weight: float | Array = 0.01
    terminal_heading_weight: float | Array = 1.0


def default_params(dtype=None) -> ObstacleParams:
    """Two obstacles between the start ``(0, 0)`` and the goal ``(3, 0.5)``."""
    return ObstacleParams(centers=jnp.array([[1.0, 0.1], [2.2, 0.7]], dtype=dtype),
                          radii=jnp.array([0.4, 0.35], dtype=dtype), goal=jnp.array([3.0, 0.5], dtype=dtype))


def running_cost(x: Array, u: Array, t: Array, params: ObstacleParams) -> Array:
    """``1/2 (r_u |u|^2 + r_theta theta^2)`` for ``x: (3,)``, ``u: (2,)``; scalar."""
    del t
    return 0.5 * (params.control_weight * (u @ u) + params.heading_weight * x[2] ** 2)


def terminal_cost(x: Array, params: ObstacleParams) -> Array:
    """``1/2 q_theta theta_T^2``; scalar."""
    return 0.5 * params.terminal_heading_weight * x[2] ** 2


def path_constraint(x: Array, u: Array, t: Array, params: ObstacleParams) -> Array:
    """``r_i^2 - |p - c_i|^2``: ``(k,)``, ``<= 0`` outside every obstacle."""
    del u, t
    d = x[:2] - params.centers
    return params.radii**2 - jnp.sum(d * d, axis=1)


def terminal_constraint(x: Array, params: ObstacleParams) -> Array:
    """``p_T - goal``: ``(2,)``, zero at the goal."""
    return x[:2] - params.goal


def clearance(xs: Array, params: ObstacleParams) -> Array:
    """``(T+1, k)`` distance from each position to each obstacle's circle (negative inside)."""
    d = xs[:, None, :2] - params.centers
    return jnp.sqrt(jnp.sum(d * d, axis=-1)) - params.radii


@functools.lru_cache(maxsize=None)
def problem(horizon: int = HORIZON, dt: float = DT) -> Problem:
    """The constrained :class:`~ilqg_jax.Problem` (``n = 3``, ``m = 2``); params an :class:`ObstacleParams`."""
    return Problem(unicycle.dynamics(float(dt)), running_cost, terminal_cost, horizon,
                   path_constraint=path_constraint, terminal_constraint=terminal_constraint)


def initial_state(dtype=None) -> Array:
    """At rest at the origin, heading along +x: ``[0, 0, 0]``."""
    return jnp.zeros(3, dtype=dtype)
