"""Turning continuous-time dynamics into the discrete ``dynamics`` of a Problem.

A system module writes its equations of motion once, in continuous time,

    ``f(x: (n,), u: (m,), params) -> xdot: (n,)``,

and :func:`discretize` turns them into ``dynamics(x, u, t, params) -> x_next``
with the control held constant over the step (zero-order hold), which is the
signature :class:`ilqg_jax.problem.Problem` expects. Methods:

* ``"rk4"``: classical fourth-order Runge-Kutta; global error ``O(dt^4)``.
* ``"semi_implicit_euler"`` (symplectic Euler): for mechanical states laid out
  as ``x = [q, qdot]`` (positions in the first half, velocities in the second),
  ``qdot' = qdot + dt * qddot(q, qdot, u)``, then ``q' = q + dt * qdot'``.
  It is exactly symplectic when the mass matrix is constant (e.g. a pendulum:
  the energy error oscillates and stays bounded over long runs). With a
  configuration-dependent mass matrix (two-link arm, acrobot, cart-pole) it is
  *not* symplectic in these coordinates: it is first order, and the energy of
  an undamped system can drift secularly at a rate ``O(dt)`` (for the free
  arm at ``dt = 1 ms``, ~0.3% of its kinetic energy per second -- more than
  explicit Euler). Use ``"rk4"`` when accuracy matters.
* ``"euler"``: explicit (forward) Euler, first order; provided for comparison.

Reference: E. Hairer, C. Lubich, G. Wanner, *Geometric Numerical Integration*,
2nd ed., Springer 2006, Sections I.1 and VI.3 (symplectic Euler).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp

Array = jax.Array
ContinuousDynamics = Callable[[Array, Array, Any], Array]
DiscreteDynamics = Callable[[Array, Array, Array, Any], Array]

__all__ = ["METHODS", "Discretized", "discretize", "rk4_step", "euler_step", "semi_implicit_euler_step"]


def rk4_step(f: ContinuousDynamics, x: Array, u: Array, params: Any, dt: float) -> Array:
    """One classical Runge-Kutta step of ``xdot = f(x, u, params)`` with ``u`` held.

    Args:
      f: continuous dynamics ``(x: (n,), u: (m,), params) -> (n,)``.
      x: ``(n,)`` state; u: ``(m,)`` control; dt: step in seconds.

    Returns:
      ``(n,)`` state after ``dt``.
    """
    k1 = f(x, u, params)
    k2 = f(x + 0.5 * dt * k1, u, params)
    k3 = f(x + 0.5 * dt * k2, u, params)
    k4 = f(x + dt * k3, u, params)
    return x + (dt / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)


def euler_step(f: ContinuousDynamics, x: Array, u: Array, params: Any, dt: float) -> Array:
    """One explicit Euler step ``x + dt * f(x, u, params)``; shapes as :func:`rk4_step`."""
    return x + dt * f(x, u, params)


def semi_implicit_euler_step(f: ContinuousDynamics, x: Array, u: Array, params: Any, dt: float) -> Array:
    """One symplectic (semi-implicit) Euler step for a mechanical state ``x = [q, qdot]``.

    The velocity is updated first with the acceleration at the current state,
    then the position with the *new* velocity. Only the acceleration half of
    ``f`` is used.

    Args:
      f: continuous dynamics ``(x: (2k,), u, params) -> [qdot, qddot]: (2k,)``.
      x: ``(2k,)`` state ``[q, qdot]``; u: ``(m,)``; dt: step in seconds.

    Returns:
      ``(2k,)`` state after ``dt``.
    """
    n = x.shape[-1]
    if n % 2:
        raise ValueError(f"semi-implicit Euler needs a state [q, qdot] of even length, got n={n}.")
    k = n // 2
    q, v = x[:k], x[k:]
    v_next = v + dt * f(x, u, params)[k:]
    q_next = q + dt * v_next
    return jnp.concatenate([q_next, v_next])


METHODS = {
    "rk4": rk4_step,
    "semi_implicit_euler": semi_implicit_euler_step,
    "euler": euler_step,
}


@dataclasses.dataclass(frozen=True)
class Discretized:
    """Discrete-time dynamics ``(x, u, t, params) -> x_next``; made by :func:`discretize`.

    A frozen dataclass rather than a closure so that two problems built with
    the same ``(f, dt, method)`` compare and hash equal, and the solver (which
    treats the problem's functions as static) compiles once for both.
    """

    f: ContinuousDynamics
    dt: float
    method: str = "rk4"

    def __call__(self, x: Array, u: Array, t: Array, params: Any) -> Array:
        del t  # the systems are time-invariant
        return METHODS[self.method](self.f, x, u, params, self.dt)


def discretize(f: ContinuousDynamics, dt: float, method: str = "rk4") -> Discretized:
    """Discrete-time dynamics ``dynamics(x, u, t, params) -> x_next`` from ``xdot = f(x, u, params)``.

    Args:
      f: continuous dynamics ``(x: (n,), u: (m,), params) -> xdot: (n,)``.
      dt: time step in seconds (a positive Python float; it is static).
      method: one of ``"rk4"``, ``"semi_implicit_euler"`` (needs ``x = [q, qdot]``),
        ``"euler"``.

    Returns:
      ``dynamics(x: (n,), u: (m,), t, params) -> (n,)``, with ``u`` held over
      the step and ``t`` ignored. It is hashable and compares by value.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {sorted(METHODS)}, got {method!r}.")
    if isinstance(dt, bool) or not isinstance(dt, (int, float)) or not dt > 0:
        raise ValueError(f"dt must be a positive number of seconds, got {dt!r}.")
    return Discretized(f, float(dt), method)
