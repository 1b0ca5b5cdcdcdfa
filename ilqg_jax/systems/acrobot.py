"""Acrobot: a two-link pendulum in a vertical plane with a motor at the elbow only.

M. W. Spong, "The swing up control problem for the Acrobot", IEEE Control
Systems Magazine 15(1), 1995; equations as in R. Tedrake, *Underactuated
Robotics*, ch. "Acrobots, Cart-Poles, and Quadrotors" (which measures ``th1``
from hanging; here it is from upright). It is the two-link chain of
:mod:`ilqg_jax.systems.two_link_arm` with gravity and without friction:

    M(q) q_ddot + C(q, q_dot) = tau_g(q) + [0, tau],
    M = [[a1 + 2 a2 cos th2, a3 + a2 cos th2], [a3 + a2 cos th2, a3]],
    a1 = I1 + I2 + m2 l1^2,  a2 = m2 l1 lc2,  a3 = I2,
    tau_g = g [ (m1 lc1 + m2 l1) sin th1 + m2 lc2 sin(th1 + th2),  m2 lc2 sin(th1 + th2) ],

where ``I1, I2`` are moments of inertia about the shoulder and elbow joints.
Default parameters: two identical uniform rods, m = 1 kg, l = 1 m, lc = 0.5 m,
I about the joint = m l^2 / 3 (Tedrake's notes use m = l = 1, lc = 0.5 too).

Layout (SI units):
  state ``x = [th1, th2, th1_dot, th2_dot]: (4,)``: shoulder angle of link 1
  from the **upright** vertical and elbow angle of link 2 relative to link 1
  (rad, both positive clockwise), and their rates (rad/s);
  ``[0, 0]`` is upright (unstable), ``[pi, 0]`` hanging down (stable);
  control ``u = [tau]: (1,)``: elbow torque (N m).
"""

from __future__ import annotations

from typing import NamedTuple, Tuple

import jax
import jax.numpy as jnp

from ilqg_jax import linalg
from ilqg_jax.problem import Problem
from ilqg_jax.systems import angles, integrators
from ilqg_jax.systems.two_link_arm import bias_forces, mass_matrix

Array = jax.Array

__all__ = [
    "Params", "default_params", "continuous_dynamics", "dynamics", "kinetic_energy",
    "potential_energy", "energy", "tip_position", "initial_state", "initial_controls",
    "swing_up", "TORQUE_LIMIT", "UPRIGHT",
]

#: Elbow torque limit (N m) of :func:`swing_up`: generous (holding link 2
#: horizontal against gravity takes m2 g lc2 ~ 4.9 N m).
TORQUE_LIMIT = 20.0
#: The goal state of :func:`swing_up`: both links upright, at rest.
UPRIGHT = (0.0, 0.0, 0.0, 0.0)


class Params(NamedTuple):
    """Physical parameters (a pytree).

    Attributes:
      m1, m2: link masses (kg). l1: length of link 1 (m); l2: length of link 2
        (m; used only for the tip position). lc1, lc2: joint-to-centre-of-mass
        distances (m). I1, I2: moments of inertia about the shoulder / elbow
        joint (kg m^2). gravity: ``g`` (m/s^2).
    """

    m1: Array
    m2: Array
    l1: Array
    l2: Array
    lc1: Array
    lc2: Array
    I1: Array
    I2: Array
    gravity: Array


def default_params() -> Params:
    """m1 = m2 = 1 kg, l1 = l2 = 1 m, lc1 = lc2 = 0.5 m, I1 = I2 = 1/3 kg m^2 (uniform rods
    about their joints), g = 9.81 m/s^2."""
    f = lambda v: jnp.asarray(v, dtype=float)
    return Params(m1=f(1.0), m2=f(1.0), l1=f(1.0), l2=f(1.0), lc1=f(0.5), lc2=f(0.5),
                  I1=f(1.0 / 3.0), I2=f(1.0 / 3.0), gravity=f(9.81))


def _coefficients(params: Params) -> Tuple[Array, Array, Array]:
    a1 = params.I1 + params.I2 + params.m2 * params.l1 ** 2
    a2 = params.m2 * params.l1 * params.lc2
    return a1, a2, params.I2


def _gravity_torque(q: Array, params: Params) -> Array:
    s1, s12 = jnp.sin(q[0]), jnp.sin(q[0] + q[1])
    g2 = params.gravity * params.m2 * params.lc2 * s12
    g1 = params.gravity * (params.m1 * params.lc1 + params.m2 * params.l1) * s1 + g2
    return jnp.array([g1, g2])


def continuous_dynamics(x: Array, u: Array, params: Params) -> Array:
    """``xdot`` for ``x: (4,)``, ``u: (1,)`` (elbow torque, N m); returns ``(4,)``."""
    q, qdot = x[:2], x[2:]
    a1, a2, a3 = _coefficients(params)
    rhs = _gravity_torque(q, params) - bias_forces(q[1], qdot, a2) + jnp.array([0.0, 1.0]) * u[0]
    qddot = linalg.solve(mass_matrix(q[1], a1, a2, a3), rhs)
    return jnp.concatenate([qdot, qddot])


def dynamics(dt: float = 0.05, method: str = "rk4") -> integrators.Discretized:
    """Discrete ``dynamics(x, u, t, params) -> x_next`` at step ``dt`` (s); see :mod:`integrators`."""
    return integrators.discretize(continuous_dynamics, dt, method)


def kinetic_energy(x: Array, params: Params) -> Array:
    """``0.5 qdot' M(q) qdot`` (J)."""
    qdot = x[2:]
    return 0.5 * qdot @ mass_matrix(x[1], *_coefficients(params)) @ qdot


def potential_energy(x: Array, params: Params) -> Array:
    """Gravitational energy (J), zero at shoulder height; ``V(upright) > 0 > V(hanging)``."""
    c1, c12 = jnp.cos(x[0]), jnp.cos(x[0] + x[1])
    return params.gravity * ((params.m1 * params.lc1 + params.m2 * params.l1) * c1
                             + params.m2 * params.lc2 * c12)


def energy(x: Array, params: Params) -> Array:
    """Total mechanical energy (J); conserved when ``u = 0``."""
    return kinetic_energy(x, params) + potential_energy(x, params)


def tip_position(x: Array, params: Params) -> Array:
    """``(2,)`` position (m) of the end of link 2, shoulder at the origin, y up."""
    th1, th12 = x[0], x[0] + x[1]
    return jnp.array([params.l1 * jnp.sin(th1) + params.l2 * jnp.sin(th12),
                      params.l1 * jnp.cos(th1) + params.l2 * jnp.cos(th12)])


def initial_state(dtype=None) -> Array:
    """The documented start of :func:`swing_up`: hanging straight down at rest, ``[pi, 0, 0, 0]``."""
    return jnp.array([jnp.pi, 0.0, 0.0, 0.0], dtype=dtype)


def initial_controls(horizon: int, dtype=None) -> Array:
    """Initial guess for :func:`swing_up`: a constant 1 N m elbow torque, ``(horizon, 1)``.

    Not zero: hanging at rest is an equilibrium where the periodic angle costs
    are at their maximum and flat, so zero controls give a zero gradient.
    """
    return jnp.full((horizon, 1), 1.0, dtype=dtype)


def swing_up(horizon: int = 50, dt: float = 0.05, control_weight: float = 0.05,
             torque_limit: float = TORQUE_LIMIT) -> Problem:
    """Swing both links up from hanging and stop there.

    Running cost ``dt * (d(x, UPRIGHT) + control_weight * tau^2)`` with state
    weights ``(2, 2, 0.1, 0.1)`` on ``(th1, th2, th1_dot, th2_dot)``; terminal
    cost ``d(x_T, UPRIGHT)`` with weights ``(300, 300, 30, 30)``. ``d`` is
    :func:`angles.periodic_quadratic` (``2 (1 - cos)`` for the angles). RK4
    dynamics.

    Start from :func:`initial_state` with :func:`initial_controls`; goal at
    ``T * dt`` s (2.5 s by default): both ``|wrap(th_i)| < 0.05`` rad and both
    rates below 0.2 rad/s.

    Tuning (with :func:`ilqg_jax.solve` at default ``Options``, 100
    iterations): the acrobot swing-up is the hardest of the ready problems
    for iLQG. With these settings it converges in 73-91 iterations from
    constant elbow torques of 0.5 to 3 N m (75 from the documented 1 N m);
    without the running cost on the angles, or with 4-5 s horizons, it
    mostly needed 100-250 iterations; some other initial torques converge to
    a local minimum that is not upright. Peak torque in the solution is
    ~15 N m, inside the limit.

    Args:
      horizon: ``T`` steps. dt: step (s). control_weight: effort weight (1/(N m)^2).
      torque_limit: ``|tau| <= torque_limit`` (N m); ``float('inf')`` for none.

    Returns:
      A :class:`~ilqg_jax.problem.Problem` with ``n = 4``, ``m = 1``; use
      ``params=default_params()``.
    """
    periodic = (True, True, False, False)
    return Problem(
        dynamics=dynamics(dt),
        running_cost=angles.RunningCost(UPRIGHT, (2.0, 2.0, 0.1, 0.1), periodic,
                                        float(control_weight), float(dt)),
        terminal_cost=angles.TerminalCost(UPRIGHT, (300.0, 300.0, 30.0, 30.0), periodic),
        horizon=horizon,
        control_lower=jnp.full((1,), -float(torque_limit)),
        control_upper=jnp.full((1,), float(torque_limit)),
    )
