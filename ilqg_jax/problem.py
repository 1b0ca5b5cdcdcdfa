"""Optimal-control problems and the validation of their inputs.

A :class:`Problem` is a handful of pure functions plus a horizon and optional
box limits on the controls. It is a pytree: the functions and the horizon are
static (part of the tree structure, so they must be hashable -- plain functions
are, by identity), while the control limits are array leaves, so a problem can
be passed through ``jax.jit`` and ``jax.vmap`` like any other argument.

Conventions (Tassa, Erez & Todorov 2012): ``n`` states, ``m`` controls, ``T``
time steps; ``xs: (T+1, n)``, ``us: (T, m)``.

All user-facing validation happens here, in Python, before anything is traced:
a mistake raises ``ValueError``/``TypeError`` naming the argument with the
expected and the actual shape, never an XLA stack trace.
"""

from __future__ import annotations

import dataclasses
import numbers
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
Params = Any

__all__ = ["Problem", "validate_inputs", "check_bounds"]


def _is_concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


@dataclasses.dataclass(frozen=True)
class Problem:
    """A finite-horizon, discrete-time optimal-control problem.

    minimise  ``sum_t running_cost(x_t, u_t, t, params) + terminal_cost(x_T, params)``
    subject to ``x_{t+1} = dynamics(x_t, u_t, t, params)`` and
    ``control_lower <= u_t <= control_upper``.

    Attributes:
      dynamics: ``(x: (n,), u: (m,), t: int scalar, params) -> x_next: (n,)``,
        discrete time.
      running_cost: ``(x: (n,), u: (m,), t, params) -> scalar``.
      terminal_cost: ``(x: (n,), params) -> scalar``.
      horizon: number of control steps ``T >= 1``.
      control_lower: ``(m,)`` lower bound on every ``u_t`` (``-inf`` allowed),
        or ``None`` for no limits.
      control_upper: ``(m,)`` upper bound (``+inf`` allowed), or ``None``.

    The functions and the horizon are static: changing them recompiles.
    ``params`` (any pytree) is traced, so it can be batched and differentiated.
    """

    dynamics: Callable[..., Array]
    running_cost: Callable[..., Array]
    terminal_cost: Callable[..., Array]
    horizon: int
    control_lower: Optional[Array] = None
    control_upper: Optional[Array] = None

    def __post_init__(self):
        for name in ("dynamics", "running_cost", "terminal_cost"):
            fn = getattr(self, name)
            if not callable(fn):
                raise TypeError(f"Problem.{name} must be callable, got {type(fn).__name__}.")
        h = self.horizon
        if isinstance(h, bool) or not isinstance(h, numbers.Integral):
            raise TypeError(f"Problem.horizon must be an int, got {type(h).__name__} ({h!r}).")
        if h < 1:
            raise ValueError(f"Problem.horizon must be >= 1, got {h}.")
        object.__setattr__(self, "horizon", int(h))
        if (self.control_lower is None) != (self.control_upper is None):
            # One-sided limits are expressed with +-inf on the other side.
            m = np.shape(self.control_lower if self.control_lower is not None else self.control_upper)
            lo = self.control_lower if self.control_lower is not None else jnp.full(m, -jnp.inf)
            hi = self.control_upper if self.control_upper is not None else jnp.full(m, jnp.inf)
            object.__setattr__(self, "control_lower", lo)
            object.__setattr__(self, "control_upper", hi)
        if self.control_lower is not None:
            lo, hi = check_bounds(self.control_lower, self.control_upper)
            object.__setattr__(self, "control_lower", lo)
            object.__setattr__(self, "control_upper", hi)

    @property
    def has_limits(self) -> bool:
        return self.control_lower is not None

    def replace(self, **changes) -> "Problem":
        """A copy with some fields changed (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)


jax.tree_util.register_dataclass(
    Problem,
    data_fields=["control_lower", "control_upper"],
    meta_fields=["dynamics", "running_cost", "terminal_cost", "horizon"],
)


def _as_float_array(value, name: str) -> Array:
    dtype = getattr(value, "dtype", None)
    if dtype is None:
        try:
            value = np.asarray(value)
        except Exception as e:  # pragma: no cover - exotic inputs
            raise TypeError(f"{name} must be an array of floats, got {type(value).__name__}.") from e
        dtype = value.dtype
    if dtype == object or not (jnp.issubdtype(dtype, jnp.floating) or jnp.issubdtype(dtype, jnp.integer)
                               or jnp.issubdtype(dtype, jnp.bool_)):
        raise TypeError(f"{name} must be a real floating-point array, got dtype {dtype}.")
    if jnp.issubdtype(dtype, jnp.bool_):
        raise TypeError(f"{name} must be a real floating-point array, got dtype {dtype}.")
    return value


def check_bounds(lower, upper):
    """Validates control limits: rank 1, equal shapes, no NaN, ``lower <= upper``.

    Returns the limits as float arrays. Raises ``ValueError``/``TypeError``.
    """
    lower = _as_float_array(lower, "control_lower")
    upper = _as_float_array(upper, "control_upper")
    if np.ndim(lower) != 1:
        raise ValueError(f"control_lower must have shape (m,), got shape {np.shape(lower)}.")
    if np.shape(upper) != np.shape(lower):
        raise ValueError(
            f"control_upper must have the shape of control_lower {np.shape(lower)}, got {np.shape(upper)}.")
    if _is_concrete(lower) and _is_concrete(upper):
        lo, hi = np.asarray(lower, dtype=float), np.asarray(upper, dtype=float)
        if np.isnan(lo).any() or np.isnan(hi).any():
            raise ValueError(f"control limits must not be NaN, got lower={lo}, upper={hi}.")
        if (lo > hi).any():
            bad = np.flatnonzero(lo > hi)
            raise ValueError(
                f"control_lower must be <= control_upper, but at index {bad.tolist()} "
                f"lower={lo[bad].tolist()} > upper={hi[bad].tolist()}.")
        if np.isposinf(lo).any() or np.isneginf(hi).any():
            raise ValueError("control_lower cannot be +inf and control_upper cannot be -inf.")
    return jnp.asarray(lower, dtype=jnp.result_type(float)), jnp.asarray(upper, dtype=jnp.result_type(float))


def _check_finite(value, name: str):
    if _is_concrete(value):
        arr = np.asarray(value)
        if not np.isfinite(arr).all():
            where = np.argwhere(~np.isfinite(arr))[:3].tolist()
            raise ValueError(f"{name} must be finite, but has NaN/inf at index {where} (shape {arr.shape}).")


def _describe(struct) -> str:
    return f"shape {tuple(struct.shape)}, dtype {struct.dtype}"


def validate_inputs(problem: Problem, x0, us_init, params=None):
    """Checks ``(problem, x0, us_init, params)`` before tracing; returns ``(x0, us_init)`` as arrays.

    Checks, each raising an error that names the argument with expected vs actual:
    ``problem`` is a :class:`Problem`; ``x0: (n,)`` and ``us_init: (T, m)``
    are real floating arrays with ``T == problem.horizon`` (a leading batch
    axis when ``batched``), finite when concrete; ``dynamics`` returns ``(n,)``
    of a floating dtype; both costs return finite-shaped scalars; limits have
    shape ``(m,)``.
    """
    if not isinstance(problem, Problem):
        raise TypeError(f"problem must be an ilqg_jax.Problem, got {type(problem).__name__}.")
    x0 = _as_float_array(x0, "x0")
    us_init = _as_float_array(us_init, "us_init")
    T = problem.horizon
    if np.ndim(x0) != 1:
        raise ValueError(f"x0 must have shape (n,), got shape {np.shape(x0)}.")
    if np.ndim(us_init) != 2 or np.shape(us_init)[0] != T:
        raise ValueError(
            f"us_init must have shape (T, m) with T = problem.horizon = {T}, got shape {np.shape(us_init)}.")
    n, m = np.shape(x0)[0], np.shape(us_init)[1]
    if n < 1 or m < 1:
        raise ValueError(f"need at least one state and one control, got n={n} (x0) and m={m} (us_init).")
    _check_finite(x0, "x0")
    _check_finite(us_init, "us_init")
    if problem.has_limits and np.shape(problem.control_lower) != (m,):
        raise ValueError(f"control limits must have shape (m,) = ({m},) to match us_init, "
                         f"got shape {np.shape(problem.control_lower)}.")

    dtype = jnp.result_type(x0, us_init, float)
    x = jax.ShapeDtypeStruct((n,), dtype)
    u = jax.ShapeDtypeStruct((m,), dtype)
    t = jax.ShapeDtypeStruct((), jnp.int32)
    p_struct = jax.tree_util.tree_map(
        lambda a: jax.ShapeDtypeStruct(np.shape(a), jnp.result_type(a)), params) if params is not None else None

    def shape_of(fn, name, *args):
        try:
            return jax.eval_shape(fn, *args)
        except (TypeError, ValueError, IndexError) as e:
            raise type(e)(f"problem.{name} failed on x: (n,)=({n},), u: (m,)=({m},): {e}") from e

    out = shape_of(problem.dynamics, "dynamics", x, u, t, p_struct)
    if not hasattr(out, "shape") or tuple(out.shape) != (n,):
        got = _describe(out) if hasattr(out, "shape") else type(out).__name__
        raise ValueError(f"problem.dynamics must return the next state with shape (n,) = ({n},), got {got}.")
    if not jnp.issubdtype(out.dtype, jnp.floating):
        raise TypeError(f"problem.dynamics must return a floating array, got dtype {out.dtype}.")
    for name, args in (("running_cost", (x, u, t, p_struct)), ("terminal_cost", (x, p_struct))):
        c = shape_of(getattr(problem, name), name, *args)
        if not hasattr(c, "shape") or tuple(c.shape) != ():
            got = _describe(c) if hasattr(c, "shape") else type(c).__name__
            raise ValueError(f"problem.{name} must return a scalar (shape ()), got {got}.")
        if not jnp.issubdtype(c.dtype, jnp.floating):
            raise TypeError(f"problem.{name} must return a floating scalar, got dtype {c.dtype}.")
    return jnp.asarray(x0, dtype), jnp.asarray(us_init, dtype)
