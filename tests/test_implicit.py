"""Gradients through ``ilqg_jax.solve`` (implicit differentiation at the optimum).

Oracles: central finite differences of re-solved problems, reverse-mode
differentiation through an unrolled iLQR solve written here, and the Riccati
recursion of a linear-quadratic problem (``d V / d x0 = P_0 x0 + p_0``).

Compilation dominates the run time, so every solve uses one set of options
(``TIGHT``: full DDP, whose quadratic convergence leaves an optimum exact to
round-off, so finite differences of it mean something), few problems, and
gradients are always taken with respect to ``(params, x0, us_init)`` so that
the differentiated solver compiles once per problem.
"""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ilqg_jax as ilqg
from ilqg_jax import implicit
from ilqg_jax.derivatives import rollout, trajectory_cost, trajectory_derivatives
from ilqg_jax.systems import pendulum

TIGHT = ilqg.Options(tol=1e-12, max_iter=200, second_order=True)
T_PENDULUM = 30
X0_PENDULUM = jnp.array([jnp.pi - 0.3, 0.0])
T_RANDOM = 12


# --- Problems --------------------------------------------------------------------------------------


def pendulum_case():
    problem = pendulum.swing_up(T_PENDULUM)
    params = jax.tree_util.tree_map(lambda v: jnp.asarray(v, jnp.float64), pendulum.swing_up_params())
    return problem, X0_PENDULUM, jnp.zeros((T_PENDULUM, 1)), params


def _random_dynamics(x, u, t, p):
    # Nonlinear in x, bilinear in (x, u): fxx, fux are nonzero.
    drift = p["A"] @ jnp.tanh(x) + p["B"] @ u + 0.3 * jnp.sin(x[::-1]) * (u[0] - 0.5 * u[1])
    return x + 0.2 * drift * (1.0 + 0.05 * t)


def _random_running(x, u, t, p):
    e = x - p["target"]
    return (0.5 * jnp.sum(p["q"] * e**2) + 0.1 * jnp.sum(jnp.log(jnp.cosh(2.0 * x)))
            + 0.5 * jnp.sum(p["r"] * u**2) + 0.05 * (u[0] * x[1]) ** 2)


def _random_terminal(x, p):
    e = x - p["target"]
    return 0.5 * p["qf"] * jnp.sum(e**2) + 0.02 * jnp.sum(e**4)


def random_case():
    """A random smooth problem (n = 3, m = 2) whose first controls sit on their limits."""
    rng = np.random.default_rng(42)
    params = {
        "A": jnp.asarray(0.5 * rng.standard_normal((3, 3))),
        "B": jnp.asarray(rng.standard_normal((3, 2))),
        "q": jnp.asarray(rng.uniform(0.5, 1.5, 3)),
        "r": jnp.asarray(rng.uniform(0.5, 1.0, 2)),
        "qf": jnp.asarray(np.float64(5.0)),  # not weakly typed, like the finite-difference inputs
        "target": jnp.asarray(rng.standard_normal(3)),
    }
    problem = ilqg.Problem(_random_dynamics, _random_running, _random_terminal, T_RANDOM,
                           control_lower=jnp.array([-0.6, -jnp.inf]), control_upper=jnp.array([0.6, 0.8]))
    x0 = jnp.asarray(rng.standard_normal(3)) * 2.0
    return problem, x0, jnp.zeros((T_RANDOM, 2)), params


def trajectory_loss(xs, us, cost):
    """A loss that touches the middle of the trajectory, the controls and the cost."""
    T = us.shape[0]
    return (jnp.sum(jnp.cos(xs[T // 2])) + jnp.sum(xs[-1] ** 2) + jnp.sum(jnp.sin(us[: T // 3])) + 0.3 * cost)


@jax.jit
@functools.partial(jax.value_and_grad, argnums=(1, 2, 3), has_aux=True)
def solve_and_grad(problem, params, x0, us_init):
    """``(trajectory_loss, solution), (d/dparams, d/dx0, d/dus_init)`` through ``ilqg.solve``.

    One compiled program per problem serves every test (finite-difference
    re-solves included), which keeps the file fast.
    """
    sol = ilqg.solve(problem, x0, us_init, params, TIGHT)
    return trajectory_loss(sol.xs, sol.us, sol.cost), sol


@jax.jit
def polished_loss(problem, params, x0, us, free):
    """``trajectory_loss`` after Newton's method on the controls (dense Hessian of the shooting
    cost), clamped controls held.

    The solver stops on a relative cost change, which can leave ~sqrt(tol) in
    the controls (the box QP of a limited problem converges less tightly than
    DDP); four Newton steps make the optimum exact to round-off.
    """
    shape = us.shape

    def J(U):
        U = U.reshape(shape)
        return trajectory_cost(problem, rollout(problem.dynamics, x0, U, params), U, params)

    f = free.ravel()

    def newton(_, U):
        g = jnp.where(f, jax.grad(J)(U), 0.0)
        H = jnp.where(f[:, None] & f[None, :], jax.hessian(J)(U), jnp.eye(U.size))
        return U - jnp.linalg.solve(H, g)

    us = jax.lax.fori_loop(0, 4, newton, us.ravel()).reshape(shape)
    xs = rollout(problem.dynamics, x0, us, params)
    return trajectory_loss(xs, us, trajectory_cost(problem, xs, us, params))


def reference_loss(problem, us_init):
    """``trajectory_loss`` at the re-solved optimum (Newton-polished when the problem has limits)."""

    def loss(params, x0):
        (value, sol), _ = solve_and_grad(problem, params, x0, us_init)
        assert sol.converged
        if problem.has_limits:
            value = polished_loss(problem, params, x0, sol.us, implicit.free_controls(problem, sol.us))
        return value

    return loss


def central_differences(f, params, x0, rel_step=1e-5):
    """Central differences of ``f(params, x0)`` in every scalar of ``params`` and ``x0``."""
    leaves, treedef = jax.tree_util.tree_flatten(params)
    flat = [np.asarray(leaf, float).copy() for leaf in leaves] + [np.asarray(x0, float).copy()]

    def call(values):
        return float(f(jax.tree_util.tree_unflatten(treedef, [jnp.asarray(v) for v in values[:-1]]),
                       jnp.asarray(values[-1])))

    grads = []
    for i, v in enumerate(flat):
        g = np.zeros_like(v)
        for j in np.ndindex(v.shape):
            h = rel_step * max(1.0, abs(v[j]))
            up = [w.copy() for w in flat]
            down = [w.copy() for w in flat]
            up[i][j] += h
            down[i][j] -= h
            g[j] = (call(up) - call(down)) / (2 * h)
        grads.append(g)
    return jax.tree_util.tree_unflatten(treedef, grads[:-1]), grads[-1]


def assert_gradients_close(got, want, rtol):
    """Each component within ``rtol`` of the oracle, relative to its own size or, for near-zero
    components, to 1% of the largest component of the whole gradient."""
    got_flat = np.concatenate([np.ravel(g) for g in jax.tree_util.tree_leaves(got)])
    want_flat = np.concatenate([np.ravel(w) for w in jax.tree_util.tree_leaves(want)])
    scale = np.maximum(np.abs(want_flat), 1e-2 * np.abs(want_flat).max())
    err = np.abs(got_flat - want_flat) / scale
    assert err.max() <= rtol, f"max relative error {err.max():.2e}\n got {got_flat}\nwant {want_flat}"


# --- Finite differences ----------------------------------------------------------------------------


@pytest.mark.parametrize("case", [pendulum_case, random_case], ids=["pendulum", "random_with_limits"])
def test_gradient_matches_finite_differences(case):
    problem, x0, us_init, params = case()
    (_, sol), (g_params, g_x0, g_us) = solve_and_grad(problem, params, x0, us_init)
    assert sol.converged, ilqg.Status(int(sol.status))
    if problem.has_limits:  # the case is meant to exercise clamped controls
        free = implicit.free_controls(problem, sol.us)
        assert 0 < int(jnp.sum(~free)) < free.size

    fd_params, fd_x0 = central_differences(reference_loss(problem, us_init), params, x0)
    assert_gradients_close((g_params, g_x0), (fd_params, fd_x0), rtol=1e-5)
    # The optimum does not depend on the initial guess.
    chex.assert_trees_all_equal(g_us, jnp.zeros_like(us_init))


# --- Unrolled solve --------------------------------------------------------------------------------


def _ilqr_iteration(problem, x0, us, params):
    """One full-step Gauss-Newton iLQR iteration (plain Riccati, no regularisation, no line search)."""
    xs = rollout(problem.dynamics, x0, us, params)
    d = trajectory_derivatives(problem, xs, us, params)

    def back(carry, inp):
        Vx, Vxx = carry
        fx, fu, lx, lu, lxx, luu, lux = inp
        Qx, Qu = lx + fx.T @ Vx, lu + fu.T @ Vx
        Qxx, Quu, Qux = lxx + fx.T @ Vxx @ fx, luu + fu.T @ Vxx @ fu, lux + fu.T @ Vxx @ fx
        k, K = -jnp.linalg.solve(Quu, Qu), -jnp.linalg.solve(Quu, Qux)
        return (Qx + K.T @ Quu @ k + K.T @ Qu + Qux.T @ k, Qxx + K.T @ Quu @ K + K.T @ Qux + Qux.T @ K), (K, k)

    _, (K, k) = jax.lax.scan(back, (d.lx[-1], d.lxx[-1]), (d.fx, d.fu, d.lx[:-1], d.lu, d.lxx[:-1], d.luu, d.lux),
                             reverse=True)

    def fwd(x, inp):
        t, xb, ub, Kt, kt = inp
        u = ub + kt + Kt @ (x - xb)
        return problem.dynamics(x, u, t, params), u

    _, us_new = jax.lax.scan(fwd, x0, (jnp.arange(us.shape[0]), xs[:-1], us, K, k))
    return us_new


def test_gradient_equals_unrolled_converged_solve():
    """Reverse mode through 30 unrolled iLQR iterations (converged) gives the implicit gradient."""
    problem, x0, us_init, params = pendulum_case()
    (_, sol), g_implicit = solve_and_grad(problem, params, x0, us_init)
    # The unrolled solve starts near (not at) the optimum and converges by itself.
    start = sol.us + 0.05 * jnp.asarray(np.random.default_rng(0).standard_normal(sol.us.shape))

    @jax.jit
    @functools.partial(jax.value_and_grad, argnums=(0, 1), has_aux=True)
    def unrolled(params, x0):
        us = jax.lax.fori_loop(0, 30, lambda i, us: _ilqr_iteration(problem, x0, us, params), start)
        xs = rollout(problem.dynamics, x0, us, params)
        return trajectory_loss(xs, us, trajectory_cost(problem, xs, us, params)), us

    (_, us_unrolled), g_unrolled = unrolled(params, x0)
    chex.assert_trees_all_close(us_unrolled, sol.us, rtol=0, atol=1e-10)
    assert_gradients_close(g_implicit[:2], g_unrolled, rtol=1e-8)


# --- LQR -------------------------------------------------------------------------------------------


def test_lqr_cost_gradient_is_riccati_value_gradient():
    """For ``x' = A x + B u + c`` and ``1/2 x'Qx + q'x + 1/2 u'Ru + r'u``: ``dV/dx0 = P_0 x0 + p_0``.

    For a batch of ``x0`` under ``vmap``, with ``params=None``; forward and
    reverse mode; through the cost (envelope theorem) and through the
    trajectory (the LQR solve). Integer outputs get a ``float0`` tangent, the
    gains a zero one.
    """
    n, m, T, batch = 3, 2, 15, 3
    rng = np.random.default_rng(7)
    A = np.eye(n) + 0.2 * rng.standard_normal((n, n))
    B = rng.standard_normal((n, m))
    G = rng.standard_normal((n, n))
    Q, R, Qf = G @ G.T + 0.1 * np.eye(n), np.diag(rng.uniform(0.5, 2.0, m)), 3.0 * np.eye(n)
    c, q, r, qf = (rng.standard_normal(k) * s for k, s in ((n, 0.1), (n, 1.0), (m, 1.0), (n, 1.0)))
    x0s = jnp.asarray(rng.standard_normal((batch, n)))
    problem = ilqg.Problem(lambda x, u, t, p: A @ x + B @ u + c,
                           lambda x, u, t, p: 0.5 * x @ Q @ x + q @ x + 0.5 * u @ R @ u + r @ u,
                           lambda x, p: 0.5 * x @ Qf @ x + qf @ x, T)

    P, p = Qf, qf
    for _ in range(T):
        Qxx, Quu, Qux = Q + A.T @ P @ A, R + B.T @ P @ B, B.T @ P @ A
        qx, qu = q + A.T @ (p + P @ c), r + B.T @ (p + P @ c)
        K, k = -np.linalg.solve(Quu, Qux), -np.linalg.solve(Quu, qu)
        P, p = Qxx + Qux.T @ K, qx + Qux.T @ k
    want = np.asarray(x0s) @ P.T + p  # (batch, n)

    @jax.vmap
    def f(x0):
        sol = ilqg.solve(problem, x0, jnp.zeros((T, m)), None, TIGHT)
        return sol, trajectory_cost(problem, sol.xs, sol.us, None)

    (sol, _), f_lin = jax.linearize(f, x0s)
    assert bool(jnp.all(sol.converged))
    e = jnp.asarray(rng.standard_normal((batch, n)))
    d_sol, d_traj_cost = f_lin(e)
    # Forward mode, through the cost (envelope theorem) and through the trajectory (LQR solve).
    want_e = np.sum(want * np.asarray(e), axis=1)
    np.testing.assert_allclose(d_sol.cost, want_e, rtol=1e-9)
    np.testing.assert_allclose(d_traj_cost, want_e, rtol=1e-9)
    for name in ("iterations", "status", "converged"):
        assert getattr(d_sol, name).dtype == jax.dtypes.float0, name
    chex.assert_trees_all_equal(d_sol.K, jnp.zeros_like(sol.K))
    # Reverse mode: the transpose of the same linear map (restricted to the two costs).
    f_vjp = jax.linear_transpose(lambda dx0: (f_lin(dx0)[0].cost, f_lin(dx0)[1]), x0s)
    (g_cost,) = f_vjp((jnp.ones(batch), jnp.zeros(batch)))
    (g_traj_cost,) = f_vjp((jnp.zeros(batch), jnp.ones(batch)))
    assert_gradients_close(g_cost, want, rtol=1e-8)
    assert_gradients_close(g_traj_cost, want, rtol=1e-8)


def test_kkt_solve_inverts_the_hessian_of_the_lagrangian():
    """The LQR solve inverts ``P H P + (I - P)`` where ``H`` is the autodiff Hessian of the Lagrangian."""
    problem, x0, us_init, params = random_case()
    (_, sol), _ = solve_and_grad(problem, params, x0, us_init)
    rng = np.random.default_rng(0)
    v = tuple(jnp.asarray(rng.standard_normal(a.shape)) for a in (sol.xs, sol.us, sol.xs))

    @jax.jit
    def check(problem, x0, params, xs, us, v):
        lams = implicit.costates(problem, xs, us, params)
        h = implicit.kkt_hessian(problem, xs, us, lams, params)
        free = implicit.free_controls(problem, us)
        Hv = jax.jvp(lambda *z: implicit.kkt_residual(problem, *z, params, x0), (xs, us, lams), v)[1]
        Mv = implicit.kkt_matvec(h, jnp.ones_like(free), v)
        R = implicit.kkt_residual(problem, xs, us, lams, params, x0)
        x = implicit.solve_kkt(h, free, v)
        return free, Hv, Mv, R, implicit.kkt_matvec(h, free, x)

    free, Hv, Mv, R, back = check(problem, x0, params, sol.xs, sol.us, v)
    # The matvec is the autodiff Hessian (all controls free) ...
    chex.assert_trees_all_close(Mv, Hv, rtol=1e-10, atol=1e-10)
    # ... the residual vanishes at the optimum on the states, the costates and the free controls ...
    chex.assert_trees_all_close(R[0], jnp.zeros_like(R[0]), atol=1e-12)
    assert float(jnp.max(jnp.abs(jnp.where(free, R[1], 0.0)))) < 1e-7
    # ... and the LQR solve inverts the masked matrix.
    chex.assert_trees_all_close(back, (v[0], jnp.where(free, v[1], 0.0), v[2]), rtol=1e-9, atol=1e-9)
