"""Properties of the solver on random problems (hypothesis), and its behaviour at scale.

Random problems are time-varying, affine dynamics ``x' = A_t x + B_t u + c_t + eps sin(x)``
with convex quadratic costs (cross and linear terms), weights drawn at random; ``eps = 0``
is linear-quadratic, with the Riccati recursion as the oracle. Every problem is the same
three functions with its weights in ``params`` and its control limits as leaves of the
``Problem``, and a whole batch is solved by one ``jit(vmap(solve))`` -- so each (n, m, T)
shape of :data:`SHAPES` and dtype compiles once, however many examples hypothesis draws.
Unconstrained members have limits ``(-inf, inf)`` (so they take the box-QP path: the
unconstrained Cholesky path has its Riccati test in ``test_solver.py``). That program is
compiled with ``xla_backend_optimization_level=0``: the same HLO, less LLVM optimisation,
30% less compile time at sizes that run in microseconds.

Examples are derandomized (the same ones on every run, no database): these are
specifications run in CI, not a fuzzing campaign; raise ``max_examples`` locally to search.
"""

import functools

import jax
import jax.monitoring
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import ilqg_jax as ilqg
from oracles import riccati

S = ilqg.Status
SHAPES = [(2, 1, 8), (3, 2, 12)]  # (n, m, T)
BATCH = 4
OPTIONS = ilqg.Options(max_iter=30, mu_init=0.0)
PROPERTY = settings(deadline=None, max_examples=15, derandomize=True, database=None)


def dynamics(x, u, t, p):
    return p["A"][t] @ x + p["B"][t] @ u + p["c"][t] + p["eps"] * jnp.sin(x)


def running_cost(x, u, t, p):
    return 0.5 * x @ p["Q"][t] @ x + 0.5 * u @ p["R"][t] @ u + u @ p["S"][t] @ x + p["q"][t] @ x + p["r"][t] @ u


def terminal_cost(x, p):
    return 0.5 * x @ p["Qf"] @ x + p["qf"] @ x


def random_member(rng, n, m, T, eps, shift, limited):
    """Weights, x0, us_init and limits of one random problem (NumPy, float64)."""
    G = rng.standard_normal((T, n + m, n + m))
    W = G @ G.transpose(0, 2, 1) / (n + m) + shift * np.eye(n + m)  # joint [x; u] Hessian, positive definite
    F = rng.standard_normal((n, n))
    p = dict(A=np.eye(n) + 0.2 / np.sqrt(n) * rng.standard_normal((T, n, n)), B=0.5 * rng.standard_normal((T, n, m)),
             c=0.1 * rng.standard_normal((T, n)), Q=W[:, :n, :n], R=W[:, n:, n:], S=W[:, n:, :n],
             q=rng.standard_normal((T, n)), r=rng.standard_normal((T, m)), Qf=F @ F.T / n + np.eye(n),
             qf=rng.standard_normal(n), eps=np.asarray(eps))
    if limited:
        mid, half = 0.5 * rng.standard_normal(m), rng.uniform(0.05, 1.0, m)
        half[rng.random(m) < 0.15] = 0.0  # now and then a control fixed by lower == upper
        lo, hi = mid - half, mid + half
    else:
        lo, hi = np.full(m, -np.inf), np.full(m, np.inf)
    return p, rng.standard_normal(n), 2.0 * rng.standard_normal((T, m)), lo, hi


def random_batch(shape, seed, eps=0.0, shift=0.5, limited=(False,) * BATCH):
    """``BATCH`` random problems as stacked arrays: ``(problems, x0s, us_inits, params)`` in float64."""
    n, m, T = shape
    rng = np.random.default_rng(seed)
    members = [random_member(rng, n, m, T, eps, shift, lim) for lim in limited]
    stack = lambda i: np.stack([mem[i] for mem in members])  # noqa: E731
    params = {k: np.stack([mem[0][k] for mem in members]) for k in members[0][0]}
    return batched_problem(T, stack(3), stack(4)), stack(1), stack(2), params


def batched_problem(T, lower, upper):
    """A Problem whose limits carry a leading batch axis (built by unflattening: not a user-facing Problem)."""
    template = ilqg.Problem(dynamics, running_cost, terminal_cost, T, lower[0], upper[0])
    return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(template), [jnp.asarray(lower),
                                                                                  jnp.asarray(upper)])


@functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0})
def solve_batch(problems, x0s, us_inits, params):
    """``jax.vmap`` of the public solve (compiled with less LLVM optimisation: 30% less compile time)."""
    return jax.vmap(lambda prob, x0, us, p: ilqg.solve(prob, x0, us, p, OPTIONS))(problems, x0s, us_inits, params)


def cast(tree, dtype):
    return jax.tree.map(lambda a: jnp.asarray(a, dtype), tree)


def member(tree, i):
    return jax.tree.map(lambda a: np.asarray(a[i]), tree)


shapes = st.sampled_from(SHAPES)
seeds = st.integers(0, 2**32 - 1)
shifts = st.floats(0.05, 2.0)  # smallest eigenvalue of the joint cost Hessian, roughly


@PROPERTY
@given(shape=shapes, seed=seeds, shift=shifts)
def test_lqr_one_iteration_with_mu_zero_matches_riccati(shape, seed, shift):
    n, m, T = shape
    problems, x0s, us_inits, params = random_batch(shape, seed, shift=shift)
    sols = solve_batch(problems, x0s, us_inits, params)
    for i in range(BATCH):
        sol, p = member(sols, i), member(params, i)
        xs_ref, us_ref, cost_ref = riccati(p, x0s[i], T)
        # Iteration 1: the full step (alpha = 1) of mu = 0 is the Riccati solution; later steps change nothing.
        assert sol.history.alpha[1] == 1.0 and sol.history.mu[0] == 0.0
        np.testing.assert_allclose(sol.history.cost[1], cost_ref, rtol=1e-9, atol=1e-9)
        assert S(int(sol.status)) == S.CONVERGED and int(sol.iterations) <= 3
        scale = 1.0 + np.abs(us_ref).max()
        np.testing.assert_allclose(sol.us, us_ref, rtol=0, atol=1e-7 * scale)
        np.testing.assert_allclose(sol.xs, xs_ref, rtol=0, atol=1e-7 * (1.0 + np.abs(xs_ref).max()))


@PROPERTY
@given(shape=shapes, seed=seeds, eps=st.floats(0.0, 0.5), limited=st.lists(st.booleans(), min_size=BATCH,
                                                                          max_size=BATCH))
def test_cost_never_increases_across_accepted_iterations(shape, seed, eps, limited):
    problems, x0s, us_inits, params = random_batch(shape, seed, eps=eps, limited=tuple(limited))
    sols = solve_batch(problems, x0s, us_inits, params)
    for i in range(BATCH):
        sol = member(sols, i)
        it = int(sol.iterations)
        assert S(int(sol.status)) != S.NONFINITE and 1 <= it <= OPTIONS.max_iter
        costs, alphas = sol.history.cost[: it + 1], sol.history.alpha[1: it + 1]
        steps = np.diff(costs)
        accepted = np.isfinite(alphas)
        # an accepted step lowers the cost (or, when its expected gain is below float64's resolution, leaves
        # it within that rounding noise) ...
        assert np.all(steps[accepted] <= 64 * np.finfo(np.float64).eps * np.abs(costs[:-1][accepted])), costs
        assert np.all(steps[~accepted] == 0.0), costs  # ... a rejected one keeps it
        assert costs[-1] == sol.cost


@PROPERTY
@given(shape=shapes, seed=seeds, eps=st.floats(0.0, 0.5))
def test_box_limits_are_never_violated(shape, seed, eps):
    """us_init is drawn far outside the limits (2 randn vs widths <= 2): the solution is inside, exactly."""
    problems, x0s, us_inits, params = random_batch(shape, seed, eps=eps, limited=(True,) * BATCH)
    sols = solve_batch(problems, x0s, us_inits, params)
    lo, hi = np.asarray(problems.control_lower)[:, None, :], np.asarray(problems.control_upper)[:, None, :]
    assert np.any(us_inits < lo) or np.any(us_inits > hi)
    assert np.all(lo <= np.asarray(sols.us)) and np.all(np.asarray(sols.us) <= hi)
    assert np.all(np.isin(np.asarray(sols.status), [S.CONVERGED, S.MAX_ITER, S.REGULARIZATION_LIMIT, S.STALLED]))
    assert np.any(np.isclose(np.asarray(sols.us), lo) | np.isclose(np.asarray(sols.us), hi))  # limits are active


@PROPERTY
@given(shape=shapes, seed=seeds, eps=st.floats(0.0, 0.5), order=st.permutations(range(BATCH)),
       limited=st.lists(st.booleans(), min_size=BATCH, max_size=BATCH))
def test_solutions_are_invariant_to_the_order_of_a_vmapped_batch(shape, seed, eps, order, limited):
    batch = random_batch(shape, seed, eps=eps, limited=tuple(limited))
    order = np.asarray(order)
    sols = solve_batch(*batch)
    permuted = solve_batch(*jax.tree.map(lambda a: a[order], batch))
    np.testing.assert_array_equal(permuted.status, np.asarray(sols.status)[order])
    np.testing.assert_array_equal(permuted.iterations, np.asarray(sols.iterations)[order])
    for name in ("xs", "us", "K", "cost"):
        np.testing.assert_allclose(getattr(permuted, name), np.asarray(getattr(sols, name))[order], rtol=1e-12,
                                   atol=1e-12, err_msg=name)


@PROPERTY
@given(shape=st.sampled_from(SHAPES[1:]), seed=seeds, limited=st.lists(st.booleans(), min_size=BATCH,
                                                                       max_size=BATCH))
def test_float32_agrees_with_float64_to_float32_precision(shape, seed, limited):
    """Well-conditioned random problems (cost Hessian >= I), with and without limits.

    float32 stops at a relative cost change of 64 eps32 = 7.6e-6 (``effective_tol``): the cost
    agrees to a relative 3e-5, the controls to about the square root (first-order optimality),
    1e-2 of their scale. One shape only: float32 is one more compilation per shape.
    """
    batch = random_batch(shape, seed, eps=0.1, shift=1.0, limited=tuple(limited))
    sols64 = solve_batch(*batch)
    sols32 = solve_batch(*cast(batch, jnp.float32))
    assert sols32.xs.dtype == sols32.us.dtype == jnp.float32
    assert np.all(np.asarray(sols32.status) == S.CONVERGED) and np.all(np.asarray(sols64.status) == S.CONVERGED)
    np.testing.assert_allclose(sols32.cost, sols64.cost, rtol=3e-5, atol=1e-5)
    for i in range(BATCH):
        scale = 1.0 + np.abs(np.asarray(sols64.us[i])).max()
        np.testing.assert_allclose(sols32.us[i], sols64.us[i], rtol=0, atol=1e-2 * scale)


# --- Scale: a long horizon and a large state, compiled once ---------------------------------------


_compiles = []
jax.monitoring.register_event_duration_secs_listener(
    lambda event, duration, **kw: _compiles.append(event) if event == "/jax/core/compile/backend_compile_duration"
    else None)


def chain_dynamics(x, u, t, p):
    """A stable linear system with a mild nonlinearity; n = 20 states, m = 5 controls."""
    return p["A"] @ x + p["B"] @ u + 0.01 * jnp.sin(x)


def chain_running_cost(x, u, t, p):
    return 0.5 * x @ x + 0.05 * u @ u


def chain_terminal_cost(x, p):
    return 5.0 * x @ x


def chain_params(seed, n=20, m=5):
    rng = np.random.default_rng(seed)
    rotation, _ = np.linalg.qr(rng.standard_normal((n, n)))
    return {"A": jnp.asarray(0.98 * rotation),  # contracting, with the 0.01 sin(x): stable for 10,000 steps
            "B": jnp.asarray(0.1 * rng.standard_normal((n, m)))}


#: XLA temporaries allowed per time step: about 40 float64 n x n matrices (linear in T; the same
#: bound as ``benchmarks/large.py``).
MAX_TEMP_BYTES_PER_STEP = 40 * 20 * 20 * 8


def test_long_horizon_large_state_compiles_once_with_linear_memory():
    """T = 10,000 steps, n = 20, m = 5: a second call (other x0, other params) compiles nothing, and
    XLA's temporaries stay linear in T. (``benchmarks/large.py`` measures time and memory.)"""
    T, n, m = 10_000, 20, 5
    problem = ilqg.Problem(chain_dynamics, chain_running_cost, chain_terminal_cost, T)
    options = ilqg.Options(max_iter=2, ddp_switch=0.0)  # no dynamics Hessians: T n (n+m)^2 numbers
    us, x0s, params = jnp.zeros((T, m)), (np.ones(n), -np.ones(n)), (chain_params(0), chain_params(1))
    first = len(_compiles)
    sol = jax.block_until_ready(ilqg.solve(problem, x0s[0], us, params[0], options))
    compiled = len(_compiles) - first
    other = jax.block_until_ready(ilqg.solve(problem, x0s[1], us, params[1], options))
    assert compiled >= 1 and len(_compiles) - first == compiled, "the second call compiled again"
    for s in (sol, other):
        assert s.xs.shape == (T + 1, n) and s.K.shape == (T, m, n)
        assert S(int(s.status)) in (S.MAX_ITER, S.CONVERGED) and np.all(np.isfinite(np.asarray(s.xs)))
        assert float(s.cost) < 0.5 * float(s.history.cost[0])
    solve_jit = getattr(ilqg.solver, "_solve_jit", None)
    if solve_jit is None or not hasattr(solve_jit, "lower"):
        pytest.skip("no lowerable ilqg.solver._solve_jit to read XLA's memory analysis from")
    x0, before = jnp.asarray(x0s[0]), len(_compiles)
    stats = solve_jit.lower(problem, x0, us, params[0], options).compile()
    assert len(_compiles) == before  # the executable of the calls above: a cache hit
    temp = stats.memory_analysis().temp_size_in_bytes
    assert temp <= MAX_TEMP_BYTES_PER_STEP * T, f"{temp / T:.0f} bytes per time step"
