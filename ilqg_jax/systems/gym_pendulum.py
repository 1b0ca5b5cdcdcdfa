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
  the clip did no better (with a 20-step horizon, on seeds 0..99), so it is
  left out. ``problem(clip_speed=True)`` keeps it, for comparison.

Three more pieces serve the receding-horizon controller and its yardstick:
:func:`lqr_params` adds the upright LQR value (:func:`upright_lqr_matrix`,
made periodic by :func:`lqr_value`) to the terminal cost, so a horizon that
ends near the top prices the rest of the episode; :func:`initial_guesses`
gives controls that lead to the different local optima of a swing-up (left or
right first, one pump or two), to plan from before the first step; and
:func:`episode_problem` is a whole episode as one trajectory optimisation,
whose optimum is the best return any controller can get from ``x0``.

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
           "MPC_PLAN_ITER", "MPC_PLAN_HORIZON", "MPC_REHEARSE", "GymPendulumParams", "default_params", "mpc_params",
           "initial_guesses", "upright_lqr_matrix", "lqr_value", "lqr_params",
           "env_step", "env_reward", "angle_error_squared", "problem", "episode_problem", "state_from_observation"]

#: Time step (s), torque limit (N m), speed limit (rad/s) and episode length of Pendulum-v1.
DT = 0.05
MAX_TORQUE = 2.0
MAX_SPEED = 8.0
EPISODE_STEPS = 200
#: The receding-horizon controller (chosen on seeds 0..99 only, ``benchmarks/mpc.py``): look-ahead
#: (steps), iLQG iterations per control step, and iterations of the plan made before the first step
#: from each of :func:`initial_guesses`; its weights are :func:`mpc_params`.
MPC_HORIZON = 60
MPC_MAX_ITER = 3
MPC_PLAN_ITER = 100
#: How far the plan before the first step looks ahead (steps): the horizon. A plan over the whole
#: episode (guesses longer than the horizon, :meth:`ilqg_jax.MPC.init`; the controller starts from
#: its first ``MPC_HORIZON`` steps) sees which swing is best beyond the horizon, but the receding
#: controller does not always hold that swing: measured on fresh seeds it did worse
#: (``benchmarks/mpc.py``), so the plan looks as far as the controller does.
MPC_PLAN_HORIZON = MPC_HORIZON
#: Steps of closed loop the plan rehearses from every guess's solution (``rehearse`` of
#: :meth:`ilqg_jax.MPC.init`): the controller runs a whole episode on its own model from each and
#: starts from the one that did best, not from the cheapest plan. The plan's 60-step cost cannot tell
#: which swing the receding controller will carry through to the top; its own closed loop can.
MPC_REHEARSE = EPISODE_STEPS


class GymPendulumParams(NamedTuple):
    """Model and cost weights of :func:`problem` (a pytree: batch or differentiate them).

    The running cost is the environment's negative reward, smoothed:
    ``q_angle * angle_error_squared(theta) + q_velocity w^2 + r_torque u^2``;
    the terminal cost, which stands in for the rest of the episode beyond the
    horizon, is ``qf_angle * angle_error_squared(theta) + qf_velocity w^2 +
    qf_energy (E - E_up)^2`` with ``E`` the pendulum's energy
    (:func:`ilqg_jax.systems.pendulum.energy`) and ``E_up = m g l`` its value
    upright at rest: an energy error tells a short horizon to pump energy
    before the top is in sight. ``qf_lqr``, a ``(2, 2)`` matrix or ``None``
    (default), adds :func:`lqr_value` -- the upright LQR cost-to-go, made
    periodic -- to the terminal cost (:func:`lqr_params`, :func:`mpc_params`).
    The running weights default to the reward's (1, 0.1, 0.001); the terminal
    weights were chosen on closed-loop return, seeds 0..99.
    """

    model: PendulumParams = PendulumParams(g=10.0, m=1.0, l=1.0)
    q_angle: float | Array = 1.0
    q_velocity: float | Array = 0.1
    r_torque: float | Array = 0.001
    qf_angle: float | Array = 1.0
    qf_velocity: float | Array = 0.1
    qf_energy: float | Array = 0.1
    qf_lqr: Array | None = None


def default_params() -> GymPendulumParams:
    """The environment's model (``g = 10, m = 1, l = 1``), its reward weights and the chosen terminal weights."""
    return GymPendulumParams()


def mpc_params(model: PendulumParams | None = None) -> GymPendulumParams:
    """The chosen controller's weights: :func:`default_params` with the upright LQR value
    (:func:`lqr_params`) added to the terminal cost, for ``model`` (default: the environment's)."""
    params = default_params()
    if model is not None:
        params = params._replace(model=model)
    return lqr_params(params)


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
        cost = (w.qf_angle * angle_error_squared(x[0], self.harmonics) + w.qf_velocity * x[1] ** 2
                + w.qf_energy * (energy(x, p) - p.m * p.g * p.l) ** 2)
        if w.qf_lqr is not None:
            cost = cost + lqr_value(x, w.qf_lqr)
        return cost


def upright_lqr_matrix(params: GymPendulumParams | None = None, iterations: int = 2000) -> np.ndarray:
    """``P: (2, 2)``, the infinite-horizon LQR value ``x^T P x / 2`` of the planning step linearised upright.

    The discrete-time Riccati recursion ``P <- Q + A^T P A - A^T P B (R + B^T P B)^-1 B^T P A`` is
    iterated to its fixed point, with ``A, B`` the semi-implicit Euler step of ``params.model``
    linearised at ``x = 0, u = 0`` and ``Q = diag(2 q_angle, 2 q_velocity)``, ``R = 2 r_torque``: the
    Hessians of the reward's ``q_angle theta^2 + q_velocity w^2 + r_torque u^2``. The torque limit is
    ignored, so ``x^T P x / 2`` is the cost-to-go of states near upright, where the limit does not bind.
    """
    w = _weights(params)
    p = w.model
    a, b = 3.0 * float(p.g) / (2.0 * float(p.l)), 3.0 / (float(p.m) * float(p.l) ** 2)
    A = np.array([[1.0 + DT**2 * a, DT], [DT * a, 1.0]])
    B = np.array([[DT**2 * b], [DT * b]])
    Q = np.diag([2.0 * float(w.q_angle), 2.0 * float(w.q_velocity)])
    R = np.array([[2.0 * float(w.r_torque)]])
    P = Q.copy()
    for _ in range(int(iterations)):
        gain = np.linalg.solve(R + B.T @ P @ B, B.T @ P @ A)
        P = Q + A.T @ P @ (A - B @ gain)
        P = 0.5 * (P + P.T)
    return P


def lqr_value(x: Array, P: Array) -> Array:
    """``x^T P x / 2`` with the angle made periodic: ``theta^2 -> 2 (1 - cos theta)``, ``theta w -> sin(theta) w``.

    Equal to the quadratic to second order at upright (``x = 0``), ``2 pi``-periodic and smooth.
    ``x: (2,)``, ``P: (2, 2)`` (:func:`upright_lqr_matrix`).
    """
    th, w = x[0], x[1]
    return 0.5 * (P[0, 0] * 2.0 * (1.0 - jnp.cos(th)) + 2.0 * P[0, 1] * jnp.sin(th) * w + P[1, 1] * w**2)


def lqr_params(params: GymPendulumParams | None = None, scale: float = 1.0) -> GymPendulumParams:
    """``params`` with the terminal cost's ``qf_lqr`` set to ``scale`` times :func:`upright_lqr_matrix`
    (computed for ``params``' model and running weights)."""
    w = _weights(params)
    return w._replace(qf_lqr=jnp.asarray(scale * upright_lqr_matrix(w)))


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


def _episode_cost(x: Array, u: Array, t: Array, params=None) -> Array:
    del t, params
    return -env_reward(x, u)


def _no_terminal_cost(x: Array, params=None) -> Array:
    del params
    return jnp.zeros((), x.dtype)


#: Weight of the smooth episode problem's penalty on speeds beyond :data:`MAX_SPEED`.
SPEED_PENALTY = 10.0


def _smooth_episode_cost(x: Array, u: Array, t: Array, params=None) -> Array:
    over = jnp.maximum(jnp.abs(x[1]) - MAX_SPEED, 0.0)
    return _Cost(1).running(x, u, t, params) + SPEED_PENALTY * over**2


@functools.lru_cache(maxsize=None)
def episode_problem(smooth: bool = False) -> Problem:
    """A whole episode as one trajectory optimisation: its optimum is the best return from ``x0``.

    Args:
      smooth: ``False`` (default): the environment exactly -- :func:`env_step`
        (speed clip included) and the cost ``-env_reward`` (angle
        normalisation included), so ``-cost`` of a trajectory is its return.
        ``True``: the smooth planning step and the one-harmonic angle cost of
        :func:`problem`, plus ``SPEED_PENALTY * max(|w| - 8, 0)^2`` so that
        its solutions keep to the speeds where the smooth step is the
        environment's: a better-conditioned problem to start a search with.

    Returns:
      A :class:`~ilqg_jax.Problem` over :data:`EPISODE_STEPS` steps with
      ``|u| <= 2`` and no terminal cost (the episode's last state earns no
      reward). ``params``: ``None`` (exact) or a :class:`GymPendulumParams` (smooth).
    """
    if smooth:
        dynamics = integrators.discretize(_planning_f, DT, "semi_implicit_euler")
        running = _smooth_episode_cost
    else:
        dynamics, running = _env_dynamics, _episode_cost
    return Problem(dynamics, running, _no_terminal_cost, EPISODE_STEPS,
                   control_lower=jnp.array([-MAX_TORQUE]), control_upper=jnp.array([MAX_TORQUE]))


# --- Initial guesses ------------------------------------------------------------------------------

#: Torques and first directions of the pumping guesses of :func:`initial_guesses`.
_PUMPS = ((2.0, -1.0), (2.0, 1.0), (1.0, -1.0), (1.0, 1.0))
#: Steps a pumping guess pushes in its first direction before following the speed.
_FIRST_PUSH = 8


def _pump(x0: Array, torque: float, direction: float, steps: int, params) -> Array:
    """Controls ``(steps, 1)`` of an energy-pumping policy rolled out on :func:`env_step` from ``x0``."""
    p = _model(params)
    e_up = p.m * p.g * p.l

    def body(x, t):
        th, w, e = angles.wrap(x[0]), x[1], energy(x, p)
        near = (jnp.cos(th) > 0.7) & (jnp.abs(e - e_up) < 0.2 * e_up)
        pd = jnp.clip(-(20.0 * th + 4.0 * w), -MAX_TORQUE, MAX_TORQUE)
        push = torque * jnp.where(t < _FIRST_PUSH, direction, jnp.sign(w))
        u = jnp.where(near, pd, jnp.where(e < e_up, push, -0.5 * push))[None]
        return env_step(x, u, None, p), u

    return jax.lax.scan(body, x0, jnp.arange(steps))[1]


def initial_guesses(x0: Array, horizon: int, params=None) -> Array:
    """``(5, horizon, 1)`` initial controls from ``x0: (2,)`` that lead to different local optima.

    Zero torque, and an energy-pumping policy (torque along the speed until
    the energy is that of upright, then a PD law near the top) pushing first
    left and first right, with the full torque and with half of it (which
    pumps once more), rolled out on :func:`env_step` with ``params``' model.
    The swing-up is not convex -- left or right, one pump or two are separate
    local optima -- so a solve from each, best kept
    (:meth:`ilqg_jax.MPC.init` with ``options``), finds the global one far
    more often than a solve from zeros. Traceable (``jit``/``vmap`` over ``x0``).
    """
    x0 = jnp.asarray(x0)
    if x0.shape != (2,):
        raise ValueError(f"x0 must have shape (2,), got shape {x0.shape}.")
    if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)) or horizon < 1:
        raise ValueError(f"horizon must be an int >= 1, got {horizon!r}.")
    return _guesses(x0.astype(jnp.result_type(x0, float)), int(horizon), params)


@functools.partial(jax.jit, static_argnums=1)
def _guesses(x0: Array, horizon: int, params) -> Array:
    pumps = [_pump(x0, torque, direction, horizon, params) for torque, direction in _PUMPS]
    return jnp.stack([jnp.zeros((horizon, 1), x0.dtype)] + pumps)
