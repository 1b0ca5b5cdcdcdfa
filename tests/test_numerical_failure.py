"""Numerical failure during a solve: each case ends with its documented ``Status`` within
``max_iter``, keeps the last finite trajectory, and does not spoil the other members of a
batch (``jax.vmap`` of ``solve``, and ``solve_batch``).

One problem (a double integrator) whose failure modes are switched on by ``params``, so that
every case shares one compiled program (and each kind of batch one more): a NaN in the
dynamics or an inf in the running cost at one time step, an indefinite ``Quu`` (concave in
``u``), a cost unbounded below, a cost whose derivatives are NaN where its value is not.

Status by case (the README's table; ``max_iter = 150``):

============================  ============================================================
case                          status
============================  ============================================================
healthy                       CONVERGED
NaN in the initial rollout    NONFINITE, ``iterations == 0``, the initial rollout returned
NaN region (dynamics)         NONFINITE: stalled at the region's edge, finite trajectory
inf region (running cost)     NONFINITE: stalled at the region's edge, finite trajectory
Quu < 0 beyond mu_max         REGULARIZATION_LIMIT after 1 iteration, ``us == us_init``
unbounded below (linear)      MAX_ITER, cost falling every iteration, finite trajectory
unbounded below (concave)     MAX_ITER, cost falling every iteration, finite trajectory
unbounded below, overflowing  NONFINITE: stalled where the steps overflow, finite trajectory
NaN derivatives               NONFINITE, the step into them is not taken
NaN x0 inside vmap            NONFINITE, ``iterations == 0`` (for that member only)
============================  ============================================================
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ilqg_jax as ilqg

S = ilqg.Status
T = 20
#: The failure paths of the regularisation schedule on the exact Hessians: with ``convexify`` (the default)
#: a cost concave in ``u`` is projected to a convex model while ``mu > 0``, so instead of the regularisation
#: limit such a problem runs downhill to ``MAX_ITER`` or an overflow (``NONFINITE``), as tested below.
OPTIONS = ilqg.Options(max_iter=150, convexify=False)


@jax.custom_jvp
def nan_derivative(z):
    """Zero, with a NaN derivative where ``z > 0`` (a finite cost whose derivatives are not)."""
    return jnp.zeros_like(z)


@nan_derivative.defjvp
def _nan_derivative_jvp(primals, tangents):
    (z,), (dz,) = primals, tangents
    return nan_derivative(z), jnp.where(z > 0, jnp.nan, 0.0) * dz


def dynamics(x, u, t, p):
    x_next = jnp.stack([x[0] + 0.1 * x[1], x[1] + 0.1 * u[0]])
    return jnp.where((t == p["nan_t"]) & (x[0] > p["nan_above"]), jnp.nan, x_next)


def running_cost(x, u, t, p):
    c = 0.5 * p["q"] * x @ x + 0.5 * p["r"] * u @ u + p["lin"] * jnp.sum(u) + nan_derivative(x[0] - p["dnan_above"])
    return jnp.where((t == p["inf_t"]) & (u[0] > p["inf_above"]), jnp.inf, c)


def terminal_cost(x, p):
    return p["qf"] * ((x[0] - 1.0) ** 2 + x[1] ** 2)


PROBLEM = ilqg.Problem(dynamics, running_cost, terminal_cost, T)
#: For the test's own jit: the same program with less LLVM optimisation (30% less compile time).
FAST_COMPILE = {"xla_backend_optimization_level": 0}
HEALTHY = dict(q=0.02, r=1.0, lin=0.0, qf=10.0, nan_t=-1, nan_above=np.inf, inf_t=-1, inf_above=np.inf,
               dnan_above=np.inf)
CASES = {
    "healthy": {},
    "nan_in_initial_rollout": dict(nan_t=5, nan_above=-np.inf),
    "nan_region_in_dynamics": dict(nan_t=12, nan_above=0.3),
    "inf_region_in_cost": dict(inf_t=3, inf_above=0.2),
    "quu_indefinite_beyond_mu_max": dict(r=-1e12),
    "unbounded_below_linear": dict(q=0.0, qf=0.0, r=0.0, lin=1.0),
    "unbounded_below_concave": dict(r=-1.0),
    "unbounded_below_overflows": dict(q=0.0, qf=0.0, r=0.0, lin=1e150),
    "nan_derivatives": dict(dnan_above=0.3),
}
EXPECTED = {
    "healthy": S.CONVERGED,
    "nan_in_initial_rollout": S.NONFINITE,
    "nan_region_in_dynamics": S.NONFINITE,
    "inf_region_in_cost": S.NONFINITE,
    "quu_indefinite_beyond_mu_max": S.REGULARIZATION_LIMIT,
    "unbounded_below_linear": S.MAX_ITER,
    "unbounded_below_concave": S.MAX_ITER,
    "unbounded_below_overflows": S.NONFINITE,
    "nan_derivatives": S.NONFINITE,
}


def params(case):
    p = {**HEALTHY, **CASES[case]}
    return {k: jnp.asarray(v, jnp.int32 if k.endswith("_t") else jnp.float64) for k, v in p.items()}


def inputs():
    return jnp.zeros(2), jnp.zeros((T, 1))


_solutions = {}


def solve(case):
    """The public solve of one case (every case: the same compiled program); memoized."""
    if case not in _solutions:
        _solutions[case] = ilqg.solve(PROBLEM, *inputs(), params(case), OPTIONS)
    return _solutions[case]


rollout = jax.jit(functools.partial(ilqg.derivatives.rollout, dynamics))
trajectory_cost = jax.jit(functools.partial(ilqg.derivatives.trajectory_cost, PROBLEM))


def initial_rollout(case):
    return rollout(*inputs(), params(case))


def assert_last_finite_trajectory(sol):
    """Finite, self-consistent (xs is the rollout of us, cost its cost) and never worse than the start."""
    it = int(sol.iterations)
    assert np.all(np.isfinite(sol.xs)) and np.all(np.isfinite(sol.us)) and np.isfinite(float(sol.cost))
    costs = np.asarray(sol.history.cost[: it + 1])
    assert np.all(np.diff(costs) <= 64 * np.finfo(np.float64).eps * np.abs(costs[:-1])), costs
    np.testing.assert_allclose(sol.history.cost[it], sol.cost, rtol=1e-12)
    assert np.all(np.isnan(np.asarray(sol.history.cost[it + 1:])))


@pytest.mark.parametrize("case", list(CASES))
def test_status_within_max_iter(case):
    sol = solve(case)
    assert S(int(sol.status)) == EXPECTED[case], (case, S(int(sol.status)).name, int(sol.iterations))
    assert 0 <= int(sol.iterations) <= OPTIONS.max_iter
    assert bool(sol.converged) == (EXPECTED[case] == S.CONVERGED)


@pytest.mark.parametrize("case", [c for c in CASES if c != "nan_in_initial_rollout"])
def test_returned_trajectory_is_finite_and_consistent(case):
    sol = solve(case)
    assert_last_finite_trajectory(sol)
    xs = rollout(inputs()[0], sol.us, params(case))
    np.testing.assert_allclose(sol.xs, xs, rtol=1e-12, atol=1e-12)
    cost = trajectory_cost(sol.xs, sol.us, params(case))
    np.testing.assert_allclose(sol.cost, cost, rtol=1e-10)


def test_nan_in_initial_rollout_stops_at_iteration_zero():
    sol = solve("nan_in_initial_rollout")
    assert int(sol.iterations) == 0 and np.isnan(float(sol.cost))
    np.testing.assert_array_equal(sol.us, inputs()[1])
    np.testing.assert_array_equal(sol.xs, initial_rollout("nan_in_initial_rollout"))  # NaN from t = 6 on
    assert np.all(np.isfinite(sol.xs[:6])) and np.all(np.isnan(sol.xs[6:]))


@pytest.mark.parametrize("case,t,limit,which", [("nan_region_in_dynamics", 12, 0.3, "x"),
                                                 ("inf_region_in_cost", 3, 0.2, "u")])
def test_solver_stalls_at_the_edge_of_a_nonfinite_region(case, t, limit, which):
    """The unconstrained optimum lies inside the region; the solve ends at its edge, having made progress."""
    healthy, sol = solve("healthy"), solve(case)
    value = float(sol.xs[t, 0]) if which == "x" else float(sol.us[t, 0])
    assert value <= limit and value == pytest.approx(limit, abs=1e-3)
    free_value = float(healthy.xs[t, 0]) if which == "x" else float(healthy.us[t, 0])
    assert free_value > limit  # the region blocked the way to the optimum ...
    assert float(healthy.cost) < float(sol.cost) < 0.6 * float(sol.history.cost[0])  # ... after real progress


def test_indefinite_quu_stops_at_the_regularization_limit_unchanged():
    """Quu = -1e12 + ...: Cholesky fails for every mu <= mu_max = 1e10; nothing is ever accepted."""
    sol = solve("quu_indefinite_beyond_mu_max")
    # The first iteration runs the backward pass again at a rising mu (1.6^(k(k+1)/2) from mu_init = 1)
    # until mu passes 1e10: one iteration, no step.
    assert int(sol.iterations) == 1
    assert float(sol.history.mu[1]) > OPTIONS.mu_max
    assert np.isnan(float(sol.history.alpha[1]))
    np.testing.assert_array_equal(sol.us, inputs()[1])
    np.testing.assert_array_equal(sol.xs, initial_rollout("quu_indefinite_beyond_mu_max"))


@pytest.mark.parametrize("case", ["unbounded_below_linear", "unbounded_below_concave"])
def test_unbounded_below_runs_to_max_iter_with_a_falling_cost(case):
    sol = solve(case)
    costs = np.asarray(sol.history.cost)
    assert int(sol.iterations) == OPTIONS.max_iter and np.all(np.isfinite(costs))
    accepted = np.isfinite(np.asarray(sol.history.alpha[1:]))
    assert accepted.sum() >= OPTIONS.max_iter // 2  # a step lowers the cost at least every other iteration
    assert np.all(np.diff(costs)[accepted] < 0)
    assert costs[-1] < costs[0] - 1e6


def test_unbounded_below_stops_at_overflow_with_nonfinite():
    """A steep linear cost (1e150 u) reaches -1e305 within a few dozen iterations; the steps beyond
    overflow to -inf, and the solver stops there with NONFINITE -- it used to report CONVERGED for such
    an 'optimum' (seen in float32 with the concave cost at -3e38)."""
    sol = solve("unbounded_below_overflows")
    assert int(sol.iterations) < OPTIONS.max_iter
    assert_last_finite_trajectory(sol)
    assert -np.finfo(np.float64).max < float(sol.cost) < -1e300


def test_nan_derivatives_reject_the_step_into_them():
    """The first step lowers the cost (x[0] passes 0.3) but lands where the derivatives are NaN: NONFINITE,
    and the returned trajectory is the one before that step (derivatives finite: x[0] <= 0.3)."""
    sol, healthy = solve("nan_derivatives"), solve("healthy")
    assert int(sol.iterations) == 1
    np.testing.assert_array_equal(sol.us, inputs()[1])
    assert np.isnan(float(sol.history.alpha[1]))
    assert float(jnp.max(sol.xs[:-1, 0])) <= 0.3 < float(jnp.max(healthy.xs[:-1, 0]))


# --- Inside vmap and solve_batch ------------------------------------------------------------------------


def batch_inputs():
    """Every case, plus a healthy member whose x0 is NaN: ``(names, x0s, stacked params)``."""
    names = [*CASES, "nan_x0"]
    ps = [params(c if c in CASES else "healthy") for c in names]
    x0s = np.zeros((len(names), 2))
    x0s[-1, 0] = np.nan
    return names, x0s, jax.tree.map(lambda *a: jnp.stack(a), *ps)


def assert_members_equal_single_solves(names, sols):
    sols = jax.tree.map(np.asarray, sols)
    for i, case in enumerate(names):
        sol = jax.tree.map(lambda a: a[i], sols)
        if case == "nan_x0":
            assert S(int(sol.status)) == S.NONFINITE and int(sol.iterations) == 0
            continue
        single = solve(case)
        assert int(sol.status) == int(single.status), case
        assert int(sol.iterations) == int(single.iterations), case
        for name in ("xs", "us", "cost"):
            np.testing.assert_allclose(getattr(sol, name), getattr(single, name), rtol=1e-9, atol=1e-9,
                                       equal_nan=True, err_msg=f"{case}: {name}")


def test_vmap_failing_members_do_not_spoil_the_others():
    """jit(vmap(solve)): inside vmap x0 is a tracer, so its NaN is not caught by validation but reported."""
    names, x0s, ps = batch_inputs()
    us = inputs()[1]
    solve_all = jax.jit(jax.vmap(lambda x0, p: ilqg.solve(PROBLEM, x0, us, p, OPTIONS)),
                        compiler_options=FAST_COMPILE)
    sols = solve_all(x0s, ps)
    assert_members_equal_single_solves(names, sols)


def test_solve_batch_failing_members_do_not_spoil_the_others():
    from ilqg_jax.batch import solve_batch

    names, x0s, ps = batch_inputs()
    with pytest.raises(ValueError, match=rf"x0s\[{len(names) - 1}\] is not finite"):
        solve_batch(PROBLEM, x0s, inputs()[1], ps, OPTIONS, params_axis=0)
    sols = solve_batch(PROBLEM, x0s, inputs()[1], ps, OPTIONS, params_axis=0, on_nonfinite="status")
    assert_members_equal_single_solves(names, sols)


@pytest.mark.parametrize("case", ["quu_indefinite_beyond_mu_max", "unbounded_below_concave"])
def test_concave_cost_with_convexified_model_returns_a_failure_status(case):
    """Default options: the convexified model walks down a cost unbounded below -- never CONVERGED."""
    sol = ilqg.solve(PROBLEM, *inputs(), params(case), ilqg.Options(max_iter=150))
    assert S(int(sol.status)) in (S.MAX_ITER, S.NONFINITE)
    assert np.all(np.isfinite(sol.xs)) and float(sol.cost) < float(sol.history.cost[0])


def test_solve_batch_retries_the_failed_members_in_rounds_as_single_solves_do():
    """Backward passes that fail are run again within the iteration at a rising mu, for the failed members
    only, an eighth of the slots at a time: five members that need 6 to 10 retries each in their first
    iteration (one slot's worth per round) still equal their single solves, the mu and step histories
    included."""
    from ilqg_jax.batch import solve_batch

    rs = [1.0, -1e12, 1.0, -1e6, -1e4, 1.0, -1e12, -1e12]
    options = ilqg.Options(max_iter=4, convexify=False)
    ps = [{**params("healthy"), "r": jnp.asarray(r)} for r in rs]
    sols = solve_batch(PROBLEM, np.zeros((len(rs), 2)), inputs()[1], jax.tree.map(lambda *a: jnp.stack(a), *ps),
                       options, params_axis=0, slots=len(rs))
    for i, (r, p) in enumerate(zip(rs, ps)):
        single = ilqg.solve(PROBLEM, *inputs(), p, options)
        assert int(sols.status[i]) == int(single.status) and int(sols.iterations[i]) == int(single.iterations), r
        for name in ("mu", "alpha", "cost"):
            np.testing.assert_allclose(getattr(sols.history, name)[i], getattr(single.history, name), rtol=1e-9,
                                       equal_nan=True, err_msg=f"r = {r}: history.{name}")
        if r == -1e12:  # every retry up to mu_max in the first iteration
            assert int(single.iterations) == 1 and S(int(single.status)) == S.REGULARIZATION_LIMIT
        elif r < 0:  # the retries found a mu that works, and the first iteration took a step with it
            assert float(single.history.mu[1]) > -r / 4 and np.isfinite(float(single.history.alpha[1])), r
