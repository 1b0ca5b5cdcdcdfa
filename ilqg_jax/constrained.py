"""Path and terminal constraints: an augmented Lagrangian around iLQG, as one compiled program.

The problem (:class:`~ilqg_jax.Problem`)

    minimise ``sum_t l(x_t, u_t, t) + l_f(x_T)``  subject to the dynamics,
    ``lower <= u_t <= upper`` (box-DDP), ``g(x_t, u_t, t) <= 0`` (``t < T``,
    ``path_constraint``, ``(p,)``) and ``h(x_T) == 0`` (``terminal_constraint``, ``(q,)``)

is solved as in ALTRO (Howell, Jackson & Manchester 2019, "ALTRO: A fast
solver for constrained trajectory optimization"), the augmented-Lagrangian
iLQR also found in trajax's ``constrained_ilqr``: an outer ``lax.while_loop``
whose every iteration

1. solves, by iLQG (:func:`ilqg_jax.solver.solve_unchecked`, warm-started
   from the previous controls), the unconstrained problem whose costs add the
   Powell-Hestenes-Rockafellar terms (Nocedal & Wright 2006, Sec. 17.4)

       ``psi(g, lam, rho) = (max(0, lam + rho g)^2 - lam^2) / (2 rho)``   (inequalities)
       ``eta . h + rho / 2 |h|^2``                                         (equalities),

   with the multipliers ``lam: (T, p)``, ``eta: (q,)`` and the penalty
   ``rho`` passed through ``params`` (so one compiled inner solve serves
   every outer iteration);
2. updates the multipliers, ``lam <- max(0, lam + rho g)``, ``eta <- eta + rho h``
   (at a minimiser of step 1 these make the gradient of the Lagrangian zero),
   and multiplies the penalty by ``Options.penalty_factor`` (up to
   ``penalty_max``) while the largest violation exceeds ``constraint_tol``.

It stops ``CONVERGED`` when the largest violation ``max(max(g, 0), |h|)`` is at
most ``Options.constraint_tol`` and the inner solve converged; ``INFEASIBLE``
when ``Options.max_outer`` outer iterations are spent, or the penalty is at
its maximum and the violation stops shrinking, with the violation still above
the tolerance; ``NONFINITE`` when an inner solve does.

The returned ``Solution`` has the problem's own cost (without the penalty
terms), ``iterations`` summed over the inner solves, the ``history`` and the
gains ``K, k`` of the last inner solve (its augmented cost: the gains include
the curvature of the active constraints), the :class:`Multipliers` of the
constraints and the largest ``violation``. Gradients through the solve
(:func:`differentiable_solve_unchecked`) come from the KKT conditions with
the active constraints (:func:`ilqg_jax.implicit.attach_constrained_gradients`).

Names: ``lam`` (path multipliers, ``>= 0``), ``eta`` (terminal multipliers),
``rho`` (penalty), ``g``, ``h`` the constraint values.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp

from ilqg_jax import implicit, solver
from ilqg_jax.derivatives import trajectory_cost
from ilqg_jax.implicit import constraint_values
from ilqg_jax.problem import Problem

Array = jax.Array

__all__ = ["Multipliers", "solve_unchecked", "differentiable_solve_unchecked", "violations", "augmented_problem"]


class Multipliers(NamedTuple):
    """Lagrange multipliers of the constraints at the returned solution, and the final penalty.

    Attributes:
      path: ``(T, p)`` multipliers of ``path_constraint`` (``>= 0``, zero where
        the constraint is inactive), or ``None`` without one.
      terminal: ``(q,)`` multipliers of ``terminal_constraint``, or ``None``.
      penalty: scalar, the augmented-Lagrangian penalty ``rho`` of the last inner solve.
    """

    path: Optional[Array]
    terminal: Optional[Array]
    penalty: Array


class _AL(NamedTuple):
    """What the augmented problem's functions take as ``params``."""

    params: Any
    path: Optional[Array]
    terminal: Optional[Array]
    rho: Array


def _inequality_penalty(g, lam, rho):
    """``sum psi(g, lam, rho)``, the PHR term of ``g <= 0``: gradient ``max(0, lam + rho g)`` in ``g``."""
    return jnp.sum(jnp.maximum(0.0, lam + rho * g) ** 2 - lam**2) / (2.0 * rho)


@dataclasses.dataclass(frozen=True)
class _Running:
    """Running cost plus the path-constraint penalty (hashable: compared by the wrapped functions)."""

    cost: Callable
    constraint: Optional[Callable]

    def __call__(self, x, u, t, al: _AL):
        c = self.cost(x, u, t, al.params)
        if self.constraint is None:
            return c
        return c + _inequality_penalty(self.constraint(x, u, t, al.params), al.path[t], al.rho)


@dataclasses.dataclass(frozen=True)
class _Terminal:
    """Terminal cost plus ``eta . h + rho / 2 |h|^2``."""

    cost: Callable
    constraint: Optional[Callable]

    def __call__(self, x, al: _AL):
        c = self.cost(x, al.params)
        if self.constraint is None:
            return c
        h = self.constraint(x, al.params)
        return c + al.terminal @ h + 0.5 * al.rho * (h @ h)


def augmented_problem(problem: Problem) -> Problem:
    """The unconstrained problem of one outer iteration; its functions take an ``_AL`` as ``params``."""
    return Problem(implicit.FirstParams(problem.dynamics), _Running(problem.running_cost, problem.path_constraint),
                   _Terminal(problem.terminal_cost, problem.terminal_constraint), problem.horizon,
                   problem.control_lower, problem.control_upper)


def violations(problem: Problem, xs: Array, us: Array, params=None) -> Array:
    """The largest constraint violation ``max(max(g, 0), |h|)`` (0 without constraints); a scalar."""
    g, h = constraint_values(problem, xs, us, params)
    parts = [jnp.zeros((), xs.dtype)]
    if g is not None:
        parts.append(jnp.max(jnp.maximum(g, 0.0)))
    if h is not None:
        parts.append(jnp.max(jnp.abs(h)))
    return jnp.max(jnp.stack(parts))


class _Outer(NamedTuple):
    us: Array
    sol: solver.Solution
    al: _AL
    penalty: Array  # the penalty the last inner solve ran with
    outer: Array
    iterations: Array
    violation: Array
    status: Array


#: The violation must shrink by this factor per outer iteration, else the penalty grows.
_SHRINK = 0.25


def _after_inner(problem: Problem, params, options, s: _Outer, sol: solver.Solution) -> _Outer:
    """The multiplier and penalty updates and the outer stopping rule after the inner solve ``sol``."""
    g, h = constraint_values(problem, sol.xs, sol.us, params)
    rho = s.al.rho
    path = None if g is None else jnp.maximum(0.0, s.al.path + rho * g)
    terminal = None if h is None else s.al.terminal + rho * h
    violation = violations(problem, sol.xs, sol.us, params)
    feasible = violation <= options.constraint_tol
    # Raise the penalty only when the multiplier update alone did not shrink the violation enough
    # (Nocedal & Wright 2006, Alg. 17.4): a moderate penalty keeps the inner problems well conditioned.
    slow = violation > _SHRINK * s.violation
    new_rho = jnp.where(feasible | ~slow, rho, jnp.minimum(rho * options.penalty_factor, options.penalty_max))
    outer = s.outer + 1
    stalled = (rho >= options.penalty_max) & slow
    status = jnp.select(
        [sol.status == solver.Status.NONFINITE,
         feasible & (sol.status == solver.Status.CONVERGED),
         ~feasible & (stalled | (outer >= options.max_outer)),
         outer >= options.max_outer],
        [solver.Status.NONFINITE, solver.Status.CONVERGED, solver.Status.INFEASIBLE, sol.status],
        solver._RUNNING).astype(jnp.int32)
    return _Outer(us=sol.us, sol=sol, al=_AL(s.al.params, path, terminal, new_rho), penalty=rho, outer=outer,
                  iterations=s.iterations + sol.iterations, violation=violation, status=status)


def warm_options(options: solver.Options) -> solver.Options:
    """Options of the inner solves after the first: they start near an optimum, so with ``mu = mu_min``."""
    return options._replace(mu_init=options.mu_min, verbose=False)


def solve_unchecked(problem: Problem, x0: Array, us_init: Array, params=None,
                    options: solver.Options = solver.Options(), xs_init=None) -> solver.Solution:
    """The constrained solve of the module docstring (no validation, no ``jit``, not differentiable).

    Args:
      problem: a :class:`~ilqg_jax.Problem` with ``path_constraint`` and/or
        ``terminal_constraint``.
      x0: ``(n,)``; us_init: ``(T, m)``; params: the problem's pytree.
      options: :class:`~ilqg_jax.Options`; ``max_iter``, ``tol`` etc. apply
        to every inner solve (the first one exactly as given; the later,
        warm-started ones begin with ``mu = mu_min``), ``constraint_tol``,
        ``penalty_*`` and ``max_outer`` to the outer loop.
      xs_init: optional ``(T+1, n)`` state guess for the first inner solve (multiple shooting).

    Returns:
      :class:`~ilqg_jax.Solution` with ``multipliers`` (:class:`Multipliers`)
      and ``violation`` filled; see the module docstring for the other fields.
    """
    dtype = x0.dtype
    T = us_init.shape[0]
    us_init = us_init.astype(dtype)
    aug = augmented_problem(problem)
    g0, h0 = jax.eval_shape(functools.partial(constraint_values, problem), jnp.zeros((T + 1, x0.shape[0]), dtype),
                            us_init, params)
    al = _AL(params, None if g0 is None else jnp.zeros(g0.shape, dtype),
             None if h0 is None else jnp.zeros(h0.shape, dtype), jnp.asarray(options.penalty_init, dtype))
    start = _Outer(us=us_init, sol=None, al=al, penalty=al.rho, outer=jnp.zeros((), jnp.int32),
                   iterations=jnp.zeros((), jnp.int32), violation=jnp.asarray(jnp.inf, dtype),
                   status=jnp.asarray(solver._RUNNING, jnp.int32))
    # The first inner solve is the unconstrained problem's own (multipliers 0): exactly it when nothing binds.
    first = solver.solve_unchecked(aug, x0, us_init, al, options, xs_init=xs_init)
    s = _after_inner(problem, params, options, start, first)

    def body(s: _Outer) -> _Outer:
        return _after_inner(problem, params, options, s, solver.solve_unchecked(aug, x0, s.us, s.al,
                                                                                warm_options(options)))

    s = jax.lax.while_loop(lambda s: s.status == solver._RUNNING, body, s)
    sol = s.sol
    cost = trajectory_cost(problem, sol.xs, sol.us, params)
    multipliers = Multipliers(path=s.al.path, terminal=s.al.terminal, penalty=s.penalty)
    return sol._replace(cost=cost, iterations=s.iterations, status=s.status,
                        converged=s.status == solver.Status.CONVERGED, multipliers=multipliers,
                        violation=s.violation)


def differentiable_solve_unchecked(problem: Problem, x0: Array, us_init: Array, params=None,
                                   options: solver.Options = solver.Options(), xs_init=None) -> solver.Solution:
    """:func:`solve_unchecked` made differentiable in ``x0`` and ``params`` (implicit, at the optimum).

    ``xs``, ``us`` and ``cost`` get the derivatives of the constrained optimum
    from its KKT conditions with the active constraints held active
    (:func:`ilqg_jax.implicit.attach_constrained_gradients`).
    """
    stop = jax.lax.stop_gradient
    sol = solve_unchecked(stop(problem), stop(x0), stop(us_init), stop(params), options,
                          xs_init=None if xs_init is None else stop(xs_init))
    mult = sol.multipliers
    xs, us, cost = implicit.attach_constrained_gradients(problem, x0, params, sol.xs, sol.us, sol.cost, mult.path,
                                                         mult.terminal, mult.penalty)
    return sol._replace(xs=xs, us=us, cost=cost)


def solve_batch(problem: Problem, x0s: Array, us_inits: Array, params, xs_inits, options: solver.Options, us_axis,
                params_axis, xs_axis=None):
    """Constrained members solved by ``jax.vmap`` of :func:`differentiable_solve_unchecked`.

    Each member has its own multipliers, penalty and outer loop (it stops on
    its own status, though the vmapped loop runs until the last member stops).
    ``xs_inits``: ``None``, or state guesses with batch axis ``xs_axis``.
    """
    solve = functools.partial(differentiable_solve_unchecked, problem, options=options)
    return jax.vmap(lambda x, u, p, g: solve(x, u, p, xs_init=g),
                    in_axes=(0, us_axis, params_axis, xs_axis))(x0s, us_inits, params, xs_inits)
