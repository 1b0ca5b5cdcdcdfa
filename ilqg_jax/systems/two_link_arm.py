"""Planar two-link arm in the horizontal plane (Li & Todorov 2004).

Model and parameters from W. Li and E. Todorov, "Iterative linear quadratic
regulator design for nonlinear biological movement systems", ICINCO 2004
(the torque-driven arm, before the muscle model is added):

    M(theta) theta_ddot + C(theta, theta_dot) + B theta_dot = tau,

    M = [[a1 + 2 a2 cos th2,  a3 + a2 cos th2],
         [a3 + a2 cos th2,    a3            ]],
    C = a2 sin th2 [-th2_dot (2 th1_dot + th2_dot),  th1_dot^2],
    a1 = I1 + I2 + m2 l1^2,   a2 = m2 l1 s2,   a3 = I2,

with ``B`` a constant joint-friction matrix. The arm moves in the horizontal
plane, so there is no gravity. ``I1`` and ``I2`` are the moments of inertia of
the links about their *joints* (shoulder and elbow), as the form of ``a1``
implies. ``C`` is written on the left-hand side; it is the Coriolis and
centripetal term of the Lagrangian ``0.5 theta_dot' M theta_dot`` (checked
against automatic differentiation of that Lagrangian in ``tests/test_systems.py``).

Layout (SI units):
  state ``x = [th1, th2, th1_dot, th2_dot]: (4,)``: shoulder angle from the
  x-axis and elbow angle relative to the upper arm (rad), and their rates (rad/s);
  control ``u = [tau1, tau2]: (2,)``: shoulder and elbow torques (N m).

The acrobot (:mod:`ilqg_jax.systems.acrobot`) is the same two-link mechanism
in a vertical plane, so it reuses :func:`mass_matrix` and :func:`bias_forces`.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple, Tuple

import jax
import jax.numpy as jnp

from ilqg_jax import linalg
from ilqg_jax.problem import Problem
from ilqg_jax.systems import integrators

Array = jax.Array

__all__ = [
    "Params", "default_params", "mass_matrix", "bias_forces", "continuous_dynamics",
    "dynamics", "hand_position", "kinetic_energy", "potential_energy", "energy",
    "initial_state", "initial_controls", "reach", "ReachRunningCost", "ReachTerminalCost",
    "DEFAULT_TARGET", "TORQUE_LIMIT",
]

#: Default reaching target (m), in the shoulder frame; ~20 cm from the hand at :func:`initial_state`.
DEFAULT_TARGET = (0.15, 0.35)
#: Torque limit on both joints (N m): about five times the peak torque of the
#: default 0.5 s reach (~1.8 N m at the shoulder), and below human maximal
#: voluntary shoulder/elbow torques (tens of N m).
TORQUE_LIMIT = 10.0


class Params(NamedTuple):
    """Physical parameters (a pytree: vmap and differentiate over it).

    Attributes:
      m1, m2: link masses (kg). l1, l2: link lengths (m).
      s1, s2: joint-to-centre-of-mass distances (m).
      I1, I2: link moments of inertia about the shoulder / elbow joint (kg m^2).
      B: ``(2, 2)`` joint viscous friction matrix (N m s / rad).
    """

    m1: Array
    m2: Array
    l1: Array
    l2: Array
    s1: Array
    s2: Array
    I1: Array
    I2: Array
    B: Array


def default_params() -> Params:
    """Li & Todorov (2004) parameters: m1=1.4, m2=1.1 kg, l1=0.3, l2=0.33 m,
    s1=0.11, s2=0.16 m, I1=0.025, I2=0.045 kg m^2, B=[[0.05, 0.025], [0.025, 0.05]]."""
    f = lambda v: jnp.asarray(v, dtype=float)
    return Params(m1=f(1.4), m2=f(1.1), l1=f(0.3), l2=f(0.33), s1=f(0.11), s2=f(0.16),
                  I1=f(0.025), I2=f(0.045), B=f([[0.05, 0.025], [0.025, 0.05]]))


def mass_matrix(th2: Array, a1: Array, a2: Array, a3: Array) -> Array:
    """``(2, 2)`` mass matrix of a planar two-link chain at elbow angle ``th2`` (rad)."""
    c = a2 * jnp.cos(th2)
    return jnp.array([[a1 + 2.0 * c, a3 + c], [a3 + c, a3]])


def bias_forces(th2: Array, qdot: Array, a2: Array) -> Array:
    """``(2,)`` Coriolis/centripetal term ``C`` (left-hand side) of a planar two-link chain."""
    s = a2 * jnp.sin(th2)
    return s * jnp.array([-qdot[1] * (2.0 * qdot[0] + qdot[1]), qdot[0] ** 2])


def _coefficients(params: Params) -> Tuple[Array, Array, Array]:
    a1 = params.I1 + params.I2 + params.m2 * params.l1 ** 2
    a2 = params.m2 * params.l1 * params.s2
    a3 = params.I2
    return a1, a2, a3


def continuous_dynamics(x: Array, u: Array, params: Params) -> Array:
    """``xdot = [theta_dot, M^{-1} (tau - C - B theta_dot)]``; x: (4,), u: (2,) N m -> (4,)."""
    qdot = x[2:]
    a1, a2, a3 = _coefficients(params)
    rhs = u - bias_forces(x[1], qdot, a2) - params.B @ qdot
    qddot = linalg.solve(mass_matrix(x[1], a1, a2, a3), rhs)
    return jnp.concatenate([qdot, qddot])


def dynamics(dt: float = 0.01, method: str = "rk4") -> integrators.Discretized:
    """Discrete ``dynamics(x, u, t, params) -> x_next`` at step ``dt`` (s); see :mod:`integrators`."""
    return integrators.discretize(continuous_dynamics, dt, method)


def hand_position(x: Array, params: Params) -> Array:
    """Forward kinematics: ``(2,)`` hand (end-point) position in m, shoulder at the origin."""
    th1, th12 = x[0], x[0] + x[1]
    return jnp.array([params.l1 * jnp.cos(th1) + params.l2 * jnp.cos(th12),
                      params.l1 * jnp.sin(th1) + params.l2 * jnp.sin(th12)])


def kinetic_energy(x: Array, params: Params) -> Array:
    """``0.5 theta_dot' M(theta) theta_dot`` (J)."""
    qdot = x[2:]
    return 0.5 * qdot @ mass_matrix(x[1], *_coefficients(params)) @ qdot


def potential_energy(x: Array, params: Params) -> Array:
    """Zero: the arm moves in the horizontal plane (J)."""
    del params
    return jnp.zeros((), dtype=x.dtype)


def energy(x: Array, params: Params) -> Array:
    """Total mechanical energy (J): conserved when ``u = 0`` and ``B = 0``."""
    return kinetic_energy(x, params) + potential_energy(x, params)


def initial_state(dtype=None) -> Array:
    """The documented start of :func:`reach`: shoulder 45 deg, elbow 90 deg, at rest.

    ``[pi/4, pi/2, 0, 0]``; the hand is then at about ``(-0.021, 0.445)`` m.
    """
    return jnp.array([jnp.pi / 4, jnp.pi / 2, 0.0, 0.0], dtype=dtype)


def initial_controls(horizon: int, dtype=None) -> Array:
    """Initial guess for :func:`reach`: zero torques, ``(horizon, 2)``."""
    return jnp.zeros((horizon, 2), dtype=dtype)


@dataclasses.dataclass(frozen=True)
class ReachRunningCost:
    """Effort ``dt * effort_weight * |u|^2`` (u in N m); hashable, so problems compare by value."""

    effort_weight: float
    dt: float

    def __call__(self, x: Array, u: Array, t: Array, params: Params) -> Array:
        del x, t, params
        return self.dt * self.effort_weight * jnp.sum(u ** 2)


@dataclasses.dataclass(frozen=True)
class ReachTerminalCost:
    """``position_weight |hand - target|^2 + velocity_weight |theta_dot|^2`` at the final state."""

    target: Tuple[float, float]
    position_weight: float
    velocity_weight: float

    def __call__(self, x: Array, params: Params) -> Array:
        err = hand_position(x, params) - jnp.asarray(self.target, dtype=x.dtype)
        return self.position_weight * jnp.sum(err ** 2) + self.velocity_weight * jnp.sum(x[2:] ** 2)


def reach(target: Tuple[float, float] = DEFAULT_TARGET, horizon: int = 50, dt: float = 0.01,
          effort_weight: float = 1e-2, position_weight: float = 1e4, velocity_weight: float = 1.0,
          torque_limit: float = TORQUE_LIMIT) -> Problem:
    """Energy-optimal point-to-point reach (after Li & Todorov 2004).

    Minimise ``sum_t dt * effort_weight * |u_t|^2
    + position_weight * |hand(x_T) - target|^2 + velocity_weight * |theta_dot_T|^2``
    subject to the RK4-discretised arm and ``|u_i| <= torque_limit``.

    Start from :func:`initial_state` with :func:`initial_controls`; goal: hand
    within 1 cm of ``target`` and nearly at rest (rates below 0.1 rad/s) at
    ``T * dt`` seconds. With the defaults a 1 cm miss would cost
    ``1e4 * 1e-4 = 1``, while the optimal reach costs ~0.006 in total; the
    solver (default ``Options``) converges in ~10 iterations to a miss of a
    few micrometres, peak torques ~1.8 / 0.8 N m (shoulder / elbow).

    Args:
      target: ``(2,)`` hand target (m), shoulder frame; must be reachable
        (``|l1 - l2| < |target| < l1 + l2``).
      horizon: number of steps ``T``; movement time ``T * dt`` (default 0.5 s).
      dt: step (s). effort_weight, position_weight, velocity_weight: see above.
      torque_limit: symmetric torque bound (N m) on both joints.

    Returns:
      A :class:`~ilqg_jax.problem.Problem` with ``n = 4``, ``m = 2``; pass
      ``params=default_params()`` (or your own :class:`Params`) to the solver.
    """
    target = tuple(float(v) for v in target)
    if len(target) != 2:
        raise ValueError(f"target must be a hand position (x, y) in m, got {target!r}.")
    return Problem(
        dynamics=dynamics(dt),
        running_cost=ReachRunningCost(float(effort_weight), float(dt)),
        terminal_cost=ReachTerminalCost(target, float(position_weight), float(velocity_weight)),
        horizon=horizon,
        control_lower=jnp.full((2,), -float(torque_limit)),
        control_upper=jnp.full((2,), float(torque_limit)),
    )
