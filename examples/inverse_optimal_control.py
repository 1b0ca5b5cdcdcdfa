"""Inverse optimal control: recover a pendulum's mass and cost weights from demonstrations.

An expert balances a pendulum back to upright from pushed-over states,
optimally for a mass ``m`` and cost weights ``q_angle``, ``r_torque`` that we
do not know. From their demonstrated trajectories we fit those unknowns by
gradient descent (optax's Adam) on the imitation loss

    ``mean_demos ( mean |xs(theta) - xs_demo|^2 + mean |us(theta) - us_demo|^2 )``,

where ``xs(theta), us(theta)`` is the optimal trajectory for the guessed
parameters, computed by ``ilqg_jax.solve`` -- and differentiated through it:
``jax.grad`` of the loss solves one LQR problem per demonstration at the
optimum (implicit differentiation), not through the solver's iterations.

The task: the gym pendulum (``pendulum.continuous_dynamics``, semi-implicit
Euler, ``dt = 0.05``), 2 s horizon, running cost ``dt (q_angle theta^2 +
0.1 theta_dot^2 + r_torque u^2) / 2`` and a fixed terminal cost. The angle
cost is the raw ``theta^2`` on purpose: near upright it makes the optimum
unique and smooth in the parameters. (On the swing-up, or with the periodic
``1 - cos theta``, the optimal trajectory jumps between swinging left or
right, pumping or not, one turn or two, as the parameters change: the
imitation loss is then discontinuous and no gradient method can follow it.)

Identifiability: cost weights only matter up to a common scale, so the
terminal and velocity weights are known and ``q_angle`` and ``r_torque`` are
learned with the mass; observing the controls as well as the states separates
the mass (which scales the torque's effect) from ``r_torque``. Parameters are
learned in log space (they must stay positive).

Each Adam step re-solves the demonstrations warm-started from the previous
step's solutions (the gradient does not depend on the initial controls). Full
DDP (``second_order=True``) is used for its exact optimum: the gradients are
only as accurate as the optimum they are taken at.

float64 throughout (importing this module enables ``jax_enable_x64``). Run
``python examples/inverse_optimal_control.py``: 600 Adam steps take ~15 s
on a (loaded, 2-core) CPU, most of it compilation, and recover all three
parameters to ~1e-4 relative.
"""

from __future__ import annotations

import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

import ilqg_jax as ilqg
from ilqg_jax.systems import integrators, pendulum

jax.config.update("jax_enable_x64", True)

DT = 0.05
HORIZON = 40
OPTIONS = ilqg.Options(tol=1e-10, max_iter=200, second_order=True)
TRUE = {"m": 1.2, "q_angle": 4.0, "r_torque": 0.15}
GUESS = {"m": 0.7, "q_angle": 2.0, "r_torque": 0.07}
#: Initial states of the demonstrations: pushed over, within 0.6 rad of upright.
X0S = ((0.5, 0.0), (-0.3, 1.0), (0.2, -1.2), (-0.6, 0.3))


class BalanceParams(NamedTuple):
    """Parameters of :func:`balance_problem` (a pytree): the model and the learned cost weights."""

    model: pendulum.PendulumParams
    q_angle: float
    r_torque: float


def _pendulum(x, u, params: BalanceParams):
    return pendulum.continuous_dynamics(x, u, params.model)


def _running_cost(x, u, t, params: BalanceParams):
    del t
    return DT * 0.5 * (params.q_angle * x[0] ** 2 + 0.1 * x[1] ** 2 + params.r_torque * jnp.sum(u**2))


def _terminal_cost(x, params: BalanceParams):
    del params
    return 0.5 * (20.0 * x[0] ** 2 + 2.0 * x[1] ** 2)


def balance_problem(horizon: int = HORIZON) -> ilqg.Problem:
    """Bring the pendulum upright (``theta = 0``) and keep it there; ``params`` is a :class:`BalanceParams`."""
    dynamics = integrators.discretize(_pendulum, DT, "semi_implicit_euler")
    return ilqg.Problem(dynamics, _running_cost, _terminal_cost, horizon)


def balance_params(values: dict) -> BalanceParams:
    """:class:`BalanceParams` from ``{"m", "q_angle", "r_torque"}`` (gravity and length at their defaults)."""
    return BalanceParams(pendulum.PendulumParams(m=values["m"]), values["q_angle"], values["r_torque"])


def make_step(problem, optimizer, xs_demo, us_demo, x0s):
    """One jit-compiled Adam step on ``log theta``.

    Returns ``step(log_theta, opt_state, us_init) -> (log_theta, opt_state, us, loss, all_converged)``,
    where ``us`` (the solutions' controls) warm-starts the next step.
    """

    def solve_all(log_theta, us_init):
        params = balance_params(jax.tree_util.tree_map(jnp.exp, log_theta))
        return jax.vmap(lambda x0, u: ilqg.solve(problem, x0, u, params, OPTIONS))(x0s, us_init)

    def loss_fn(log_theta, us_init):
        sol = solve_all(log_theta, us_init)
        loss = jnp.mean((sol.xs - xs_demo) ** 2) + jnp.mean((sol.us - us_demo) ** 2)
        return loss, sol

    @jax.jit
    def step(log_theta, opt_state, us_init):
        (loss, sol), grads = jax.value_and_grad(loss_fn, has_aux=True)(log_theta, us_init)
        updates, opt_state = optimizer.update(grads, opt_state)
        return optax.apply_updates(log_theta, updates), opt_state, sol.us, loss, jnp.all(sol.converged)

    return step


def main(steps: int = 600, quiet: bool = False, learning_rate: float = 0.05) -> dict:
    """Fits ``m``, ``q_angle``, ``r_torque`` to demonstrations; returns losses and values.

    Args:
      steps: Adam steps.
      quiet: print nothing.
      learning_rate: Adam's step size (on log parameters).

    Returns:
      ``{"losses": [...], "true": {...}, "initial": {...}, "recovered": {...}, "seconds": float,
      "all_converged": bool}``.
    """
    log = (lambda *a: None) if quiet else print
    t0 = time.perf_counter()
    problem = balance_problem()
    x0s = jnp.asarray(X0S)
    us0 = jnp.zeros((len(X0S), HORIZON, 1))
    demo = jax.vmap(lambda x0, u: ilqg.solve(problem, x0, u, balance_params(TRUE), OPTIONS))(x0s, us0)
    assert bool(jnp.all(demo.converged)), "the demonstrations must be optimal"

    optimizer = optax.adam(learning_rate)
    # float64 arrays (not weakly typed Python floats): the step's input types must not change after
    # the first update, or it compiles again.
    log_theta = {k: jnp.log(jnp.asarray(v, jnp.float64)) for k, v in GUESS.items()}
    opt_state = optimizer.init(log_theta)
    step = make_step(problem, optimizer, demo.xs, demo.us, x0s)
    us, losses, all_converged = us0, [], True
    log(f"{'step':>5} {'loss':>10}   " + "  ".join(f"{k:>9}" for k in GUESS))
    for i in range(steps):
        values = {k: float(jnp.exp(v)) for k, v in log_theta.items()}
        log_theta, opt_state, us, loss, converged = step(log_theta, opt_state, us)
        losses.append(float(loss))
        all_converged &= bool(converged)
        if i % 50 == 0 or i == steps - 1:
            log(f"{i:5d} {losses[-1]:10.3e}   " + "  ".join(f"{values[k]:9.4f}" for k in GUESS))
    recovered = {k: float(jnp.exp(v)) for k, v in log_theta.items()}
    seconds = time.perf_counter() - t0
    log(f"\n{'':9} {'true':>9} {'initial':>9} {'recovered':>9}")
    for k in GUESS:
        log(f"{k:9} {TRUE[k]:9.4f} {GUESS[k]:9.4f} {recovered[k]:9.4f}")
    log(f"\nloss {losses[0]:.3e} -> {losses[-1]:.3e} in {steps} Adam steps, {seconds:.1f} s")
    return {"losses": losses, "true": dict(TRUE), "initial": dict(GUESS), "recovered": recovered,
            "seconds": seconds, "all_converged": all_converged}


if __name__ == "__main__":
    main()
