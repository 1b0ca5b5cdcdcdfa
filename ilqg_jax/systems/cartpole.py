"""Cart-pole: a pole hinged on a cart that is pushed along a frictionless track.

Model of Barto, Sutton & Anderson (1983), "Neuronlike adaptive elements that
can solve difficult learning control problems", IEEE Trans. SMC 13(5), with the
equations as corrected by R. V. Florian (2007), "Correct equations for the
dynamics of the cart-pole system", and written in manipulator form as in
R. Tedrake, *Underactuated Robotics*, ch. "Acrobots, Cart-Poles, and
Quadrotors" (which measures the angle from hanging; here it is from upright).
Friction is left out. With the pole's centre of mass at distance ``l`` from the
hinge, ``at (p + l sin th, l cos th)``, and moment of inertia ``I`` about it:

    [[mc + mp,        mp l cos th ],   [p_ddot ]   [f + mp l sin th th_dot^2]
     [mp l cos th,    mp l^2 + I  ]] @ [th_ddot] = [mp g l sin th           ].

Layout (SI units):
  state ``x = [p, th, p_dot, th_dot]: (4,)``: cart position (m, positive to the
  right), pole angle (rad) measured from the **upright** vertical, positive
  clockwise (the pole's top moves to +p), and their rates;
  ``th = 0`` is upright (unstable), ``th = pi`` hanging down (stable);
  control ``u = [f]: (1,)``: horizontal force on the cart (N).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from ilqg_jax import linalg
from ilqg_jax.problem import Problem
from ilqg_jax.systems import angles, integrators

Array = jax.Array

__all__ = [
    "Params", "default_params", "continuous_dynamics", "dynamics", "kinetic_energy",
    "potential_energy", "energy", "pole_tip", "initial_state", "initial_controls", "swing_up",
    "FORCE_LIMIT", "UPRIGHT",
]

#: Force limit (N): the +-10 N of Barto et al. (1983).
FORCE_LIMIT = 10.0
#: The goal state of :func:`swing_up`: cart at the centre, pole upright, at rest.
UPRIGHT = (0.0, 0.0, 0.0, 0.0)


class Params(NamedTuple):
    """Physical parameters (a pytree).

    Attributes:
      cart_mass: ``mc`` (kg). pole_mass: ``mp`` (kg).
      pole_com: ``l``, hinge-to-centre-of-mass distance (m; the half-length of a uniform pole).
      pole_inertia: ``I``, the pole's moment of inertia about its centre of mass (kg m^2).
      gravity: ``g`` (m/s^2).
    """

    cart_mass: Array
    pole_mass: Array
    pole_com: Array
    pole_inertia: Array
    gravity: Array


def default_params() -> Params:
    """Barto et al. (1983): mc = 1.0 kg, mp = 0.1 kg, uniform pole of half-length l = 0.5 m
    (so ``I = mp l^2 / 3``), g = 9.8 m/s^2."""
    f = lambda v: jnp.asarray(v, dtype=float)
    return Params(cart_mass=f(1.0), pole_mass=f(0.1), pole_com=f(0.5),
                  pole_inertia=f(0.1 * 0.5 ** 2 / 3.0), gravity=f(9.8))


def _mass_matrix(th: Array, params: Params) -> Array:
    mp, l = params.pole_mass, params.pole_com
    c = mp * l * jnp.cos(th)
    return jnp.array([[params.cart_mass + mp, c], [c, mp * l ** 2 + params.pole_inertia]])


def continuous_dynamics(x: Array, u: Array, params: Params) -> Array:
    """``xdot`` for ``x: (4,)``, ``u: (1,)`` (N); returns ``(4,)``."""
    th, th_dot = x[1], x[3]
    mp, l = params.pole_mass, params.pole_com
    rhs = jnp.array([u[0] + mp * l * jnp.sin(th) * th_dot ** 2,
                     mp * params.gravity * l * jnp.sin(th)])
    qddot = linalg.solve(_mass_matrix(th, params), rhs)
    return jnp.concatenate([x[2:], qddot])


def dynamics(dt: float = 0.05, method: str = "rk4") -> integrators.Discretized:
    """Discrete ``dynamics(x, u, t, params) -> x_next`` at step ``dt`` (s); see :mod:`integrators`."""
    return integrators.discretize(continuous_dynamics, dt, method)


def kinetic_energy(x: Array, params: Params) -> Array:
    """``0.5 qdot' M(q) qdot`` (J), ``q = [p, th]``."""
    qdot = x[2:]
    return 0.5 * qdot @ _mass_matrix(x[1], params) @ qdot


def potential_energy(x: Array, params: Params) -> Array:
    """``mp g l cos th`` (J): zero with the pole's centre of mass at hinge height."""
    return params.pole_mass * params.gravity * params.pole_com * jnp.cos(x[1])


def energy(x: Array, params: Params) -> Array:
    """Total mechanical energy (J); conserved when ``u = 0``."""
    return kinetic_energy(x, params) + potential_energy(x, params)


def pole_tip(x: Array, params: Params) -> Array:
    """``(2,)`` position (m) of the pole's far end (at ``2 l`` from the hinge, uniform pole)."""
    r = 2.0 * params.pole_com
    return jnp.array([x[0] + r * jnp.sin(x[1]), r * jnp.cos(x[1])])


def initial_state(dtype=None) -> Array:
    """The documented start of :func:`swing_up`: cart at the centre, pole hanging, at rest:
    ``[0, pi, 0, 0]``."""
    return jnp.array([0.0, jnp.pi, 0.0, 0.0], dtype=dtype)


def initial_controls(horizon: int, dtype=None) -> Array:
    """Initial guess for :func:`swing_up`: a small constant push, ``(horizon, 1)``.

    Not zero: hanging at rest is an equilibrium where the periodic angle cost
    is at its maximum and flat, so zero controls give the solver a zero
    gradient. A 1 N push breaks the symmetry.
    """
    return jnp.full((horizon, 1), 1.0, dtype=dtype)


def swing_up(horizon: int = 40, dt: float = 0.05, control_weight: float = 0.03,
             force_limit: float = FORCE_LIMIT) -> Problem:
    """Swing the pole up from hanging and bring the cart back to the centre.

    Running cost ``dt * (d(x, UPRIGHT) + control_weight * f^2)`` with state
    weights ``(1, 1, 0.1, 0.1)`` on ``(p, th, p_dot, th_dot)``; terminal cost
    ``d(x_T, UPRIGHT)`` with weights ``(100, 100, 10, 10)``. ``d`` is
    :func:`angles.periodic_quadratic`: squares, except ``2 (1 - cos th)`` for
    the angle. RK4 dynamics.

    Start from :func:`initial_state` with :func:`initial_controls`; goal at
    ``T * dt`` s (2 s by default): ``|wrap(th)| < 0.05`` rad, ``|p| < 0.05`` m,
    velocities below 0.1 (m/s, rad/s).

    Tuning (with :func:`ilqg_jax.solve` at default ``Options``): a 2 s horizon
    converges in ~30 iterations from any of the constant pushes tried
    (+-0.5 to 2 N); 3 s horizons admit more swing-up strategies and took
    up to 100 iterations or stalled in a local minimum. The running state
    cost keeps the intermediate iterates tame.

    Args:
      horizon: ``T`` steps. dt: step (s). control_weight: effort weight (1/N^2).
      force_limit: ``|f| <= force_limit`` (N).

    Returns:
      A :class:`~ilqg_jax.problem.Problem` with ``n = 4``, ``m = 1``; use
      ``params=default_params()``.
    """
    periodic = (False, True, False, False)
    return Problem(
        dynamics=dynamics(dt),
        running_cost=angles.RunningCost(UPRIGHT, (1.0, 1.0, 0.1, 0.1), periodic,
                                        float(control_weight), float(dt)),
        terminal_cost=angles.TerminalCost(UPRIGHT, (100.0, 100.0, 10.0, 10.0), periodic),
        horizon=horizon,
        control_lower=jnp.full((1,), -float(force_limit)),
        control_upper=jnp.full((1,), float(force_limit)),
    )
