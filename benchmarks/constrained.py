"""Constrained trajectory optimisation: ilqg_jax's augmented Lagrangian against IPOPT and trajax.

The problems are ``systems.obstacles`` (a unicycle around circular obstacles
to a goal it must reach exactly: path constraints ``r^2 - |p - c|^2 <= 0``,
terminal constraint ``p_T = goal``), with the task's two obstacles and with
one obstacle, all from zero controls:

* **ilqg_jax**: ``ilqg_jax.solve`` (the augmented Lagrangian around iLQG,
  one compiled program), ``Options(tol=1e-10, constraint_tol=1e-8)``; time is
  a warm call, compile time is reported apart; iterations are inner iLQG
  iterations summed over the outer loop.
* **IPOPT** (CasADi, ``benchmarks/ipopt_ocp.py``): multiple shooting on the
  same discrete transcription, exact Hessians, ``tol = 1e-10``, from zero
  controls and their rollout; time is IPOPT's own solve, iterations its
  interior-point iterations.
* **trajax** ``constrained_ilqr`` (when importable from ``../shared/peers``):
  its augmented Lagrangian around its iLQR, jit-compiled, with the
  constraints in its convention (evaluated at every ``t = 0..T``; the
  terminal equality only at ``t = T``), ``constraints_threshold = 1e-8``;
  its iteration count is its cumulative iLQR iterations.

Costs are the problem's own (no penalty terms), recomputed for every solver
with the JAX model; the violation is ``max(max(g, 0), |h|)``.
"""

from __future__ import annotations

import os
import sys

import numpy as np

from benchmarks import common

TITLE = "Constraints: augmented-Lagrangian iLQG vs IPOPT (CasADi) and trajax's constrained_ilqr"
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: google/trajax is not on the package index; a copy sits beside the repository.
PEERS_DIR = os.path.join(os.path.dirname(REPO), "shared", "peers")


def _cases(quick: bool):
    import jax.numpy as jnp

    from ilqg_jax.systems import obstacles

    cases = [("two obstacles (task)", obstacles.default_params())]
    if not quick:
        cases.append(("one obstacle", obstacles.ObstacleParams(
            centers=jnp.array([[1.5, 0.15]]), radii=jnp.array([0.5]), goal=jnp.array([3.0, 0.0]))))
    return cases


def _measure(problem, params, cost, violation, solve, repeats):
    """``(time dict, iterations, cost, violation, extra)`` of ``solve() -> (xs, us, iterations, extra)``."""
    timing = common.time_call(solve, repeats=repeats)
    xs, us, iterations, extra = solve()
    return timing, int(iterations), float(cost(xs, us)), float(violation(xs, us)), extra


def _ilqg(problem, x0, us0, params, repeats):
    import time

    import jax

    import ilqg_jax as ilqg

    options = ilqg.Options(tol=1e-10, constraint_tol=1e-8)
    t0 = time.perf_counter()
    jax.block_until_ready(ilqg.solve(problem, x0, us0, params, options))
    first = time.perf_counter() - t0
    timing = common.time_call(lambda: ilqg.solve(problem, x0, us0, params, options), repeats=repeats)
    sol = ilqg.solve(problem, x0, us0, params, options)
    return dict(time=timing, compile_s=first - timing["median_s"], iterations=int(sol.iterations), xs=sol.xs,
                us=sol.us, status=ilqg.Status(int(sol.status)).name)


def _ipopt(params, T, dt, repeats):
    from benchmarks import ipopt_ocp

    f, l, lf, g, h = ipopt_ocp.obstacle_functions(ipopt_ocp.casadi_lib(), params, dt)
    runs = [ipopt_ocp.solve(f, l, lf, np.zeros(3), T, 2, g=g, h=h) for _ in range(max(1, repeats))]
    r = runs[-1]
    return dict(time={"median_s": float(np.median([x.seconds for x in runs]))}, iterations=r.iterations, xs=r.xs,
                us=r.us, status=r.status)


def _trajax(problem, params, T, repeats):
    """trajax's ``constrained_ilqr`` on the same model, or ``None`` when it cannot be imported."""
    if PEERS_DIR not in sys.path:
        sys.path.insert(0, PEERS_DIR)
    try:
        from trajax import optimizers
    except Exception:  # not there, or not importable with this JAX
        return None
    import jax
    import jax.numpy as jnp

    def cost(x, u, t):
        return jnp.where(t == T, problem.terminal_cost(x, params), problem.running_cost(x, u, t, params))

    def dynamics(x, u, t):
        return problem.dynamics(x, u, t, params)

    def equality(x, u, t):
        return jnp.where(t == T, problem.terminal_constraint(x, params), 0.0)

    def inequality(x, u, t):
        return problem.path_constraint(x, u, t, params)

    solve = jax.jit(lambda x0, U: optimizers.constrained_ilqr(
        cost, dynamics, x0, U, equality_constraint=equality, inequality_constraint=inequality, maxiter_al=20,
        maxiter_ilqr=100, constraints_threshold=1e-8, grad_norm_threshold=1e-8))
    x0, U = jnp.zeros(3), jnp.zeros((T, 2))
    timing = common.time_call(lambda: solve(x0, U), repeats=repeats)
    out = solve(x0, U)
    return dict(time=timing, iterations=int(out[10]), xs=out[0], us=out[1], status=f"{int(out[11])} AL iterations")


def run(quick: bool = False) -> dict:
    import jax.numpy as jnp

    from ilqg_jax import constrained
    from ilqg_jax.derivatives import trajectory_cost
    from ilqg_jax.systems import obstacles

    repeats = 3 if quick else 7
    problem, T = obstacles.problem(), obstacles.HORIZON
    rows, data, checks = [], {}, {}
    for label, params in _cases(quick):
        x0, us0 = obstacles.initial_state(), jnp.zeros((T, 2))
        results = {"ilqg_jax.solve": _ilqg(problem, x0, us0, params, repeats),
                   "IPOPT (CasADi)": _ipopt(params, T, obstacles.DT, repeats)}
        trajax = _trajax(problem, params, T, repeats)
        if trajax is not None:
            results["trajax constrained_ilqr"] = trajax
        for solver, r in results.items():
            xs, us = jnp.asarray(r["xs"]), jnp.asarray(r["us"])
            r["cost"] = float(trajectory_cost(problem, xs, us, params))
            r["violation"] = float(constrained.violations(problem, xs, us, params))
            rows.append([label, solver, r["status"], r["iterations"], 1e3 * r["time"]["median_s"], r["cost"],
                         r["violation"], r.get("compile_s")])
            data[f"{label} / {solver}"] = {k: v for k, v in r.items() if k not in ("xs", "us")}
        ours, ipopt = results["ilqg_jax.solve"], results["IPOPT (CasADi)"]
        checks[f"{label}: ilqg_jax feasible to 1e-6"] = ours["violation"] <= 1e-6
        checks[f"{label}: ilqg_jax cost within 1% of IPOPT's (or below)"] = ours["cost"] <= 1.01 * ipopt["cost"]
    table = common.table(
        "Unicycle around obstacles, T = 50, from zero controls",
        ["problem", "solver", "status", "iterations", "time (ms)", "cost", "violation", "compile (s)"], rows,
        note="time: median warm call (IPOPT: its own solve, transcription excluded); iterations: inner iLQR "
             "iterations summed over the outer loop (ilqg_jax, trajax), interior-point iterations (IPOPT). "
             "A lower cost than IPOPT's is another local optimum (a way round an obstacle).")
    return {"description": __doc__.split("\n\n")[0], "tables": [table], "checks": checks, "data": data}
