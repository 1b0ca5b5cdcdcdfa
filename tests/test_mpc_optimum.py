"""MPC on Pendulum-v1 against the per-seed optimum; the terminal cost, the plan and the measurement noise.

Oracles: SciPy's discrete algebraic Riccati solver, separate single solves, a
step-by-step loop of ``MPC.step``, the environment's reward summed by hand,
and IPOPT (CasADi) on the exact episode problem.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ilqg_jax as ilqg
from ilqg_jax.derivatives import rollout
from ilqg_jax.mpc import MPC, simulate
from ilqg_jax.systems import gym_pendulum as gp

# Seeds used to choose the controller's settings (tests do not report on other seeds).
SEEDS = (2, 5)


def _controller(horizon=gp.MPC_HORIZON) -> MPC:
    return MPC(gp.problem(horizon), ilqg.Options(max_iter=gp.MPC_MAX_ITER), gp.mpc_params())


def _plan(mpc, x0):
    return mpc.init(x0, gp.initial_guesses(x0, mpc.problem.horizon, mpc.params),
                    ilqg.Options(max_iter=gp.MPC_PLAN_ITER))


# --- The terminal cost ----------------------------------------------------------------------------


def test_lqr_terminal_matrix_solves_the_discrete_riccati_equation():
    scipy_linalg = pytest.importorskip("scipy.linalg")
    P = gp.upright_lqr_matrix()
    # The planning step linearised upright, by automatic differentiation (not the closed form used inside).
    f = lambda x, u: gp.problem(1).dynamics(x, u, 0, gp.default_params())  # noqa: E731
    A = np.asarray(jax.jacfwd(f, 0)(jnp.zeros(2), jnp.zeros(1)))
    B = np.asarray(jax.jacfwd(f, 1)(jnp.zeros(2), jnp.zeros(1)))
    want = scipy_linalg.solve_discrete_are(A, B, np.diag([2.0, 0.2]), np.array([[0.002]]))
    np.testing.assert_allclose(P, want, rtol=1e-9, atol=0)
    # The periodic value is x^T P x / 2 to second order at upright.
    H = jax.hessian(gp.lqr_value)(jnp.zeros(2), jnp.asarray(P))
    np.testing.assert_allclose(np.asarray(H), P, rtol=1e-12, atol=1e-12)
    assert float(gp.lqr_value(jnp.array([2 * np.pi, 0.0]), jnp.asarray(P))) == pytest.approx(0.0, abs=1e-12)


# --- The plan before the first step and the noise -------------------------------------------------


def test_init_with_several_guesses_keeps_the_cheapest_solution():
    mpc = _controller(horizon=30)
    x0 = jnp.array([2.5, -0.3])
    guesses = gp.initial_guesses(x0, 30, mpc.params)
    options = ilqg.Options(max_iter=20)
    state = mpc.init(x0, guesses, options)
    singles = [ilqg.solve(mpc.problem, x0, g, mpc.params, options) for g in guesses]
    best = int(np.argmin([float(s.cost) for s in singles]))
    assert len({round(float(s.cost), 6) for s in singles}) > 1, "the guesses should lead to different optima"
    chex.assert_trees_all_close(state.cost, singles[best].cost, rtol=1e-9)
    chex.assert_trees_all_close(state.us, singles[best].us, atol=1e-8)
    assert int(state.t) == 0


def test_a_plan_longer_than_the_horizon_starts_the_controller_on_its_first_steps():
    """Guesses of ``L > T`` steps: the plan is the cheapest of the ``L``-step solves (the problem's costs
    over ``L`` steps, terminal cost at the end), and the controller keeps its first ``T`` steps."""
    import dataclasses

    mpc = _controller(horizon=20)
    x0 = jnp.array([2.8, -0.5])
    options = ilqg.Options(max_iter=15)
    state = mpc.init(x0, gp.initial_guesses(x0, 40, mpc.params), options)
    assert state.xs.shape == (21, 2) and state.us.shape == (20, 1) and state.K.shape == (20, 1, 2)
    long_problem = dataclasses.replace(mpc.problem, horizon=40)
    singles = [ilqg.solve(long_problem, x0, g, mpc.params, options) for g in gp.initial_guesses(x0, 40, mpc.params)]
    best = min(singles, key=lambda s: float(s.cost))
    chex.assert_trees_all_close(state.cost, best.cost, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(state.us), np.asarray(best.us[:20]), rtol=0, atol=1e-10)
    np.testing.assert_allclose(np.asarray(state.xs), np.asarray(best.xs[:21]), rtol=0, atol=1e-10)
    np.testing.assert_allclose(np.asarray(state.K), np.asarray(best.K[:20]), rtol=0, atol=1e-10)
    # The 20-step plan is another one: the look-ahead changes which swing the controller starts on.
    short = mpc.init(x0, gp.initial_guesses(x0, 20, mpc.params), options)
    assert not np.allclose(np.asarray(short.us), np.asarray(state.us), atol=1e-3)
    u, _ = mpc.step(state, x0)  # steps as any other state does
    assert u.shape == (1,) and np.isfinite(float(u[0]))


def test_rehearse_keeps_the_plan_whose_closed_loop_costs_least():
    """``rehearse=S``: every guess's plan is run in closed loop for ``S`` steps on the controller's model, and
    the plan of the cheapest closed loop is kept -- here not the cheapest plan (oracle: single solves and
    ``simulate`` from each, by hand)."""
    from ilqg_jax.mpc import MPCState

    mpc = _controller(horizon=20)
    x0 = jnp.array([-3.038, 0.884])
    options = ilqg.Options(max_iter=15)
    guesses = gp.initial_guesses(x0, 20, mpc.params)
    state = mpc.init(x0, guesses, options, rehearse=60)
    singles = [ilqg.solve(mpc.problem, x0, g, mpc.params, options) for g in guesses]
    closed = []
    for s in singles:
        plan = MPCState(xs=s.xs, us=s.us, K=s.K, cost=s.cost, iterations=s.iterations, status=s.status,
                        t=jnp.zeros((), jnp.int32))
        closed.append(float(jnp.sum(simulate(mpc, x0, 60, state=plan).costs)))
    plan_costs = [float(s.cost) for s in singles]
    best = int(np.argmin(closed))
    assert plan_costs[best] > min(plan_costs) + 1e-3, "the cheapest plan should not be the best start here"
    assert closed[best] < closed[int(np.argmin(plan_costs))] - 1.0
    np.testing.assert_allclose(np.asarray(state.us), np.asarray(singles[best].us), rtol=0, atol=1e-10)
    chex.assert_trees_all_close(state.cost, singles[best].cost, rtol=1e-12)
    assert int(state.t) == 0
    # rehearse=0 is the cheapest plan, as before.
    cheapest = mpc.init(x0, guesses, options)
    np.testing.assert_allclose(np.asarray(cheapest.us), np.asarray(singles[int(np.argmin(plan_costs))].us),
                               rtol=0, atol=1e-10)


def test_measurement_noise_reaches_the_controller_not_the_plant():
    mpc = _controller(horizon=20)
    x0 = jnp.array([3.0, 0.2])
    noise = 0.05 * jax.random.normal(jax.random.PRNGKey(1), (6, 2))
    r = simulate(mpc, x0, 6, plant=gp.env_step, noise=noise)
    state, x = mpc.init(x0), x0
    for t in range(6):  # oracle: the loop written out
        u, state = mpc.step(state, x + noise[t])
        chex.assert_trees_all_close(r.us[t], u, atol=1e-9)
        x = gp.env_step(x, u)
        chex.assert_trees_all_close(r.xs[t + 1], x, atol=1e-9)


def test_new_arguments_are_validated():
    mpc = _controller(horizon=10)
    with pytest.raises(ValueError, match=r"us_init of shape \(G, T, m\).*pass options"):
        mpc.init(jnp.zeros(2), jnp.zeros((3, 10, 1)))
    with pytest.raises(ValueError, match=r"noise must have shape \(steps, n\) = \(4, 2\)"):
        simulate(mpc, jnp.zeros(2), 4, noise=jnp.zeros((4, 3)))
    with pytest.raises(ValueError, match="noise must be finite"):
        simulate(mpc, jnp.zeros(2), 2, noise=jnp.array([[0.0, np.nan], [0.0, 0.0]]))
    with pytest.raises(ValueError, match="rehearse = 5 needs options"):
        mpc.init(jnp.zeros(2), jnp.zeros((10, 1)), rehearse=5)
    with pytest.raises(ValueError, match="rehearse must be an int >= 0.*-1"):
        mpc.init(jnp.zeros(2), jnp.zeros((2, 10, 1)), ilqg.Options(max_iter=2), rehearse=-1)
    with pytest.raises(ValueError, match=r"x0 must have shape \(2,\)"):
        gp.initial_guesses(jnp.zeros(3), 10)
    with pytest.raises(ValueError, match="horizon must be an int >= 1"):
        gp.initial_guesses(jnp.zeros(2), 0)


# --- The episode problem and the optimum ----------------------------------------------------------


def test_episode_problem_cost_is_minus_the_return():
    p = gp.episode_problem()
    x0 = jnp.array([1.0, -0.5])
    us = jax.random.uniform(jax.random.PRNGKey(0), (gp.EPISODE_STEPS, 1), minval=-2.0, maxval=2.0)
    xs = rollout(p.dynamics, x0, us, None)
    ret = sum(float(gp.env_reward(xs[t], us[t])) for t in range(gp.EPISODE_STEPS))
    cost = sum(float(p.running_cost(xs[t], us[t], t, None)) for t in range(gp.EPISODE_STEPS))
    assert cost + float(p.terminal_cost(xs[-1], None)) == pytest.approx(-ret, rel=1e-12)
    chex.assert_trees_all_close(xs[1], gp.env_step(x0, us[0]), atol=0)


@pytest.fixture(scope="module")
def optimum():
    from benchmarks import pendulum_optimum as po

    import gymnasium  # noqa: F401  (the seeds' initial states)
    from ilqg_jax._mpc_cli import initial_states

    x0s = initial_states(SEEDS)
    return x0s, po.optimum(x0s)


@pytest.mark.slow
def test_search_alone_is_at_least_the_mpc_return(optimum):
    x0s, opt = optimum
    mpc = _controller()
    for x0, best in zip(x0s, opt.returns):
        x0 = jnp.asarray(x0)
        r = simulate(mpc, x0, gp.EPISODE_STEPS, plant=gp.env_step, state=_plan(mpc, x0))
        ret = float(jnp.sum(gp.env_reward(r.xs[:-1], r.us)))
        # The search never saw the MPC's controls; the MPC is a feasible trajectory, so it cannot beat a
        # global optimum. And the chosen controller is close to it: within max(5%, 5).
        assert best >= ret - 1e-9, (best, ret)
        assert ret >= best - max(0.05 * abs(best), 5.0), (best, ret)


@pytest.mark.slow
def test_optimum_agrees_with_ipopt(optimum):
    pytest.importorskip("casadi")
    from benchmarks import pendulum_optimum as po

    x0s, opt = optimum
    # IPOPT from the optimum's trajectory and from the same guesses: it finds nothing better, and from
    # our solution it stays at it (the same stationary point of the exact problem).
    guesses = po.guesses(x0s[:1])[:, 0]
    r_all, _ = po.ipopt_optimum(x0s[0], np.concatenate([guesses, opt.us[:1]]))
    r_ours, _ = po.ipopt_optimum(x0s[0], opt.us[:1])
    assert r_all <= opt.returns[0] + 1e-6 * abs(opt.returns[0])
    assert r_ours == pytest.approx(opt.returns[0], rel=1e-6)


def test_chosen_controller_recovers_from_a_velocity_kick():
    # +3 rad/s once upright: more than 2 N m can stop before the top is passed; the pendulum goes over
    # and is caught again a revolution later.
    from ilqg_jax.systems import pendulum

    mpc = _controller()
    x0 = jnp.array([np.pi - 1e-3, 0.0])
    kick = jnp.zeros((200, 2)).at[99, 1].set(3.0)
    r = simulate(mpc, x0, 200, plant=gp.env_step, disturbances=kick, state=_plan(mpc, x0))
    up = np.asarray(pendulum.upright(r.xs, angle_tol=0.05, velocity_tol=0.1))
    assert up[80:100].all() and not up[100], "upright within 4 s, knocked off by the kick"
    assert up[160:].all(), "did not recover within 3 s"
    assert jnp.all(jnp.abs(r.us) <= gp.MAX_TORQUE + 1e-12)
