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

Multiple shooting (Mastalli et al. 2020, "Crocoddyl: an efficient and
versatile framework for multi-contact optimal control", Sec. IV): when the
nominal trajectory has *gaps* ``gap_t = f(x_t, u_t) - x_{t+1}`` (a state guess
that is not a rollout), the deviations obey ``dx_{t+1} = fx dx_t + fu du_t +
gap_t``, so the value gradient of the next step enters the ``Q`` expansion as
``Vx + Vxx gap`` and a full step closes every gap. The expected cost change is
then no longer Tassa's ``dV``: :func:`expected_change` evaluates the quadratic
model along the step's linearised trajectory.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp

from ilqg_jax import boxqp, linalg
from ilqg_jax.derivatives import Derivatives, joint_cost_hessians

Array = jax.Array

__all__ = ["BackwardResult", "backward_pass", "pack", "q_terms", "gains", "value_update", "expected_change"]


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


def pack(d: Derivatives, second_order: Optional[tuple[Array, Array, Array]] = None,
         gaps: Optional[Array] = None) -> dict:
    """Per-step inputs in joint coordinates ``z = [x; u]``, vectorised over time.

    Returns ``{"fz": (T, n, n+m), "lz": (T, n+m), "lzz": (T, n+m, n+m)}`` with
    ``fz = [fx fu]``, ``lz = [lx; lu]``, ``lzz = [[lxx, lux'], [lux, luu]]``,
    plus ``"fzz": (T, n, n+m, n+m)`` (the dynamics Hessians, same layout) with
    ``second_order = (fxx, fuu, fux)``, and ``"gap": (T, n)`` with ``gaps``.
    """
    fz = jnp.concatenate([d.fx, d.fu], axis=2)
    lz = jnp.concatenate([d.lx[:-1], d.lu], axis=1)
    inputs = {"fz": fz, "lz": lz, "lzz": joint_cost_hessians(d)}
    if second_order is not None:
        fxx, fuu, fux = second_order
        inputs["fzz"] = jnp.concatenate([jnp.concatenate([fxx, jnp.swapaxes(fux, 2, 3)], axis=3),
                                         jnp.concatenate([fux, fuu], axis=3)], axis=2)
    if gaps is not None:
        inputs["gap"] = gaps
    return inputs


def q_terms(Vx: Array, Vxx: Array, inp: dict) -> tuple[Array, Array]:
    """``Qz: (n+m,)`` and symmetric ``Qzz: (n+m, n+m)`` of one step from ``Vx, Vxx`` of the next (eq. 5).

    With a ``"gap"`` the next value's gradient is taken where the step lands, ``Vx + Vxx gap``.
    """
    fz = inp["fz"]
    if "gap" in inp:
        Vx = Vx + linalg.matmul(Vxx, inp["gap"])
    Qz = inp["lz"] + linalg.matmul(fz.T, Vx)
    Qzz = inp["lzz"] + linalg.matmul(fz.T, linalg.matmul(Vxx, fz))
    if "fzz" in inp:
        Qzz = Qzz + jnp.sum(Vx[:, None, None] * inp["fzz"], axis=0)
    return Qz, _symmetrize(Qzz)


def gains(Qz: Array, Qzz: Array, mu: Array, n: int) -> tuple[Array, Array, Array]:
    """``K: (m, n)``, ``k: (m,)`` from ``Quu + mu I`` (eq. 6) by :func:`linalg.spd_solve`, and ``ok`` (it is positive definite)."""
    Qu, Quu, Qux = Qz[n:], Qzz[n:, n:], Qzz[n:, :n]
    kK, ok = linalg.spd_solve(Quu + mu * jnp.eye(Quu.shape[0], dtype=Quu.dtype),
                              jnp.concatenate([Qu[:, None], Qux], axis=1))
    return -kK[:, 1:], -kK[:, 0], ok


def value_update(Qz: Array, Qzz: Array, K: Array, k: Array) -> tuple[Array, Array, Array]:
    """``Vx: (n,)``, ``Vxx: (n, n)`` and the step's ``dV: (2,)`` for the policy ``u = K x + k`` (eq. 11).

    With ``G = [I; K]``: ``Vxx = G' Qzz G`` and ``Vx = G' (Qz + Qzz[:, u] k)``, i.e.
    ``Vx = Qx + K'Quu k + K'Qu + Qux'k``, ``Vxx = Qxx + K'Quu K + K'Qux + Qux'K`` with the
    unregularised ``Quu``.
    """
    n = K.shape[1]
    Qx, Qu, Qxx, Quu, Qux = Qz[:n], Qz[n:], Qzz[:n, :n], Qzz[n:, n:], Qzz[n:, :n]
    Quu_k = linalg.matmul(Quu, k)
    Vx = Qx + linalg.matmul(K.T, Quu_k + Qu) + linalg.matmul(Qux.T, k)
    Vxx = _symmetrize(Qxx + linalg.matmul(K.T, linalg.matmul(Quu, K) + Qux) + linalg.matmul(Qux.T, K))
    dV = jnp.stack([jnp.sum(k * Qu), 0.5 * jnp.sum(k * Quu_k)])
    return Vx, Vxx, dV


def _limited_gains(Qz, Qzz, mu, inp, lower, upper):
    """Gains under control limits: ``k`` from the box QP, ``K`` on its free subspace (Tassa et al. 2014)."""
    n = Qz.shape[0] - inp["u"].shape[0]
    Qu, Quu, Qux = Qz[n:], Qzz[n:, n:], Qzz[n:, :n]
    Quu_reg = Quu + mu * jnp.eye(Quu.shape[0], dtype=Quu.dtype)
    # min_grad=0: the QP stops at the round-off level of its gradient, not at an absolute 1e-8 that would
    # hand back the warm start (the previous k) unchanged near the optimum -- k is the stationarity measure.
    qp = boxqp.box_qp(Quu_reg, Qu, lower - inp["u"], upper - inp["u"], inp["k_warm"], min_grad=0.0)
    K = -boxqp.free_subspace_solve(Quu_reg, Qux, qp.free)
    ok = (qp.status != boxqp.BoxQPStatus.NOT_POSITIVE_DEFINITE) & jnp.all(jnp.isfinite(K))
    return K, qp.x, ok


def backward_pass(
    d: Derivatives,
    mu: Array,
    us: Optional[Array] = None,
    control_lower: Optional[Array] = None,
    control_upper: Optional[Array] = None,
    k_warm: Optional[Array] = None,
    second_order: Optional[tuple[Array, Array, Array]] = None,
    unroll: int = 1,
    gaps: Optional[Array] = None,
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
      gaps: ``(T, n)`` defects ``f(x_t, u_t) - x_{t+1}`` of a multiple-shooting
        nominal trajectory, or ``None`` (a rollout). ``dV`` stays Tassa's;
        with gaps use :func:`expected_change`.

    Returns:
      :class:`BackwardResult`.
    """
    (T, m), n = d.lu.shape, d.lx.shape[1]
    limited = control_lower is not None
    # Packed per time step outside the scan (vectorised), so each scan step needs only a handful of
    # small products: on CPU every operation inside a loop has a fixed cost.
    inputs = pack(d, second_order, gaps)
    if limited:
        inputs["u"] = us
        inputs["k_warm"] = jnp.zeros((T, m), d.lx.dtype) if k_warm is None else k_warm

    def step(carry, inp):
        Vx, Vxx, ok = carry
        Qz, Qzz = q_terms(Vx, Vxx, inp)
        if limited:
            K, k, step_ok = _limited_gains(Qz, Qzz, mu, inp, control_lower, control_upper)
        else:
            K, k, step_ok = gains(Qz, Qzz, mu, n)
        Vx_new, Vxx_new, dV = value_update(Qz, Qzz, K, k)
        # One output row per step: on CPU each stacked output costs an update of its own per step.
        row = jnp.concatenate([a.reshape(-1) for a in (K, k, dV, Vx_new, Vxx_new)])
        return (Vx_new, Vxx_new, ok & step_ok), row

    init = (d.lx[-1], d.lxx[-1], jnp.array(True))
    (_, _, ok), rows = jax.lax.scan(step, init, inputs, reverse=True, unroll=unroll)
    K, k, dV, Vx, Vxx = _unpack(rows, ((m, n), (m,), (2,), (n,), (n, n)))
    Vx = jnp.concatenate([Vx, d.lx[-1:]])
    Vxx = jnp.concatenate([Vxx, d.lxx[-1:]])
    return BackwardResult(K, k, jnp.sum(dV, axis=0), Vx, Vxx, ok)


def _unpack(rows: Array, shapes) -> list:
    """Splits ``rows: (T, sum of sizes)`` into arrays ``(T, *shape)`` per shape, in order."""
    out, start = [], 0
    for shape in shapes:
        size = math.prod(shape)
        out.append(rows[:, start:start + size].reshape((rows.shape[0],) + shape))
        start += size
    return out


def expected_change(d: Derivatives, K: Array, k: Array, gaps: Array) -> Array:
    """``dV: (2,)`` such that the quadratic model changes the cost by ``alpha dV[0] + alpha^2 dV[1]``.

    For a nominal trajectory with ``gaps: (T, n)``: a step of size ``alpha``
    moves the nodes by ``alpha z_t`` and the controls by ``alpha w_t``, where
    ``z_0 = 0``, ``w_t = k_t + K_t z_t``, ``z_{t+1} = fx z_t + fu w_t + gap_t``
    (the linearised closed loop closing the gaps), so the model's change is
    ``alpha sum(lz'[z; w]) + alpha^2/2 sum([z; w]'lzz [z; w])`` plus the
    terminal terms. Without gaps and with ``mu = 0`` this equals the ``dV`` of
    :func:`backward_pass`.
    """
    n = d.fx.shape[1]

    def step(z, inp):
        fx, fu, Kt, kt, gap = inp
        w = kt + linalg.matmul(Kt, z)
        return linalg.matmul(fx, z) + linalg.matmul(fu, w) + gap, jnp.concatenate([z, w])

    zT, zw = jax.lax.scan(step, jnp.zeros((n,), d.fx.dtype), (d.fx, d.fu, K, k, gaps))
    inputs = pack(d)
    linear = jnp.sum(inputs["lz"] * zw) + d.lx[-1] @ zT
    quadratic = jnp.einsum("ti,tij,tj->", zw, inputs["lzz"], zw) + zT @ d.lxx[-1] @ zT
    return jnp.stack([linear, 0.5 * quadratic])
