"""Model-predictive control of gymnasium's ``Pendulum-v1`` with ilqg_jax.

Runs one episode per seed (``env.reset(seed=s)``, the environment's default
200 steps), controlling the real environment from its observations with
:class:`ilqg_jax.mpc.MPC` on the model :func:`ilqg_jax.systems.gym_pendulum.problem`,
and prints every episode's return, their mean, and the time per control step
(the controller's call, median and 95th percentile over all steps, after a
warm-up that compiles it). Before the first step of an episode the controller
plans: it solves ``MPC_PLAN_HORIZON`` steps (its horizon) from each of
:func:`~ilqg_jax.systems.gym_pendulum.initial_guesses` (zero torque, pumping
left or right first), rehearses a whole episode of its own closed loop on its
model from each solution, and starts from the one that did best, so it does
not commit to a poor local optimum; that plan is timed separately.

    python examples/gym_pendulum_mpc.py                # seeds 0..99
    python examples/gym_pendulum_mpc.py --seeds 5      # seeds 0..4

Needs gymnasium (``pip install -e ".[gym]"``).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

INSTALL_HINT = 'gymnasium is not installed; install the optional extra with:  pip install -e ".[gym]"'


def _gymnasium():
    try:
        import gymnasium
    except ImportError:
        print(INSTALL_HINT, file=sys.stderr)
        raise SystemExit(1)
    return gymnasium


def make_controller(horizon: int | None = None, max_iter: int | None = None, x64: bool = True):
    """The chosen controller: ``MPC(gym_pendulum.problem(horizon), Options(max_iter=...), gym_pendulum.mpc_params())``."""
    import jax

    if x64:
        jax.config.update("jax_enable_x64", True)
    import ilqg_jax as ilqg
    from ilqg_jax.mpc import MPC
    from ilqg_jax.systems import gym_pendulum

    horizon = gym_pendulum.MPC_HORIZON if horizon is None else horizon
    max_iter = gym_pendulum.MPC_MAX_ITER if max_iter is None else max_iter
    return MPC(gym_pendulum.problem(horizon), ilqg.Options(max_iter=max_iter), gym_pendulum.mpc_params())


def first_state(mpc, x, plan_iter: int | None = None):
    """The controller's state before the first step from ``x``: of the plans solved from
    :func:`gym_pendulum.initial_guesses` over ``MPC_PLAN_HORIZON`` steps (or the horizon, if longer) with
    ``plan_iter`` iterations each (default: the chosen number; ``0``: no plan, start from zero torque), the
    one whose closed loop does best over ``MPC_REHEARSE`` steps on the controller's model."""
    import ilqg_jax as ilqg
    from ilqg_jax.systems import gym_pendulum

    plan_iter = gym_pendulum.MPC_PLAN_ITER if plan_iter is None else plan_iter
    if plan_iter == 0:
        return mpc.init(x)
    lookahead = max(gym_pendulum.MPC_PLAN_HORIZON, mpc.problem.horizon)
    guesses = gym_pendulum.initial_guesses(np.asarray(x), lookahead, mpc.params)
    return mpc.init(x, guesses, ilqg.Options(max_iter=plan_iter), rehearse=gym_pendulum.MPC_REHEARSE)


def run_episode(env, mpc, seed: int, step_times: list | None = None, cpu_times: list | None = None,
                plan_times: list | None = None) -> float:
    """One episode of ``env`` from ``env.reset(seed=seed)`` under ``mpc``; returns its return.

    The wall and process CPU time of every controller call are appended to
    ``step_times`` and ``cpu_times`` (seconds) when given, the plan's wall time to ``plan_times``.
    """
    from ilqg_jax.systems import gym_pendulum

    obs, _ = env.reset(seed=seed)
    x = gym_pendulum.state_from_observation(obs)
    t0 = time.perf_counter()
    state = first_state(mpc, x)
    np.asarray(state.us)
    if plan_times is not None:
        plan_times.append(time.perf_counter() - t0)
    total, done = 0.0, False
    while not done:
        t0, c0 = time.perf_counter(), time.process_time()
        u, state = mpc.step(state, x)
        u = np.asarray(u)  # waits for the result
        if step_times is not None:
            step_times.append(time.perf_counter() - t0)
        if cpu_times is not None:
            cpu_times.append(time.process_time() - c0)
        obs, reward, terminated, truncated, _ = env.step(u)
        total += float(reward)
        done = terminated or truncated
        x = gym_pendulum.state_from_observation(obs, reference=x[0])
    return total


def main(seeds=range(100), horizon: int | None = None, max_iter: int | None = None, verbose: bool = True) -> dict:
    """Runs one episode of ``Pendulum-v1`` per seed under MPC.

    Args:
      seeds: the ``env.reset`` seeds.
      horizon, max_iter: override the chosen look-ahead and iteration budget.
      verbose: print each episode's return and the summary.

    Returns:
      ``{"seeds", "returns", "mean_return", "step_ms_median", "step_ms_p95",
      "cpu_ms_median", "steps", "step_ms", "plan_ms_median", "horizon", "max_iter"}``: times per
      control step in ms, wall (every step in ``step_ms``) and process CPU, and of the plan before
      the first step.
    """
    gym = _gymnasium()
    seeds = list(seeds)
    if not seeds:
        raise ValueError("seeds must not be empty.")
    mpc = make_controller(horizon, max_iter)
    env = gym.make("Pendulum-v1")
    # Warm-up: compile init and step (not timed, not counted).
    run_episode(env, mpc, seed=seeds[0])
    returns, step_times, cpu_times, plan_times = [], [], [], []
    for s in seeds:
        returns.append(run_episode(env, mpc, s, step_times, cpu_times, plan_times))
        if verbose:
            print(f"seed {s:3d}: return {returns[-1]:8.2f}", flush=True)
    env.close()
    ms, cpu = 1e3 * np.asarray(step_times), 1e3 * np.asarray(cpu_times)
    out = {"seeds": seeds, "returns": returns, "mean_return": float(np.mean(returns)),
           "step_ms_median": float(np.median(ms)), "step_ms_p95": float(np.percentile(ms, 95)),
           "cpu_ms_median": float(np.median(cpu)), "steps": int(ms.size), "step_ms": ms.tolist(),
           "plan_ms_median": 1e3 * float(np.median(plan_times)),
           "horizon": mpc.problem.horizon, "max_iter": mpc.options.max_iter}
    if verbose:
        print(f"mean return over {len(seeds)} episodes: {out['mean_return']:.2f}")
        print(f"time per control step: median {out['step_ms_median']:.2f} ms, p95 {out['step_ms_p95']:.2f} ms "
              f"(CPU {out['cpu_ms_median']:.2f} ms; {out['steps']} steps after warm-up; "
              f"horizon {out['horizon']}, {out['max_iter']} iterations per step; plan before the first step "
              f"{out['plan_ms_median']:.1f} ms)")
    return out


def cli(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, default=100, help="run seeds 0..N-1 (default 100)")
    p.add_argument("--horizon", type=int, default=None, help="look-ahead in steps (default: chosen)")
    p.add_argument("--max-iter", type=int, default=None, help="iLQG iterations per control step (default: chosen)")
    args = p.parse_args(argv)
    main(range(args.seeds), args.horizon, args.max_iter)
    return 0


if __name__ == "__main__":
    sys.exit(cli())
