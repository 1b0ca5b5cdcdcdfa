"""Optimal-control problems and the validation of their inputs.

A :class:`Problem` is a handful of pure functions plus a horizon and optional
box limits on the controls. It is a pytree: the functions and the horizon are
static (part of the tree structure, so they must be hashable -- plain functions
are, by identity), while the control limits are array leaves, so a problem can
be passed through ``jax.jit`` and ``jax.vmap`` like any other argument.

Conventions (Tassa, Erez & Todorov 2012): ``n`` states, ``m`` controls, ``T``
time steps; ``xs: (T+1, n)``, ``us: (T, m)``.

All user-facing validation happens here, in Python, before anything is traced:
a mistake raises ``TypeError`` (wrong kind of thing: dtype, type) or
``ValueError`` (right kind, wrong value: shape, NaN, order) whose message names
the argument, what was expected and what was received -- never an XLA stack
trace. Values of tracers (inside ``jit``/``vmap``/``grad``) cannot be checked:
for them only shapes and dtypes are.

Dtype policy (one rule everywhere: ``x0``, ``us_init`` and the control limits):

- real floating arrays keep their precision; ``float16``/``bfloat16`` are
  promoted to ``float32`` (the tolerances and Cholesky factorisations of the
  solver need at least single precision); ``x0`` and ``us_init`` of different
  precisions are promoted to the wider one, and the solve runs in that dtype;
- integer arrays (``[1, 0]``) are converted to floating point: to the dtype of
  the other argument when that one is floating, else to JAX's default float
  (``float64`` with ``jax_enable_x64``, else ``float32``);
- ``bool``, complex, string and object arrays are rejected with ``TypeError``
  (a mask or a complex state is a mistake, not a number to optimise);
- ``dynamics`` must return the solve's dtype, and the costs a scalar of it
  (Python scalars and other weakly typed constants are fine); a mismatch --
  say float64 constants in a float32 solve -- raises ``TypeError`` instead of
  an XLA type error deep inside ``lax.scan``;
- ``params`` is the user's pytree and is not converted; its leaves must be
  numeric (arrays or numbers), since they are traced.
"""

from __future__ import annotations

import dataclasses
import functools
import numbers
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
Params = Any

__all__ = ["Problem", "validate_inputs", "check_bounds", "float_dtype", "with_dtype"]

_FUNCTIONS = ("dynamics", "running_cost", "terminal_cost")
_CONSTRAINTS = ("path_constraint", "terminal_constraint")
_META = (*_FUNCTIONS, "horizon", *_CONSTRAINTS)


def _is_concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


@dataclasses.dataclass(frozen=True)
class Problem:
    """A finite-horizon, discrete-time optimal-control problem.

    minimise  ``sum_t running_cost(x_t, u_t, t, params) + terminal_cost(x_T, params)``
    subject to ``x_{t+1} = dynamics(x_t, u_t, t, params)``,
    ``control_lower <= u_t <= control_upper``,
    ``path_constraint(x_t, u_t, t, params) <= 0`` (``t < T``) and
    ``terminal_constraint(x_T, params) == 0``.

    Attributes:
      dynamics: ``(x: (n,), u: (m,), t: int scalar, params) -> x_next: (n,)``,
        discrete time.
      running_cost: ``(x: (n,), u: (m,), t, params) -> scalar``.
      terminal_cost: ``(x: (n,), params) -> scalar``.
      horizon: number of control steps ``T >= 1`` (a Python or NumPy int).
      control_lower: ``(m,)`` lower bound on every ``u_t`` (``-inf`` allowed),
        or ``None`` for no limits.
      control_upper: ``(m,)`` upper bound (``+inf`` allowed), or ``None``.
        One-sided limits: give one and the other defaults to ``+-inf``.
      path_constraint: ``(x: (n,), u: (m,), t, params) -> (p,)``, feasible
        where every entry is ``<= 0``; or ``None``. Solved by an augmented
        Lagrangian around iLQG (:mod:`ilqg_jax.constrained`).
      terminal_constraint: ``(x: (n,), params) -> (q,)``, feasible where every
        entry is ``== 0``; or ``None``.

    The functions and the horizon are static: changing them recompiles.
    ``params`` (any pytree) is traced, so it can be batched and differentiated.

    Raises (at construction):
      TypeError: a function is not callable or not hashable; ``horizon`` is not
        an int; limits are not real numbers.
      ValueError: ``horizon < 1``; limits not of shape ``(m,)``, NaN, or
        ``lower > upper``.
    """

    dynamics: Callable[..., Array]
    running_cost: Callable[..., Array]
    terminal_cost: Callable[..., Array]
    horizon: int
    control_lower: Optional[Array] = None
    control_upper: Optional[Array] = None
    path_constraint: Optional[Callable[..., Array]] = None
    terminal_constraint: Optional[Callable[..., Array]] = None

    def __post_init__(self):
        for name in _FUNCTIONS + _CONSTRAINTS:
            fn = getattr(self, name)
            if fn is None and name in _CONSTRAINTS:
                continue
            if not callable(fn):
                raise TypeError(f"Problem.{name} must be callable, got {type(fn).__name__} ({fn!r:.60}).")
            try:
                hash(fn)
            except TypeError as e:
                raise TypeError(f"Problem.{name} must be hashable (the functions are static under jit), "
                                f"got an unhashable {type(fn).__name__}.") from e
        h = self.horizon
        if isinstance(h, (bool, np.bool_)) or not isinstance(h, numbers.Integral):
            raise TypeError(f"Problem.horizon must be an int, got {type(h).__name__} ({h!r}).")
        if h < 1:
            raise ValueError(f"Problem.horizon must be >= 1, got {h}.")
        object.__setattr__(self, "horizon", int(h))
        if (self.control_lower is None) != (self.control_upper is None):
            # One-sided limits are expressed with +-inf on the other side.
            given = self.control_lower if self.control_lower is not None else self.control_upper
            name = "control_lower" if self.control_lower is not None else "control_upper"
            given = _as_float_array(given, name)
            other = jnp.full(np.shape(given), jnp.inf if self.control_upper is None else -jnp.inf,
                             float_dtype(given.dtype))
            lo, hi = (given, other) if self.control_upper is None else (other, given)
            object.__setattr__(self, "control_lower", lo)
            object.__setattr__(self, "control_upper", hi)
        if self.control_lower is not None:
            lo, hi = check_bounds(self.control_lower, self.control_upper)
            object.__setattr__(self, "control_lower", lo)
            object.__setattr__(self, "control_upper", hi)

    @property
    def has_limits(self) -> bool:
        return self.control_lower is not None

    @property
    def has_constraints(self) -> bool:
        """Whether the problem has a path or a terminal constraint (besides control limits)."""
        return self.path_constraint is not None or self.terminal_constraint is not None

    def replace(self, **changes) -> "Problem":
        """A copy with some fields changed (``dataclasses.replace``: validated again)."""
        return dataclasses.replace(self, **changes)


# A pytree whose reconstruction skips ``__post_init__``: JAX rebuilds problems with
# tracers, batched limits (``vmap`` over problems), ``in_axes`` specs or placeholders,
# none of which is a user's mistake to validate.
def _flatten_with_keys(p: Problem):
    keys = jax.tree_util.GetAttrKey
    return ((keys("control_lower"), p.control_lower), (keys("control_upper"), p.control_upper)), \
        tuple(getattr(p, name) for name in _META)


def _flatten(p: Problem):
    return (p.control_lower, p.control_upper), tuple(getattr(p, name) for name in _META)


def _unflatten(meta, children) -> Problem:
    p = object.__new__(Problem)
    for name, value in zip(_META, meta):
        object.__setattr__(p, name, value)
    object.__setattr__(p, "control_lower", children[0])
    object.__setattr__(p, "control_upper", children[1])
    return p


jax.tree_util.register_pytree_with_keys(Problem, _flatten_with_keys, _unflatten, _flatten)


# --- dtypes ------------------------------------------------------------------------------------------


def _default_float():
    return np.dtype(jax.dtypes.canonicalize_dtype(jnp.float64))


def float_dtype(*dtypes) -> np.dtype:
    """The floating dtype a solve runs in for inputs of ``dtypes`` (see the module's dtype policy).

    Real floats keep their precision (the widest wins), half precision becomes
    ``float32``, integers become the other inputs' float or JAX's default float.
    """
    floats = [d for d in dtypes if jnp.issubdtype(d, jnp.floating)]
    dtype = np.dtype(jnp.result_type(*floats)) if floats else _default_float()
    if jnp.finfo(dtype).bits < 32:
        dtype = np.dtype(jax.dtypes.canonicalize_dtype(jnp.float32))
    return np.dtype(jax.dtypes.canonicalize_dtype(dtype))


def _as_float_array(value, name: str):
    """``value`` as an array (NumPy or JAX, dtype unchanged) of real numbers; ``TypeError`` otherwise."""
    dtype = getattr(value, "dtype", None)
    if dtype is None or not hasattr(value, "shape"):
        try:
            value = np.asarray(value)
        except Exception as e:  # ragged lists and the like
            raise TypeError(f"{name} must be an array of real numbers, got {type(value).__name__} "
                            f"that is not one ({e}).") from None
        dtype = value.dtype
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        raise TypeError(f"{name} must be a real floating-point (or integer) array, got dtype bool "
                        "(a mask? convert it explicitly if you mean 0/1).")
    if jnp.issubdtype(dtype, jnp.complexfloating):
        raise TypeError(f"{name} must be a real floating-point (or integer) array, got dtype {dtype} "
                        "(complex states and controls are not supported).")
    if not (jnp.issubdtype(dtype, jnp.floating) or jnp.issubdtype(dtype, jnp.integer)):
        raise TypeError(f"{name} must be a real floating-point (or integer) array, got dtype {dtype}"
                        f"{' (' + type(value).__name__ + ')' if dtype == object else ''}.")
    return value


def with_dtype(problem: Problem, dtype) -> Problem:
    """``problem`` with its control limits cast to ``dtype`` (the solve's; no validation, any arrays)."""
    if not problem.has_limits:
        return problem
    flat, tree = jax.tree_util.tree_flatten(problem)
    return jax.tree_util.tree_unflatten(tree, [jnp.asarray(a).astype(dtype) for a in flat])


# --- limits --------------------------------------------------------------------------------------------


def check_bounds(lower, upper):
    """Validates control limits: rank 1, equal shapes, real dtypes, no NaN, ``lower <= upper``.

    ``-inf`` lower and ``+inf`` upper limits are allowed (no limit on that side);
    ``+inf`` lower and ``-inf`` upper are not. Values are checked when concrete;
    tracers get the shape and dtype checks only.

    Returns the limits as arrays of one floating dtype (integers are converted,
    see the module docstring). Raises ``ValueError``/``TypeError``.
    """
    lower = _as_float_array(lower, "control_lower")
    upper = _as_float_array(upper, "control_upper")
    if np.ndim(lower) != 1:
        hint = " (for one control write [lower])" if np.ndim(lower) == 0 else ""
        raise ValueError(f"control_lower must have shape (m,), got shape {np.shape(lower)}{hint}.")
    if np.shape(upper) != np.shape(lower):
        raise ValueError(
            f"control_upper must have the shape of control_lower {np.shape(lower)}, got shape {np.shape(upper)}.")
    if np.shape(lower)[0] < 1:
        raise ValueError("control limits must have shape (m,) with m >= 1, got shape (0,).")
    if _is_concrete(lower) and _is_concrete(upper):
        lo, hi = np.asarray(lower, dtype=float), np.asarray(upper, dtype=float)
        for name, v in (("control_lower", lo), ("control_upper", hi)):
            if np.isnan(v).any():
                raise ValueError(f"{name} must not be NaN, got {v.tolist()} "
                                 f"(NaN at index {np.flatnonzero(np.isnan(v)).tolist()}).")
        if (lo > hi).any():
            bad = np.flatnonzero(lo > hi)
            raise ValueError(
                f"control_lower must be <= control_upper, but at index {bad.tolist()} "
                f"lower={lo[bad].tolist()} > upper={hi[bad].tolist()}.")
        if np.isposinf(lo).any():
            raise ValueError(f"control_lower must be finite or -inf, got +inf at index "
                             f"{np.flatnonzero(np.isposinf(lo)).tolist()}.")
        if np.isneginf(hi).any():
            raise ValueError(f"control_upper must be finite or +inf, got -inf at index "
                             f"{np.flatnonzero(np.isneginf(hi)).tolist()}.")
    dtype = float_dtype(np.dtype(lower.dtype), np.dtype(upper.dtype))
    return jnp.asarray(lower, dtype), jnp.asarray(upper, dtype)


# --- inputs of a solve ---------------------------------------------------------------------------------


def _check_finite(value, name: str):
    if _is_concrete(value):
        arr = np.asarray(value)
        bad = ~np.isfinite(arr)
        if bad.any():
            where = np.argwhere(bad)[:3].tolist()
            kinds = sorted({"NaN" if np.isnan(v) else "inf" for v in arr[bad].ravel()[:10]})
            raise ValueError(f"{name} must be finite, but has {'/'.join(kinds)} at index "
                             f"{where}{' ...' if bad.sum() > 3 else ''} (shape {arr.shape}).")


def _describe(struct) -> str:
    if hasattr(struct, "shape") and hasattr(struct, "dtype"):
        return f"shape {tuple(struct.shape)}, dtype {struct.dtype}"
    return f"a {type(struct).__name__}"


_typeof = getattr(jax, "typeof", None) or jax.core.get_aval  # jax.typeof: JAX >= 0.5


def _abstract_params(params):
    """``params`` as a pytree of ``ShapeDtypeStruct`` (weak types kept); ``TypeError`` for a non-numeric leaf."""
    if params is None:
        return None
    leaves, tree = jax.tree_util.tree_flatten_with_path(params)
    structs = []
    for path, leaf in leaves:
        try:
            aval = _typeof(leaf)
        except TypeError:
            raise TypeError(
                f"params{jax.tree_util.keystr(path)} must be an array or a number (params is traced), got "
                f"{type(leaf).__name__} ({leaf!r:.40}); put constants of other kinds in the problem's "
                "functions.") from None
        structs.append(jax.ShapeDtypeStruct(aval.shape, aval.dtype, weak_type=getattr(aval, "weak_type", False)))
    return jax.tree_util.tree_unflatten(tree, structs)


def _same_float(struct, dtype) -> bool:
    return np.dtype(struct.dtype) == dtype or (getattr(struct, "weak_type", False)
                                               and jnp.issubdtype(struct.dtype, jnp.floating))


def _evaluate_shape(fn, name: str, n: int, m: int, *args):
    try:
        return jax.eval_shape(fn, *args)
    except Exception as e:
        msg = (f"problem.{name} failed when called with x: (n,) = ({n},)"
               + (f", u: (m,) = ({m},)" if not name.startswith("terminal") else "")
               + f" (n from x0, m from us_init): {type(e).__name__}: {e}")
        try:
            new = type(e)(msg)
        except Exception:
            new = TypeError(msg)
        raise new from e


def _check_functions_uncached(problem: Problem, n: int, m: int, dtype, p_struct):
    x = jax.ShapeDtypeStruct((n,), dtype)
    u = jax.ShapeDtypeStruct((m,), dtype)
    t = jax.ShapeDtypeStruct((), jnp.arange(1).dtype)
    out = _evaluate_shape(problem.dynamics, "dynamics", n, m, x, u, t, p_struct)
    if not hasattr(out, "shape") or tuple(out.shape) != (n,):
        raise ValueError(f"problem.dynamics must return the next state with shape (n,) = ({n},) as x0, "
                         f"got {_describe(out)}.")
    if not jnp.issubdtype(out.dtype, jnp.floating):
        raise TypeError(f"problem.dynamics must return a real floating array of dtype {dtype}, got dtype {out.dtype}.")
    if not _same_float(out, dtype):
        raise TypeError(f"problem.dynamics must return the dtype of the state, {dtype} (from x0/us_init), got "
                        f"{out.dtype}: cast its constants or params to {dtype}, or pass {out.dtype} inputs.")
    for name, args in (("running_cost", (x, u, t, p_struct)), ("terminal_cost", (x, p_struct))):
        c = _evaluate_shape(getattr(problem, name), name, n, m, *args)
        if not hasattr(c, "shape") or tuple(c.shape) != ():
            raise ValueError(f"problem.{name} must return a scalar (shape ()), got {_describe(c)}"
                             + (" (sum it?)" if hasattr(c, "shape") else "") + ".")
        if not jnp.issubdtype(c.dtype, jnp.floating):
            raise TypeError(f"problem.{name} must return a real floating scalar of dtype {dtype}, got dtype "
                            f"{c.dtype}" + (" (write 0.0, not 0)" if jnp.issubdtype(c.dtype, jnp.integer) else "")
                            + ".")
        if not _same_float(c, dtype):
            raise TypeError(f"problem.{name} must return a scalar of the state's dtype {dtype} (from x0/us_init), "
                            f"got {c.dtype}: cast its constants or params to {dtype}.")
    _check_constraints(problem, n, m, dtype, x, u, t, p_struct)


def _check_constraints(problem: Problem, n: int, m: int, dtype, x, u, t, p_struct):
    """``path_constraint`` must return ``(p,)`` and ``terminal_constraint`` ``(q,)``, ``p, q >= 1``, of ``dtype``."""
    for name, args, size in (("path_constraint", (x, u, t, p_struct), "p"),
                             ("terminal_constraint", (x, p_struct), "q")):
        fn = getattr(problem, name)
        if fn is None:
            continue
        g = _evaluate_shape(fn, name, n, m, *args)
        if not hasattr(g, "shape") or len(g.shape) != 1 or g.shape[0] < 1:
            hint = " (for one constraint return jnp.array([g]) or g[None])" if getattr(g, "shape", None) == () else ""
            raise ValueError(f"problem.{name} must return a vector of shape ({size},) with {size} >= 1, got "
                             f"{_describe(g)}{hint}.")
        if not jnp.issubdtype(g.dtype, jnp.floating):
            raise TypeError(f"problem.{name} must return a real floating array of dtype {dtype}, got dtype "
                            f"{g.dtype}.")
        if not _same_float(g, dtype):
            raise TypeError(f"problem.{name} must return the state's dtype {dtype} (from x0/us_init), got "
                            f"{g.dtype}: cast its constants or params to {dtype}.")


@functools.lru_cache(maxsize=512)
def _check_functions_cached(functions, n, m, dtype, p_tree, p_leaves):
    problem = _unflatten((*functions[:3], 1, *functions[3:]), (None, None))
    p_struct = None if p_tree is None else jax.tree_util.tree_unflatten(
        p_tree, [jax.ShapeDtypeStruct(s, d, weak_type=w) for s, d, w in p_leaves])
    _check_functions_uncached(problem, n, m, dtype, p_struct)


def _check_functions(problem: Problem, n: int, m: int, dtype, p_struct):
    """Shape/dtype checks of the three functions by ``jax.eval_shape``; cached per signature."""
    if p_struct is None:
        p_tree, p_leaves = None, ()
    else:
        leaves, p_tree = jax.tree_util.tree_flatten(p_struct)
        p_leaves = tuple((tuple(s.shape), np.dtype(s.dtype), bool(s.weak_type)) for s in leaves)
    functions = tuple(getattr(problem, name) for name in _FUNCTIONS + _CONSTRAINTS)
    try:
        hash((functions, p_tree))
    except TypeError:  # an unhashable treedef (custom node with unhashable metadata): no caching
        return _check_functions_uncached(problem, n, m, dtype, p_struct)
    _check_functions_cached(functions, n, m, np.dtype(dtype), p_tree, p_leaves)


def validate_inputs(problem: Problem, x0, us_init, params=None):
    """Checks ``(problem, x0, us_init, params)`` before tracing; returns ``(x0, us_init)`` in the solve's dtype.

    Checks, each raising an error that names the argument with expected vs actual:
    ``problem`` is a :class:`Problem`; ``x0: (n,)`` and ``us_init: (T, m)``
    are real arrays with ``T == problem.horizon`` and ``n, m >= 1``, finite
    when concrete; the limits have shape ``(m,)``; the leaves of ``params`` are
    numeric; ``dynamics`` returns ``(n,)`` of the solve's dtype, both costs
    a scalar of it and the constraints (if any) vectors of it (checked with ``jax.eval_shape``, once per signature).
    Tracers (inside ``jit``, ``vmap``, ``grad``) get the shape and dtype checks.

    The dtype of the solve is :func:`float_dtype` of ``x0`` and ``us_init``;
    see the module docstring for the policy.

    Raises:
      TypeError: wrong kind of argument or dtype.
      ValueError: wrong shape or non-finite value.
    """
    if not isinstance(problem, Problem):
        raise TypeError(f"problem must be an ilqg_jax.Problem, got {type(problem).__name__}.")
    x0 = _as_float_array(x0, "x0")
    us_init = _as_float_array(us_init, "us_init")
    T = problem.horizon
    if np.ndim(x0) != 1:
        hint = " (one state per solve: use jax.vmap or solve_batch for a batch)" if np.ndim(x0) == 2 else ""
        raise ValueError(f"x0 must have shape (n,), got shape {np.shape(x0)}{hint}.")
    if np.ndim(us_init) != 2:
        hint = (f" (for one control use shape ({T}, 1), e.g. us_init[:, None])"
                if np.shape(us_init) == (T,) else "")
        raise ValueError(f"us_init must have shape (T, m) with T = problem.horizon = {T}, got shape "
                         f"{np.shape(us_init)}{hint}.")
    if np.shape(us_init)[0] != T:
        raise ValueError(f"us_init must have shape (T, m) with T = problem.horizon = {T}, got shape "
                         f"{np.shape(us_init)} (T = {np.shape(us_init)[0]}).")
    n, m = np.shape(x0)[0], np.shape(us_init)[1]
    if n < 1 or m < 1:
        raise ValueError(f"need at least one state and one control, got n = {n} (x0 shape {np.shape(x0)}) and "
                         f"m = {m} (us_init shape {np.shape(us_init)}).")
    _check_finite(x0, "x0")
    _check_finite(us_init, "us_init")
    if problem.has_limits:
        for name in ("control_lower", "control_upper"):
            if np.shape(getattr(problem, name)) != (m,):
                raise ValueError(f"problem.{name} must have shape (m,) = ({m},) to match us_init "
                                 f"{np.shape(us_init)}, got shape {np.shape(getattr(problem, name))}.")
    dtype = float_dtype(np.dtype(x0.dtype), np.dtype(us_init.dtype))
    _check_functions(problem, n, m, dtype, _abstract_params(params))
    return jnp.asarray(x0, dtype), jnp.asarray(us_init, dtype)


def validate_states(xs_init, horizon: int, x0: Array) -> Array:
    """Checks a state guess ``xs_init: (T+1, n)`` (``T = horizon``, ``n`` of ``x0``); returns it in ``x0``'s dtype.

    Raises:
      TypeError: not a real array.
      ValueError: wrong shape or non-finite value.
    """
    xs_init = _as_float_array(xs_init, "xs_init")
    expected = (horizon + 1, np.shape(x0)[0])
    if np.shape(xs_init) != expected:
        raise ValueError(f"xs_init must have shape (T+1, n) = {expected} (T = problem.horizon, n of x0), got "
                         f"shape {np.shape(xs_init)}.")
    _check_finite(xs_init, "xs_init")
    return jnp.asarray(xs_init, x0.dtype)
