"""Cholesky factorisation and solves for the small matrices of the backward pass.

``Quu`` is ``m x m`` with ``m`` the number of controls -- usually 1 to 4. For
such sizes a LAPACK call per time step (what ``jnp.linalg.cholesky`` lowers to
on CPU) costs far more than the arithmetic, and it sits inside a ``lax.scan``
executed every iteration. Below :data:`UNROLL_MAX` the factorisation and the
triangular solves are unrolled into scalar expressions that XLA fuses; above
it they fall back to ``jax.numpy.linalg`` / ``jax.scipy.linalg``.

Both paths signal a matrix that is not positive definite the same way: the
factor contains NaN (callers test ``isfinite``). The backward pass solves
``(Quu + mu I) [k K] = -[Qu Qux]`` with :func:`spd_solve`, which for
``m <= CLOSED_FORM_MAX`` skips the factorisation altogether (adjugate over
determinant, positive definiteness by Sylvester's criterion) and returns the
verdict as a boolean. The parallel backward pass
(:mod:`ilqg_jax.parallel`) also needs general small inverses (:func:`inv`) and
products of batches of small matrices (:func:`matmul`), unrolled the same way.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
from jax.scipy.linalg import cho_solve as _cho_solve_lapack

Array = jax.Array

__all__ = ["UNROLL_MAX", "CLOSED_FORM_MAX", "cholesky", "cho_solve", "spd_solve", "inv", "solve", "matmul"]

UNROLL_MAX = 6


def cholesky(A: Array) -> Array:
    """Lower Cholesky factor ``L`` of a symmetric ``A: (m, m)`` (``A = L L'``); NaN if not positive definite."""
    m = A.shape[-1]
    if m > UNROLL_MAX:
        return jnp.linalg.cholesky(A)
    L = [[jnp.zeros((), A.dtype)] * m for _ in range(m)]
    for j in range(m):
        s = A[j, j] - sum((L[j][k] ** 2 for k in range(j)), jnp.zeros((), A.dtype))
        L[j][j] = jnp.where(s > 0, jnp.sqrt(jnp.where(s > 0, s, 1.0)), jnp.nan)
        for i in range(j + 1, m):
            r = A[i, j] - sum((L[i][k] * L[j][k] for k in range(j)), jnp.zeros((), A.dtype))
            L[i][j] = r / L[j][j]
    return jnp.stack([jnp.stack(row) for row in L])


def cho_solve(L: Array, B: Array) -> Array:
    """Solves ``(L L') X = B`` for ``B: (m,)`` or ``(m, r)`` given the factor from :func:`cholesky`."""
    m = L.shape[-1]
    if m > UNROLL_MAX:
        return _cho_solve_lapack((L, True), B)
    # Forward substitution L y = B, then back substitution L' x = y; rows are (r,) or scalars.
    y = []
    for i in range(m):
        y.append((B[i] - sum((L[i, k] * y[k] for k in range(i)), jnp.zeros_like(B[i]))) / L[i, i])
    x = [None] * m
    for i in reversed(range(m)):
        x[i] = (y[i] - sum((L[k, i] * x[k] for k in range(i + 1, m)), jnp.zeros_like(B[i]))) / L[i, i]
    return jnp.stack(x)


#: Largest size :func:`spd_solve` solves in closed form (adjugate over determinant).
CLOSED_FORM_MAX = 3


def spd_solve(A: Array, B: Array) -> tuple[Array, Array]:
    """Solves ``A X = B`` for one symmetric ``A: (m, m)``; returns ``(X, ok)``, ``ok`` whether ``A`` is positive definite.

    Up to :data:`CLOSED_FORM_MAX`: ``X = adj(A) B / det(A)`` with ``ok`` from
    Sylvester's criterion (every leading principal minor positive), a few
    elementwise expressions that XLA fuses into one kernel, where a Cholesky
    factorisation's divisions and square roots are a chain of them. Above it:
    :func:`cholesky` and :func:`cho_solve` (``ok``: the factor is finite). ``X``
    is meaningless when ``ok`` is False.
    """
    m = A.shape[-1]
    if m > CLOSED_FORM_MAX:
        L = cholesky(A)
        return cho_solve(L, B), jnp.all(jnp.isfinite(L))
    adj = _adjugate(A)
    det = sum(A[0, j] * adj[j, 0] for j in range(1, m)) + A[0, 0] * adj[0, 0]
    minors = [A[0, 0], A[0, 0] * A[1, 1] - A[0, 1] * A[1, 0]][:m - 1] + [det]
    ok = functools.reduce(jnp.logical_and, [x > 0 for x in minors]) & jnp.isfinite(det)
    return matmul(adj, B) / jnp.where(ok, det, 1.0), ok


def inv(A: Array) -> Array:
    """Inverse of general square matrices ``A: (..., n, n)``, unrolled for small ``n``.

    ``n <= 3``: the adjugate over the determinant (closed form); up to
    :data:`UNROLL_MAX`: Gauss-Jordan elimination with partial pivoting; above
    it ``jnp.linalg.inv`` (LU). Leading axes are a batch, elementwise. A
    singular matrix gives inf/NaN entries.
    """
    n = A.shape[-1]
    if n > UNROLL_MAX:
        return jnp.linalg.inv(A)
    if n <= 3:
        adj = _adjugate(A)
        return adj / jnp.sum(A[..., 0, :] * adj[..., :, 0], axis=-1)[..., None, None]
    # Rows of the augmented matrix [A | I]; each elimination step takes the largest pivot of its column.
    eye = jnp.eye(n, dtype=A.dtype)
    rows = [jnp.concatenate([A[..., i, :], jnp.broadcast_to(eye[i], A.shape[:-2] + (n,))], axis=-1)
            for i in range(n)]
    for j in range(n):
        p = (jnp.argmax(jnp.stack([jnp.abs(rows[i][..., j]) for i in range(j, n)], axis=-1), axis=-1) + j)[..., None]
        pivot = sum((jnp.where(p == i, rows[i], 0.0) for i in range(j + 1, n)), jnp.where(p == j, rows[j], 0.0))
        for i in range(j + 1, n):
            rows[i] = jnp.where(p == i, rows[j], rows[i])
        rows[j] = pivot / pivot[..., j:j + 1]
        for i in range(n):
            if i != j:
                rows[i] = rows[i] - rows[i][..., j:j + 1] * rows[j]
    return jnp.stack(rows, axis=-2)[..., n:]


def solve(A: Array, b: Array) -> Array:
    """Solves ``A x = b`` for one square ``A: (n, n)`` and ``b: (n,)`` or ``(n, k)``, unrolled for small ``n``.

    What the systems' equations of motion need (a mass matrix, ``n = 2``):
    ``jnp.linalg.solve`` would be a LAPACK call (LU, then triangular solves)
    per evaluation -- per time step and per derivative inside the solver's
    loops -- and LAPACK calls from several XLA CPU devices at once share one
    thread pool. Up to :data:`UNROLL_MAX`: ``inv(A) @ b`` (:func:`inv`), above
    it ``jnp.linalg.solve``.
    """
    if A.ndim != 2 or A.shape[0] != A.shape[1] or b.shape[0] != A.shape[0] or b.ndim not in (1, 2):
        raise ValueError(f"solve expects A: (n, n) and b: (n,) or (n, k), got {A.shape} and {b.shape}.")
    if A.shape[-1] > UNROLL_MAX:
        return jnp.linalg.solve(A, b)
    return jnp.sum(inv(A)[:, :, None] * (b[None, :, None] if b.ndim == 1 else b[None]), axis=1).reshape(b.shape)


def _adjugate(A: Array) -> Array:
    """Adjugate (transposed cofactor matrix) of ``A: (..., n, n)`` for ``n <= 3``."""
    n = A.shape[-1]
    if n == 1:
        return jnp.ones_like(A)
    if n == 2:
        a, b, c, d = A[..., 0, 0], A[..., 0, 1], A[..., 1, 0], A[..., 1, 1]
        return jnp.stack([jnp.stack([d, -b], -1), jnp.stack([-c, a], -1)], -2)
    e = lambda i, j: A[..., i % 3, j % 3]  # noqa: E731

    def cof(i, j):
        return e(i + 1, j + 1) * e(i + 2, j + 2) - e(i + 1, j + 2) * e(i + 2, j + 1)

    return jnp.stack([jnp.stack([cof(j, i) for j in range(3)], -1) for i in range(3)], -2)


#: Batches of at most this many small matrices are multiplied by broadcasting and summing, larger ones by
#: ``jnp.matmul`` (measured on CPU: the former is one fused loop, the latter wins once the batch is large).
BROADCAST_MAX = 256


def matmul(a: Array, b: Array) -> Array:
    """``a @ b`` for batches of small matrices ``(..., p, q) @ (..., q, r)``; a vector ``b: (..., q)`` too."""
    batch = math.prod(a.shape[:-2])
    if batch > BROADCAST_MAX or a.shape[-1] > UNROLL_MAX:
        return jnp.matmul(a, b[..., None])[..., 0] if b.ndim == a.ndim - 1 else jnp.matmul(a, b)
    if b.ndim == a.ndim - 1:
        return jnp.sum(a * b[..., None, :], axis=-1)
    return jnp.sum(a[..., :, :, None] * b[..., None, :, :], axis=-2)
