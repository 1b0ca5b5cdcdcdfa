"""Plain NumPy ports of the pendulum problems, for the NumPy baseline.

The baseline must not pay JAX's per-call dispatch cost, so the pendulum of
:mod:`ilqg_jax.systems.pendulum` is written again here in NumPy, with the same
formulas and default parameters. :func:`check_matches` compares each port
with its JAX original at random points, and every benchmark that uses a port
calls it first, so the two cannot drift apart silently.

Every function broadcasts over leading axes (``x: (..., 2)``, ``u: (..., 1)``,
``t: (...)``), so :func:`benchmarks.numpy_ilqr.solve` can run them point by
point (the seed's way) or ``vectorized=True``.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

__all__ = ["NumpyProblem", "pendulum_swing_up", "pendulum_seed", "check_matches"]


class NumpyProblem(NamedTuple):
    """A problem as plain NumPy callables (see :mod:`benchmarks.numpy_ilqr`)."""

    dynamics: Callable      # (x (..., n), u (..., m), t) -> (..., n)
    running_cost: Callable  # (x, u, t) -> (...)
    terminal_cost: Callable  # (x (..., n)) -> (...)
    n: int
    m: int


def _pair(a, b):
    if np.ndim(a) == 0 and np.ndim(b) == 0:      # one point: the seed's per-call path
        return np.array((a, b))
    out = np.empty(np.broadcast_shapes(np.shape(a), np.shape(b)) + (2,))
    out[..., 0] = a
    out[..., 1] = b
    return out


def pendulum_swing_up(dt: float = 0.05, g: float = 10.0, mass: float = 1.0, length: float = 1.0,
                      q_angle: float = 1.0, q_velocity: float = 0.1, r_torque: float = 0.1,
                      qf_angle: float = 100.0, qf_velocity: float = 10.0) -> NumpyProblem:
    """:func:`ilqg_jax.systems.pendulum.swing_up` with its default ``SwingUpParams``.

    Semi-implicit Euler of ``theta_ddot = 3 g / (2 l) sin(theta) + 3 / (m l^2) u``;
    running cost ``dt (q_a (1 - cos th) + q_v w^2 / 2 + r u^2 / 2)``, terminal
    ``qf_a (1 - cos th) + qf_v w^2 / 2``.
    """
    a_g = 3.0 * g / (2.0 * length)
    a_u = 3.0 / (mass * length ** 2)

    def dynamics(x, u, t):
        w = x[..., 1] + dt * (a_g * np.sin(x[..., 0]) + a_u * u[..., 0])
        return _pair(x[..., 0] + dt * w, w)

    def running_cost(x, u, t):
        return dt * (q_angle * (1.0 - np.cos(x[..., 0])) + 0.5 * q_velocity * x[..., 1] ** 2
                     + 0.5 * r_torque * u[..., 0] ** 2)

    def terminal_cost(x):
        return qf_angle * (1.0 - np.cos(x[..., 0])) + 0.5 * qf_velocity * x[..., 1] ** 2

    return NumpyProblem(dynamics, running_cost, terminal_cost, 2, 1)


def pendulum_seed(dt: float = 0.05, g: float = 10.0, mass: float = 1.0, length: float = 1.0,
                  max_torque: float = 8.0, max_speed: float = 2.0) -> NumpyProblem:
    """:func:`ilqg_jax.systems.pendulum.seed_problem`: the notebook's clipped model and costs."""

    def dynamics(x, u, t):
        torque = np.clip(u[..., 0], -max_torque, max_torque)
        w = x[..., 1] + (-3.0 * g / (2.0 * length) * np.sin(x[..., 0] + np.pi)
                         + 3.0 / (mass * length ** 2) * torque) * dt
        return _pair(x[..., 0] + w * dt, np.clip(w, -max_speed, max_speed))

    def running_cost(x, u, t):
        return 0.01 * u[..., 0] ** 2

    def terminal_cost(x):
        return (1.0 - np.cos(x[..., 0])) ** 2 + 0.1 * x[..., 1] ** 2

    return NumpyProblem(dynamics, running_cost, terminal_cost, 2, 1)


def check_matches(numpy_problem: NumpyProblem, jax_problem, params=None, points: int = 64,
                  seed: int = 0, rtol: float = 1e-12) -> float:
    """Raises ``AssertionError`` unless the port equals the JAX problem at random points.

    Returns the largest relative difference seen (functions, not derivatives).
    """
    import jax
    import jax.numpy as jnp

    rng = np.random.default_rng(seed)
    n, m = numpy_problem.n, numpy_problem.m
    xs = rng.uniform(-4.0, 4.0, (points, n))
    us = rng.uniform(-10.0, 10.0, (points, m))
    ts = np.arange(points)
    worst = 0.0
    with jax.default_device(jax.devices("cpu")[0]):
        f = jax.vmap(lambda x, u, t: jax_problem.dynamics(x, u, t, params))(
            jnp.asarray(xs), jnp.asarray(us), jnp.asarray(ts))
        l = jax.vmap(lambda x, u, t: jax_problem.running_cost(x, u, t, params))(
            jnp.asarray(xs), jnp.asarray(us), jnp.asarray(ts))
        lf = jax.vmap(lambda x: jax_problem.terminal_cost(x, params))(jnp.asarray(xs))
    for name, ref, got in (("dynamics", f, numpy_problem.dynamics(xs, us, ts)),
                           ("running_cost", l, numpy_problem.running_cost(xs, us, ts)),
                           ("terminal_cost", lf, numpy_problem.terminal_cost(xs))):
        ref = np.asarray(ref, dtype=float)
        err = float(np.max(np.abs(got - ref) / np.maximum(1.0, np.abs(ref))))
        if not err <= rtol:
            raise AssertionError(f"NumPy port of {name} differs from ilqg_jax by {err:.3g} (> {rtol:g}).")
        worst = max(worst, err)
    return worst
