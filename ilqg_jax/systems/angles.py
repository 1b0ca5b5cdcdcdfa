"""Smooth, periodic costs and errors for angles.

A swing-up cost on the raw angle ``(theta - target)^2`` is wrong twice over:
``theta`` and ``theta + 2 pi`` are the same posture, and wrapping the angle
makes the cost discontinuous. The functions here are ``2 pi``-periodic and
smooth, so their gradients and Hessians (taken by ``jax.grad``/``jax.hessian``
in the solver) are well defined everywhere. :class:`RunningCost` and
:class:`TerminalCost` are the quadratic-with-periodic-angles costs shared by
the swing-up problems (cart-pole, acrobot).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence, Tuple

import jax
import jax.numpy as jnp

Array = jax.Array

__all__ = ["wrap", "angle_cost", "embed", "periodic_quadratic", "RunningCost", "TerminalCost"]


def wrap(theta: Array) -> Array:
    """Angle(s) wrapped to ``[-pi, pi)``; elementwise, any shape. For reporting, not for costs."""
    return jnp.mod(theta + jnp.pi, 2.0 * jnp.pi) - jnp.pi


def angle_cost(theta: Array, target: Array | float = 0.0) -> Array:
    """``1 - cos(theta - target)``, elementwise: 0 at the target, 2 opposite it.

    Near the target it equals ``(theta - target)^2 / 2`` to second order, so a
    weight ``w`` on it acts like a quadratic weight ``w / 2``.
    """
    return 1.0 - jnp.cos(theta - target)


def embed(theta: Array) -> Array:
    """The embedding ``[cos(theta), sin(theta)]`` of ``theta: (k,)``, as ``(2k,)``."""
    return jnp.concatenate([jnp.cos(theta), jnp.sin(theta)])


def periodic_quadratic(x: Array, target: Array, weights: Array, periodic: Sequence[bool]) -> Array:
    """``sum_i weights_i * d_i(x_i, target_i)^2``, a quadratic that is periodic in the angles.

    ``d_i^2 = (x_i - target_i)^2`` for ordinary components and
    ``2 (1 - cos(x_i - target_i))`` where ``periodic[i]`` (equal to the square
    to second order, so weights mean the same for both kinds).

    Args:
      x, target, weights: ``(n,)``. periodic: ``n`` booleans (static).

    Returns:
      Scalar cost.
    """
    e = x - target
    mask = jnp.asarray(periodic, dtype=bool)
    d2 = jnp.where(mask, 2.0 * angle_cost(e), e ** 2)
    return jnp.sum(weights * d2)


@dataclasses.dataclass(frozen=True)
class RunningCost:
    """``dt * (periodic_quadratic(x, target, state_weights) + control_weight * |u|^2)``.

    Hashable (all fields are tuples and floats), so problems built from equal
    settings compare equal and share compiled code. Shapes: ``x: (n,)``, ``u: (m,)``.
    """

    target: Tuple[float, ...]
    state_weights: Tuple[float, ...]
    periodic: Tuple[bool, ...]
    control_weight: float
    dt: float

    def __call__(self, x: Array, u: Array, t: Array, params: Any) -> Array:
        del t, params
        target = jnp.asarray(self.target, dtype=x.dtype)
        weights = jnp.asarray(self.state_weights, dtype=x.dtype)
        state = periodic_quadratic(x, target, weights, self.periodic)
        return self.dt * (state + self.control_weight * jnp.sum(u ** 2))


@dataclasses.dataclass(frozen=True)
class TerminalCost:
    """``periodic_quadratic(x, target, weights)`` at the final state ``x: (n,)``; hashable."""

    target: Tuple[float, ...]
    weights: Tuple[float, ...]
    periodic: Tuple[bool, ...]

    def __call__(self, x: Array, params: Any) -> Array:
        del params
        target = jnp.asarray(self.target, dtype=x.dtype)
        weights = jnp.asarray(self.weights, dtype=x.dtype)
        return periodic_quadratic(x, target, weights, self.periodic)
