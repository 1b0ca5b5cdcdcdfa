"""Gradients through a *default* solve equal central finite differences of re-solved problems, per system.

The implicit gradient describes the optimum; it is only the derivative of what
``solve`` returns if ``solve`` returns the optimum. With the stationarity
certificate (``Status.CONVERGED``), a default solve does: for every system in
``ilqg_jax.systems`` the directional derivative of a loss of the solution --
along a random direction in ``x0`` and one in ``params`` -- matches central
differences of re-solves (warm-started at the optimum, default options) to
1e-5 relative.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ilqg_jax as ilqg
from ilqg_jax.systems import get_task, gym_pendulum, pendulum

RTOL = 1e-5


def _case(name):
    if name == "pendulum":
        task = get_task("pendulum", 60)
        return task.problem, task.x0, task.us_init, pendulum.swing_up_params()
    if name == "gym_pendulum":
        problem = gym_pendulum.problem(horizon=40)
        x0 = jnp.array([2.0, 0.5])
        return problem, x0, jnp.zeros((40, 1)), gym_pendulum.default_params()
    task = get_task(name)
    return task.problem, task.x0, task.us_init, jax.tree_util.tree_map(jnp.asarray, task.params)


def _directions(x0, params, seed):
    rng = np.random.default_rng(seed)
    dx = jnp.asarray(rng.standard_normal(x0.shape))
    leaves, tree = jax.tree_util.tree_flatten(params)
    # Relative perturbations of every parameter: each leaf moves by a random fraction of its size.
    dp = [jnp.asarray(rng.standard_normal(np.shape(p))) * (jnp.abs(p) + 0.1) for p in leaves]
    return dx, jax.tree_util.tree_unflatten(tree, dp)


@pytest.mark.parametrize("name", ["pendulum", "gym_pendulum", "arm", "cartpole", "acrobot", "unicycle"])
def test_gradient_of_a_default_solve_matches_finite_differences_of_resolves(name):
    problem, x0, us0, params = _case(name)
    options = ilqg.Options()
    T = problem.horizon
    weights = jnp.asarray(np.random.default_rng(1).standard_normal((T + 1, x0.shape[0])))
    sol = ilqg.solve(problem, x0, us0, params, options)
    assert int(sol.status) == ilqg.Status.CONVERGED, ilqg.Status(int(sol.status)).name
    warm = sol.us

    def loss(x, p):
        s = ilqg.solve(problem, x, warm, p, options)
        return s.cost + jnp.sum(weights * s.xs) / T, s.status

    g_x, g_p = jax.grad(lambda x, p: loss(x, p)[0], argnums=(0, 1))(x0, params)
    dx, dp = _directions(x0, params, 2)
    analytic = float(jnp.vdot(g_x, dx) + sum(jnp.vdot(a, b) for a, b in zip(jax.tree_util.tree_leaves(g_p),
                                                                             jax.tree_util.tree_leaves(dp))))
    h = 1e-4
    values = []
    for sign in (1.0, -1.0):
        p = jax.tree_util.tree_map(lambda a, b: a + sign * h * b, params, dp)
        value, status = loss(x0 + sign * h * dx, p)
        assert int(status) == ilqg.Status.CONVERGED
        values.append(float(value))
    numeric = (values[0] - values[1]) / (2 * h)
    assert abs(analytic - numeric) <= RTOL * max(abs(numeric), 1e-3), (analytic, numeric)
