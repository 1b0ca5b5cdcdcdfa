"""Gymnasium's ``Pendulum-v1`` as a :class:`~ilqg_jax.Problem`.

The environment (``gymnasium/envs/classic_control/pendulum.py``) is the
pendulum of :mod:`ilqg_jax.systems.pendulum` -- a uniform rod, ``g = 10``,
``m = 1``, ``l = 1`` -- stepped at ``dt = 0.05`` s with the torque clipped to
``+-2`` N m and, after the velocity update and *before* the angle update, the
speed clipped to ``+-8`` rad/s:

    ``u' = clip(u, -2, 2)``
    ``w' = clip(w + dt (3 g / (2 l) sin(theta) + 3 / (m l^2) u'), -8, 8)``
    ``theta' = theta + dt w'``.

Its reward for taking ``u`` in ``x = [theta, w]`` is
``-(wrap(theta)^2 + 0.1 w^2 + 0.001 u'^2)``, with ``wrap`` to ``[-pi, pi)``.

Two models:

* :func:`env_step` / :func:`env_reward` -- the environment exactly, clips
  included (for simulation and as the oracle of the tests).
* :func:`problem` -- what the optimizer plans with: the same step without the
  speed clip (the torque limit is a box constraint of the problem instead),
  and a smooth, ``2 pi``-periodic fit of the reward. Where the speed stays
  below 8 rad/s the planning step equals the environment's step to rounding.
  That covers nearly every state a controller that wants the pendulum upright
  visits (falling from upright at rest reaches ``sqrt(6 * 10) = 7.7`` rad/s),
  but not all: a swing that falls back with the torque pushing along can hit
  the clip for a step or two. Where the clip is active its derivative is zero,
  which tells the optimizer that the speed cannot be changed -- true of the
  environment, but a poor guide; measured over 100 episodes, planning through
  the clip did no better (the ablation in ``benchmarks/mpc.py``), so it is
  left out. ``problem(clip_speed=True)`` keeps it, for comparison.

The reward's ``wrap(theta)^2`` has a kink at the bottom (``theta = pi``), where
its gradient jumps from ``2 pi`` to ``-2 pi``. The planning cost replaces it by
its Fourier series truncated after ``harmonics`` terms,

    ``wrap(theta)^2 = sum_n 4 (-1)^(n+1) / n^2 (1 - cos(n theta))``,

which is smooth and periodic. The default, ``harmonics=1``, is
``4 (1 - cos theta)``: twice the reward's curvature at the top, 8 against
``pi^2 = 9.9`` at the bottom. In closed-loop tuning (horizon 30, 100 episodes)
it did better than ``2 (1 - cos theta)`` (exact to second order at the top),
than two harmonics fitted to both the top's curvature and the bottom's value,
than three harmonics, and than the kinked ``wrap(theta)^2`` itself, by 8 to 14
in mean return.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ilqg_jax.problem import Problem
from ilqg_jax.systems import angles, integrators
from ilqg_jax.systems.pendulum import PendulumParams, acceleration, continuous_dynamics, energy

Array = jax.Array

__all__ = ["DT", "MAX_TORQUE", "MAX_SPEED", "EPISODE_STEPS", "MPC_HORIZON", "MPC_MAX_ITER",
           "GymPendulumParams", "default_params",
           "env_step", "env_reward", "angle_error_squared", "problem", "state_from_observation"]

#: Time step (s), torque limit (N m), speed limit (rad/s) and episode length of Pendulum-v1.
DT = 0.05
MAX_TORQUE = 2.0
MAX_SPEED = 8.0
EPISODE_STEPS = 200
#: The tuned receding-horizon controller: look-ahead (steps) and iLQG iterations per control step.
MPC_HORIZON = 20
MPC_MAX_ITER = 3


class GymPendulumParams(NamedTuple):
    """Model and cost weights of :func:`problem` (a pytree: batch or differentiate them).

    The running cost is the environment's negative reward, smoothed:
    ``q_angle * angle_error_squared(theta) + q_velocity w^2 + r_torque u^2``;
    the terminal cost, which stands in for the rest of the episode beyond the
    horizon, is ``qf_angle * angle_error_squared(theta) + qf_velocity w^2 +
    qf_energy (E - E_up)^2`` with ``E`` the pendulum's energy
    (:func:`ilqg_jax.systems.pendulum.energy`) and ``E_up = m g l`` its value
    upright at rest: an energy error tells a short horizon to pump energy
    before the top is in sight. The running weights default to the reward's
    (1, 0.1, 0.001); the terminal weights were tuned on closed-loop return
    (``benchmarks/mpc.py``).
    """

    model: PendulumParams = PendulumParams(g=10.0, m=1.0, l=1.0)
    q_angle: float | Array = 1.0
    q_velocity: float | Array = 0.1
    r_torque: float | Array = 0.001
    qf_angle: float | Array = 1.0
    qf_velocity: float | Array = 0.1
    qf_energy: float | Array = 0.1


def default_params() -> GymPendulumParams:
    """The environment's model (``g = 10, m = 1, l = 1``), its reward weights and the tuned terminal weights."""
    return GymPendulumParams()


def _model(params) -> PendulumParams:
    if params is None:
        return default_params().model
    return params.model if isinstance(params, GymPendulumParams) else params


# --- The environment, exactly ---------------------------------------------------------------------


def env_step(x: Array, u: Array, t: Array | None = None, params=None) -> Array:
    """``Pendulum-v1``'s step, clips included: ``x: (2,)``, ``u: (1,)`` -> ``(2,)``.

    ``params`` is a :class:`GymPendulumParams`, a :class:`PendulumParams` or
    ``None`` (the environment's ``g = 10, m = 1, l = 1``); ``t`` is ignored.
    The signature is a ``Problem.dynamics``, so it also serves as the plant of
    :func:`ilqg_jax.mpc.simulate`.
    """
    del t
    p = _model(params)
    torque = jnp.clip(u[0], -MAX_TORQUE, MAX_TORQUE)
    w = jnp.clip(x[1] + DT * acceleration(x[0], torque, p), -MAX_SPEED, MAX_SPEED)
    return jnp.stack([x[0] + DT * w, w])


def env_reward(x: Array, u: Array) -> Array:
    """``Pendulum-v1``'s reward for taking ``u: (1,)`` in ``x: (2,)``: ``-(wrap(theta)^2 + 0.1 w^2 + 0.001 u'^2)``
    with the torque clipped, ``u' = clip(u, -2, 2)``. Broadcasts over leading axes."""
    torque = jnp.clip(u[..., 0], -MAX_TORQUE, MAX_TORQUE)
    return -(angles.wrap(x[..., 0]) ** 2 + 0.1 * x[..., 1] ** 2 + 0.001 * torque**2)


def state_from_observation(obs, reference: float | None = None) -> np.ndarray:
    """The state ``[theta, w]`` (NumPy float64, on the host) from the observation ``[cos theta, sin theta, w]``.

    ``theta`` is in ``(-pi, pi]``, or, given a ``reference`` angle (say the
    previous state's), the angle equal to it modulo ``2 pi`` that lies within
    ``pi`` of the reference -- so that a trajectory read from observations is
    continuous, as the environment's own state is. (The observation is
    float32: the state is recovered to about 1e-7.)
    """
    obs = np.asarray(obs, dtype=np.float64)
    theta = np.arctan2(obs[..., 1], obs[..., 0])
    if reference is not None:
        d = theta - reference
        theta = reference + (d - 2.0 * np.pi * np.round(d / (2.0 * np.pi)))
    return np.stack([theta, obs[..., 2]], axis=-1)


# --- The planning problem -------------------------------------------------------------------------


def angle_error_squared(theta: Array, harmonics: int = 1) -> Array:
    """A smooth, periodic stand-in for ``wrap(theta)^2``: its Fourier series after ``harmonics`` terms,
    ``sum_{n<=N} 4 (-1)^(n+1) / n^2 * angle_cost(n theta)``, elementwise. Zero at 0; at ``pi`` it is
    ``8`` (N = 1, 2), ``8.9`` (N = 3, 4), converging as ``1/N`` to ``pi^2 = 9.87``."""
    terms = [4.0 * (-1.0) ** (n + 1) / n**2 * angles.angle_cost(n * theta) for n in range(1, harmonics + 1)]
    return functools.reduce(jnp.add, terms)


def _weights(params) -> GymPendulumParams:
    return default_params() if params is None else params


@dataclasses.dataclass(frozen=True)
class _Cost:
    """Running and terminal planning cost (hashable by value, so equal problems share compiled code)."""

    harmonics: int

    def running(self, x: Array, u: Array, t: Array, params: GymPendulumParams | None = None) -> Array:
        del t
        w = _weights(params)
        return (w.q_angle * angle_error_squared(x[0], self.harmonics) + w.q_velocity * x[1] ** 2
                + w.r_torque * jnp.sum(u**2))

    def terminal(self, x: Array, params: GymPendulumParams | None = None) -> Array:
        w = _weights(params)
        p = w.model
        return (w.qf_angle * angle_error_squared(x[0], self.harmonics) + w.qf_velocity * x[1] ** 2
                + w.qf_energy * (energy(x, p) - p.m * p.g * p.l) ** 2)


def _planning_f(x: Array, u: Array, params) -> Array:
    return continuous_dynamics(x, u, _model(params))


def _env_dynamics(x: Array, u: Array, t: Array, params=None) -> Array:
    return env_step(x, u, t, params)


@functools.lru_cache(maxsize=None)
def problem(horizon: int = 30, harmonics: int = 1, clip_speed: bool = False) -> Problem:
    """Pendulum-v1 as a planning problem over ``horizon`` steps of 0.05 s.

    Args:
      horizon: number of steps ``T`` the controller looks ahead.
      harmonics: terms of the smooth fit of ``wrap(theta)^2`` (:func:`angle_error_squared`).
      clip_speed: plan with the environment's speed clip inside the dynamics
        (:func:`env_step`) instead of the smooth step.

    Returns:
      A :class:`~ilqg_jax.Problem` with ``x = [theta, w]: (2,)``, ``u: (1,)``,
      ``|u| <= 2`` as a box constraint, and ``params`` a
      :class:`GymPendulumParams` (``None`` means :func:`default_params`).
    """
    cost = _Cost(int(harmonics))
    if clip_speed:
        dynamics = _env_dynamics
    else:
        dynamics = integrators.discretize(_planning_f, DT, "semi_implicit_euler")
    return Problem(dynamics, cost.running, cost.terminal, int(horizon),
                   control_lower=jnp.array([-MAX_TORQUE]), control_upper=jnp.array([MAX_TORQUE]))
