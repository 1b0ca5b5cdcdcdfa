"""Derivatives of dynamics and costs along a whole trajectory.

Names follow Tassa, Erez & Todorov (2012), "Synthesis and stabilization of
complex behaviors through online trajectory optimization": ``fx, fu`` are the
Jacobians of the discrete dynamics; ``lx, lu, lxx, luu, lux`` the gradients and
Hessians of the cost. Index ``T`` of ``lx``/``lxx`` holds the terminal cost.

:func:`trajectory_derivatives` computes everything with ``jax.jacfwd`` /
``jax.grad`` / ``jax.hessian``, ``vmap``-ed over time -- one call per
trajectory. :func:`finite_difference` is its central-difference twin with
identical output shapes; it exists for tests and benchmarks only and is never
used inside the solver.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from ilqg_jax.problem import Problem

Array = jax.Array

__all__ = ["Derivatives", "linearize", "quadratize", "trajectory_derivatives", "convexify", "joint_cost_hessians",
           "dynamics_hessians", "finite_difference", "rollout", "trajectory_cost"]


class Derivatives(NamedTuple):
    """First-order dynamics and second-order cost expansion along a trajectory.

    Attributes:
      fx: ``(T, n, n)`` df/dx.
      fu: ``(T, n, m)`` df/du.
      lx: ``(T+1, n)`` dl/dx; row ``T`` is the terminal cost's gradient.
      lu: ``(T, m)`` dl/du.
      lxx: ``(T+1, n, n)`` d2l/dx2; row ``T`` is the terminal Hessian.
      luu: ``(T, m, m)`` d2l/du2.
      lux: ``(T, m, n)`` d2l/du dx.
    """

    fx: Array
    fu: Array
    lx: Array
    lu: Array
    lxx: Array
    luu: Array
    lux: Array


def _times(us: Array) -> Array:
    return jnp.arange(us.shape[0])


def rollout(dynamics, x0: Array, us: Array, params=None) -> Array:
    """Simulates ``x_{t+1} = dynamics(x_t, u_t, t, params)``; returns ``xs: (T+1, n)``."""

    def step(x, tu):
        t, u = tu
        x_next = dynamics(x, u, t, params)
        return x_next, x_next

    _, xs = jax.lax.scan(step, x0, (_times(us), us))
    return jnp.concatenate([x0[None], xs])


def trajectory_cost(problem: Problem, xs: Array, us: Array, params=None) -> Array:
    """Total cost ``sum_t l(x_t, u_t, t) + l_f(x_T)`` of a trajectory; a scalar."""
    running = jax.vmap(problem.running_cost, in_axes=(0, 0, 0, None))(xs[:-1], us, _times(us), params)
    return jnp.sum(running) + problem.terminal_cost(xs[-1], params)


def linearize(dynamics, xs: Array, us: Array, params=None) -> tuple[Array, Array]:
    """Jacobians ``fx: (T, n, n)``, ``fu: (T, n, m)`` of the dynamics at every ``(x_t, u_t)``."""
    jac = jax.jacfwd(dynamics, argnums=(0, 1))
    return jax.vmap(jac, in_axes=(0, 0, 0, None))(xs[:-1], us, _times(us), params)


def quadratize(running_cost, terminal_cost, xs: Array, us: Array, params=None):
    """Gradients and Hessians of the costs along a trajectory.

    Returns:
      ``(lx (T+1, n), lu (T, m), lxx (T+1, n, n), luu (T, m, m), lux (T, m, n))``.
    """
    grad = jax.grad(running_cost, argnums=(0, 1))
    hess = jax.hessian(running_cost, argnums=(0, 1))
    in_axes = (0, 0, 0, None)
    ts = _times(us)
    lx, lu = jax.vmap(grad, in_axes)(xs[:-1], us, ts, params)
    (lxx, lxu), (lux, luu) = jax.vmap(hess, in_axes)(xs[:-1], us, ts, params)
    del lxu
    lx_T = jax.grad(terminal_cost)(xs[-1], params)
    lxx_T = jax.hessian(terminal_cost)(xs[-1], params)
    lx = jnp.concatenate([lx, lx_T[None]])
    lxx = jnp.concatenate([lxx, lxx_T[None]])
    return lx, lu, lxx, luu, lux


def trajectory_derivatives(problem: Problem, xs: Array, us: Array, params=None) -> Derivatives:
    """All derivatives the backward pass needs, by automatic differentiation.

    Args:
      problem: the :class:`~ilqg_jax.Problem`.
      xs: ``(T+1, n)`` states; us: ``(T, m)`` controls; params: any pytree.

    Returns:
      :class:`Derivatives`.
    """
    fx, fu = linearize(problem.dynamics, xs, us, params)
    lx, lu, lxx, luu, lux = quadratize(problem.running_cost, problem.terminal_cost, xs, us, params)
    return Derivatives(fx, fu, lx, lu, lxx, luu, lux)


def dynamics_hessians(dynamics, xs: Array, us: Array, params=None):
    """Second derivatives of the dynamics for full DDP.

    Returns:
      ``(fxx (T, n, n, n), fuu (T, n, m, m), fux (T, n, m, n))``; the first
      axis after time indexes the output state component.
    """
    hess = jax.hessian(dynamics, argnums=(0, 1))
    (fxx, fxu), (fux, fuu) = jax.vmap(hess, in_axes=(0, 0, 0, None))(xs[:-1], us, _times(us), params)
    del fxu
    return fxx, fuu, fux


def _default_step(dtype) -> float:
    # Central differences: truncation O(h^2) vs rounding O(eps/h) balance at eps^(1/3).
    return float(jnp.finfo(dtype).eps) ** (1.0 / 3.0)


def _central_jacobian(fn, z: Array, eps: float) -> Array:
    """``d fn / d z`` by central differences; output shape ``fn(z).shape + z.shape``."""
    basis = jnp.eye(z.shape[0], dtype=z.dtype) * eps
    plus = jax.vmap(lambda e: fn(z + e))(basis)
    minus = jax.vmap(lambda e: fn(z - e))(basis)
    jac = (plus - minus) / (2.0 * eps)  # (k, *out)
    return jnp.moveaxis(jac, 0, -1)


def finite_difference(problem: Problem, xs: Array, us: Array, params=None, eps: float | None = None,
                      hessian_eps: float | None = None) -> Derivatives:
    """Central finite-difference twin of :func:`trajectory_derivatives` (tests/benchmarks only).

    Jacobians of the dynamics and cost gradients use central differences with
    step ``eps`` (default ``eps_machine ** (1/3)``); cost Hessians use central
    differences of the central-difference gradient with step ``hessian_eps``
    (default ``eps_machine ** (1/4)``, the balance point of that nested stencil).
    Costs ``O((n + m)^2)`` function evaluations per time step.
    """
    dtype = xs.dtype
    eps = _default_step(dtype) if eps is None else eps
    hessian_eps = float(jnp.finfo(dtype).eps) ** 0.25 if hessian_eps is None else hessian_eps
    n = xs.shape[1]
    ts = _times(us)

    def split(fn):
        return lambda z, t: fn(z[:n], z[n:], t, params)

    def per_step(x, u, t):
        z = jnp.concatenate([x, u])
        fz = _central_jacobian(lambda zz: split(problem.dynamics)(zz, t), z, eps)
        cost = lambda zz: split(problem.running_cost)(zz, t)  # noqa: E731
        grad = lambda zz, h: _central_jacobian(cost, zz, h)  # noqa: E731
        gz = grad(z, eps)
        hz = _central_jacobian(lambda zz: grad(zz, hessian_eps), z, hessian_eps)
        hz = 0.5 * (hz + hz.T)
        return fz[:, :n], fz[:, n:], gz[:n], gz[n:], hz[:n, :n], hz[n:, n:], hz[n:, :n]

    fx, fu, lx, lu, lxx, luu, lux = jax.vmap(per_step)(xs[:-1], us, ts)
    term = lambda x: problem.terminal_cost(x, params)  # noqa: E731
    lx_T = _central_jacobian(term, xs[-1], eps)
    lxx_T = _central_jacobian(lambda x: _central_jacobian(term, x, hessian_eps), xs[-1], hessian_eps)
    lxx_T = 0.5 * (lxx_T + lxx_T.T)
    return Derivatives(fx, fu, jnp.concatenate([lx, lx_T[None]]), lu,
                       jnp.concatenate([lxx, lxx_T[None]]), luu, lux)


#: Largest matrix whose eigendecomposition :func:`_psd` computes by unrolled Jacobi sweeps instead of LAPACK.
JACOBI_MAX = 6
#: Cyclic Jacobi sweeps: convergence is quadratic, 8 sweeps reach float64 round-off for k <= 6.
JACOBI_SWEEPS = 8


def _jacobi_eigh(H: Array) -> tuple[Array, Array]:
    """Eigenvalues ``w: (..., k)`` and vectors ``V: (..., k, k)`` of symmetric ``H`` by cyclic Jacobi rotations.

    Pure element-wise JAX operations, batched over leading axes: no LAPACK
    call (one per matrix on CPU, inside the solver's loops), which also keeps
    sharded CPU batches free of the library's thread pool. The matrices are
    held entry by entry (``k x k`` arrays of the batch shape), so a rotation
    updates two rows and two columns element-wise, and XLA fuses a sweep into
    a few loops over the batch (a batched ``k x k`` matrix product per
    rotation is 30x slower on CPU). The sweeps are a ``lax.fori_loop`` (one
    sweep traced), the rotations of a sweep unrolled.
    """
    k = H.shape[-1]
    one, zero = jnp.ones(H.shape[:-2], H.dtype), jnp.zeros(H.shape[:-2], H.dtype)
    A0 = tuple(tuple(H[..., i, j] for j in range(k)) for i in range(k))
    V0 = tuple(tuple(one if i == j else zero for j in range(k)) for i in range(k))

    def sweep(_, AV):
        A, V = [list(r) for r in AV[0]], [list(r) for r in AV[1]]
        for p in range(k - 1):
            for q in range(p + 1, k):
                apq, app, aqq = A[p][q], A[p][p], A[q][q]
                nonzero = apq != 0
                theta = (aqq - app) / (2.0 * jnp.where(nonzero, apq, 1.0))
                t = jnp.sign(theta) / (jnp.abs(theta) + jnp.sqrt(theta**2 + 1.0))
                t = jnp.where(nonzero, jnp.where(theta == 0, 1.0, t), 0.0)
                c = 1.0 / jnp.sqrt(t**2 + 1.0)
                sn = t * c
                for M in (A, V):  # columns p, q: M J
                    for i in range(k):
                        M[i][p], M[i][q] = c * M[i][p] - sn * M[i][q], sn * M[i][p] + c * M[i][q]
                for j in range(k):  # rows p, q: J' A
                    A[p][j], A[q][j] = c * A[p][j] - sn * A[q][j], sn * A[p][j] + c * A[q][j]
        return tuple(map(tuple, A)), tuple(map(tuple, V))

    A, V = jax.lax.fori_loop(0, JACOBI_SWEEPS, sweep, (A0, V0))
    return jnp.stack([A[i][i] for i in range(k)], -1), jnp.stack([jnp.stack(r, -1) for r in V], -2)


def _psd(H: Array) -> Array:
    """The nearest symmetric positive semi-definite matrix to symmetric ``H`` (eigenvalues clamped at 0), batched."""
    w, V = _jacobi_eigh(H) if H.shape[-1] <= JACOBI_MAX else jnp.linalg.eigh(H)
    return (V * jnp.maximum(w, 0.0)[..., None, :]) @ jnp.swapaxes(V, -1, -2)


def joint_cost_hessians(d: Derivatives) -> Array:
    """``(T, n+m, n+m)`` running-cost Hessians in joint coordinates ``z = [x; u]``: ``[[lxx, lux'], [lux, luu]]``."""
    return jnp.concatenate([jnp.concatenate([d.lxx[:-1], jnp.swapaxes(d.lux, 1, 2)], axis=2),
                            jnp.concatenate([d.lux, d.luu], axis=2)], axis=1)


def convexify(d: Derivatives) -> Derivatives:
    """``d`` with every cost Hessian projected onto the positive semi-definite cone.

    Per time step the joint Hessian ``[[lxx, lux'], [lux, luu]]`` of the
    running cost (and the terminal ``lxx``) gets its negative eigenvalues set
    to zero. With positive semi-definite cost Hessians the Gauss-Newton value
    Hessians ``Vxx`` stay positive semi-definite, so a cost such as
    ``(1 - cos theta)^2``, concave around the hanging pendulum, cannot make
    the backward pass fail or its model promise gains that are not there.
    The gradients are unchanged, so a stationary point is still one of the
    original problem.
    """
    n = d.lx.shape[1]
    lzz = joint_cost_hessians(d)
    lzz = _psd(0.5 * (lzz + jnp.swapaxes(lzz, 1, 2)))
    lxx_T = _psd(0.5 * (d.lxx[-1] + d.lxx[-1].T))
    return d._replace(lxx=jnp.concatenate([lzz[:, :n, :n], lxx_T[None]]), luu=lzz[:, n:, n:], lux=lzz[:, n:, :n])
