"""Multiple shooting (``solve(..., xs_init=...)``): a state guess that is not a rollout, its gaps closed.

Oracles: the Riccati solution of an LQ problem (a full step from *any* nodes
is the optimum), the exact quadratic model of an LQ problem (the expected
change of a step with gaps equals the actual one at every step size), the
sequential pass for the parallel one, and the dynamics themselves (what a
solve returns is a rollout of its controls).
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ilqg_jax as ilqg
from ilqg_jax import backward, derivatives, parallel, solver
from ilqg_jax.systems import pendulum
from oracles import riccati
from test_solver import lq_problem, make_lq


def lq_case(n=3, m=2, T=20, seed=3):
    lq = make_lq(n, m, T, seed=seed)
    rng = np.random.default_rng(seed + 1)
    x0 = rng.standard_normal(n)
    xs_init = 3.0 * rng.standard_normal((T + 1, n))  # far from any rollout
    us_init = rng.standard_normal((T, m))
    return lq, lq_problem(lq, T), x0, xs_init, us_init


def gaps_of(problem, xs, us):
    f = jax.vmap(problem.dynamics, in_axes=(0, 0, 0, None))(xs[:-1], us, jnp.arange(us.shape[0]), None)
    return f - xs[1:]


@pytest.mark.parametrize("n,m,T", [(1, 1, 5), (3, 2, 20), (5, 3, 15)])
def test_one_full_step_from_infeasible_nodes_is_the_riccati_solution(n, m, T):
    lq, problem, x0, xs_init, us_init = lq_case(n, m, T, seed=n + m + T)
    assert float(jnp.max(jnp.abs(gaps_of(problem, jnp.asarray(xs_init).at[0].set(x0), us_init)))) > 0.1
    sol = ilqg.solve(problem, x0, us_init, options=ilqg.Options(max_iter=1, mu_init=0.0), xs_init=xs_init)
    xs_ref, us_ref, cost_ref = riccati(lq, x0, T)
    np.testing.assert_allclose(sol.us, us_ref, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(sol.xs, xs_ref, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(sol.cost, cost_ref, rtol=1e-12)


def test_default_options_solve_lq_from_infeasible_nodes_in_one_iteration_and_certify_in_the_second():
    lq, problem, x0, xs_init, us_init = lq_case()
    sol = ilqg.solve(problem, x0, us_init, xs_init=xs_init)
    _, us_ref, _ = riccati(lq, x0, 20)
    assert int(sol.status) == int(ilqg.Status.CONVERGED)
    assert int(sol.iterations) == 2
    np.testing.assert_allclose(sol.us, us_ref, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("alpha", [1.0, 0.5, 0.1])
def test_expected_change_with_gaps_is_the_actual_change_on_an_lq_problem(alpha):
    """The quadratic model of an LQ problem is exact, so the gap-closing step's predicted change is the actual one."""
    _, problem, x0, xs_init, us_init = lq_case()
    xs = jnp.asarray(xs_init).at[0].set(x0)
    us = jnp.asarray(us_init)
    gaps = gaps_of(problem, xs, us)
    d = derivatives.trajectory_derivatives(problem, xs, us)
    bw = backward.backward_pass(d, 0.3, gaps=gaps)  # any gains: the model is exact for every policy
    dV = backward.expected_change(d, bw.K, bw.k, gaps)
    _, _, new_cost = solver.closed_loop_rollout(problem, x0, xs, us, bw.K, bw.k, alpha, gaps=gaps)
    cost = derivatives.trajectory_cost(problem, xs, us)
    np.testing.assert_allclose(new_cost - cost, alpha * dV[0] + alpha ** 2 * dV[1], rtol=1e-9)


def test_expected_change_without_gaps_is_tassas_dv():
    _, problem, x0, _, us_init = lq_case()
    us = jnp.asarray(us_init)
    xs = derivatives.rollout(problem.dynamics, jnp.asarray(x0), us)
    d = derivatives.trajectory_derivatives(problem, xs, us)
    bw = backward.backward_pass(d, 0.0)
    np.testing.assert_allclose(backward.expected_change(d, bw.K, bw.k, jnp.zeros_like(xs[1:])), bw.dV, rtol=1e-9)


@pytest.mark.parametrize("mu", [0.0, 0.5])
def test_parallel_pass_with_gaps_equals_the_sequential_pass(mu):
    _, problem, x0, xs_init, us_init = lq_case(3, 2, 6, seed=9)
    xs = jnp.asarray(xs_init).at[0].set(x0)
    us = jnp.asarray(us_init)
    gaps = gaps_of(problem, xs, us)
    d = derivatives.trajectory_derivatives(problem, xs, us)
    seq = backward.backward_pass(d, mu, gaps=gaps)
    par = parallel.parallel_backward_pass(d, mu, gaps=gaps)
    for f in ("K", "k", "Vx", "Vxx"):
        chex.assert_trees_all_close(getattr(par, f), getattr(seq, f), rtol=1e-10, atol=1e-10)


def _interpolation(x0, goal, T):
    return np.linspace(np.asarray(x0, float), np.asarray(goal, float), T + 1)


def test_swing_up_from_an_interpolated_state_guess_converges_to_a_rollout():
    problem = pendulum.swing_up()
    T = problem.horizon
    x0 = np.array([np.pi, 0.0])
    sol = ilqg.solve(problem, x0, np.zeros((T, 1)), xs_init=_interpolation(x0, [0.0, 0.0], T))
    assert int(sol.status) == int(ilqg.Status.CONVERGED)
    assert float(sol.stationarity) <= 1e-8
    xs = derivatives.rollout(problem.dynamics, jnp.asarray(x0), sol.us)
    np.testing.assert_allclose(sol.xs, xs, rtol=0, atol=1e-10)
    np.testing.assert_allclose(sol.cost, derivatives.trajectory_cost(problem, xs, sol.us), rtol=1e-12)
    assert abs(float(angles_wrap(sol.xs[-1, 0]))) < 0.05  # it reaches upright


def angles_wrap(theta):
    return (theta + jnp.pi) % (2 * jnp.pi) - jnp.pi


@pytest.mark.parametrize("max_iter", [0, 1])
def test_a_solve_stopped_before_closing_its_gaps_returns_a_rollout(max_iter):
    problem = pendulum.swing_up()
    T = problem.horizon
    x0 = np.array([np.pi, 0.0])
    opts = ilqg.Options(max_iter=max_iter, min_step=0.5, line_search_steps=1) if max_iter else ilqg.Options(max_iter=0)
    sol = ilqg.solve(problem, x0, np.zeros((T, 1)), options=opts, xs_init=_interpolation(x0, [0.0, 0.0], T))
    assert int(sol.status) != int(ilqg.Status.CONVERGED)
    xs = derivatives.rollout(problem.dynamics, jnp.asarray(x0), sol.us)
    np.testing.assert_allclose(sol.xs, xs, rtol=0, atol=1e-10)
    np.testing.assert_allclose(sol.cost, derivatives.trajectory_cost(problem, xs, sol.us), rtol=1e-12)


def test_gradients_and_vmap_with_a_state_guess_are_those_of_the_optimum():
    """The optimum does not depend on the guess: neither do its implicit gradients; ``xs_init`` vmaps."""
    _, problem, x0, xs_init, us_init = lq_case(2, 1, 8)

    def cost(x, xs=None):
        return ilqg.solve(problem, x, us_init, xs_init=xs).cost

    np.testing.assert_allclose(jax.grad(cost)(jnp.asarray(x0), xs_init), jax.grad(cost)(jnp.asarray(x0)),
                               rtol=1e-8)
    guesses = jnp.stack([jnp.asarray(xs_init), 0.5 * jnp.asarray(xs_init)])
    costs = jax.vmap(lambda xs: cost(jnp.asarray(x0), xs))(guesses)
    np.testing.assert_allclose(costs, cost(jnp.asarray(x0)), rtol=1e-10)


def _speed_limit(x, u, t, p):
    return jnp.stack([x[1] - 7.0, -x[1] - 7.0])


def test_constrained_solve_accepts_a_state_guess():
    """The first inner solve of the augmented Lagrangian starts from the guess; the result is feasible."""
    problem = pendulum.swing_up()
    T = problem.horizon
    limited = problem.replace(path_constraint=_speed_limit)
    x0 = np.array([np.pi, 0.0])
    us = 0.1 * np.random.default_rng(0).standard_normal((T, 1))
    guided = ilqg.solve(limited, x0, us, xs_init=_interpolation(x0, [0.0, 0.0], T))
    assert int(guided.status) == int(ilqg.Status.CONVERGED)
    assert float(guided.violation) <= 1e-6
    assert float(jnp.max(jnp.abs(guided.xs[:, 1]))) <= 7.0 + 1e-6
    np.testing.assert_allclose(guided.xs, derivatives.rollout(problem.dynamics, jnp.asarray(x0), guided.us), atol=1e-10)


def test_solve_batch_with_state_guesses_equals_single_solves():
    """Per-member and shared guesses: every member is the single solve with that guess (same iterations)."""
    problem = pendulum.swing_up(40)
    T = problem.horizon
    rng = np.random.default_rng(4)
    x0s = np.stack([rng.uniform(-np.pi, np.pi, 5), rng.uniform(-4.0, 4.0, 5)], axis=1)
    us0 = np.zeros((T, 1))
    guesses = np.stack([_interpolation(x0, [0.0, 0.0], T) for x0 in x0s])
    batch = ilqg.solve_batch(problem, x0s, us0, xs_inits=guesses, slots=2)
    shared = ilqg.solve_batch(problem, x0s, us0, xs_inits=guesses[0], slots=2)
    for i, x0 in enumerate(x0s):
        for sols, guess in ((batch, guesses[i]), (shared, guesses[0])):
            one = ilqg.solve(problem, x0, us0, xs_init=guess)
            assert int(sols.iterations[i]) == int(one.iterations)
            assert int(sols.status[i]) == int(one.status)
            np.testing.assert_allclose(sols.us[i], one.us, rtol=1e-9, atol=1e-9)
            np.testing.assert_allclose(sols.cost[i], one.cost, rtol=1e-10)


def test_solve_batch_stopped_before_closing_gaps_returns_rollouts():
    problem = pendulum.swing_up(40)
    T = problem.horizon
    x0s = np.array([[np.pi, 0.0], [2.0, 1.0]])
    guesses = np.stack([_interpolation(x0, [0.0, 0.0], T) for x0 in x0s])
    sols = ilqg.solve_batch(problem, x0s, np.zeros((T, 1)), options=ilqg.Options(max_iter=1, min_step=0.5,
                                                                                   line_search_steps=1),
                            xs_inits=guesses)
    for i, x0 in enumerate(x0s):
        xs = derivatives.rollout(problem.dynamics, jnp.asarray(x0), sols.us[i])
        np.testing.assert_allclose(sols.xs[i], xs, rtol=0, atol=1e-10)


@pytest.mark.parametrize("shape", [(3, 41, 2), (41, 3), (2, 40, 2)])
def test_solve_batch_rejects_state_guesses_of_the_wrong_shape(shape):
    problem = pendulum.swing_up(40)
    with pytest.raises(ValueError, match=r"xs_inits must have shape \(T\+1, n\) = \(41, 2\).*\(N, T\+1, n\) = \(2, 41, 2\)"):
        ilqg.solve_batch(problem, np.zeros((2, 2)), np.zeros((40, 1)), xs_inits=np.zeros(shape))


def test_solve_batch_rejects_nonfinite_state_guesses():
    problem = pendulum.swing_up(40)
    guesses = np.zeros((2, 41, 2))
    guesses[1, 3, 0] = np.nan
    with pytest.raises(ValueError, match=r"xs_inits\[1\] must be finite"):
        ilqg.solve_batch(problem, np.zeros((2, 2)), np.zeros((40, 1)), xs_inits=guesses)
