"""The parallel-in-time backward pass equals the sequential one; both match the Riccati oracle."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ilqg_jax import backward, derivatives, linalg, parallel
from ilqg_jax.derivatives import Derivatives
from ilqg_jax.systems import get_task
from oracles import riccati
from test_solver import lq_problem, make_lq

TOL = dict(rtol=1e-10, atol=1e-10)
FIELDS = ("K", "k", "dV", "Vx", "Vxx")


def random_derivatives(n, m, T, seed, luu_scale=1.0):
    """A random LQ expansion: near-identity ``fx``, convex joint cost Hessians with cross terms."""
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((T + 1, n + m, n + m))
    W = W @ np.swapaxes(W, 1, 2) + 0.5 * np.eye(n + m)
    arrays = (np.eye(n) + 0.3 * rng.standard_normal((T, n, n)), rng.standard_normal((T, n, m)),
              rng.standard_normal((T + 1, n)), rng.standard_normal((T, m)), W[:, :n, :n],
              luu_scale * W[:-1, n:, n:], W[:-1, n:, :n])
    return Derivatives(*(jnp.asarray(a) for a in arrays))


def assert_same(par, seq):
    assert bool(par.ok) == bool(seq.ok)
    for f in FIELDS:
        chex.assert_trees_all_close(getattr(par, f), getattr(seq, f), **TOL)


_seq = jax.jit(backward.backward_pass)
_par = jax.jit(parallel._fixed_point)


@pytest.mark.parametrize("n,m,T", [(1, 1, 1), (3, 2, 17), (4, 1, 9)])
@pytest.mark.parametrize("mu", [0.0, 1e-6, 0.5])
def test_parallel_pass_equals_sequential_pass_on_random_lq(n, m, T, mu):
    d = random_derivatives(n, m, T, seed=100 * n + 10 * m + T)
    par, rounds = _par(d, mu)
    assert_same(par, _seq(d, mu))
    if mu == 0.0:
        assert int(rounds) == 0  # the associative scan alone is the answer


def test_parallel_pass_equals_sequential_pass_with_second_order_terms():
    n, m, T = 3, 2, 17
    d = random_derivatives(n, m, T, seed=5)
    rng = np.random.default_rng(6)
    fzz = 0.05 * rng.standard_normal((T, n, n + m, n + m))
    fzz = fzz + np.swapaxes(fzz, 2, 3)
    so = tuple(jnp.asarray(a) for a in (fzz[:, :, :n, :n], fzz[:, :, n:, n:], fzz[:, :, n:, :n]))
    for mu in (0.0, 0.1):
        assert_same(_par(d, mu, so)[0], _seq(d, mu, second_order=so))


def test_controls_without_cost_give_the_sequential_gains():
    d = random_derivatives(3, 2, 17, seed=8)
    d = d._replace(luu=jnp.zeros_like(d.luu), lux=jnp.zeros_like(d.lux))
    seq = _seq(d, 0.0)
    assert bool(seq.ok)
    assert_same(_par(d, 0.0)[0], seq)


def test_quu_not_positive_definite_gives_ok_false():
    d = random_derivatives(3, 2, 17, seed=9)
    d = d._replace(luu=d.luu.at[4].set(-1e3 * jnp.eye(2)))
    assert not bool(_seq(d, 0.0).ok)
    assert not bool(_par(d, 0.0)[0].ok)


def test_parallel_pass_under_vmap_over_mu():
    d = random_derivatives(1, 1, 3, seed=10)
    mus = jnp.array([0.0, 0.3, 50.0])
    batched = jax.vmap(parallel.parallel_backward_pass, in_axes=(None, 0))(d, mus)
    for i, mu in enumerate(mus):
        assert_same(jax.tree.map(lambda a: a[i], batched), _seq(d, mu))


@pytest.mark.parametrize("task,mu", [("pendulum-seed", 1.0), ("pendulum-seed", 1e3)])
def test_parallel_pass_equals_sequential_pass_on_a_system_trajectory(task, mu):
    t = get_task(task)
    xs = derivatives.rollout(t.problem.dynamics, t.x0, t.us_init, t.params)
    d = derivatives.trajectory_derivatives(t.problem, xs, t.us_init, t.params)
    seq = _seq(d, mu)
    assert bool(seq.ok)
    assert_same(_par(d, mu)[0], seq)


def test_parallel_gains_solve_the_lq_problem_like_the_riccati_oracle():
    n, m, T = 3, 2, 17
    lq = make_lq(n, m, T, seed=11)
    problem = lq_problem(lq, T)
    x0 = np.ones(n)
    us_bar = np.zeros((T, m))
    xs_bar = derivatives.rollout(problem.dynamics, jnp.asarray(x0), jnp.asarray(us_bar))
    bw = _par(derivatives.trajectory_derivatives(problem, xs_bar, us_bar), 0.0)[0]
    x, us = jnp.asarray(x0), []
    for t in range(T):
        us.append(us_bar[t] + bw.k[t] + bw.K[t] @ (x - xs_bar[t]))
        x = problem.dynamics(x, us[-1], t, None)
    _, us_ref, _ = riccati(lq, x0, T)
    np.testing.assert_allclose(np.array(us), us_ref, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 8])
def test_small_inverse_matches_numpy(n):
    A = np.random.default_rng(n).standard_normal((7, n, n))
    A[0] = np.roll(np.eye(n), 1, axis=0)  # zero diagonal: needs pivoting
    np.testing.assert_allclose(linalg.inv(jnp.asarray(A)), np.linalg.inv(A), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8])
def test_small_solve_matches_numpy_and_has_no_lapack_call(n):
    rng = np.random.default_rng(10 + n)
    A, b, B = rng.standard_normal((n, n)) + n * np.eye(n), rng.standard_normal(n), rng.standard_normal((n, 3))
    np.testing.assert_allclose(linalg.solve(jnp.asarray(A), jnp.asarray(b)), np.linalg.solve(A, b), rtol=1e-10)
    np.testing.assert_allclose(linalg.solve(jnp.asarray(A), jnp.asarray(B)), np.linalg.solve(A, B), rtol=1e-10)
    hlo = jax.jit(linalg.solve).lower(jnp.asarray(A), jnp.asarray(b)).as_text()
    assert ("custom_call" in hlo) == (n > linalg.UNROLL_MAX)  # LAPACK only above the unrolled sizes
    with pytest.raises(ValueError, match=r"\(3, 2\)"):
        linalg.solve(jnp.ones((3, 2)), jnp.ones(3))


@pytest.mark.parametrize("m", [1, 2, 3, 4])
def test_spd_solve_matches_numpy_and_tells_positive_definite_from_not(m):
    rng = np.random.default_rng(20 + m)
    W = rng.standard_normal((m, m))
    B = rng.standard_normal((m, 3))
    for cond in (1.0, 1e8):  # well and badly conditioned, positive definite
        Q, _ = np.linalg.qr(W)
        A = (Q * np.geomspace(1.0, 1.0 / cond, m)) @ Q.T
        X, ok = linalg.spd_solve(jnp.asarray(A), jnp.asarray(B))
        assert bool(ok)
        np.testing.assert_allclose(A @ np.asarray(X), B, rtol=0, atol=1e-13 * cond * np.abs(B).max())
    # Not positive definite: one negative eigenvalue, small or not (Sylvester's criterion must fail somewhere;
    # an exactly zero one is left to round-off on either path).
    for last in (-1e-3, -1.0):
        A = (Q * np.append(np.ones(m - 1), last)) @ Q.T
        assert not bool(linalg.spd_solve(jnp.asarray(A), jnp.asarray(B))[1])
    assert not bool(linalg.spd_solve(jnp.full((m, m), jnp.nan), jnp.asarray(B))[1])
    assert not bool(linalg.spd_solve(-jnp.eye(m), jnp.asarray(B))[1])


@pytest.mark.parametrize("batch", [5, linalg.BROADCAST_MAX + 1])
def test_small_matmul_matches_numpy(batch):
    rng = np.random.default_rng(batch)
    a, b, v = rng.standard_normal((batch, 3, 4)), rng.standard_normal((batch, 4, 2)), rng.standard_normal((batch, 4))
    np.testing.assert_allclose(linalg.matmul(a, b), a @ b, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(linalg.matmul(a, v), np.einsum("bij,bj->bi", a, v), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backend", ["cpu", "gpu", "tpu"])
def test_choose_backward_names_a_schedule(backend):
    for T in (1, 100, 10_000):
        assert parallel.choose_backward(backend, T, 3, 2) in ("sequential", "parallel")
    if backend != "cpu":
        assert parallel.choose_backward(backend, 10_000, 3, 2) == "parallel"


def test_solve_with_the_parallel_schedule_equals_the_sequential_one():
    """``Options(backward="parallel")`` in a whole solve: the same iterations and optimum as sequential."""
    import ilqg_jax as ilqg
    from ilqg_jax.systems import pendulum

    us0 = 0.1 * jnp.asarray(np.random.default_rng(0).standard_normal((30, 1)))
    x0 = jnp.array([2.5, 0.0])
    seq = ilqg.solve(pendulum.swing_up(30), x0, us0, options=ilqg.Options(backward="sequential"))
    par = ilqg.solve(pendulum.swing_up(30), x0, us0, options=ilqg.Options(backward="parallel"))
    assert int(seq.status) == int(par.status) == ilqg.Status.CONVERGED
    assert int(seq.iterations) == int(par.iterations)
    np.testing.assert_allclose(par.us, seq.us, rtol=0, atol=1e-9)
    np.testing.assert_allclose(par.cost, seq.cost, rtol=1e-12)
