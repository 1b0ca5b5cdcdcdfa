"""The iLQG backward pass: a time-varying LQR sweep as ``lax.scan(reverse=True)``.

Tassa, Erez & Todorov (2012), "Synthesis and stabilization of complex
behaviors through online trajectory optimization", eqs. (5)-(11); with control
limits, Tassa, Mansard & Todorov (2014), "Control-limited differential dynamic
programming", Sec. III.

Names as in the papers: the value function's expansion ``Vx, Vxx``; the
``Q``-function's ``Qx, Qu, Qxx, Quu, Qux``; the Levenberg-Marquardt
regularisation ``mu`` added to ``Quu``; feedback gains ``K: (T, m, n)`` and
feed-forward ``k: (T, m)``; and the expected cost change ``dV = (sum k'Qu,
sum 1/2 k'Quu k)`` so that a step of size ``alpha`` is expected to change the
cost by ``alpha dV[0] + alpha^2 dV[1]``.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp

from ilqg_jax import boxqp, linalg
from ilqg_jax.derivatives import Derivatives

Array = jax.Array

__all__ = ["BackwardResult", "backward_pass"]


class BackwardResult(NamedTuple):
    """Output of :func:`backward_pass`.

    Attributes:
      K: ``(T, m, n)`` feedback gains.
      k: ``(T, m)`` feed-forward terms.
      dV: ``(2,)`` expected cost change coefficients (see module docstring).
      Vx: ``(T+1, n)`` value gradients (index ``T`` is the terminal cost's).
      Vxx: ``(T+1, n, n)`` value Hessians.
      ok: bool scalar; False when ``Quu + mu I`` was not positive definite at
        some step (then ``K, k`` are meaningless and ``mu`` must be raised).
    """

    K: Array
    k: Array
    dV: Array
    Vx: Array
    Vxx: Array
    ok: Array


def _symmetrize(A: Array) -> Array:
    return 0.5 * (A + A.T)


def backward_pass(
    d: Derivatives,
    mu: Array,
    us: Optional[Array] = None,
    control_lower: Optional[Array] = None,
    control_upper: Optional[Array] = None,
    k_warm: Optional[Array] = None,
    second_order: Optional[tuple[Array, Array, Array]] = None,
    unroll: int = 1,
) -> BackwardResult:
    """Computes gains ``K, k`` by a reverse ``lax.scan`` over time.

    Args:
      d: :class:`~ilqg_jax.derivatives.Derivatives` along the nominal trajectory.
      mu: scalar regularisation added to ``Quu`` (``Quu + mu I``).
      us: ``(T, m)`` nominal controls; needed only with control limits.
      control_lower, control_upper: ``(m,)`` limits or ``None``. With limits,
        ``k`` solves the box QP ``min 1/2 k'Quu k + k'Qu`` s.t.
        ``lower - u <= k <= upper - u`` (:func:`ilqg_jax.boxqp.box_qp`) and
        rows of ``K`` of clamped controls are zero.
      k_warm: ``(T, m)`` warm start for the box QPs (previous ``k``).
      second_order: ``(fxx, fuu, fux)`` from
        :func:`~ilqg_jax.derivatives.dynamics_hessians` for full DDP: the
        terms ``Vx' . f..`` are added to ``Qxx, Quu, Qux``.
      unroll: ``lax.scan`` unroll factor.

    Returns:
      :class:`BackwardResult`.
    """
    T, m = d.lu.shape
    n = d.lx.shape[1]
    dtype = d.lx.dtype
    limited = control_lower is not None
    eye = jnp.eye(m, dtype=dtype)
    eye_n = jnp.eye(n, dtype=dtype)
    if limited and k_warm is None:
        k_warm = jnp.zeros((T, m), dtype)

    # Pack per time step (outside the scan, vectorised): z = [x; u], f_z = [fx fu], l_z = [lx; lu],
    # l_zz = [[lxx, lux'], [lux, luu]]. Each scan step then needs a handful of small products,
    # which matters on CPU where every operation inside a loop has a fixed cost.
    fz = jnp.concatenate([d.fx, d.fu], axis=2)  # (T, n, n+m)
    lz = jnp.concatenate([d.lx[:-1], d.lu], axis=1)  # (T, n+m)
    lzz = jnp.concatenate([jnp.concatenate([d.lxx[:-1], jnp.swapaxes(d.lux, 1, 2)], axis=2),
                           jnp.concatenate([d.lux, d.luu], axis=2)], axis=1)  # (T, n+m, n+m)
    inputs = {"fz": fz, "lz": lz, "lzz": lzz}
    if second_order is not None:
        fxx, fuu, fux = second_order
        inputs["fzz"] = jnp.concatenate([jnp.concatenate([fxx, jnp.swapaxes(fux, 2, 3)], axis=3),
                                         jnp.concatenate([fux, fuu], axis=3)], axis=2)  # (T, n, n+m, n+m)
    if limited:
        inputs["u"] = us
        inputs["k_warm"] = k_warm

    def step(carry, inp):
        Vx, Vxx, ok = carry
        fz = inp["fz"]
        Qz = inp["lz"] + Vx @ fz
        Qzz = inp["lzz"] + fz.T @ (Vxx @ fz)
        if second_order is not None:
            Qzz = Qzz + jnp.tensordot(Vx, inp["fzz"], axes=1)
        Qzz = _symmetrize(Qzz)
        Qu, Quu, Qux = Qz[n:], Qzz[n:, n:], Qzz[n:, :n]
        Quu_reg = Quu + mu * eye
        if limited:
            u = inp["u"]
            qp = boxqp.box_qp(Quu_reg, Qu, control_lower - u, control_upper - u, inp["k_warm"])
            k = qp.x
            K = -boxqp.free_subspace_solve(Quu_reg, Qux, qp.free)
            step_ok = (qp.status != boxqp.BoxQPStatus.NOT_POSITIVE_DEFINITE) & jnp.all(jnp.isfinite(K))
        else:
            L = linalg.cholesky(Quu_reg)
            kK = -linalg.cho_solve(L, jnp.concatenate([Qu[:, None], Qux], axis=1))
            k, K = kK[:, 0], kK[:, 1:]
            step_ok = jnp.all(jnp.isfinite(L))
        # With G = [I; K]: Vxx = G' Qzz G and Vx = G' (Qz + Qzz[:, u] k), i.e. Tassa et al. (2012) eq. (11)
        # Vx = Qx + K'Quu k + K'Qu + Qux'k, Vxx = Qxx + K'Quu K + K'Qux + Qux'K (unregularised Quu).
        G = jnp.concatenate([eye_n, K], axis=0)
        Vx_new = (Qz + Qzz[:, n:] @ k) @ G
        Vxx_new = _symmetrize(G.T @ (Qzz @ G))
        dV = jnp.stack([k @ Qu, 0.5 * k @ Quu @ k])
        return (Vx_new, Vxx_new, ok & step_ok), (K, k, dV, Vx_new, Vxx_new)

    init = (d.lx[-1], d.lxx[-1], jnp.array(True))
    (_, _, ok), (K, k, dV, Vx, Vxx) = jax.lax.scan(step, init, inputs, reverse=True, unroll=unroll)
    Vx = jnp.concatenate([Vx, d.lx[-1:]])
    Vxx = jnp.concatenate([Vxx, d.lxx[-1:]])
    return BackwardResult(K, k, jnp.sum(dV, axis=0), Vx, Vxx, ok)
