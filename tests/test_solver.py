"""Specifications of the core solver, each checked against an independent oracle."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ilqg_jax as ilqg
from ilqg_jax.systems import pendulum
from oracles import riccati

X0 = jnp.array([jnp.pi, 0.0])


def random_init(T, seed=0, m=1):
    return 0.1 * jnp.asarray(np.random.default_rng(seed).standard_normal((T, m)))


# --- Linear-quadratic oracle ------------------------------------------------------------------------


def make_lq(n, m, T, seed):
    """Random time-varying affine dynamics and convex quadratic costs with cross and linear terms."""
    rng = np.random.default_rng(seed)
    A = np.eye(n) + 0.3 * rng.standard_normal((T, n, n))
    B = rng.standard_normal((T, n, m))
    c = 0.1 * rng.standard_normal((T, n))

    def spd(k, shift):
        M = rng.standard_normal((k, k))
        return M @ M.T + shift * np.eye(k)

    W = np.stack([spd(n + m, 0.5) for _ in range(T)])  # joint [x; u] Hessian, positive definite
    Q, S, R = W[:, :n, :n], W[:, n:, :n], W[:, n:, n:]
    q, r = rng.standard_normal((T, n)), rng.standard_normal((T, m))
    Qf, qf = spd(n, 1.0), rng.standard_normal(n)
    return dict(A=A, B=B, c=c, Q=Q, S=S, R=R, q=q, r=r, Qf=Qf, qf=qf)


def lq_problem(lq, T):
    A, B, c = (jnp.asarray(lq[k]) for k in "ABc")
    Q, S, R, q, r = (jnp.asarray(lq[k]) for k in "QSRqr")
    Qf, qf = jnp.asarray(lq["Qf"]), jnp.asarray(lq["qf"])

    def dynamics(x, u, t, p):
        return A[t] @ x + B[t] @ u + c[t]

    def running(x, u, t, p):
        return 0.5 * x @ Q[t] @ x + 0.5 * u @ R[t] @ u + u @ S[t] @ x + q[t] @ x + r[t] @ u

    def terminal(x, p):
        return 0.5 * x @ Qf @ x + qf @ x

    return ilqg.Problem(dynamics, running, terminal, T)


@pytest.mark.parametrize("n,m,T", [(1, 1, 5), (2, 1, 30), (3, 2, 20), (5, 3, 15)])
def test_lqr_matches_riccati_in_one_iteration(n, m, T):
    lq = make_lq(n, m, T, seed=n * 10 + m)
    x0 = np.random.default_rng(1).standard_normal(n)
    us_init = np.random.default_rng(2).standard_normal((T, m))
    sol = ilqg.solve(lq_problem(lq, T), x0, us_init, options=ilqg.Options(max_iter=1, mu_init=0.0))
    xs_ref, us_ref, _ = riccati(lq, x0, T)
    assert int(sol.iterations) == 1
    np.testing.assert_allclose(sol.us, us_ref, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(sol.xs, xs_ref, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("n,m,T,seed", [(3, 2, 25, 7), (5, 3, 15, 8)])
def test_lqr_with_default_options_is_solved_in_one_iteration_and_certified_in_the_second(n, m, T, seed):
    """``mu_init = 1`` does not damp an LQ problem: the unregularised probe step is exact and kept."""
    lq = make_lq(n, m, T, seed=seed)
    x0 = np.ones(n)
    sol = ilqg.solve(lq_problem(lq, T), x0, np.zeros((T, m)))
    _, us_ref, cost_ref = riccati(lq, x0, T)
    assert int(sol.status) == int(ilqg.Status.CONVERGED)
    assert int(sol.iterations) == 2
    assert float(sol.history.mu[1]) == 0.0 and float(sol.history.alpha[1]) == 1.0
    np.testing.assert_allclose(sol.us, us_ref, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(sol.history.cost[1], cost_ref, rtol=1e-12)


def test_newton_probe_is_rejected_where_the_model_is_poor():
    """Far from the optimum of a nonlinear problem the probe is not kept: iteration 1 is regularised."""
    problem = pendulum.swing_up()
    us = 0.1 * np.random.default_rng(0).standard_normal((problem.horizon, 1))
    sol = ilqg.solve(problem, X0, us, options=ilqg.Options(max_iter=1))
    assert float(sol.history.mu[0]) == 1.0
    assert float(sol.history.mu[1]) >= 0.5  # a kept probe leaves mu = 0; a regularised step lowers it by 1.6 at most
    assert float(sol.history.cost[1]) < float(sol.history.cost[0])


# --- Derivatives -------------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [pendulum.swing_up, pendulum.seed_problem], ids=["swing_up", "seed"])
def test_derivatives_match_finite_differences(make):
    problem = make()
    us = jnp.asarray(np.random.default_rng(3).uniform(-3, 3, (100, 1)))
    xs = ilqg.derivatives.rollout(problem.dynamics, X0 + 0.3, us)
    ad = ilqg.derivatives.trajectory_derivatives(problem, xs, us)
    fd = ilqg.derivatives.finite_difference(problem, xs, us)
    # Central differences: ~eps^(2/3) ~ 1e-11 on first, ~eps^(1/2) ~ 1e-8 on second derivatives.
    for name in ("fx", "fu", "lx", "lu"):
        np.testing.assert_allclose(getattr(ad, name), getattr(fd, name), rtol=1e-7, atol=1e-9, err_msg=name)
    for name in ("lxx", "luu", "lux"):
        np.testing.assert_allclose(getattr(ad, name), getattr(fd, name), rtol=1e-5, atol=1e-6, err_msg=name)


def seed_final_cost_derivatives(x):
    """The notebook's hand-written ``calc_final_cost`` derivatives, verbatim (before its ``* dt``)."""
    lx = np.array([2.0 * (1.0 - np.cos(x[0])) * np.sin(x[0]), 0.2 * x[1]])
    lxx = np.array([4.0 * np.sin(x[0] / 2.0) ** 2 * (2 * np.cos(x[0]) + 1), 0.0, 0.0, 0.2]).reshape(2, 2)
    return lx, lxx


def test_seed_cost_derivatives_are_right_but_were_scaled_by_dt():
    """The notebook's formulas are correct; its bug was multiplying them by dt (and not the cost)."""
    for x in np.random.default_rng(4).uniform(-4, 4, (20, 2)):
        lx, lxx = seed_final_cost_derivatives(x)
        np.testing.assert_allclose(jax.grad(pendulum.seed_terminal_cost)(jnp.asarray(x)), lx, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(jax.hessian(pendulum.seed_terminal_cost)(jnp.asarray(x)), lxx, atol=1e-12)
        # What the notebook fed to the backward pass: dt * lx, a gradient of a cost 20x smaller than the one
        # it evaluated for line search -- inconsistent unless dt == 1.
        assert not np.allclose(lx * pendulum.SEED_DT, lx)


def test_seed_jacobian_is_already_discrete():
    """``fx`` of the seed's (already discrete) dynamics is what the solver uses; the notebook's
    ``I + fx * dt`` is a different matrix."""
    problem = pendulum.seed_problem()
    x, u = jnp.array([3.0, 0.5]), jnp.array([0.5])
    fx, fu = jax.jacfwd(problem.dynamics, argnums=(0, 1))(x, u, 0, None)
    # By hand for the semi-implicit step (speed not clipped here): th' = th + dt * w', w' = w + dt * a.
    dt, a_th = pendulum.SEED_DT, 15.0 * np.cos(3.0)
    expected = np.array([[1 + dt * dt * a_th, dt], [dt * a_th, 1.0]])
    np.testing.assert_allclose(fx, expected, rtol=1e-12)
    np.testing.assert_allclose(fu[:, 0], [dt * dt * 3.0, dt * 3.0], rtol=1e-12)
    assert np.abs(np.eye(2) + fx * dt - fx).max() > 0.5


# --- The pendulum --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def swing_up_solution():
    return ilqg.solve(pendulum.swing_up(), X0, random_init(100))


def test_swing_up_reaches_upright(swing_up_solution):
    sol = swing_up_solution
    assert sol.status == ilqg.Status.CONVERGED
    theta, omega = float(sol.xs[-1, 0]), float(sol.xs[-1, 1])
    assert abs(np.angle(np.exp(1j * theta))) < 0.05 and abs(omega) < 0.1
    np.testing.assert_allclose(sol.xs[0], X0)


def test_solution_is_consistent(swing_up_solution):
    """xs is the rollout of us, cost is the cost of (xs, us), history ends at the returned cost."""
    sol, problem = swing_up_solution, pendulum.swing_up()
    xs = ilqg.derivatives.rollout(problem.dynamics, X0, sol.us)
    np.testing.assert_allclose(sol.xs, xs, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(sol.cost, ilqg.derivatives.trajectory_cost(problem, xs, sol.us), rtol=1e-12)
    it = int(sol.iterations)
    assert sol.history.cost.shape == (ilqg.Options().max_iter + 1,)
    np.testing.assert_allclose(sol.history.cost[it], sol.cost, rtol=1e-12)
    assert np.all(np.isnan(sol.history.cost[it + 1:]))
    chex.assert_shape([sol.K, sol.k], [(100, 1, 2), (100, 1)])


@pytest.mark.parametrize("make,seed", [(pendulum.swing_up, 0), (pendulum.swing_up, 5), (pendulum.seed_problem, 1)])
def test_cost_never_increases_across_iterations(make, seed):
    # Beyond rounding: a step whose expected gain is below what float64 resolves (64 eps relative) is
    # accepted when the cost moved by no more than that noise.
    sol = ilqg.solve(make(), X0, random_init(100, seed), options=ilqg.Options(max_iter=300))
    costs = np.asarray(sol.history.cost[: int(sol.iterations) + 1])
    assert np.all(np.diff(costs) <= 64 * np.finfo(np.float64).eps * np.abs(costs[:-1]))
    assert costs[-1] < costs[0]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_seed_problem_converges(seed):
    """The notebook's problem (clipping and all) converges; the notebook printed "Dit not converge!".

    With no state cost along the way and effort charged per step (not per second), lifting the
    pendulum costs more than it saves: the optimum stops short of upright (about 2.1 rad). The
    speed clip makes the cost non-smooth, so "converged" means no step lowers the cost by more
    than the tolerance (STALLED, or CONVERGED when stationarity is certified), reached from every start
    with a large decrease from the initial cost.
    """
    us0 = random_init(100, seed)
    sol = ilqg.solve(pendulum.seed_problem(), X0, us0, options=ilqg.Options(max_iter=300))
    # The clipping makes the cost non-smooth where the optimum rides the speed limit: the solver may not
    # certify stationarity there, and then says so (STALLED) once the cost has stopped moving.
    assert int(sol.status) in (ilqg.Status.CONVERGED, ilqg.Status.STALLED)
    assert float(sol.cost) < 0.75 * float(sol.history.cost[0])
    assert 1.5 < float(sol.xs[-1, 0]) < 2.6


def test_float32_matches_float64(swing_up_solution):
    sol32 = ilqg.solve(pendulum.swing_up(), X0.astype(jnp.float32), random_init(100).astype(jnp.float32))
    assert sol32.xs.dtype == jnp.float32
    assert sol32.status == ilqg.Status.CONVERGED
    np.testing.assert_allclose(sol32.cost, swing_up_solution.cost, rtol=1e-4)
    np.testing.assert_allclose(sol32.us, swing_up_solution.us, atol=2e-2)


def test_parallel_line_search_reaches_the_same_optimum(swing_up_solution):
    sol = ilqg.solve(pendulum.swing_up(), X0, random_init(100), options=ilqg.Options(line_search="parallel"))
    assert sol.status == ilqg.Status.CONVERGED
    np.testing.assert_allclose(sol.cost, swing_up_solution.cost, rtol=1e-8)


def test_params_pytree_changes_the_solution():
    base = pendulum.swing_up_params()
    heavy = base._replace(model=base.model._replace(m=jnp.asarray(2.0)))
    a = ilqg.solve(pendulum.swing_up(), X0, random_init(100), base)
    b = ilqg.solve(pendulum.swing_up(), X0, random_init(100), heavy)
    assert a.converged and b.converged
    # Twice the mass needs more torque for the same swing: evaluated on the heavy pendulum, the light one's
    # optimal controls cost more than the heavy one's own optimum (the two solutions differ).
    heavy_cost = ilqg.derivatives.trajectory_cost(
        pendulum.swing_up(), ilqg.derivatives.rollout(pendulum.swing_up().dynamics, X0, a.us, heavy), a.us, heavy)
    assert float(heavy_cost) > float(b.cost) * (1 + 1e-3)
    assert float(jnp.max(jnp.abs(a.us - b.us))) > 0.1


def test_nonfinite_initial_rollout_returns_status():
    def dynamics(x, u, t, p):
        return x + jnp.log(x) * u  # NaN for x < 0

    problem = ilqg.Problem(dynamics, lambda x, u, t, p: jnp.sum(x**2 + u**2), lambda x, p: jnp.sum(x**2), 10)
    sol = ilqg.solve(problem, jnp.array([-1.0]), jnp.ones((10, 1)))
    assert sol.status == ilqg.Status.NONFINITE
    assert int(sol.iterations) == 0


def test_nonfinite_region_is_avoided_and_reported():
    """Steps into a region where the cost is NaN are rejected; the returned trajectory is finite."""

    def running(x, u, t, p):
        return jnp.sum(u**2) + jnp.where(x[0] > 2.0, jnp.nan, 0.0)

    problem = ilqg.Problem(lambda x, u, t, p: x + 0.1 * u, running, lambda x, p: -10.0 * x[0], 20)
    sol = ilqg.solve(problem, jnp.array([0.0]), jnp.zeros((20, 1)), options=ilqg.Options(max_iter=50))
    assert np.all(np.isfinite(sol.xs)) and np.isfinite(float(sol.cost))
    assert int(sol.status) in (ilqg.Status.REGULARIZATION_LIMIT, ilqg.Status.NONFINITE, ilqg.Status.CONVERGED)
    assert float(jnp.max(sol.xs[:-1, 0])) <= 2.0


def test_zero_cost_start_converges_at_once():
    """Upright at rest with zero torque costs exactly 0 and nothing can be gained: CONVERGED, unchanged."""
    for problem in (pendulum.swing_up(40), pendulum.swing_up_limited(2.0, horizon=40)):
        sol = ilqg.solve(problem, jnp.zeros(2), jnp.zeros((40, 1)))
        assert float(sol.cost) == 0.0
        assert sol.status == ilqg.Status.CONVERGED and int(sol.iterations) == 1
        np.testing.assert_array_equal(sol.us, 0.0)


def _update_after(step_alpha, new_cost, expected):
    """``(status, cost before)`` that :func:`ilqg_jax.solver._update` gives an accepted step of the swing-up."""
    from ilqg_jax import solver

    problem, options = pendulum.swing_up(20), ilqg.Options()
    us = random_init(20)
    state = solver._init_state(problem, X0, us, None, options, ilqg.derivatives.trajectory_derivatives)
    bw = solver._backward(problem, state, jnp.asarray(1e3), options)  # hanging: Quu needs a large mu
    assert bool(bw.ok)
    bw = bw._replace(dV=jnp.array([-expected, 0.0]))  # expected decrease of a full step
    step = (jnp.array(True), jnp.asarray(step_alpha), state.xs, state.us, jnp.asarray(new_cost), jnp.array(False))
    tol = solver.effective_tol(options, jnp.float64)
    new = solver._update(problem, None, options, tol, ilqg.derivatives.trajectory_derivatives, state, bw, step)
    return int(new.status), float(state.cost)


def test_stopping_rule():
    """CONVERGED needs stationarity (the Newton step, relative to the controls, below stationarity_tol) with
    the regularisation off, and a full step promising at most tol; a small decrease alone is not enough."""
    from ilqg_jax import solver

    problem, options = pendulum.swing_up(20), ilqg.Options()
    state = solver._init_state(problem, X0, random_init(20), None, options, ilqg.derivatives.trajectory_derivatives)
    bw = solver._backward(problem, state, jnp.asarray(1e3), options)  # hanging: Quu needs a large mu
    assert bool(bw.ok)
    tol = solver.effective_tol(options, jnp.float64)

    def status(k, mu, expected, new_cost):
        s = state._replace(mu=jnp.asarray(mu))
        b = bw._replace(k=jnp.full_like(bw.k, k), dV=jnp.array([-expected, 0.0]))
        step = (jnp.array(True), jnp.asarray(1.0), s.xs, s.us, jnp.asarray(new_cost), jnp.array(False))
        return int(solver._update(problem, None, options, tol, ilqg.derivatives.trajectory_derivatives, s, b,
                                  step).status)

    cost = float(state.cost)
    tiny = cost * (1 - 1e-12)
    stationary = 1e-3 * options.stationarity_tol
    assert status(stationary, 0.0, 1e-12 * cost, tiny) == ilqg.Status.CONVERGED
    assert status(0.0, 1e3, 0.0, tiny) == ilqg.Status.CONVERGED  # exactly stationary: whatever mu
    assert status(stationary, 1e3, 1e-12 * cost, tiny) == solver._RUNNING  # regularised: no certificate
    assert status(1e-2, 0.0, 1e-12 * cost, tiny) == solver._RUNNING  # not stationary, cost flat: go on
    assert status(stationary, 0.0, 1e-3 * cost, tiny) == solver._RUNNING  # a full step still gains


def test_stall_is_reported_when_the_cost_stops_moving_without_stationarity():
    """The seed notebook's clipped dynamics: a non-smooth cost; STALLED or CONVERGED, never a silent MAX_ITER."""
    sol = ilqg.solve(pendulum.seed_problem(), X0, random_init(100, 0), options=ilqg.Options(max_iter=300))
    assert int(sol.status) in (ilqg.Status.CONVERGED, ilqg.Status.STALLED)
    if int(sol.status) == ilqg.Status.STALLED:
        it = int(sol.iterations)
        costs = np.asarray(sol.history.cost[it - 10: it + 1])
        assert np.all(costs[:-1] - costs[1:] <= 1e-7 * np.abs(costs[:-1]))


def test_max_iter_status():
    sol = ilqg.solve(pendulum.swing_up(), X0, random_init(100), options=ilqg.Options(max_iter=3))
    assert sol.status == ilqg.Status.MAX_ITER and int(sol.iterations) == 3


# --- Control limits ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def limited_solution():
    return ilqg.solve(pendulum.swing_up_limited(2.0), X0, random_init(100), options=ilqg.Options(max_iter=200))


def test_limited_swing_up_respects_limits_and_reaches_upright(limited_solution, swing_up_solution):
    sol = limited_solution
    assert sol.status == ilqg.Status.CONVERGED
    assert float(jnp.max(jnp.abs(sol.us))) <= 2.0 + 1e-12
    assert bool(pendulum.upright(sol.xs[-1]))
    # It must pump: the angle passes through hanging more than once (several swings).
    assert float(jnp.max(jnp.abs(sol.us))) == pytest.approx(2.0)
    # The limited optimum is feasible without limits: the unlimited solve started there can only improve it.
    free = ilqg.solve(pendulum.swing_up(), X0, sol.us)
    assert free.converged and float(free.cost) <= float(sol.cost)


def test_limited_gains_are_zero_where_clamped(limited_solution):
    sol = limited_solution
    clamped = np.abs(np.asarray(sol.us[:, 0])) >= 2.0 - 1e-9
    assert clamped.any()
    np.testing.assert_array_equal(np.asarray(sol.K)[clamped], 0.0)


def test_wide_limits_equal_unconstrained(swing_up_solution):
    opts = ilqg.Options(tol=1e-12)
    wide = ilqg.solve(pendulum.swing_up(u_max=1e3), X0, random_init(100), options=opts)
    free = ilqg.solve(pendulum.swing_up(), X0, random_init(100), options=opts)
    # Both stop on a relative cost change of 1e-12; controls agree to ~sqrt of that.
    np.testing.assert_allclose(wide.cost, free.cost, rtol=1e-11)
    np.testing.assert_allclose(wide.us, free.us, atol=1e-5)


@pytest.mark.parametrize("k", [1, 3, 5, 8, 10])
def test_convexify_projects_onto_the_psd_cone_like_numpy(k):
    """The per-step PSD projection (Jacobi sweeps up to 6x6, LAPACK above) equals NumPy's eigh-based one."""
    from ilqg_jax.derivatives import _psd

    H = np.random.default_rng(k).standard_normal((20, k, k))
    H = H + np.swapaxes(H, 1, 2)
    w, V = np.linalg.eigh(H)
    expected = (V * np.maximum(w, 0.0)[:, None, :]) @ np.swapaxes(V, 1, 2)
    np.testing.assert_allclose(_psd(jnp.asarray(H)), expected, rtol=0, atol=1e-12)
