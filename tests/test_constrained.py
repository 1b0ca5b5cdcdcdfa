"""Path and terminal constraints (augmented-Lagrangian iLQG), against IPOPT.

Oracles: IPOPT through CasADi on the same discrete transcription
(``benchmarks/ipopt_ocp.py``: multiple shooting, exact Hessians), the
unconstrained solver (constraints that never bind), and central finite
differences of re-solved problems for the gradients.

Compilation dominates the run time: the tests share a few problems and one
set of options (``TIGHT``) so that each constrained program compiles once.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ilqg_jax as ilqg
from ilqg_jax.systems import get_task, obstacles

casadi = pytest.importorskip("casadi")
from benchmarks import ipopt_ocp  # noqa: E402  (needs casadi)

TIGHT = ilqg.Options(tol=1e-12, constraint_tol=1e-9)


# --- a unicycle around one obstacle to a goal it must reach (the task's model, one obstacle) -------


def one_obstacle(dtype=jnp.float64):
    return obstacles.ObstacleParams(centers=jnp.array([[1.5, 0.15]], dtype), radii=jnp.array([0.5], dtype),
                                    goal=jnp.array([3.0, 0.0], dtype))


def ipopt_obstacles(params, T=obstacles.HORIZON, us_init=None):
    f, l, lf, g, h = ipopt_ocp.obstacle_functions(ipopt_ocp.casadi_lib(), jax.device_get(params), obstacles.DT)
    return ipopt_ocp.solve(f, l, lf, np.zeros(3), T, 2, g=g, h=h, us_init=us_init)


@functools.lru_cache(maxsize=None)
def obstacle_solution():
    params = one_obstacle()
    T = obstacles.HORIZON
    sol = ilqg.solve(obstacles.problem(), obstacles.initial_state(), jnp.zeros((T, 2)), params, TIGHT)
    return params, sol


def test_ipopt_twin_is_the_same_model():
    """The CasADi twin of the obstacle problem evaluates to the JAX model's numbers."""
    params = one_obstacle()
    jx = ipopt_ocp.obstacle_functions(ipopt_ocp.JAX, params, obstacles.DT)
    p = obstacles.problem()
    x, u = jnp.array([0.3, -0.2, 0.7]), jnp.array([0.5, -1.1])
    ours = (p.dynamics(x, u, 0, params), p.running_cost(x, u, 0, params), p.terminal_cost(x, params),
            p.path_constraint(x, u, 0, params), p.terminal_constraint(x, params))
    theirs = (jx[0](x, u), jx[1](x, u), jx[2](x), jx[3](x), jx[4](x))
    chex.assert_trees_all_close(ours, theirs, rtol=1e-15, atol=1e-15)


def test_unicycle_around_an_obstacle_from_zero_controls_matches_ipopt():
    """The "done when" case: from zero controls, CONVERGED, violation <= 1e-4, IPOPT's cost and trajectory."""
    params, sol = obstacle_solution()
    assert sol.status == ilqg.Status.CONVERGED, ilqg.Status(int(sol.status))
    assert float(sol.violation) <= 1e-8
    ref = ipopt_obstacles(params)
    assert ref.success, ref.status
    assert abs(float(sol.cost) - ref.cost) <= 1e-6 * abs(ref.cost), (float(sol.cost), ref.cost)
    np.testing.assert_allclose(sol.us, ref.us, atol=1e-5)
    np.testing.assert_allclose(sol.xs, ref.xs, atol=1e-6)
    # The reported violation is the constraints' own, and the active ones have positive multipliers.
    g = jax.vmap(obstacles.path_constraint, in_axes=(0, 0, 0, None))(sol.xs[:-1], sol.us, jnp.arange(50), params)
    h = obstacles.terminal_constraint(sol.xs[-1], params)
    assert float(sol.violation) == pytest.approx(max(float(jnp.max(g)), float(jnp.max(jnp.abs(h))), 0.0))
    assert bool(jnp.all(sol.multipliers.path >= 0)) and bool(jnp.any(sol.multipliers.path > 0))
    assert bool(jnp.all(jnp.where(sol.multipliers.path > 0, jnp.abs(g) < 1e-6, True)))


def test_task_is_solved_as_well_as_ipopt():
    """The ``unicycle-obstacles`` task (two obstacles) from zero controls: feasible, cost at most IPOPT's + 1%."""
    task = get_task("unicycle-obstacles")
    sol = ilqg.solve(task.problem, task.x0, task.us_init, task.params, TIGHT)
    assert sol.status == ilqg.Status.CONVERGED and float(sol.violation) <= 1e-8
    assert task.success(sol.xs)
    ref = ipopt_obstacles(task.params, us_init=np.asarray(task.us_init))
    assert ref.success, ref.status
    assert float(sol.cost) <= 1.01 * ref.cost, (float(sol.cost), ref.cost)


# --- random linear-quadratic problems with linear constraints: one optimum, so equal to IPOPT -----


class LQParams(NamedTuple):
    A: jax.Array
    B: jax.Array
    Q: jax.Array
    R: jax.Array
    a: jax.Array      # (n,) path constraint a . x <= b
    b: jax.Array
    target: jax.Array  # (2,) terminal x[:2] == target


T_LQ = 20


def lq_dynamics(x, u, t, p):
    return p.A @ x + p.B @ u


def lq_running(x, u, t, p):
    return 0.5 * x @ p.Q @ x + 0.5 * u @ p.R @ u


def lq_terminal(x, p):
    return 0.5 * x @ p.Q @ x


def lq_path(x, u, t, p):
    return jnp.stack([p.a @ x - p.b, u[0] - 1.0])


def lq_goal(x, p):
    return x[:2] - p.target


LQ = ilqg.Problem(lq_dynamics, lq_running, lq_terminal, T_LQ, path_constraint=lq_path, terminal_constraint=lq_goal)
LQ_FREE = ilqg.Problem(lq_dynamics, lq_running, lq_terminal, T_LQ)


def random_lq(seed: int, b: float = -0.3) -> tuple[LQParams, np.ndarray]:
    rng = np.random.default_rng(seed)
    n, m = 4, 2
    A = np.eye(n) + 0.1 * rng.standard_normal((n, n))
    B = 0.3 * rng.standard_normal((n, m))
    G = rng.standard_normal((n, n))
    a = rng.standard_normal(n)
    x0 = rng.standard_normal(n)
    x0 = x0 - max(0.0, a @ x0 - b + 0.5) * a / (a @ a)  # x0 strictly feasible
    p = LQParams(A, B, 0.1 * G @ G.T + 0.1 * np.eye(n), np.diag(rng.uniform(0.5, 2.0, m)), a, np.asarray(b),
                 rng.uniform(-1.0, 1.0, 2))
    return jax.tree_util.tree_map(jnp.asarray, p), x0


def ipopt_lq(p: LQParams, x0):
    p = jax.tree_util.tree_map(np.asarray, p)
    return ipopt_ocp.solve(
        lambda x, u, t: casadi.mtimes(p.A, x) + casadi.mtimes(p.B, u),
        lambda x, u, t: 0.5 * casadi.bilin(p.Q, x, x) + 0.5 * casadi.bilin(p.R, u, u),
        lambda x: 0.5 * casadi.bilin(p.Q, x, x), x0, T_LQ, 2,
        g=lambda x, u, t: casadi.vertcat(casadi.dot(p.a, x) - p.b, u[0] - 1.0),
        h=lambda x: x[:2] - p.target)


def test_random_problems_in_a_batch_match_ipopt():
    """Three random feasible problems, one ``solve_batch`` (own multipliers each): IPOPT's optimum, 1e-6."""
    cases = [random_lq(seed) for seed in range(3)]
    params = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *[c[0] for c in cases])
    x0s = np.stack([c[1] for c in cases])
    sols = ilqg.solve_batch(LQ, x0s, np.zeros((T_LQ, 2)), params, TIGHT, params_axis=0)
    for i, (p, x0) in enumerate(cases):
        ref = ipopt_lq(p, x0)
        assert ref.success, ref.status
        assert sols.status[i] == ilqg.Status.CONVERGED, ilqg.Status(int(sols.status[i]))
        assert float(sols.violation[i]) <= 1e-9
        assert abs(float(sols.cost[i]) - ref.cost) <= 1e-6 * abs(ref.cost), (i, float(sols.cost[i]), ref.cost)
        np.testing.assert_allclose(sols.xs[i], ref.xs, atol=1e-6)
        np.testing.assert_allclose(sols.us[i], ref.us, atol=1e-6)
        single = ilqg.solve(LQ, x0, np.zeros((T_LQ, 2)), p, TIGHT)
        chex.assert_trees_all_close(single.us, sols.us[i], atol=1e-12)


def test_infeasible_problem_stops_infeasible_like_ipopt():
    """A half-space the trajectory cannot enter from ``x0`` in time: INFEASIBLE; IPOPT fails as well."""
    p, x0 = random_lq(0)
    p = p._replace(b=jnp.asarray(-1e3))  # a . x <= -1000: no trajectory satisfies it near x0
    sol = ilqg.solve(LQ, x0, np.zeros((T_LQ, 2)), p, TIGHT)
    assert sol.status == ilqg.Status.INFEASIBLE, ilqg.Status(int(sol.status))
    assert not sol.converged and float(sol.violation) > 1.0
    assert not ipopt_lq(p, x0).success


def test_constraints_that_never_bind_give_exactly_the_unconstrained_solution():
    p, x0 = random_lq(1, b=1e3)
    p = p._replace(target=jnp.asarray(np.nan * np.ones(2)))
    free = ilqg.solve(LQ_FREE, x0, np.zeros((T_LQ, 2)), p, TIGHT)
    only_path = LQ.replace(terminal_constraint=None)
    sol = ilqg.solve(only_path, x0, np.zeros((T_LQ, 2)), p, TIGHT)
    assert float(jnp.max(jax.vmap(lq_path, in_axes=(0, 0, 0, None))(free.xs[:-1], free.us, jnp.arange(T_LQ), p))) < 0
    assert sol.status == ilqg.Status.CONVERGED and float(sol.violation) == 0.0
    np.testing.assert_array_equal(sol.us, free.us)
    np.testing.assert_array_equal(sol.xs, free.xs)
    # The cost is summed again along the same trajectory (another order of the sum): equal to rounding.
    assert float(sol.cost) == pytest.approx(float(free.cost), rel=1e-14)
    assert int(sol.iterations) == int(free.iterations)
    assert bool(jnp.all(sol.multipliers.path == 0))


# --- gradients -------------------------------------------------------------------------------------


def test_gradient_matches_finite_differences_of_resolves():
    """d/d(obstacle, goal, x0) of the cost and of a state: KKT with the active constraints vs re-solves."""
    params, _ = obstacle_solution()
    problem, T = obstacles.problem(), obstacles.HORIZON
    us0 = jnp.zeros((T, 2))

    def outputs(theta):
        centers, goal, x0 = theta[:2][None], theta[2:4], jnp.concatenate([theta[4:5], jnp.zeros(2)])
        sol = ilqg.solve(problem, x0, us0, params._replace(centers=centers, goal=goal), TIGHT)
        return jnp.stack([sol.cost, sol.xs[20, 1], sol.us[10, 1]])

    theta = jnp.concatenate([params.centers[0], params.goal, jnp.zeros(1)])
    jac = jax.jacrev(outputs)(theta)
    eps = 1e-5
    fd = np.stack([(outputs(theta.at[i].add(eps)) - outputs(theta.at[i].add(-eps))) / (2 * eps)
                   for i in range(theta.shape[0])], axis=1)
    np.testing.assert_allclose(jac, fd, rtol=2e-4, atol=2e-5)


# --- MPC ---------------------------------------------------------------------------------------------


def _to_goal(x, p):
    return 5.0 * jnp.sum((x[:2] - p.goal) ** 2) + obstacles.terminal_cost(x, p)


def test_mpc_keeps_out_of_the_obstacle():
    """Receding horizon with the path constraint: the closed loop stays outside the obstacle."""
    params = one_obstacle()
    problem = obstacles.problem(horizon=20, dt=0.15).replace(terminal_constraint=None, terminal_cost=_to_goal)
    mpc = ilqg.MPC(problem, ilqg.Options(max_iter=20, max_outer=5, constraint_tol=1e-4, penalty_init=100.0), params)
    loop = ilqg.simulate(mpc, obstacles.initial_state(), steps=25, state=mpc.init(obstacles.initial_state(),
                                                                                   0.1 * jnp.ones((20, 2))))
    clearance = obstacles.clearance(loop.xs, params)
    assert float(jnp.min(clearance)) > -1e-3, float(jnp.min(clearance))
    assert float(loop.xs[-1, 0]) > float(params.centers[0, 0])  # and it got past it
