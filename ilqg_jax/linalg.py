"""Cholesky factorisation and solves for the small matrices of the backward pass.

``Quu`` is ``m x m`` with ``m`` the number of controls -- usually 1 to 4. For
such sizes a LAPACK call per time step (what ``jnp.linalg.cholesky`` lowers to
on CPU) costs far more than the arithmetic, and it sits inside a ``lax.scan``
executed every iteration. Below :data:`UNROLL_MAX` the factorisation and the
triangular solves are unrolled into scalar expressions that XLA fuses; above
it they fall back to ``jax.numpy.linalg`` / ``jax.scipy.linalg``.

Both paths signal a matrix that is not positive definite the same way: the
factor contains NaN (callers test ``isfinite``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.linalg import cho_solve as _cho_solve_lapack

Array = jax.Array

__all__ = ["UNROLL_MAX", "cholesky", "cho_solve"]

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
