"""Full DDP (``Options(second_order=True)``) against iLQG on the pendulum swing-up.

DDP adds the dynamics' second derivatives contracted with the value gradient
to the ``Q`` expansion (Tassa, Erez & Todorov 2012, eq. (5); Mayne 1966), which
makes its step Newton's: it must reach the same optimum as iLQG (Gauss-Newton),
converge quadratically where iLQG converges linearly, and so need no more
iterations to a tight tolerance.

The default solver is a hybrid of the two (``Options.ddp_switch``): Gauss-Newton
steps until they only crawl, Newton steps from there; it must reach the same
optimum, in fewer iterations than plain iLQG from most starts.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ilqg_jax as ilqg
from ilqg_jax.systems import pendulum

T = 100
SEEDS = 12
X0 = jnp.array([jnp.pi, 0.0])
TOL = 1e-10
MAX_ITER = 400
STATIONARITY_TOL = 1e-6


@pytest.fixture(scope="module")
def solutions():
    """iLQG and DDP solutions of ``swing_up(100)`` from ``SEEDS`` random initial controls (batched)."""
    problem = pendulum.swing_up(T)
    inits = jnp.stack([0.1 * jnp.asarray(np.random.default_rng(s).standard_normal((T, 1))) for s in range(SEEDS)])
    tight = dict(tol=TOL, max_iter=MAX_ITER, stationarity_tol=STATIONARITY_TOL)
    arms = {"ilqg": ilqg.Options(**tight, ddp_switch=0.0, convexify=False),
            "ddp": ilqg.Options(**tight, second_order=True),
            "hybrid": ilqg.Options(**tight)}
    return {name: jax.vmap(lambda u, o=options: ilqg.solve(problem, X0, u, None, o))(inits)
            for name, options in arms.items()}


def test_second_order_reaches_the_ilqg_optimum(solutions):
    ilqg_sol, ddp = solutions["ilqg"], solutions["ddp"]
    assert bool(jnp.all(ilqg_sol.converged)) and bool(jnp.all(ddp.converged))
    assert bool(jnp.all(ddp.stationarity <= STATIONARITY_TOL)) and bool(jnp.all(ilqg_sol.stationarity <= STATIONARITY_TOL))
    assert bool(jnp.all(pendulum.upright(ddp.xs[:, -1])))
    # iLQG's linear tail leaves ~sqrt(tol) in the controls; DDP's optimum is exact to round-off.
    np.testing.assert_allclose(ddp.cost, ilqg_sol.cost, rtol=1e-10)
    assert bool(jnp.all(ddp.cost <= ilqg_sol.cost + 1e-14))
    np.testing.assert_allclose(ddp.us, ilqg_sol.us, rtol=0, atol=1e-3)


def _tail_gaps(sol, i, final_cost):
    """Relative cost gaps ``(cost_k - final) / final`` of the accepted iterations of batch member ``i``."""
    n = int(sol.iterations[i])
    alpha = np.asarray(sol.history.alpha[i, 1:n + 1])
    cost = np.asarray(sol.history.cost[i, : n + 1])
    accepted = np.concatenate([[True], np.isfinite(alpha)])
    return (cost[accepted] - final_cost) / final_cost


def test_second_order_converges_quadratically_and_ilqg_linearly(solutions):
    for i in range(SEEDS):
        final = float(solutions["ddp"].cost[i])
        ddp = _tail_gaps(solutions["ddp"], i, final)
        ilqg_gaps = _tail_gaps(solutions["ilqg"], i, final)
        # Quadratic: in the tail (gap < 1e-3) each gap is at most a few times the square of the previous one.
        tail = [(a, b) for a, b in zip(ddp[:-1], ddp[1:]) if 1e-13 < a < 1e-3 and b > 1e-15]
        assert tail, ddp
        assert all(b <= 10 * a * a for a, b in tail), tail
        # Linear (Gauss-Newton): a roughly constant contraction factor, well above quadratic.
        tail = [(a, b) for a, b in zip(ilqg_gaps[:-1], ilqg_gaps[1:]) if 1e-9 < a < 1e-4]
        assert len(tail) >= 2 and all(0.01 < b / a < 0.5 for a, b in tail), tail


def test_second_order_takes_no_more_iterations_on_swing_up(solutions):
    ilqg_it = np.asarray(solutions["ilqg"].iterations)
    ddp_it = np.asarray(solutions["ddp"].iterations)
    print(f"iterations to tol={TOL}: iLQG {ilqg_it.tolist()} (sum {ilqg_it.sum()}), "
          f"DDP {ddp_it.tolist()} (sum {ddp_it.sum()})")
    assert ddp_it.sum() <= ilqg_it.sum()
    # Per seed, the local phase (from a relative gap of 1e-3 to convergence) is strictly shorter.
    for i in range(SEEDS):
        final = float(solutions["ddp"].cost[i])
        local = [int(np.sum(_tail_gaps(solutions[k], i, final) < 1e-3)) for k in ("ilqg", "ddp")]
        assert local[1] < local[0], (i, local)


def test_hybrid_reaches_the_optimum_in_fewer_iterations_than_ilqg_from_most_starts(solutions):
    hybrid, ilqg_sol, ddp = solutions["hybrid"], solutions["ilqg"], solutions["ddp"]
    assert bool(jnp.all(hybrid.converged)) and bool(jnp.all(hybrid.stationarity <= STATIONARITY_TOL))
    assert bool(jnp.all(pendulum.upright(hybrid.xs[:, -1])))
    # Gauss-Newton steps from two of the twelve starts (seeds 1 and 5) lead to another stationary
    # swing-up, of cost 4.854 (its Newton steps converge there), and from two more (3 and 8) onto its
    # plateau, which Newton steps leave only after some sixty small steps (about 100 iterations in all,
    # against 40 for plain iLQG, which never passes there). Hence at least ten, and the median, not the sum.
    assert int(np.sum(np.isclose(hybrid.cost, ddp.cost, rtol=1e-10, atol=0))) >= SEEDS - 2, hybrid.cost
    hybrid_it, ilqg_it = np.asarray(hybrid.iterations), np.asarray(ilqg_sol.iterations)
    assert np.median(hybrid_it) < np.median(ilqg_it), (hybrid_it.tolist(), ilqg_it.tolist())
