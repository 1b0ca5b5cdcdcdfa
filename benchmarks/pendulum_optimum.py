"""The best return any controller can get on Pendulum-v1 from a given initial state.

An episode of ``Pendulum-v1`` is 200 steps from ``x0``; its return is a sum of
the environment's rewards along the way. The best any controller can do is
therefore the optimum of the 200-step trajectory optimisation from ``x0`` with
the environment's exact step (torque clip, speed clip, ``dt = 0.05``) and
exact reward (angle normalisation included):
:func:`ilqg_jax.systems.gym_pendulum.episode_problem`. The environment is
deterministic, so open-loop controls achieve it.

The problem is not convex: swinging up to the left or to the right, with one
pump or two, are separate local optima. :func:`optimum` takes the best of
several local solves, each started from a different guess (:func:`guesses`):

* zero torque;
* an energy-pumping policy (torque along the speed until the energy is that
  of upright, then a PD law), first pushing left, and first pushing right;
  the same, rolled out with a smaller torque, which pumps once more;
* any controls the caller adds (the benchmark adds the MPC's own closed-loop
  controls: the optimum is then at least what the MPC achieved, by construction).

Every start is solved by ilqg_jax on the smooth episode problem (no speed
clip but a penalty beyond it, one-harmonic angle cost), then on the exact
episode problem from that solution and from the start itself; every start
and every solution is scored by rolling its controls out on the exact step,
and the best return is kept.
IPOPT through CasADi (:func:`ipopt_optimum`) solves the same exact problem by
direct transcription, as an independent check on a few seeds.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["Optimum", "episode_return", "guesses", "optimum", "ipopt_optimum"]

#: iLQG iterations per local solve (smooth stage, then exact stage).
MAX_ITER = 150


class Optimum(NamedTuple):
    """Per-seed optimum: ``returns: (N,)`` the best return found, ``us: (N, 200, 1)`` its controls,
    ``source: (N,)`` index of the start it came from (:func:`guesses`, then the ``extra`` ones)."""

    returns: np.ndarray
    us: np.ndarray
    source: np.ndarray


def episode_return(x0s, us) -> np.ndarray:
    """Exact returns of open-loop ``us: (N, T, 1)`` from ``x0s: (N, 2)`` on the environment's step."""
    import jax
    import jax.numpy as jnp

    from ilqg_jax.derivatives import rollout
    from ilqg_jax.systems import gym_pendulum as gp

    def one(x0, u):
        xs = rollout(gp.env_step, x0, u, None)
        return jnp.sum(gp.env_reward(xs[:-1], u))

    return np.asarray(jax.jit(jax.vmap(one))(jnp.asarray(x0s), jnp.asarray(us)))


def guesses(x0s) -> np.ndarray:
    """``(G, N, 200, 1)`` initial controls for every one of ``x0s: (N, 2)``:
    :func:`ilqg_jax.systems.gym_pendulum.initial_guesses` over the whole episode."""
    import jax
    import jax.numpy as jnp

    from ilqg_jax.systems import gym_pendulum as gp

    out = jax.jit(jax.vmap(lambda x: gp.initial_guesses(x, gp.EPISODE_STEPS)))(jnp.asarray(x0s))
    return np.asarray(jnp.moveaxis(out, 1, 0))


def _solve(problem, params, x0s, us_inits):
    import ilqg_jax as ilqg

    sol = ilqg.solve_batch(problem, x0s, us_inits, params, ilqg.Options(max_iter=MAX_ITER))
    return np.asarray(sol.us)


def optimum(x0s, extra=()) -> Optimum:
    """The best exact return from each of ``x0s: (N, 2)`` over :func:`guesses` and ``extra``
    (each ``(N, 200, 1)``), every guess solved twice (smooth, then exact) and scored on the exact step."""
    from ilqg_jax.systems import gym_pendulum as gp

    x0s = np.asarray(x0s, dtype=np.float64)
    if x0s.ndim != 2 or x0s.shape[1] != 2:
        raise ValueError(f"x0s must have shape (N, 2), got {x0s.shape}.")
    starts = list(guesses(x0s)) + [np.asarray(e, dtype=np.float64) for e in extra]
    smooth, exact = gp.episode_problem(smooth=True), gp.episode_problem()
    best_r = np.full(x0s.shape[0], -np.inf)
    best_u = np.zeros_like(starts[0])
    source = np.full(x0s.shape[0], -2)
    for g, us in enumerate(starts):
        u_smooth = _solve(smooth, gp.default_params(), x0s, us)
        for cand in (us, u_smooth, _solve(exact, None, x0s, u_smooth), _solve(exact, None, x0s, us)):
            r = episode_return(x0s, cand)
            better = r > best_r
            best_r = np.where(better, r, best_r)
            best_u[better] = cand[better]
            source[better] = g
    return Optimum(best_r, best_u, source)


def ipopt_optimum(x0, us_inits) -> tuple[float, np.ndarray]:
    """The exact episode problem from ``x0: (2,)`` by IPOPT (CasADi, direct transcription), started from
    each of ``us_inits: (G, 200, 1)`` (states from their rollouts); returns ``(best return, its controls)``.

    States and controls are decision variables; the step, speed clip included (``fmin``/``fmax``), is an
    equality constraint; the reward's angle normalisation is ``theta - 2 pi floor((theta + pi) / 2 pi)``.
    The return is minus IPOPT's objective at a solution whose constraints hold to 1e-8 (re-simulating
    its controls open loop would not do: upright is unstable, and a 1e-10 error grows e^39-fold over
    10 s).
    """
    import casadi as ca

    from ilqg_jax.systems import gym_pendulum as gp

    T, dt = gp.EPISODE_STEPS, gp.DT
    opti = ca.Opti()
    th, w, u = opti.variable(T + 1), opti.variable(T + 1), opti.variable(T)
    opti.subject_to([th[0] == x0[0], w[0] == x0[1], opti.bounded(-gp.MAX_TORQUE, u, gp.MAX_TORQUE)])
    w_next = w[:T] + dt * (15.0 * ca.sin(th[:T]) + 3.0 * u)
    w_next = ca.fmin(ca.fmax(w_next, -gp.MAX_SPEED), gp.MAX_SPEED)
    opti.subject_to([w[1:] == w_next, th[1:] == th[:T] + dt * w[1:]])
    wrapped = th[:T] - 2 * np.pi * ca.floor((th[:T] + np.pi) / (2 * np.pi))
    objective = ca.sumsqr(wrapped) + 0.1 * ca.sumsqr(w[:T]) + 0.001 * ca.sumsqr(u)
    opti.minimize(objective)
    opti.solver("ipopt", {"print_time": False}, {"print_level": 0, "max_iter": 3000, "tol": 1e-10,
                                                  "constr_viol_tol": 1e-9})
    best_r, best_u = -np.inf, None
    for us in np.asarray(us_inits):
        xs = _rollout_np(x0, us)
        opti.set_initial(th, xs[:, 0])
        opti.set_initial(w, xs[:, 1])
        opti.set_initial(u, us[:, 0])
        try:
            sol = opti.solve()
        except RuntimeError:  # not converged: no certified value from this start
            continue
        viol = max(np.abs(sol.value(w[1:] - w_next)).max(), np.abs(sol.value(th[1:] - th[:T] - dt * w[1:])).max())
        if viol <= 1e-8 and -sol.value(objective) > best_r:
            best_r, best_u = float(-sol.value(objective)), np.asarray(sol.value(u)).reshape(T, 1)
    return best_r, best_u


def _rollout_np(x0, us) -> np.ndarray:
    from ilqg_jax.derivatives import rollout
    from ilqg_jax.systems import gym_pendulum as gp

    return np.asarray(rollout(gp.env_step, np.asarray(x0, np.float64), np.asarray(us, np.float64), None))
