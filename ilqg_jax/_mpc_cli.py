"""``ilqg-jax mpc pendulum-gym``: the receding-horizon controller on gymnasium's Pendulum-v1.

Runs one episode per seed on the environment's exact step
(:func:`ilqg_jax.systems.gym_pendulum.env_step`) from the state
``Pendulum-v1`` resets to with that seed, under the chosen controller
(:data:`~ilqg_jax.systems.gym_pendulum.MPC_HORIZON` steps of look-ahead,
:data:`~ilqg_jax.systems.gym_pendulum.MPC_MAX_ITER` iterations per step, a plan
from :func:`~ilqg_jax.systems.gym_pendulum.initial_guesses` before the first
step, looking :data:`~ilqg_jax.systems.gym_pendulum.MPC_PLAN_HORIZON` steps
ahead and keeping the guess from which the controller's own closed loop does
best over :data:`~ilqg_jax.systems.gym_pendulum.MPC_REHEARSE` steps on its
model), prints each return, and with ``--animate`` writes the episodes one
after the other as a GIF.
"""

from __future__ import annotations

import sys

import numpy as np

INSTALL_HINT = 'gymnasium is not installed; install the optional extra with:  pip install -e ".[gym]"'


def initial_states(seeds) -> np.ndarray:
    """``(len(seeds), 2)``: the state ``Pendulum-v1`` starts from after ``reset(seed=s)``."""
    import gymnasium as gym

    env = gym.make("Pendulum-v1").unwrapped
    out = []
    for s in seeds:
        env.reset(seed=int(s))
        out.append(np.array(env.state, dtype=np.float64))
    env.close()
    return np.stack(out)


def controller():
    """``(mpc, plan_options)``: the chosen controller and the options of its plan before the first step."""
    import ilqg_jax as ilqg
    from ilqg_jax.systems import gym_pendulum as gp

    mpc = ilqg.MPC(gp.problem(gp.MPC_HORIZON), ilqg.Options(max_iter=gp.MPC_MAX_ITER), gp.mpc_params())
    return mpc, ilqg.Options(max_iter=gp.MPC_PLAN_ITER)


def episode(mpc, plan, x0):
    """One episode from ``x0: (2,)``: ``(xs: (201, 2), return)`` on the environment's exact step."""
    import jax.numpy as jnp

    import ilqg_jax as ilqg
    from ilqg_jax.systems import gym_pendulum as gp

    x0 = jnp.asarray(x0)
    state = mpc.init(x0, gp.initial_guesses(x0, gp.MPC_PLAN_HORIZON, mpc.params), plan, rehearse=gp.MPC_REHEARSE)
    r = ilqg.simulate(mpc, x0, gp.EPISODE_STEPS, plant=gp.env_step, params=gp.default_params().model,
                      state=state)
    return np.asarray(r.xs), float(jnp.sum(gp.env_reward(r.xs[:-1], r.us)))


def mpc_main(args) -> int:
    try:
        import gymnasium  # noqa: F401
    except ImportError:
        print(INSTALL_HINT, file=sys.stderr)
        return 1
    if args.stride < 1:
        raise ValueError(f"--stride must be >= 1, got {args.stride}.")
    from ilqg_jax.systems import gym_pendulum as gp

    mpc, plan = controller()
    trajectories = []
    for seed, x0 in zip(args.seeds, initial_states(args.seeds)):
        xs, ret = episode(mpc, plan, x0)
        trajectories.append(xs)
        print(f"seed {seed}: return {ret:.2f}")
    if args.animate:
        from ilqg_jax import viz

        xs = np.concatenate(trajectories)[::args.stride]
        viz.animate(xs, _points, dt=gp.DT * args.stride, path=args.animate, extent=1.2,
                    title=f"Pendulum-v1 under MPC, seeds {', '.join(map(str, args.seeds))}")
        print(f"wrote {args.animate}")
    return 0


def _points(x):
    return np.array([[0.0, 0.0], [np.sin(x[0]), np.cos(x[0])]])
