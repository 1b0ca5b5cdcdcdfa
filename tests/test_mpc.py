"""Model-predictive control, closed loop on gymnasium's Pendulum-v1.

Oracles: the environment itself (``gymnasium.make("Pendulum-v1").unwrapped``,
stepped from states we set), separate runs for ``vmap``, and the physics of
the task (upright and at rest is where the reward is best).
"""

from __future__ import annotations

import importlib.util
import os
import sys

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ilqg_jax as ilqg
from ilqg_jax.mpc import MPC, ClosedLoop, MPCState, simulate
from ilqg_jax.systems import angles, gym_pendulum, pendulum

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HANGING = jnp.array([jnp.pi, 0.0])
# Exactly hanging at rest with zero initial controls, the problem is symmetric and its gradient zero: the
# solver cannot pick a side (as any local method). A milliradian off, as a real start always is:
NEAR_HANGING = jnp.array([jnp.pi - 1e-3, 0.0])


# The mechanics (warm starts, vmap, disturbances) are tested on a short-horizon controller that needs no
# plan before its first step; the chosen controller is tested in test_mpc_optimum.py.
SHORT_HORIZON = 20


def _controller(**kw) -> MPC:
    problem = gym_pendulum.problem(SHORT_HORIZON)
    return MPC(problem, ilqg.Options(max_iter=gym_pendulum.MPC_MAX_ITER), gym_pendulum.default_params(), **kw)


@pytest.fixture(scope="module")
def mpc() -> MPC:
    return _controller()


@pytest.fixture(scope="module")
def env():
    gym = pytest.importorskip("gymnasium", reason="gymnasium is not installed (pip install -e '.[gym]')")
    e = gym.make("Pendulum-v1").unwrapped
    e.reset(seed=0)
    yield e
    e.close()


def _env_transition(env, x, u):
    env.state = np.array(x, dtype=np.float64)
    _, reward, _, _, _ = env.step(np.array(u, dtype=np.float64))
    return np.array(env.state), float(reward)


# --- The model against the environment ------------------------------------------------------------


def test_env_step_and_reward_match_the_environment(env):
    rng = np.random.default_rng(0)
    xs = np.stack([rng.uniform(-3 * np.pi, 3 * np.pi, 300), rng.uniform(-9.0, 9.0, 300)], axis=1)
    us = rng.uniform(-3.0, 3.0, (300, 1))  # beyond the +-2 limit too: the env clips
    got_x = jax.vmap(gym_pendulum.env_step)(jnp.asarray(xs), jnp.asarray(us))
    got_r = gym_pendulum.env_reward(jnp.asarray(xs), jnp.asarray(us))
    want = [_env_transition(env, x, u) for x, u in zip(xs, us)]
    chex.assert_trees_all_close(np.asarray(got_x), np.stack([w[0] for w in want]), atol=1e-6, rtol=0)
    chex.assert_trees_all_close(np.asarray(got_r), np.array([w[1] for w in want]), atol=1e-6, rtol=0)
    clipped = np.abs(np.stack([w[0] for w in want])[:, 1]) >= gym_pendulum.MAX_SPEED
    assert 20 < clipped.sum() < 280, "the sample should exercise the speed clip both ways"


def test_state_from_observation_recovers_the_environment_state(env):
    obs, _ = env.reset(seed=3)
    x = gym_pendulum.state_from_observation(obs)
    np.testing.assert_allclose(x, env.state, atol=1e-6)  # the observation is float32
    env.state = np.array([7.0, -1.0])  # several turns: continuous given the previous angle
    obs, *_ = env.step(np.zeros(1))
    x = gym_pendulum.state_from_observation(obs, reference=7.0)
    np.testing.assert_allclose(x, env.state, atol=1e-6)


def test_planning_model_is_the_environment_within_its_limits(env, mpc):
    # The model the controller optimizes: equal to the env wherever the speed clip is inactive
    # (every state the closed loop visits, checked below) and the torque is within the box.
    rng = np.random.default_rng(1)
    xs = np.stack([rng.uniform(-2 * np.pi, 2 * np.pi, 300), rng.uniform(-7.0, 7.0, 300)], axis=1)
    us = rng.uniform(-2.0, 2.0, (300, 1))
    model = jax.vmap(lambda x, u: mpc.problem.dynamics(x, u, 0, mpc.params))
    got = np.asarray(model(jnp.asarray(xs), jnp.asarray(us)))
    want = [_env_transition(env, x, u) for x, u in zip(xs, us)]
    inactive = np.abs(got[:, 1]) < gym_pendulum.MAX_SPEED
    assert inactive.sum() > 250
    chex.assert_trees_all_close(got[inactive], np.stack([w[0] for w in want])[inactive], atol=1e-6, rtol=0)


def test_smooth_angle_cost_is_the_fourier_series_of_the_reward_angle_term():
    theta = jnp.linspace(-np.pi, np.pi, 401)
    exact = angles.wrap(theta) ** 2
    # Oracle: the Fourier series of theta^2 on [-pi, pi] converges to it (uniformly, as 1/N).
    many = jax.jit(gym_pendulum.angle_error_squared, static_argnums=1)(theta, 100)
    chex.assert_trees_all_close(many, exact, atol=0.05, rtol=0)
    # The planning cost (one harmonic, 4 (1 - cos theta)): zero upright, periodic, and no kink at the bottom.
    fit = gym_pendulum.angle_error_squared(theta)
    chex.assert_trees_all_close(fit, 4.0 * (1.0 - jnp.cos(theta)), atol=1e-12)
    g = jax.vmap(jax.grad(gym_pendulum.angle_error_squared))(jnp.array([np.pi - 1e-9, -np.pi + 1e-9]))
    assert jnp.all(jnp.abs(g) < 1e-6)


# --- Closed loop ----------------------------------------------------------------------------------


def _upright(xs):
    return pendulum.upright(xs, angle_tol=0.05, velocity_tol=0.1)


def test_swings_up_from_hanging_and_stays_upright_within_the_torque_limit(mpc):
    r = simulate(mpc, NEAR_HANGING, 200, plant=gym_pendulum.env_step, disturbances=jnp.zeros((200, 2)))
    assert isinstance(r, ClosedLoop) and r.xs.shape == (201, 2) and r.us.shape == (200, 1)
    assert jnp.all(jnp.abs(r.us) <= gym_pendulum.MAX_TORQUE + 1e-12)
    up = np.asarray(_upright(r.xs))
    first = int(np.argmax(up))
    assert up.any() and first < 120, f"not upright within 6 s (first upright step {first})"
    assert up[first:].all(), "fell after reaching upright"
    assert jnp.all(r.status >= 0)


def test_recovers_from_a_velocity_kick(mpc):
    # +3 rad/s after 100 steps, once upright: more than the 2 N m torque can stop before the top is
    # passed, so the pendulum goes over and is caught again a revolution later.
    kick = jnp.zeros((200, 2)).at[99, 1].set(3.0)
    r = simulate(mpc, NEAR_HANGING, 200, plant=gym_pendulum.env_step, disturbances=kick)
    up = np.asarray(_upright(r.xs))
    assert up[90:100].all() and not up[100], "upright before the kick, knocked off by it"
    assert up[150:].all(), "did not recover within 2.5 s"
    assert jnp.all(jnp.abs(r.us) <= gym_pendulum.MAX_TORQUE + 1e-12)


def test_simulate_under_vmap_equals_separate_runs(mpc):
    x0s = jnp.array([[np.pi - 1e-3, 0.0], [0.5, -0.5], [-2.0, 1.0]])
    kicks = jnp.zeros((3, 200, 2))  # (the same call as the tests above: compiled once)
    run = lambda x0, d: simulate(mpc, x0, 200, plant=gym_pendulum.env_step, disturbances=d)  # noqa: E731
    batched = jax.vmap(run)(x0s, kicks)
    for i in range(len(x0s)):
        single, member = run(x0s[i], kicks[i]), jax.tree_util.tree_map(lambda a: a[i], batched)
        # Batched and single programs round differently (batched matrix products in the convexified
        # model); three iterations per control step leave each plan short of its optimum, so that rounding
        # shows at ~1e-8 in the trajectories.
        chex.assert_trees_all_close(member._replace(iterations=0), single._replace(iterations=0),
                                    atol=1e-6, rtol=1e-6)
        # The same rounding can tip a stopping test that sits on its threshold at a step where the plan has
        # stopped moving: one iteration more or less at a step or two out of 200, no effect on the loop.
        differ = np.asarray(member.iterations != single.iterations)
        assert differ.sum() <= 2 and np.all(np.abs(member.iterations - single.iterations) <= 1), (
            f"iterations differ at steps {np.flatnonzero(differ)}")


def test_step_warm_starts_from_the_shifted_solution(mpc):
    x0 = jnp.array([2.0, 0.5])
    state = mpc.init(x0)
    u, state = mpc.step(state, x0)
    assert isinstance(state, MPCState) and int(state.t) == 1
    sol = ilqg.solve(mpc.problem, x0, jnp.zeros((mpc.problem.horizon, 1)), mpc.params, mpc.options)
    chex.assert_trees_all_close(u, sol.us[0], atol=1e-12)
    chex.assert_trees_all_close(state.us, jnp.concatenate([sol.us[1:], sol.us[-1:]]), atol=1e-12)
    chex.assert_trees_all_close(state.xs[:-1], sol.xs[1:], atol=1e-12)
    chex.assert_trees_all_close(state.K[:-1], sol.K[1:], atol=1e-12)
    # Where the plan predicted (no disturbance), the feedback warm start is the shifted controls themselves.
    u2, _ = mpc.step(state, sol.xs[1])
    sol2 = ilqg.solve(mpc.problem, sol.xs[1], state.us, mpc.params, mpc.options)
    chex.assert_trees_all_close(u2, sol2.us[0], atol=1e-12)


# --- Input validation -----------------------------------------------------------------------------


def test_errors_name_the_argument(mpc):
    state = mpc.init(HANGING)
    with pytest.raises(ValueError, match=r"x must have shape \(n,\) = \(2,\).*\(3,\)"):
        mpc.step(state, jnp.zeros(3))
    with pytest.raises(ValueError, match="x must be finite"):
        mpc.step(state, jnp.array([jnp.nan, 0.0]))
    with pytest.raises(TypeError, match="state must be an MPCState"):
        mpc.step((state.xs, state.us), HANGING)
    with pytest.raises(ValueError, match="x0 must have shape"):
        mpc.init(jnp.zeros((2, 1)))
    with pytest.raises(ValueError, match="fill must be one of"):
        MPC(mpc.problem, fill="last")
    with pytest.raises(ValueError, match="max_iter"):
        MPC(mpc.problem, ilqg.Options(max_iter=-1))
    with pytest.raises(TypeError, match="problem must be an ilqg_jax.Problem"):
        MPC("pendulum")
    with pytest.raises(ValueError, match=r"disturbances must have shape \(steps, n\) = \(5, 2\)"):
        simulate(mpc, HANGING, 5, disturbances=jnp.zeros((4, 2)))
    with pytest.raises(ValueError, match="steps must be an int >= 1"):
        simulate(mpc, HANGING, 0)


# --- The example ----------------------------------------------------------------------------------


def _load_example():
    spec = importlib.util.spec_from_file_location("gym_pendulum_mpc", os.path.join(REPO, "examples",
                                                                                   "gym_pendulum_mpc.py"))
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    return example


def test_example_without_gymnasium_says_how_to_install_it_and_fails(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "gymnasium", None)  # makes `import gymnasium` raise ImportError
    with pytest.raises(SystemExit) as exit_info:
        _load_example().main(seeds=[0])
    assert exit_info.value.code != 0
    assert 'pip install -e ".[gym]"' in capsys.readouterr().err


def test_example_runs_two_seeds_with_sane_returns(env):
    out = _load_example().main(seeds=[0, 1], verbose=False)
    assert out["seeds"] == [0, 1] and len(out["returns"]) == 2
    # A return is minus a sum of 200 costs, each at most pi^2 + 0.1 * 64 + 0.004 = 16.3; a swing-up from
    # hanging costs a few hundred, an episode that never swings up over a thousand.
    assert all(-500.0 < r <= 0.0 for r in out["returns"]), out["returns"]
    assert out["steps"] == 400 and out["step_ms_median"] > 0
