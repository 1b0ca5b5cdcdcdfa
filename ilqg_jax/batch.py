"""Many solves at once: :func:`solve_batch` over initial states, initial controls and parameters.

``jax.vmap(solve)`` already solves a batch, but on CPU it wastes most of its
time, for three reasons measured in ``benchmarks/batch.py`` (profile and
numbers in ``benchmarks/results/batch.json``):

1. **The line search.** Under ``vmap`` a ``lax.while_loop`` runs until its
   last member stops and ``lax.cond`` computes both branches, so the
   backtracking search costs as many rollouts per iteration as the worst
   member needs (usually all ``line_search_steps``), and the parallel search
   always costs all of them: more than half of a vmapped solve. Here the
   step sizes are tried in stages (:data:`LINE_SEARCH_STAGES`): every member
   tries ``alpha = 1`` (76% of the steps of the pendulum swing-up take it);
   the members that reject it are gathered into a buffer a quarter of the
   batch wide and try the next step size (16% take it); the rest, an eighth
   of the batch at a time, try all the remaining ones at once. Each member
   gets exactly the step size :func:`~ilqg_jax.solve` would choose (the
   largest accepted one), whichever ``Options.line_search`` is set.
2. **Finished members.** A vmapped solve runs every member until the slowest
   one stops (``max_iter`` as soon as one member needs it). Here the batch is
   worked through in *slots*: :func:`default_slots` members are iterated
   together; once an eighth of them have stopped, their results are written
   out and the slots are refilled with the next members. The work is then
   proportional to the *mean* number of iterations, not the maximum.
3. **Cache.** The state of a member (trajectory, derivatives, history) is
   about 21 kB in float64; 64 members stay in cache, while a vmap over
   thousands streams every intermediate through memory at every time step.

Each member is still exactly the iteration of :func:`ilqg_jax.solve` -- the
same backward pass, rollouts, acceptance test, regularisation schedule and
stopping rule (the functions of :mod:`ilqg_jax.solver` are reused, vmapped) --
so every member's :class:`~ilqg_jax.Solution` equals the single solve's, and
members never disturb each other: each stops on its own, with its own status
and iteration count.

**Devices.** With several devices (``jax.devices()``), the batch is split
evenly over a 1-D mesh (``jax.sharding.Mesh``, axis :data:`BATCH_AXIS`) by
``jax.shard_map``: padded to a multiple of the device count (with copies of
the last member), solved independently on every device, unpadded. XLA runs a
CPU as one device, one core at a time for these small kernels: to use every
core, ask for one device per core before JAX starts
(``XLA_FLAGS=--xla_force_host_platform_device_count=<cores>`` or
``jax.config.update("jax_num_cpu_devices", <cores>)``). Across hosts, after
``jax.distributed.initialize()``, every process passes the same full batch
and gets a global array sharded over the processes
(``jax.experimental.multihost_utils.process_allgather`` copies it to every
host).
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ilqg_jax import constrained, implicit, solver
from ilqg_jax.derivatives import trajectory_derivatives
from ilqg_jax.problem import Problem, _as_float_array, _is_concrete, validate_inputs, with_dtype
from ilqg_jax.solver import Options, Solution

Array = jax.Array

__all__ = ["solve_batch", "lower", "default_slots", "BATCH_AXIS"]

#: Name of the mesh axis the batch is split over.
BATCH_AXIS = "batch"

#: Members iterated together per device on CPU. Measured (N = 1024 pendulum swing-ups, CPU seconds of
#: the whole batch on a 2-core x86 machine): float64 32: 2.73, 64: 2.79, 128: 2.80, 256: 3.92; float32
#: 32: 1.59, 64: 1.29. Fewer members per step pay the fixed cost of each XLA kernel more often; more
#: members spill the slots' state (about 21 kB each in float64) out of the caches.
CPU_SLOTS = 64
#: Line search in stages ``(number of step sizes, capacity)``: every searching member tries the first
#: group; the members that rejected every step size so far try the next group, gathered ``capacity *
#: slots`` at a time (``None``: all remaining step sizes). On the pendulum swing-up 76% of the steps take
#: ``alpha = 1``, 16% the next step size and 7% reject every step size. CPU seconds for 1,024 swing-ups
#: (float64, 128 slots): these stages 2.80; ``((1, 1), (None, 1/8))`` 4.44; ``((2, 1), (None, 1/8))``
#: 4.25; ``((1, 1), (1, 1/2), (None, 1/8))`` 3.47; ``((1, 1), (1, 1/4), (2, 1/8), (None, 1/16))`` 3.45.
LINE_SEARCH_STAGES = ((1, 1.0), (1, 1 / 4), (None, 1 / 8))
#: Backward passes retried at a raised ``mu`` (:func:`_regularised_backward`) run for the members that
#: failed, gathered this fraction of the slots at a time.
RETRY_FRACTION = 1 / 8
#: Refill the slots once this fraction of them holds a finished member.
_REFILL_FRACTION = 1 / 8
#: ``status`` of a slot that holds no member (never written out).
_EMPTY = -2


def default_slots(backend: Optional[str] = None) -> Optional[int]:
    """Members iterated together per device by default: :data:`CPU_SLOTS` on CPU, all of them elsewhere.

    On an accelerator one wide batch costs about as much as a narrow one, so
    every member of a device's share is iterated at once (``None``).
    """
    backend = jax.default_backend() if backend is None else backend
    return CPU_SLOTS if backend == "cpu" else None


# --- validation (Python, before tracing) ------------------------------------------------------------


def _leading(name: str, shape, N: int, what: str):
    return ValueError(f"{name} must have a leading batch axis of size N = {N} (the number of rows of x0s){what}, "
                      f"got shape {tuple(shape)}.")


def _bad_rows(a, N: int) -> np.ndarray:
    """Indices of the members (first axis) with a NaN/inf entry; empty for tracers."""
    if not _is_concrete(a):
        return np.zeros(0, int)
    arr = np.asarray(a)
    if not jnp.issubdtype(arr.dtype, jnp.inexact):
        return np.zeros(0, int)
    return np.flatnonzero(~np.isfinite(arr.reshape(N, -1)).all(axis=1))


def _member(tree, j: int):
    return jax.tree_util.tree_map(lambda a: a[j], tree)


def _check_params_axis(params, params_axis, N: int) -> None:
    """``params_axis`` is None or 0, and with 0 every leaf of ``params`` has a leading axis of size ``N``."""
    if params_axis not in (None, 0):
        raise ValueError(f"params_axis must be None (params shared by all members) or 0 (every leaf of params "
                         f"has a leading batch axis of size N), got {params_axis!r}.")
    if params_axis == 0:
        leaves = jax.tree_util.tree_leaves_with_path(params)
        if not leaves:
            raise ValueError("params_axis=0 needs params with array leaves to batch over, got "
                             f"{type(params).__name__}; use params_axis=None for shared params.")
        for path, leaf in leaves:
            shape = np.shape(leaf)
            if len(shape) < 1 or shape[0] != N:
                raise _leading(f"params{jax.tree_util.keystr(path)}", shape, N, " (params_axis=0)")


def _nonfinite_members(x0s, us_inits, us_axis, N: int, on_nonfinite: str) -> np.ndarray:
    """Indices of the members with NaN/inf in ``x0s`` or ``us_inits``; raises unless ``on_nonfinite='status'``."""
    bad_x0 = _bad_rows(x0s, N)
    bad_us = _bad_rows(us_inits, N) if us_axis == 0 else np.zeros(0, int)
    bad = np.union1d(bad_x0, bad_us).astype(int)
    if bad.size and on_nonfinite == "raise":
        what = "x0s" if bad_x0.size else "us_inits"
        j = int(bad_x0[0] if bad_x0.size else bad_us[0])
        raise ValueError(
            f"{what}[{j}] is not finite ({np.asarray(x0s if what == 'x0s' else us_inits)[j].ravel()[:6]}); "
            f"{bad.size} member(s) have NaN/inf in x0s or us_inits: {bad[:10].tolist()}"
            f"{' ...' if bad.size > 10 else ''}. Pass on_nonfinite='status' to solve the others and get "
            "Status.NONFINITE (0 iterations) for these.")
    return bad


def _validate_states(xs_inits, N: int, T: int, n: int, dtype):
    """Checks the state guesses of :func:`solve_batch`; returns ``(xs_inits, xs_axis)`` in the solve's dtype."""
    if xs_inits is None:
        return None, None
    xs_inits = _as_float_array(xs_inits, "xs_inits")
    shape = np.shape(xs_inits)
    if len(shape) not in (2, 3) or shape[-2:] != (T + 1, n) or (len(shape) == 3 and shape[0] != N):
        raise ValueError(f"xs_inits must have shape (T+1, n) = ({T + 1}, {n}), shared by all members, or "
                         f"(N, T+1, n) = ({N}, {T + 1}, {n}), one per member (T = problem.horizon, n of x0s); "
                         f"got shape {shape}.")
    xs_axis = 0 if len(shape) == 3 else None
    bad = _bad_rows(xs_inits, N) if xs_axis == 0 else _bad_rows(xs_inits[None], 1)
    if bad.size:
        where = f"xs_inits[{int(bad[0])}]" if xs_axis == 0 else "xs_inits"
        raise ValueError(f"{where} must be finite, but has NaN/inf ({bad.size} member(s): {bad[:10].tolist()}).")
    return jnp.asarray(xs_inits, dtype), xs_axis


def _validate(problem, x0s, us_inits, params, params_axis, on_nonfinite):
    """Checks a batch before tracing; returns ``(x0s, us_inits, us_axis, nonfinite_members)`` in the solve's dtype."""
    if not isinstance(problem, Problem):
        raise TypeError(f"problem must be an ilqg_jax.Problem, got {type(problem).__name__}.")
    if on_nonfinite not in ("raise", "status"):
        raise ValueError(f"on_nonfinite must be 'raise' or 'status', got {on_nonfinite!r}.")
    x0s = _as_float_array(x0s, "x0s")
    us_inits = _as_float_array(us_inits, "us_inits")
    if np.ndim(x0s) != 2:
        hint = " (one initial state: use ilqg_jax.solve, or x0[None] for a batch of one)" if np.ndim(x0s) == 1 else ""
        raise ValueError(f"x0s must have shape (N, n), one initial state per row, got shape {np.shape(x0s)}{hint}.")
    N, n = np.shape(x0s)
    if N < 1:
        raise ValueError(f"x0s must hold at least one initial state, got shape {np.shape(x0s)}.")
    T = problem.horizon
    if np.ndim(us_inits) == 2:
        us_axis = None
    elif np.ndim(us_inits) == 3:
        us_axis = 0
        if np.shape(us_inits)[0] != N:
            raise _leading("us_inits", np.shape(us_inits), N,
                           f" when batched, i.e. shape (N, T, m) = ({N}, {T}, m); or pass one (T, m) = ({T}, m) "
                           "array shared by all members")
    if np.ndim(us_inits) not in (2, 3) or np.shape(us_inits)[-2] != T:
        raise ValueError(f"us_inits must have shape (T, m) = ({T}, m), shared by all members, or (N, T, m) = "
                         f"({N}, {T}, m), one per member (T = problem.horizon); got shape {np.shape(us_inits)}.")
    _check_params_axis(params, params_axis, N)
    bad = _nonfinite_members(x0s, us_inits, us_axis, N, on_nonfinite)

    good = np.setdiff1d(np.arange(N), bad)
    j = int(good[0]) if good.size else 0
    x0_j = x0s[j] if good.size else np.zeros((n,), np.asarray(x0s).dtype if _is_concrete(x0s) else x0s.dtype)
    us_j = us_inits[j] if us_axis == 0 else us_inits
    if us_axis == 0 and not good.size:
        us_j = np.zeros(np.shape(us_inits)[1:], us_j.dtype)
    p_j = _member(params, j) if params_axis == 0 else params
    try:
        x0_j, us_j = validate_inputs(problem, x0_j, us_j, p_j)
    except (TypeError, ValueError) as e:
        where = f"x0s[{j}], " + (f"us_inits[{j}]" if us_axis == 0 else "us_inits") + (
            f", params[{j}]" if params_axis == 0 else "")
        raise type(e)(f"checking member {j} ({where}): {e}") from e
    dtype = x0_j.dtype
    return jnp.asarray(x0s, dtype), jnp.asarray(us_inits, dtype), us_axis, bad


# --- one batched iteration --------------------------------------------------------------------------


class _Nominal(NamedTuple):
    """What a rollout of one member needs: the nominal trajectory, its cost, gains and expected decrease."""

    xs: Array
    us: Array
    cost: Array
    K: Array
    k: Array
    dV: Array
    gaps: Optional[Array] = None  # multiple shooting (``xs_inits``): the nodes' gaps


def _try_steps(problem, options, nominal: _Nominal, params, alphas):
    """One member, several step sizes at once: the line search of :func:`ilqg_jax.solver._line_search`.

    Returns ``(accepted, alpha, xs, us, cost, hit_nonfinite)`` for the first
    (largest) accepted ``alpha``; ``hit_nonfinite`` over the step sizes tried
    before it (all of them when none is accepted).
    """
    roll = functools.partial(solver.closed_loop_rollout, problem, nominal.xs[0], nominal.xs, nominal.us,
                             nominal.K, nominal.k, params=params, unroll=options.unroll, gaps=nominal.gaps)
    xs, us, costs = jax.vmap(roll)(alphas)
    expected = solver.expected_decrease(nominal.dV, alphas)
    gapped = False if nominal.gaps is None else jnp.any(nominal.gaps != 0)
    ok = solver._accept(nominal.cost, costs, expected, options.min_reduction_ratio, gapped)
    i = jnp.argmax(ok)
    tried = jnp.where(ok[i], jnp.arange(alphas.shape[0]) < i, True)
    return ok[i], alphas[i], xs[i], us[i], costs[i], jnp.any(tried & ~jnp.isfinite(costs))


def _line_search(problem, options, alphas, nominal: _Nominal, params, params_axis, searching):
    """The line search of every ``searching`` member of a batch (others: ``accepted = False``).

    The step sizes are tried in the groups of :data:`LINE_SEARCH_STAGES`: the
    first by every searching member; each later one only by the members that
    rejected all earlier step sizes, gathered into a buffer of a fraction of
    the batch (in several rounds if more members need it).
    """
    S, A = searching.shape[0], alphas.shape[0]
    try_steps = jax.vmap(functools.partial(_try_steps, problem, options), in_axes=(0, params_axis, None))
    with jax.named_scope("first_steps"):
        found, alpha, xs, us, cost, hit = try_steps(nominal, params, alphas[:LINE_SEARCH_STAGES[0][0]])
    found, hit = found & searching, hit & searching
    start = LINE_SEARCH_STAGES[0][0]
    for count, fraction in LINE_SEARCH_STAGES[1:]:
        if start >= A:
            break
        group = alphas[start:A if count is None else start + count]
        start += group.shape[0]
        with jax.named_scope("other_steps"):
            found, alpha, xs, us, cost, hit = _retry(try_steps, group, max(1, math.ceil(S * fraction)),
                                                     nominal, params, params_axis, searching & ~found,
                                                     (found, alpha, xs, us, cost, hit))
    return found, alpha, xs, us, cost, hit


def _retry(try_steps, alphas, capacity, nominal, params, params_axis, need, result):
    """Members in ``need`` try ``alphas``, ``capacity`` of them at a time (gathered); merged into ``result``."""
    def body(c):
        need, (found, alpha, xs, us, cost, hit) = c
        gather, put = _compaction(need, capacity)
        f2, a2, xs2, us2, c2, h2 = try_steps(gather(nominal), gather(params) if params_axis == 0 else params, alphas)
        return put(need, jnp.zeros_like(f2)), (put(found, f2), put(alpha, a2), put(xs, xs2), put(us, us2),
                                               put(cost, c2), put(hit, h2 | gather(hit)))

    return jax.lax.while_loop(lambda c: jnp.any(c[0]), body, (need, result))[1]


def _compaction(need, capacity: int):
    """The first ``capacity`` members where ``need`` (a bool per member): ``gather(tree)`` takes their
    entries of every leaf (the last member's where fewer need it), ``put(dst, src)`` writes ``src`` back
    to their places in ``dst`` (the padding is dropped)."""
    S = need.shape[0]
    idx = jnp.nonzero(need, size=capacity, fill_value=S)[0]

    def gather(tree):
        return jax.tree_util.tree_map(lambda a: a[jnp.minimum(idx, S - 1)], tree)

    def put(dst, src):
        return jax.tree_util.tree_map(lambda d, v: d.at[idx].set(v, mode="drop"), dst, src)

    return gather, put


def _where(mask, new, old):
    """``new`` where ``mask`` (one bool per member, leading axis), else ``old``; leaf by leaf."""
    def pick(a, b):
        return jnp.where(mask.reshape(mask.shape + (1,) * (a.ndim - 1)), a, b)
    return jax.tree_util.tree_map(pick, new, old)


def _regularised_backward(problem, options, state, running):
    """:func:`ilqg_jax.solver._regularised_backward` over the members (leading axis of ``state``): backward
    passes at a rising ``mu`` for the running members whose last one failed, until none did.

    Every running member runs the first pass; the retries run only for the members that failed, gathered
    :data:`RETRY_FRACTION` of the slots at a time (under ``vmap`` a retry of the whole batch would run the
    pass for every member; running the retries through the outer loop instead holds a slot for a whole
    iteration per retry, 2x slower on the double pendulum). The PSD projection of the cost Hessians runs
    only when a member needs it (``any_convex``: under ``vmap`` a ``lax.cond`` on a batched flag computes
    both branches, and LAPACK's ``eigh`` on large joint Hessians deadlocks when the batch is sharded over
    CPU devices). Only the regularisation fields (``solver._REGULARISATION``) change, so only they are
    carried through the loop.
    """
    S = running.shape[0]
    capacity = max(1, math.ceil(S * RETRY_FRACTION))

    def backward(s, need):
        any_convex = jnp.any(need & s.convex & ~s.second & (s.mu > 0))
        return jax.vmap(lambda m: solver._backward(problem, m, m.mu, options, any_convex))(s)

    def failed(c):
        reg, bw = c
        return running & jax.vmap(functools.partial(solver._failed_with_room, options))(state._replace(**reg), bw)

    def body(c):
        reg, bw = c
        need = failed(c)
        gather, put = _compaction(need, capacity)
        members = jax.vmap(functools.partial(solver._raised, options))(gather(state)._replace(**gather(reg)))
        taken = jnp.arange(capacity) < jnp.sum(need)  # the gathered slots that hold a failed member
        return put(reg, {f: getattr(members, f) for f in reg}), put(bw, backward(members, taken))

    reg = {f: getattr(state, f) for f in solver._REGULARISATION}
    reg, bw = jax.lax.while_loop(lambda c: jnp.any(failed(c)), body, (reg, backward(state, running)))
    return state._replace(**reg), bw


def _iterate(problem, options, alphas, tol, params_axis, state, params):
    """One iteration of every running member (``state`` has a leading member axis); others unchanged."""
    running = state.status == solver._RUNNING
    with jax.named_scope("backward"):
        stepped, bw = _regularised_backward(problem, options, state, running)
    nominal = _Nominal(state.xs, state.us, state.cost, bw.K, bw.k, bw.dV, state.gaps)
    with jax.named_scope("line_search"):
        step = _line_search(problem, options, alphas, nominal, params, params_axis, running & bw.ok)
    full_expected = solver.expected_decrease(bw.dV)  # (members,)
    any_second = jnp.any(running & jax.vmap(functools.partial(solver._next_second, options))(
        stepped, step, full_expected))
    update = functools.partial(solver._update, problem, options=options, tol=tol,
                               derivatives_fn=trajectory_derivatives, any_second=any_second)
    with jax.named_scope("update"):
        new = jax.vmap(lambda p, s, b, st: update(params=p, state=s, bw=b, step=st),
                       in_axes=(params_axis, 0, 0, 0))(params, stepped, bw, step)
        new = _where(running, new, state)
    if state.gaps is None:
        return new
    # A member that stops with gaps left returns a rollout (solver._close_gaps), as a single solve does.
    close = jax.vmap(lambda p, s: solver._close_gaps(problem, p, options, trajectory_derivatives, s),
                     in_axes=(params_axis, 0))
    closing = running & (new.status != solver._RUNNING) & jax.vmap(solver._has_gaps)(new)
    return jax.lax.cond(jnp.any(closing), lambda: _where(closing, close(params, new), new), lambda: new)


# --- slots: iterate a few members at a time, refill as they finish ----------------------------------


class _Slots(NamedTuple):
    state: Any     # solver._State with a leading slot axis
    params: Any    # the slots' params (a leading slot axis when batched)
    member: Array  # (S,) index of the member in each slot; N = none
    next: Array    # index of the next member to load
    out: Solution  # (N, ...) results, filled as members finish


def _running(c: _Slots):
    return c.state.status == solver._RUNNING


def _idle(c: _Slots):
    """Slots finished, or holding no member."""
    return c.state.status != solver._RUNNING


def _empty_slots(load, finish, N: int, S: int, params, params_axis) -> _Slots:
    """``S`` empty slots (member index ``N``) and a zero output for ``N`` members: the first harvest loads."""
    member = jnp.full((S,), N)
    zeros = functools.partial(jax.tree_util.tree_map, lambda s: jnp.zeros(s.shape, s.dtype))
    state, slot_params = zeros(jax.eval_shape(load, member))
    slot_params = slot_params if params_axis == 0 else params
    state = state._replace(status=jnp.full_like(state.status, _EMPTY))
    out = jax.tree_util.tree_map(lambda s: jnp.zeros((N,) + s.shape[1:], s.dtype), jax.eval_shape(finish, state))
    return _Slots(state, slot_params, member, jnp.zeros((), member.dtype), out)


def _load(problem, options, x0s, us_inits, params, xs_inits, us_axis, params_axis, xs_axis, member):
    """Initial states (and parameters) of the batch members ``member: (S,)``; ``member >= N`` is an empty slot."""
    N = x0s.shape[0]
    i = jnp.minimum(member, N - 1)
    us = us_inits[i] if us_axis == 0 else us_inits
    p = _member(params, i) if params_axis == 0 else params
    xs = None if xs_inits is None else (xs_inits[i] if xs_axis == 0 else xs_inits)
    init_one = functools.partial(solver._init_state, problem, options=options, derivatives_fn=trajectory_derivatives)
    state = jax.vmap(lambda x, u, q, g: init_one(x0=x, us_init=u, params=q, xs_init=g),
                     in_axes=(0, us_axis, params_axis, xs_axis))(x0s[i], us, p, xs)
    return state._replace(status=jnp.where(member < N, state.status, _EMPTY)), p


def _solve_local(problem, x0s, us_inits, params, xs_inits, options, us_axis, params_axis, xs_axis, slots, progress,
                 shard_axis=None):
    """Solves every member of ``x0s: (N, n)`` on the current device, ``slots`` members at a time.

    With ``progress`` it reports this device's count (``shard_axis``: the mesh axis it is a shard of).
    """
    N = x0s.shape[0]
    S = N if slots is None else max(1, min(int(slots), N))
    alphas = solver.step_sizes(options, x0s.dtype)
    tol = solver.effective_tol(options, x0s.dtype)
    load = functools.partial(_load, problem, options, x0s, us_inits, params, xs_inits, us_axis, params_axis, xs_axis)
    iterate = functools.partial(_iterate, problem, options, alphas, tol, params_axis)
    def finish(state):
        # Only the finished members' final gains matter; the projection runs when one of them needs it.
        done = state.status != solver._RUNNING
        any_convex = jnp.any(done & state.convex & ~state.second & (state.mu > 0))
        return jax.vmap(lambda s: solver._solution(problem, options, s, any_convex))(state)

    refill_at = max(1, math.ceil(S * _REFILL_FRACTION))

    def inner_more(c):
        return jnp.any(_running(c)) & ((c.next >= N) | (jnp.sum(_idle(c)) < refill_at))

    def inner(c):
        return c._replace(state=iterate(c.state, c.params))

    @jax.named_scope("refill")
    def harvest(c):
        free = _idle(c)
        done = free & (c.member < N)
        out = jax.tree_util.tree_map(lambda o, s: o.at[jnp.where(done, c.member, N)].set(s, mode="drop"), c.out,
                                     finish(c.state))
        member = jnp.where(free, c.next + jnp.cumsum(free) - 1, c.member)
        member = jnp.where(member < N, member, N)
        fresh, fresh_params = load(member)
        state = _where(free, fresh, c.state)
        slot_params = _where(free, fresh_params, c.params) if params_axis == 0 else c.params
        nxt = jnp.minimum(c.next + jnp.sum(free), N)
        if progress:
            shard = 0 if shard_axis is None else jax.lax.axis_index(shard_axis)
            jax.debug.callback(_report, shard, nxt - jnp.sum(member < N), N)
        return _Slots(state, slot_params, member, nxt, out)

    def outer(c):
        c = jax.lax.while_loop(inner_more, inner, c)
        ready = ((c.next < N) & jnp.any(_idle(c))) | (~jnp.any(_running(c)) & jnp.any(c.member < N))
        return jax.lax.cond(ready, harvest, lambda c: c, c)

    c = _empty_slots(load, finish, N, S, params, params_axis)
    c = jax.lax.while_loop(lambda c: jnp.any(c.member < N) | (c.next < N), outer, c)
    return c.out


#: The ``progress`` callable of the :func:`solve_batch` call in flight, its batch size and each device's
#: count so far (the compiled program only knows whether to report, so that another callable does not
#: recompile it).
_PROGRESS = [None]


def _report(shard, done, total):
    """One device's count: ``progress`` gets the whole batch's (padding members counted at most up to ``N``)."""
    if _PROGRESS[0] is not None:
        progress, N, counts = _PROGRESS[0]
        counts[int(shard)] = int(done)
        progress(min(sum(counts.values()), N), N)


# --- devices ----------------------------------------------------------------------------------------


def _mesh_of(sharding) -> tuple[Optional[Mesh], Optional[str]]:
    """``(mesh, axis)`` for the ``sharding`` argument of :func:`solve_batch`; ``(None, None)``: one device."""
    if sharding is False:
        return None, None
    if sharding is None:
        devices = jax.devices()
        if len(devices) < 2:
            return None, None
        return Mesh(np.asarray(devices), (BATCH_AXIS,)), BATCH_AXIS
    if isinstance(sharding, NamedSharding):
        spec = tuple(sharding.spec)
        if len(spec) < 1 or not isinstance(spec[0], str) or any(s is not None for s in spec[1:]):
            raise ValueError("sharding must split the leading (batch) axis over one mesh axis, e.g. "
                             f"NamedSharding(mesh, PartitionSpec('{BATCH_AXIS}')), got spec {sharding.spec}.")
        mesh, axis = sharding.mesh, spec[0]
    elif isinstance(sharding, Mesh):
        if len(sharding.axis_names) != 1:
            raise ValueError(f"a Mesh passed as sharding must be 1-D (one axis, the batch), got axes "
                             f"{sharding.axis_names}; pass NamedSharding(mesh, PartitionSpec(axis)) to pick one.")
        mesh, axis = sharding, sharding.axis_names[0]
    else:
        raise TypeError("sharding must be None (automatic), False (one device), a 1-D jax.sharding.Mesh or a "
                        f"NamedSharding over the batch axis, got {type(sharding).__name__}.")
    if mesh.shape[axis] < 2 and len(mesh.axis_names) == 1:
        return None, None
    return mesh, axis


def _pad(tree, size: int, axis):
    """Pads the leading axis of every leaf to ``size`` with copies of the last row (``axis`` None: unchanged)."""
    if axis is None:
        return tree

    def pad(a):
        extra = size - a.shape[0]
        if extra == 0:
            return a
        return jnp.concatenate([a, jnp.broadcast_to(a[-1:], (extra,) + a.shape[1:])])
    return jax.tree_util.tree_map(pad, tree)


@functools.partial(jax.jit, static_argnames=("options", "us_axis", "params_axis", "xs_axis", "slots", "mesh",
                                             "axis", "progress"))
def _solve_batch_jit(problem, x0s, us_inits, params, xs_inits, *, options, us_axis, params_axis, xs_axis, slots,
                     mesh, axis, progress):
    problem = with_dtype(problem, x0s.dtype)
    stop = jax.lax.stop_gradient
    local = functools.partial(_solve_local, options=options, us_axis=us_axis, params_axis=params_axis,
                              xs_axis=xs_axis, slots=slots, progress=progress,
                              shard_axis=None if mesh is None else axis)
    inputs = (stop(problem), stop(x0s), stop(us_inits), stop(params), stop(xs_inits))
    N = x0s.shape[0]
    if mesh is None:
        sol = local(*inputs)
    else:
        D = mesh.shape[axis]
        size = -(-N // D) * D
        batched = PartitionSpec(axis)
        specs = (PartitionSpec(), batched, batched if us_axis == 0 else PartitionSpec(),
                 batched if params_axis == 0 else PartitionSpec(), batched if xs_axis == 0 else PartitionSpec())
        p, x, u, q, g = inputs
        sharded = jax.shard_map(local, mesh=mesh, in_specs=specs, out_specs=batched, check_vma=False)
        sol = sharded(p, _pad(x, size, 0), _pad(u, size, us_axis), _pad(q, size, params_axis),
                      _pad(g, size, xs_axis))
        sol = jax.tree_util.tree_map(lambda a: a[:N], sol)
    # Gradients with respect to x0s and params: those of each member's optimum (implicit differentiation).
    attach = jax.vmap(implicit.attach_gradients, in_axes=(None, 0, params_axis, 0, 0, 0))
    xs, us, cost = attach(problem, x0s, params, sol.xs, sol.us, sol.cost)
    return sol._replace(xs=xs, us=us, cost=cost)


def solve_batch(problem: Problem, x0s, us_inits, params=None, options: Options = Options(), *,
                params_axis: Optional[int] = None, sharding=None, slots: Optional[int] = None,
                on_nonfinite: str = "raise", progress: Optional[Callable[[int, int], Any]] = None,
                xs_inits=None) -> Solution:
    """Solves ``problem`` from every initial state in ``x0s``: one :func:`~ilqg_jax.solve` per row, batched.

    A problem with path/terminal constraints is solved by ``jax.vmap`` of the constrained solve
    (:func:`ilqg_jax.constrained.solve_batch`: every member has its own multipliers, penalty and
    status; ``sharding``, ``slots`` and ``progress`` do not apply).

    Every member is solved exactly as :func:`~ilqg_jax.solve` would solve it (same iterations, same
    result) and stops on its own; the batch runs until every member has stopped. See the module
    docstring for how the batch is scheduled (slots, batched line search) and split over devices.

    Args:
      problem: the :class:`~ilqg_jax.Problem` (shared).
      x0s: ``(N, n)`` initial states, one member per row.
      us_inits: initial controls, ``(T, m)`` shared by all members or
        ``(N, T, m)`` one per member (told apart by their rank).
      params: the problem's parameter pytree; shared by all members with
        ``params_axis=None`` (default), or one per member with
        ``params_axis=0``: then every leaf has a leading axis of size ``N``
        (``params[i]`` goes with ``x0s[i]``).
      options: :class:`~ilqg_jax.Options`, shared; ``line_search`` does not matter (the batch has its
        own search, same steps) and ``verbose`` is ignored: see ``progress``.
      params_axis: ``None`` or ``0``, see ``params``.
      sharding: ``None`` (default): split the batch over all of ``jax.devices()``
        when there are several (the batch is padded to a multiple of the
        device count, then unpadded), else one device. ``False``: one device.
        A 1-D ``jax.sharding.Mesh``, or a ``NamedSharding(mesh,
        PartitionSpec(axis))``: split over that mesh axis.
      slots: members iterated together per device (finished ones are replaced by the next members);
        ``None``: :func:`default_slots` (:data:`CPU_SLOTS` = 64 on CPU, all members on GPU/TPU). Any
        value gives the same results.
      on_nonfinite: a member whose ``x0s`` (or ``us_inits``) row holds NaN/inf:
        ``"raise"`` (default) raises ``ValueError`` naming the members;
        ``"status"`` solves the others and returns ``Status.NONFINITE`` with
        0 iterations for these (their trajectory is the NaN initial rollout).
      progress: optional ``progress(done, total)`` called (from the running
        program, through ``jax.debug.callback``) whenever finished members
        are collected, with the count of the whole batch over all devices.
        With ``progress``, ``solve_batch`` waits for the result before
        returning.
      xs_inits: state guesses (``xs_init`` of :func:`~ilqg_jax.solve`), ``(T+1, n)`` or ``(N, T+1, n)``.

    Returns:
      A :class:`~ilqg_jax.Solution` whose every field has a leading axis of
      size ``N``: ``xs: (N, T+1, n)``, ``us: (N, T, m)``, ``K: (N, T, m, n)``,
      ``k: (N, T, m)``, ``cost, iterations, converged, status: (N,)``,
      ``history`` fields ``(N, max_iter + 1)``. Gradients with respect to
      ``x0s`` and ``params`` are those of each member's optimum, as for
      :func:`~ilqg_jax.solve`.

    Raises:
      TypeError, ValueError: malformed inputs, before tracing, naming the argument (and the member) with
        the expected and the actual shape.
    """
    args, static = _prepare(problem, x0s, us_inits, params, options, params_axis, sharding, slots, on_nonfinite,
                            progress, xs_inits)
    return _run(problem, args, static, progress)


def _run(problem: Problem, args, static: dict, progress) -> Solution:
    """Runs the compiled batch program of :func:`solve_batch` (hooking ``progress`` up while it runs)."""
    if problem.has_constraints:  # each member its own augmented-Lagrangian loop: a vmap, not the slots
        return _constrained_jit(*args, options=static["options"], us_axis=static["us_axis"],
                                params_axis=static["params_axis"], xs_axis=static["xs_axis"])
    if progress is None:
        return _solve_batch_jit(*args, **static)
    _PROGRESS[0] = (progress, args[1].shape[0], {})
    try:  # the callback is reached from the running program: wait for it before unhooking it
        return jax.block_until_ready(_solve_batch_jit(*args, **static))
    finally:
        _PROGRESS[0] = None


def lower(problem: Problem, x0s, us_inits, params=None, options: Options = Options(), *,
          params_axis: Optional[int] = None, sharding=None, slots: Optional[int] = None,
          on_nonfinite: str = "raise", progress=None, xs_inits=None) -> jax.stages.Lowered:
    """The ``jax.stages.Lowered`` program :func:`solve_batch` runs for these arguments (ahead-of-time use).

    ``lower(...).compile()`` compiles it (and fills the cache that
    :func:`solve_batch` then uses); ``.compile()(*args)`` is not needed.
    """
    args, static = _prepare(problem, x0s, us_inits, params, options, params_axis, sharding, slots, on_nonfinite,
                            progress, xs_inits)
    return _solve_batch_jit.lower(*args, **static)


def _prepare(problem, x0s, us_inits, params, options, params_axis, sharding, slots, on_nonfinite, progress,
             xs_inits=None):
    """Validates the arguments of :func:`solve_batch`; returns the arguments of the compiled program."""
    solver.validate_options(options)
    x0s, us_inits, us_axis, _ = _validate(problem, x0s, us_inits, params, params_axis, on_nonfinite)
    xs_inits, xs_axis = _validate_states(xs_inits, x0s.shape[0], problem.horizon, x0s.shape[1], x0s.dtype)
    if slots is not None and (isinstance(slots, bool) or not isinstance(slots, (int, np.integer)) or slots < 1):
        raise ValueError(f"slots must be None or an int >= 1, got {slots!r}.")
    mesh, axis = _mesh_of(sharding)
    slots = default_slots() if slots is None else int(slots)
    static = dict(options=options._replace(verbose=False), us_axis=us_axis, params_axis=params_axis,
                  xs_axis=xs_axis, slots=slots, mesh=mesh, axis=axis, progress=progress is not None)
    return (problem, x0s, us_inits, params, xs_inits), static


_constrained_jit = jax.jit(constrained.solve_batch, static_argnames=("options", "us_axis", "params_axis", "xs_axis"))
