"""A parallel-in-time backward pass: the LQR sweep as associative scans, ``O(log T)`` depth.

Särkkä & García-Fernández (2023), "Temporal parallelization of dynamic
programming and linear quadratic control", IEEE TAC 68(2) (arXiv 2104.03186),
Sec. IV: the value function of a linear-quadratic problem conditioned on the
state at a later time is an element ``(A, b, C, eta, J)``,

    ``V(x_i | x_j) = max_lam 1/2 x_i'J x_i - eta'x_i + lam'(A x_i + b - x_j) - 1/2 lam'C lam``,

and conditional value functions combine associatively (their eq. 40); the
suffix combinations ``e_t * e_{t+1} * ... * e_T`` (``e_T`` the terminal cost)
are the value functions ``V_t(x) = 1/2 x'J_t x - eta_t'x`` for every ``t`` at
once, by ``jax.lax.associative_scan``.

:func:`parallel_backward_pass` returns exactly what
:func:`~ilqg_jax.backward.backward_pass` returns without control limits. That
pass is not a plain Riccati recursion when ``mu > 0`` (the gains use ``Quu +
mu I``, the value update the unregularised ``Quu``, Tassa et al. 2012 eq. 11)
nor with the second-order terms ``Vx . fzz`` (they make ``Vxx`` depend on
``Vx``); neither map composes associatively. So the pass is a fixed point:

1. **Guess**: the value functions of the regularised LQ problem (cost ``+ mu/2
   |u|^2``, no second-order terms) by one associative scan; cross terms are
   eliminated through ``(luu + mu I)^-1 lux`` (a step whose ``luu + mu I`` is
   not positive definite -- a control without cost at ``mu = 0`` -- gets a
   shifted one: it only changes the guess).
2. **Sweep** (every step at once, ``vmap``): the sequential step itself
   (:func:`~ilqg_jax.backward.q_terms`, :func:`~ilqg_jax.backward.gains`,
   :func:`~ilqg_jax.backward.value_update`) from each ``V_{t+1}``; stop when
   its values equal the ``V_t`` it started from (relative ``TOL``) on every
   step after the last one whose ``Quu + mu I`` is not positive definite.
3. **Policy evaluation** of the sweep's gains ``u = K x + k`` (with the
   second-order terms frozen at the current ``Vx``): another associative scan,
   of elements with ``C = 0``; then step 2 again. This is policy iteration
   (Newton's method at ``mu = 0``); after ``j`` rounds steps ``T-1-j ... T-1``
   are exact whatever the guess. After :data:`MAX_ROUNDS` rounds without
   reaching the fixed point (``mu`` comparable to an eigenvalue of ``Quu``,
   where the rounds converge slowly) the sequential pass is run instead --
   the documented fallback; under ``vmap`` both are computed.

At ``mu = 0`` without second-order terms the guess is already the fixed point
and step 3 never runs. Names as in :mod:`ilqg_jax.backward`.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp

from ilqg_jax import backward, linalg
from ilqg_jax.backward import BackwardResult
from ilqg_jax.derivatives import Derivatives

Array = jax.Array

__all__ = ["parallel_backward_pass", "choose_backward", "TOL", "MAX_ROUNDS", "ACCELERATOR_MIN_HORIZON"]

#: Rounds of policy iteration tried before falling back to the sequential pass: past a few rounds
#: the iteration converges slowly (``mu`` comparable to an eigenvalue of ``Quu``) and the sequential
#: pass is faster than more rounds.
MAX_ROUNDS = 4

#: Relative change of ``Vx, Vxx`` between two sweeps below which the fixed point is reached,
#: as a power of the dtype's machine epsilon (``eps ** TOL``: 1.8e-12 in float64).
TOL = 0.75


class _Element(NamedTuple):
    """Conditional value function ``(A, b, C, eta, J)``: ``(.., n, n), (.., n), (.., n, n), (.., n), (.., n, n)``."""

    A: Array
    b: Array
    C: Array
    eta: Array
    J: Array


def _t(a: Array) -> Array:
    return jnp.swapaxes(a, -1, -2)


def _sym(a: Array) -> Array:
    return 0.5 * (a + _t(a))


def _combine(ei: _Element, ej: _Element) -> _Element:
    """``e_i * e_j`` (``e_i`` the earlier), Särkkä & García-Fernández (2023) eq. (40); batched elementwise."""
    mm = linalg.matmul
    X = linalg.inv(jnp.eye(ei.A.shape[-1], dtype=ei.A.dtype) + mm(ei.C, ej.J))  # (I + C_i J_j)^-1
    AX, XtJ = mm(ej.A, X), mm(_t(X), ej.J)  # X' = (I + J_j C_i)^-1
    return _Element(A=mm(AX, ei.A), b=mm(AX, ei.b + mm(ei.C, ej.eta)) + ej.b,
                    C=_sym(mm(mm(AX, ei.C), _t(ej.A))) + ej.C,
                    eta=mm(_t(ei.A), mm(_t(X), ej.eta - mm(ej.J, ei.b))) + ei.eta,
                    J=_sym(mm(_t(ei.A), mm(XtJ, ei.A))) + ei.J)


def _combine_eval(ei: _Element, ej: _Element) -> _Element:
    """:func:`_combine` for ``C = 0`` (a fixed policy: nothing is minimised), without the inverse."""
    mm = linalg.matmul
    return _Element(A=mm(ej.A, ei.A), b=mm(ej.A, ei.b) + ej.b, C=ei.C,
                    eta=mm(_t(ei.A), ej.eta - mm(ej.J, ei.b)) + ei.eta,
                    J=_sym(mm(_t(ei.A), mm(ej.J, ei.A))) + ei.J)


def _suffix_values(combine, elems: _Element, d: Derivatives) -> tuple[Array, Array]:
    """``Vx: (T+1, n)``, ``Vxx: (T+1, n, n)`` from the suffix products of ``elems`` and the terminal cost."""
    n = d.lx.shape[1]
    zeros = jnp.zeros((1, n, n), d.lx.dtype)
    last = _Element(A=zeros, b=zeros[:, 0], C=zeros, eta=-d.lx[-1:], J=d.lxx[-1:])
    elems = jax.tree.map(lambda a, z: jnp.concatenate([a, z]), elems, last)
    # associative_scan(reverse=True) calls fn(later, earlier).
    out = jax.lax.associative_scan(lambda a, b: combine(b, a), elems, reverse=True)
    return -out.eta, out.J


def _lq_elements(d: Derivatives, mu: Array, gaps: Array) -> _Element:
    """Elements of the regularised LQ problem, cross terms eliminated through ``R^-1 lux``, ``R = luu + mu I``.

    ``gaps: (T, n)`` are the dynamics' offsets (multiple shooting; zeros for a rollout)."""
    m = d.lu.shape[1]
    eye = jnp.eye(m, dtype=d.lu.dtype)
    eps = jnp.finfo(d.lu.dtype).eps

    def one(fx, fu, lx, lu, lxx, luu, lux, gap):
        R = luu + mu * eye
        L = linalg.cholesky(R)
        # Not positive definite (e.g. a control without cost at mu = 0): a shifted R, for the guess only.
        shift = jnp.sqrt(jnp.sum(luu ** 2)) + jnp.sqrt(eps) * (1.0 + jnp.sum(fu ** 2) * jnp.max(jnp.abs(lxx)))
        L = jnp.where(jnp.all(jnp.isfinite(L)), L, linalg.cholesky(R + shift * eye))
        S = linalg.cho_solve(L, jnp.concatenate([lux, lu[:, None], fu.T], axis=1))  # R^-1 [lux, lu, fu']
        n = fx.shape[0]
        Rl, Rr, Rf = S[:, :n], S[:, n], S[:, n + 1:]
        return _Element(A=fx - fu @ Rl, b=gap - fu @ Rr, C=backward._symmetrize(fu @ Rf),
                        eta=lux.T @ Rr - lx, J=backward._symmetrize(lxx - lux.T @ Rl))

    return jax.vmap(one)(d.fx, d.fu, d.lx[:-1], d.lu, d.lxx[:-1], d.luu, d.lux, gaps)


def _policy_values(inputs: dict, Vx: Array, K: Array, k: Array, d: Derivatives) -> tuple[Array, Array]:
    """Values ``Vx: (T+1, n)``, ``Vxx: (T+1, n, n)`` of the policy ``u_t = K_t x + k_t`` by an associative scan.

    The second-order terms ``Vx_{t+1} . fzz`` (if any) use the given ``Vx``.
    """
    n = d.lx.shape[1]

    def one(inp, Vx_next, K, k):
        lzz = inp["lzz"]
        if "fzz" in inp:
            lzz = backward._symmetrize(lzz + jnp.tensordot(Vx_next, inp["fzz"], axes=1))
        G = jnp.concatenate([jnp.eye(n, dtype=K.dtype), K], axis=0)
        fu = inp["fz"][:, n:]
        b = fu @ k + inp["gap"] if "gap" in inp else fu @ k
        return _Element(A=inp["fz"] @ G, b=b, C=jnp.zeros((n, n), K.dtype),
                        eta=-(inp["lz"] + lzz[:, n:] @ k) @ G, J=backward._symmetrize(G.T @ lzz @ G))

    return _suffix_values(_combine_eval, jax.vmap(one)(inputs, Vx[1:], K, k), d)


class _Sweep(NamedTuple):
    """A sweep's :class:`~ilqg_jax.backward.BackwardResult` and whether it reproduced the values it started from."""

    result: BackwardResult
    done: Array


def _sweep(inputs: dict, Vx: Array, Vxx: Array, mu: Array) -> _Sweep:
    """The sequential step at every ``t`` from ``(Vx, Vxx)[t+1]`` at once; ``done`` when it reproduces ``V_t``."""
    n = Vx.shape[1]

    def one(inp, Vx_next, Vxx_next):
        Qz, Qzz = backward.q_terms(Vx_next, Vxx_next, inp)
        K, k, ok = backward.gains(Qz, Qzz, mu, n)
        Vx_new, Vxx_new, dV = backward.value_update(Qz, Qzz, K, k)
        return K, k, dV, Vx_new, Vxx_new, ok

    K, k, dV, Vx_new, Vxx_new, ok = jax.vmap(one)(inputs, Vx[1:], Vxx[1:])
    scale = jnp.max(jnp.abs(Vxx_new), axis=(1, 2)) + jnp.max(jnp.abs(Vx_new), axis=1)
    change = jnp.maximum(jnp.max(jnp.abs(Vxx_new - Vxx[:-1]), axis=(1, 2)),
                         jnp.max(jnp.abs(Vx_new - Vx[:-1]), axis=1))
    tol = jnp.finfo(Vx.dtype).eps ** TOL
    # Steps up to the last failed one need not agree: their values are meaningless anyway.
    after_failure = jnp.cumsum(~ok[::-1])[::-1] == 0
    done = jnp.all((change <= tol * scale) | ~after_failure)
    Vx_out = jnp.concatenate([Vx_new, Vx[-1:]])
    Vxx_out = jnp.concatenate([Vxx_new, Vxx[-1:]])
    return _Sweep(BackwardResult(K, k, jnp.sum(dV, axis=0), Vx_out, Vxx_out, jnp.all(ok)), done)


def parallel_backward_pass(d: Derivatives, mu: Array, second_order: Optional[tuple[Array, Array, Array]] = None,
                           unroll: int = 1, gaps: Optional[Array] = None) -> BackwardResult:
    """The backward pass of :func:`~ilqg_jax.backward.backward_pass` (no control limits) by associative scans.

    Same outputs as ``backward_pass(d, mu, second_order=second_order)`` to
    round-off (see the module docstring for how): ``O(log T)`` depth per scan,
    one scan at ``mu = 0`` without second-order terms, one more per round of
    policy iteration otherwise; after :data:`MAX_ROUNDS` rounds it falls back
    to the sequential pass (then it is slower than calling that directly).

    Args:
      d: :class:`~ilqg_jax.derivatives.Derivatives` along the nominal trajectory
        (``fx: (T, n, n)``, ``fu: (T, n, m)``, ``lx: (T+1, n)``, ...).
      mu: scalar regularisation of ``Quu`` (``Quu + mu I`` for the gains).
      second_order: ``(fxx (T, n, n, n), fuu (T, n, m, m), fux (T, n, m, n))``
        for full DDP, or ``None``.
      unroll: accepted so the two passes are interchangeable; unused (there
        is no sequential loop to unroll).
      gaps: ``(T, n)`` multiple-shooting defects (the elements' offsets ``b``), or ``None``.

    Returns:
      :class:`~ilqg_jax.backward.BackwardResult`: ``K (T, m, n)``, ``k (T, m)``,
      ``dV (2,)``, ``Vx (T+1, n)``, ``Vxx (T+1, n, n)``, ``ok`` (False when
      ``Quu + mu I`` is not positive definite at some step).
    """
    del unroll
    return _fixed_point(d, mu, second_order, gaps)[0]


def _fixed_point(d: Derivatives, mu: Array, second_order=None, gaps=None) -> tuple[BackwardResult, Array]:
    """:func:`parallel_backward_pass` and the number of policy-iteration rounds it took (int32 scalar;
    ``MAX_ROUNDS + 1`` when it fell back to the sequential pass)."""
    mu = jnp.asarray(mu, d.lx.dtype)
    inputs = backward.pack(d, second_order, gaps)
    Vx, Vxx = _suffix_values(_combine, _lq_elements(d, mu, jnp.zeros_like(d.lx[:-1]) if gaps is None else gaps), d)
    # A guess that is not finite (a non-convex problem) is replaced by zeros: the iteration still ends.
    finite = jnp.all(jnp.isfinite(Vx)) & jnp.all(jnp.isfinite(Vxx))
    Vx, Vxx = jnp.where(finite, Vx, 0.0), jnp.where(finite, Vxx, 0.0)

    def body(carry):
        it, Vx, _, s = carry
        # Gains of failed steps are not finite: a zero policy there keeps the values finite.
        K, k = (jnp.nan_to_num(g, nan=0.0, posinf=0.0, neginf=0.0) for g in (s.result.K, s.result.k))
        Vx_new, Vxx_new = _policy_values(inputs, Vx, K, k, d)
        return it + 1, Vx_new, Vxx_new, _sweep(inputs, Vx_new, Vxx_new, mu)

    def sequential(_):
        r = backward.backward_pass(d, mu, second_order=second_order, gaps=gaps)
        return jnp.asarray(MAX_ROUNDS + 1, jnp.int32), _Sweep(r, done=jnp.array(True))

    def refine(carry):
        it, _, _, s = jax.lax.while_loop(lambda c: (c[0] < MAX_ROUNDS) & ~c[3].done, body, carry)
        return jax.lax.cond(s.done, lambda _: (it, s), sequential, None)

    # The loop sits behind a cond: compiled into the common path, an idle while_loop still costs time on CPU.
    init = (jnp.zeros((), jnp.int32), Vx, Vxx, _sweep(inputs, Vx, Vxx, mu))
    it, s = jax.lax.cond(init[3].done, lambda c: (c[0], c[3]), refine, init)
    return s.result, it


#: Shortest horizon for which ``"auto"`` picks the parallel schedule on an accelerator (depth argument).
ACCELERATOR_MIN_HORIZON = 32


def choose_backward(backend: str, horizon: int, n: int, m: int) -> str:
    """The schedule ``Options(backward="auto")`` resolves to: ``"sequential"`` or ``"parallel"``.

    CPU (measured, ``benchmarks/backward.py``): ``"sequential"``. On a 2-core
    CPU at ``mu = 0`` the parallel pass takes 1.9x, 1.6x and 1.1x the
    sequential one's time at T = 100, 1,000 and 10,000 (n = 3, m = 2), 3.5x
    to 3.8x (n = 4, m = 1): the associative scan does several times the
    arithmetic, two cores give it little parallelism, and the sequential step
    is a handful of fused kernels (closed-form solves for ``m <= 3``). Every
    solve starts at ``mu > 0``, where the policy-iteration rounds or the
    sequential fallback cost more still.
    GPU/TPU (**not measured**): ``"parallel"`` from
    :data:`ACCELERATOR_MIN_HORIZON` steps, by the depth argument (``O(log T)``
    dependent kernel launches instead of ``T``).

    Args:
      backend: ``jax.default_backend()``: ``"cpu"``, ``"gpu"``, ``"cuda"``, ``"rocm"``, ``"tpu"``.
      horizon: ``T``. n, m: state and control dimensions.
    """
    del n, m  # no measured dependence at the sizes benchmarked
    if backend == "cpu":
        return "sequential"
    return "parallel" if horizon >= ACCELERATOR_MIN_HORIZON else "sequential"
