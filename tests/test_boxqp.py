"""Tests of the projected-Newton box QP against a brute-force active-set oracle.

Oracle: for a strictly convex QP the KKT point is the unique minimiser. We
enumerate all 3^m assignments of each variable to {free, at lower, at upper},
solve the equality-constrained system for the free variables, and keep the
assignment whose point is feasible and whose multipliers have the right sign
(``grad_i >= 0`` at a lower bound, ``grad_i <= 0`` at an upper bound).
"""

import itertools

import jax

jax.config.update("jax_enable_x64", True)

import chex  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from ilqg_jax.boxqp import (  # noqa: E402
    BoxQPStatus,
    box_qp,
    free_subspace_solve,
)

N_PROBLEMS = 200
CONVERGED = (BoxQPStatus.SMALL_GRADIENT, BoxQPStatus.ALL_CLAMPED, BoxQPStatus.SMALL_IMPROVEMENT)

# One compilation per (batch shape, dtype): the tests below reuse N_PROBLEMS.
batched_box_qp = jax.jit(jax.vmap(box_qp))
jit_box_qp = jax.jit(box_qp)


# --------------------------------------------------------------------------- oracle


def kkt_oracle(H, g, lower, upper, tol=1e-9):
    """Brute-force minimiser of 0.5 x'Hx + g'x on the box (NumPy, strictly convex H).

    Returns (x, free) where free[i] is True / False where the active set is
    unambiguous (strictly inside / at a bound with a nonzero multiplier) and
    None where it is degenerate (at a bound with a zero multiplier).
    """
    m = len(g)
    best = None
    for assignment in itertools.product((0, -1, 1), repeat=m):  # free, lower, upper
        a = np.array(assignment)
        bound = np.where(a == -1, lower, upper)
        if np.any(~np.isfinite(bound[a != 0])):
            continue
        x = np.where(a != 0, bound, 0.0)
        f = a == 0
        if f.any():
            rhs = -(g[f] + H[np.ix_(f, ~f)] @ x[~f])
            x[f] = np.linalg.solve(H[np.ix_(f, f)], rhs)
        scale = 1.0 + np.abs(x)
        if np.any(x < lower - tol * scale) or np.any(x > upper + tol * scale):
            continue
        grad = g + H @ x
        gtol = tol * (1.0 + np.abs(g) + np.abs(H) @ np.abs(x))
        if np.any(np.abs(grad[f]) > gtol[f]):
            continue
        if np.any(grad[a == -1] < -gtol[a == -1]) or np.any(grad[a == 1] > gtol[a == 1]):
            continue
        best = x
        break
    assert best is not None, "oracle found no KKT point"
    x = best
    grad = g + H @ x
    gtol = 1e-6 * (1.0 + np.abs(g) + np.abs(H) @ np.abs(x))
    xtol = 1e-6 * (1.0 + np.abs(x))
    at_bound = (np.abs(x - lower) <= xtol) | (np.abs(x - upper) <= xtol)
    free = [
        True if not b else (False if abs(gi) > gt else None)
        for b, gi, gt in zip(at_bound, grad, gtol)
    ]
    return x, free


def random_problems(m, n, seed):
    """Random strictly convex box QPs of dimension m, with varied bounds."""
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(n, m, m))
    H = A @ np.swapaxes(A, 1, 2) / m + 0.2 * np.eye(m)
    # Unconstrained optimum sometimes well inside, sometimes far outside.
    g = rng.normal(size=(n, m)) * rng.choice([0.1, 1.0, 5.0], size=(n, 1))
    lower = -rng.uniform(0.0, 2.0, size=(n, m))
    upper = lower + rng.uniform(0.0, 3.0, size=(n, m))
    kind = rng.uniform(size=(n, m))
    lower = np.where(kind < 0.15, -np.inf, lower)
    upper = np.where((kind > 0.15) & (kind < 0.3), np.inf, upper)
    upper = np.where((kind > 0.3) & (kind < 0.4), lower, upper)  # lower == upper
    both_inf = kind > 0.95
    lower, upper = np.where(both_inf, -np.inf, lower), np.where(both_inf, np.inf, upper)
    x0 = rng.normal(size=(n, m)) * 2.0
    return H, g, lower, upper, x0


# --------------------------------------------------------------------------- tests


@pytest.mark.parametrize("m", [1, 2, 3, 4])
def test_matches_brute_force_active_set_oracle(m):
    H, g, lower, upper, x0 = random_problems(m, N_PROBLEMS, seed=m)
    res = batched_box_qp(H, g, lower, upper, x0)
    x, free, status = map(np.asarray, (res.x, res.free, res.status))

    assert np.all(np.isin(status, CONVERGED)), np.unique(status, return_counts=True)
    assert np.all((x >= lower) & (x <= upper))
    n_checked = 0
    for i in range(N_PROBLEMS):
        x_star, free_star = kkt_oracle(H[i], g[i], lower[i], upper[i])
        np.testing.assert_allclose(x[i], x_star, rtol=0, atol=1e-8, err_msg=f"problem {i}")
        for j, f in enumerate(free_star):
            if f is not None:
                assert free[i, j] == f, f"problem {i}, variable {j}"
                n_checked += 1
    assert n_checked > 0.9 * N_PROBLEMS * m  # degenerate cases are rare


def test_one_variable_closed_form_equals_projected_newton():
    """m = 1 is solved as clip(-g/H): the same x, free set and status class as the iteration, with no loop;
    and the same statuses for the failures (H <= 0, NaN g, fixed variable, max_iter = 0)."""
    from ilqg_jax.boxqp import _projected_newton

    H, g, lower, upper, x0 = random_problems(1, N_PROBLEMS, seed=21)
    H[:8, 0, 0] = -np.abs(H[:8, 0, 0])  # not positive definite
    g[8:12] = np.nan
    kw = dict(max_iter=100, min_grad=1e-8, min_rel_improve=1e-8, step_dec=0.6, min_step=1e-22, armijo=0.1)
    newton = jax.jit(jax.vmap(lambda *a: _projected_newton(*a, **kw)))(H, g, lower, upper, x0)
    closed = batched_box_qp(H, g, lower, upper, x0)
    np.testing.assert_allclose(np.asarray(closed.x), np.asarray(newton.x), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(np.asarray(closed.free), np.asarray(newton.free))
    ok_closed, ok_newton = (np.isin(np.asarray(r.status), CONVERGED) for r in (closed, newton))
    np.testing.assert_array_equal(ok_closed, ok_newton)
    np.testing.assert_array_equal(np.asarray(closed.status)[~ok_closed], np.asarray(newton.status)[~ok_newton])
    assert np.sum(np.asarray(closed.status) == BoxQPStatus.NOT_POSITIVE_DEFINITE) > 0
    assert np.sum(np.asarray(closed.status) == BoxQPStatus.NO_DESCENT) > 0
    assert np.all(np.asarray(closed.iterations) <= 1)
    zero_iter = jit_box_qp(jnp.array([[2.0]]), jnp.array([1.0]), -1.0, 1.0, jnp.array([0.5]), max_iter=0)
    assert zero_iter.status == BoxQPStatus.MAX_ITER and float(zero_iter.x[0]) == 0.5


def test_unconstrained_is_newton_point_in_one_step():
    H, g, _, _, x0 = random_problems(4, N_PROBLEMS, seed=10)
    inf = np.full_like(g, np.inf)
    res = batched_box_qp(H, g, -inf, inf, x0)
    chex.assert_trees_all_close(res.x, -np.linalg.solve(H, g[..., None])[..., 0], atol=1e-10)
    assert np.all(np.asarray(res.iterations) == 1)
    assert np.all(np.asarray(res.status) == BoxQPStatus.SMALL_GRADIENT)
    assert np.all(np.asarray(res.free))


def test_warm_start_at_solution_converges_in_at_most_one_iteration():
    m, n = 4, N_PROBLEMS
    H, g, lower, upper, x0 = random_problems(m, n, seed=11)
    x_star = np.stack([kkt_oracle(H[i], g[i], lower[i], upper[i])[0] for i in range(n)])
    res = batched_box_qp(H, g, lower, upper, x_star)
    assert np.all(np.asarray(res.iterations) <= 1)
    assert np.all(np.isin(np.asarray(res.status), CONVERGED))
    chex.assert_trees_all_close(res.x, x_star, atol=1e-10)


def test_indefinite_hessian_on_free_set_reports_not_positive_definite():
    H = jnp.array([[1.0, 2.0, 0.0], [2.0, 1.0, 0.0], [0.0, 0.0, 1.0]])  # eigenvalues 3, -1, 1
    g = jnp.array([0.5, -0.3, 1.0])
    lower, upper = -jnp.ones(3), jnp.ones(3)
    x0 = jnp.array([5.0, -0.2, jnp.nan])
    res = jit_box_qp(H, g, lower, upper, x0)
    assert res.status == BoxQPStatus.NOT_POSITIVE_DEFINITE
    assert res.status < 1  # a failure, in iLQG.m's convention
    assert res.iterations == 0
    # Documented behaviour: x is the clipped warm start (non-finite entries -> clipped 0).
    chex.assert_trees_all_close(res.x, jnp.array([1.0, -0.2, 0.0]))
    # Same problem with the offending variable fixed: H_ff is PD, so it solves.
    res_fixed = jit_box_qp(H, g, lower.at[1].set(0.0), upper.at[1].set(0.0), x0)
    assert res_fixed.status in CONVERGED
    assert bool(jnp.all(jnp.isfinite(res_fixed.x)))


def test_indefinite_hessian_under_vmap_does_not_leak_nan():
    H, g, _, _, _ = random_problems(3, N_PROBLEMS, seed=12)
    H = H.copy()
    H[::2] -= 5.0 * np.eye(3)  # every other problem indefinite
    lower, upper = -np.ones_like(g), np.ones_like(g)
    x0 = np.zeros_like(g)  # strictly inside: all variables free at the start
    res = batched_box_qp(H, g, lower, upper, x0)
    status = np.asarray(res.status)
    assert np.all(status[::2] == BoxQPStatus.NOT_POSITIVE_DEFINITE)
    assert np.all(np.isin(status[1::2], CONVERGED))
    assert np.all(np.isfinite(np.asarray(res.x)))


def test_fixed_variables_are_clamped():
    H = jnp.array([[2.0, 0.3], [0.3, 1.0]])
    g = jnp.array([1.0, -1.0])
    res = jit_box_qp(H, g, jnp.array([0.5, -jnp.inf]), jnp.array([0.5, jnp.inf]), jnp.zeros(2))
    assert res.status in CONVERGED
    np.testing.assert_array_equal(res.free, [False, True])
    chex.assert_trees_all_close(res.x, jnp.array([0.5, (1.0 - 0.3 * 0.5) / 1.0]))


def test_all_clamped_status():
    H = jnp.eye(2)
    g = jnp.array([5.0, -5.0])
    res = jit_box_qp(H, g, -jnp.ones(2), jnp.ones(2), jnp.zeros(2))
    assert res.status == BoxQPStatus.ALL_CLAMPED
    np.testing.assert_array_equal(res.free, [False, False])
    chex.assert_trees_all_close(res.x, jnp.array([-1.0, 1.0]))


def test_float32_matches_float64_oracle_to_float32_tolerance():
    m, n = 4, N_PROBLEMS
    H, g, lower, upper, x0 = random_problems(m, n, seed=13)
    args32 = [jnp.asarray(a, jnp.float32) for a in (H, g, lower, upper, x0)]
    res = batched_box_qp(*args32)
    assert res.x.dtype == jnp.float32
    status = np.asarray(res.status)
    assert np.all(np.isin(status, CONVERGED)), np.unique(status, return_counts=True)
    # Inputs rounded to float32 define a slightly different problem: compare to
    # the oracle of the rounded problem.
    H32, g32, lo32, up32 = (np.asarray(a, np.float64) for a in args32[:4])
    x_star = np.stack([kkt_oracle(H32[i], g32[i], lo32[i], up32[i])[0] for i in range(n)])
    np.testing.assert_allclose(np.asarray(res.x), x_star, rtol=0, atol=1e-4)


def test_free_subspace_solve_zeroes_clamped_rows():
    rng = np.random.default_rng(14)
    A = rng.normal(size=(4, 4))
    H = A @ A.T + np.eye(4)
    B = rng.normal(size=(4, 3))
    free = np.array([True, False, True, False])
    X = free_subspace_solve(H, B, free)
    expected = np.zeros((4, 3))
    expected[free] = np.linalg.solve(H[np.ix_(free, free)], B[free])
    chex.assert_trees_all_close(X, expected, atol=1e-12)
    # Vector right-hand side, and all clamped.
    chex.assert_trees_all_close(free_subspace_solve(H, B[:, 0], free), expected[:, 0], atol=1e-12)
    chex.assert_trees_all_close(free_subspace_solve(H, B, np.zeros(4, bool)), np.zeros((4, 3)))


def test_max_iter_stops_with_max_iter_status():
    H, g = jnp.array([[2.0, 0.5], [0.5, 1.0]]), jnp.array([4.0, -3.0])
    res = jit_box_qp(H, g, -jnp.ones(2), jnp.ones(2), jnp.zeros(2), max_iter=0)
    assert res.status == BoxQPStatus.MAX_ITER
    assert res.iterations == 0
    chex.assert_trees_all_close(res.x, jnp.zeros(2))


def test_scalar_bounds_and_shape_errors():
    H, g = jnp.eye(3), jnp.array([3.0, -0.5, 0.0])
    res = jit_box_qp(H, g, -1.0, 1.0, jnp.zeros(3))
    chex.assert_trees_all_close(res.x, jnp.array([-1.0, 0.5, 0.0]))
    with pytest.raises(ValueError, match="x0"):
        box_qp(H, g, -1.0, 1.0, jnp.zeros(2))
    with pytest.raises(ValueError, match="H"):
        box_qp(jnp.ones((3, 2)), g, -1.0, 1.0, jnp.zeros(3))
