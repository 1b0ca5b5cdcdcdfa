"""The problems of the peer benchmark, built twice: for Crocoddyl and for ilqg_jax.

Four systems, each the *same* discrete-time problem on both sides (checked by
:func:`check_agreement` on random states and controls before anything is timed):

* ``unicycle``: ``crocoddyl.ActionModelUnicycle`` against
  :mod:`ilqg_jax.systems.unicycle` (explicit Euler, ``dt = 0.1``, cost
  ``1/2 (100 |x|^2 + |u|^2)``, terminal ``1/2 100 |x|^2``), starts in ``[-1, 1]^3``.
* ``lq``: ``crocoddyl.ActionModelLQR`` with seeded matrices (``n = 10``,
  ``m = 5``, stable ``A``) against the same matrices as ``params`` here.
* ``pendulum``: a uniform rod (1 kg, 1 m) on a revolute joint, built with
  ``pinocchio.Model`` + ``DifferentialActionModelFreeFwdDynamics`` +
  ``IntegratedActionModelEuler``, against
  :func:`ilqg_jax.systems.pendulum.continuous_dynamics` with ``g = 9.81``.
* ``double_pendulum``: two such rods, torque on the elbow only (Crocoddyl's
  ``ActuationModelFloatingBase`` leaves the joint named ``root_joint``
  unactuated): an acrobot, against :func:`ilqg_jax.systems.acrobot.continuous_dynamics`.

Crocoddyl's Euler integrator is semi-implicit (``v' = v + dt a``, ``q' = q +
dt v'``), so the JAX twins use ``integrators.discretize(...,
"semi_implicit_euler")``. Pendulum costs are Crocoddyl's ``ResidualModelState``
with a weighted quadratic activation plus ``ResidualModelControl``, scaled by
``dt`` along the way: ``dt (1/2 sum_i w_i (x_i - x*_i)^2 + w_u 1/2 |u|^2)``;
terminal ``1/2 sum_i wf_i (x_i - x*_i)^2``; goal ``x* = 0`` (upright, at rest).

This module imports neither JAX nor Crocoddyl at the top, so worker processes
that need only one of them import only that one.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Tuple

import numpy as np

__all__ = ["SYSTEMS", "DIMS", "Quadratic", "COSTS", "LQParams", "lq_params", "starts", "jax_problem",
           "crocoddyl_problem", "check_agreement", "AGREEMENT_TOL"]

SYSTEMS = ("unicycle", "lq", "pendulum", "double_pendulum")
HORIZON = 100
PENDULUM_DT = 0.05
LQ_SIZE = (10, 5)
#: ``(n, m)`` of each system.
DIMS = {"unicycle": (3, 2), "lq": LQ_SIZE, "pendulum": (2, 1), "double_pendulum": (4, 1)}
#: Largest difference allowed between the two models (relative to max(1, |value|)).
AGREEMENT_TOL = 1e-12


class Quadratic(NamedTuple):
    """Crocoddyl-style quadratic cost: running state weights ``w``, control weight ``wu``, terminal ``wf``."""

    w: Tuple[float, ...]
    wu: float
    wf: Tuple[float, ...]


COSTS = {
    "pendulum": Quadratic(w=(1.0, 0.1), wu=0.1, wf=(100.0, 10.0)),
    "double_pendulum": Quadratic(w=(1.0, 1.0, 0.1, 0.1), wu=0.01, wf=(100.0, 100.0, 10.0, 10.0)),
}


class LQParams(NamedTuple):
    """``x' = A x + B u``; cost ``1/2 x'Qx + 1/2 u'Ru + x'Nu``, terminal ``1/2 x'Qf x``.

    Shapes: ``A, Q, Qf: (n, n)``, ``B, N: (n, m)``, ``R: (m, m)``.
    """

    A: Any
    B: Any
    Q: Any
    R: Any
    N: Any
    Qf: Any


def lq_params(n: int = LQ_SIZE[0], m: int = LQ_SIZE[1], seed: int = 0) -> LQParams:
    """Seeded LQ matrices (NumPy): ``A`` near the identity with spectral radius 1, ``R, Q > 0``, ``N = 0``."""
    rng = np.random.default_rng(seed)
    A = np.eye(n) + 0.05 * rng.standard_normal((n, n))
    A /= max(1.0, np.max(np.abs(np.linalg.eigvals(A))))
    G = rng.standard_normal((n, n))
    return LQParams(A=A, B=0.1 * rng.standard_normal((n, m)), Q=G @ G.T / n + 0.1 * np.eye(n),
                    R=np.diag(rng.uniform(0.5, 2.0, m)), N=np.zeros((n, m)), Qf=10.0 * np.eye(n))


def starts(system: str, count: int, seed: int = 0) -> np.ndarray:
    """``(count, n)`` random initial states of ``system``, the same for every solver.

    unicycle: ``U[-1, 1]^3``; lq: standard normal; pendulum: angle ``pi +
    U[-1, 1]`` (around hanging), rate ``U[-1, 1]``; double pendulum: shoulder
    ``pi + U[-0.5, 0.5]``, elbow and rates ``U[-0.5, 0.5]``.
    """
    rng = np.random.default_rng(seed)
    if system == "unicycle":
        return rng.uniform(-1.0, 1.0, (count, 3))
    if system == "lq":
        return rng.standard_normal((count, LQ_SIZE[0]))
    half = 1.0 if system == "pendulum" else 0.5
    x = rng.uniform(-half, half, (count, DIMS[system][0]))
    x[:, 0] += np.pi
    return x


# ----------------------------------------------------------------------------- JAX side

def _lq_dynamics(x, u, t, p: LQParams):
    return p.A @ x + p.B @ u


def _lq_running(x, u, t, p: LQParams):
    return 0.5 * x @ p.Q @ x + 0.5 * u @ p.R @ u + x @ p.N @ u


def _lq_terminal(x, p: LQParams):
    return 0.5 * x @ p.Qf @ x


def _pendulum_params():
    from ilqg_jax.systems import pendulum

    return pendulum.PendulumParams(g=9.81, m=1.0, l=1.0)


def jax_problem(system: str, horizon: int = HORIZON):
    """``(problem, params)``: the ilqg_jax twin of :func:`crocoddyl_problem` (float64 params)."""
    import jax.numpy as jnp

    from ilqg_jax.problem import Problem
    from ilqg_jax.systems import acrobot, angles, integrators, pendulum, unicycle

    if system == "unicycle":
        return unicycle.problem(horizon), unicycle.default_params()
    if system == "lq":
        params = LQParams(*(jnp.asarray(a) for a in lq_params()))
        return Problem(_lq_dynamics, _lq_running, _lq_terminal, horizon), params
    f, params = ((pendulum.continuous_dynamics, _pendulum_params()) if system == "pendulum"
                 else (acrobot.continuous_dynamics, acrobot.default_params()))
    c = COSTS[system]
    n = len(c.w)
    zero, free = (0.0,) * n, (False,) * n
    # Crocoddyl's 1/2 w r^2 is angles' w' d^2 with w' = w / 2.
    running = angles.RunningCost(zero, tuple(w / 2 for w in c.w), free, c.wu / 2, PENDULUM_DT)
    terminal = angles.TerminalCost(zero, tuple(w / 2 for w in c.wf), free)
    dynamics = integrators.discretize(f, PENDULUM_DT, "semi_implicit_euler")
    return Problem(dynamics, running, terminal, horizon), params


# ----------------------------------------------------------------------------- Crocoddyl side

def _rod_chain(links: int):
    """A ``pinocchio.Model`` of ``links`` uniform rods (1 kg, 1 m) on revolute-y joints, upright at q = 0."""
    import pinocchio as pin

    model = pin.Model()
    rod = pin.Inertia(1.0, np.array([0.0, 0.0, 0.5]), np.diag([1.0 / 12.0, 1.0 / 12.0, 1e-3]))
    parent, placement = 0, pin.SE3.Identity()
    for i in range(links):
        name = "root_joint" if i == 0 else f"joint{i + 1}"
        parent = model.addJoint(parent, pin.JointModelRY(), placement, name)
        model.appendBodyToJoint(parent, rod, pin.SE3.Identity())
        placement = pin.SE3(np.eye(3), np.array([0.0, 0.0, 1.0]))
    return model


def _pendulum_models(system: str):
    """Running and terminal ``IntegratedActionModelEuler`` of the (double) pendulum."""
    import crocoddyl

    state = crocoddyl.StateMultibody(_rod_chain(1 if system == "pendulum" else 2))
    actuation = (crocoddyl.ActuationModelFull(state) if system == "pendulum"
                 else crocoddyl.ActuationModelFloatingBase(state))
    c, nu = COSTS[system], actuation.nu

    def costs(weights, control):
        total = crocoddyl.CostModelSum(state, nu)
        x_res = crocoddyl.ResidualModelState(state, np.zeros(state.nx), nu)
        total.addCost("state", crocoddyl.CostModelResidual(
            state, crocoddyl.ActivationModelWeightedQuad(np.asarray(weights)), x_res), 1.0)
        if control:
            total.addCost("control", crocoddyl.CostModelResidual(
                state, crocoddyl.ResidualModelControl(state, nu)), c.wu)
        return crocoddyl.DifferentialActionModelFreeFwdDynamics(state, actuation, total)

    return (crocoddyl.IntegratedActionModelEuler(costs(c.w, True), PENDULUM_DT),
            crocoddyl.IntegratedActionModelEuler(costs(c.wf, False), 0.0))


def _crocoddyl_models(system: str):
    import crocoddyl

    if system == "unicycle":
        model = crocoddyl.ActionModelUnicycle()
        return model, model
    if system == "lq":
        p = lq_params()
        n, m = p.B.shape
        zn, zm = np.zeros(n), np.zeros(m)
        return (crocoddyl.ActionModelLQR(p.A, p.B, p.Q, p.R, p.N, zn, zn, zm),
                crocoddyl.ActionModelLQR(p.A, p.B, p.Qf, p.R, p.N, zn, zn, zm))
    return _pendulum_models(system)


def crocoddyl_problem(system: str, horizon: int = HORIZON):
    """A single-threaded ``crocoddyl.ShootingProblem`` of ``system`` (set ``problem.x0`` per start)."""
    import crocoddyl

    running, terminal = _crocoddyl_models(system)
    x0 = np.zeros(running.state.nx)
    problem = crocoddyl.ShootingProblem(x0, [running] * horizon, terminal)
    problem.nthreads = 1
    return problem


# ----------------------------------------------------------------------------- agreement

def _crocoddyl_eval(problem, xs, us):
    """Crocoddyl's ``(x_next: (k, n), running cost: (k,), terminal cost: (k,))`` at ``xs: (k, n)``, ``us: (k, m)``."""
    model, data = problem.runningModels[0], problem.runningDatas[0]
    term, tdata = problem.terminalModel, problem.terminalData
    nxt, cost, tcost = [], [], []
    for x, u in zip(xs, us):
        model.calc(data, x, u)
        nxt.append(np.array(data.xnext))
        cost.append(data.cost)
        term.calc(tdata, x)
        tcost.append(tdata.cost)
    return np.array(nxt), np.array(cost), np.array(tcost)


def _scaled_error(a, b) -> float:
    return float(np.max(np.abs(a - b) / np.maximum(1.0, np.abs(b))))


def check_agreement(system: str, count: int = 20, seed: int = 1) -> dict:
    """Largest difference between the Crocoddyl and JAX models at ``count`` random ``(x, u)``.

    States come from :func:`starts` plus a unit normal, controls are unit
    normal. Returns ``{"dynamics", "running_cost", "terminal_cost"}`` (each
    ``max |a - b| / max(1, |b|)``), ``"max"`` and ``"agree"`` (``max <= AGREEMENT_TOL``).
    """
    import jax
    import jax.numpy as jnp

    problem, params = jax_problem(system, horizon=1)
    cproblem = crocoddyl_problem(system, horizon=1)
    rng = np.random.default_rng(seed)
    n, m = DIMS[system]
    xs = starts(system, count, seed) + rng.standard_normal((count, n))
    us = rng.standard_normal((count, m))
    nxt, cost, tcost = _crocoddyl_eval(cproblem, xs, us)
    t = jnp.zeros(count, dtype=jnp.int32)
    each = lambda fn, *a: jax.vmap(fn, in_axes=(0,) * len(a) + (None,))(*a, params)  # noqa: E731
    out = {"dynamics": _scaled_error(np.asarray(each(problem.dynamics, xs, us, t)), nxt),
           "running_cost": _scaled_error(np.asarray(each(problem.running_cost, xs, us, t)), cost),
           "terminal_cost": _scaled_error(np.asarray(each(problem.terminal_cost, xs)), tcost)}
    out["max"] = max(out.values())
    out["agree"] = out["max"] <= AGREEMENT_TOL
    return out
