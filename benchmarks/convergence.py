"""Convergence: iterations, time, cost and stationarity per task, from canonical and random starts.

Every task of the suite is solved with the default options (Gauss-Newton steps
on convexified costs while regularised, Newton (DDP) steps once Gauss-Newton
only crawls, a stationarity certificate) and with plain iLQG (exact cost
Hessians, no DDP switch) under the same stopping rule, so that the effect of
each is measured side by side. The pendulum problems are also solved from 256
random starts (``theta`` in ``[-pi, pi)``, ``theta_dot`` in ``[-8, 8]``, zero
initial controls) with ``solve_batch``.

Multiple shooting (``solve(..., xs_init=...)``) is measured where the goal
state is known (zero for every task below but the seed pendulum and the arm):
the default options started from the straight line from ``x0`` to the goal as
state guess, with the same initial controls -- on the canonical start and, for
the pendulum problems, on the same random starts (``solve_batch(..., xs_inits=...)``).

The state-cost swing-up is the standard problem of google/trajax's examples:
running cost ``(1 - cos theta)^2 + 0.1 theta_dot^2 + 0.01 u^2``, the same state
cost at the end, ``T = 99``, ``dt = 0.05``, from hanging with ``0.1 randn``
initial controls.
"""

from __future__ import annotations

import time

import numpy as np

from benchmarks import common

TITLE = "Convergence: iterations, stationarity and random starts"
MAX_ITER = 100


def _state_cost_problem():
    import jax.numpy as jnp

    import ilqg_jax as ilqg
    from ilqg_jax.systems import integrators, pendulum

    def running(x, u, t, p=None):
        return (1 - jnp.cos(x[0])) ** 2 + 0.1 * x[1] ** 2 + 0.01 * jnp.sum(u**2)

    def terminal(x, p=None):
        return (1 - jnp.cos(x[0])) ** 2 + 0.1 * x[1] ** 2

    dynamics = integrators.discretize(pendulum._swing_up_f, pendulum.SEED_DT, "semi_implicit_euler")
    return ilqg.Problem(dynamics, running, terminal, 99)


def _lq_problem(n=3, m=2, T=30, seed=0):
    import jax.numpy as jnp

    import ilqg_jax as ilqg

    rng = np.random.default_rng(seed)
    A = jnp.asarray(np.eye(n) + 0.1 * rng.standard_normal((n, n)))
    B = jnp.asarray(0.1 * rng.standard_normal((n, m)))
    problem = ilqg.Problem(lambda x, u, t, p: A @ x + B @ u,
                           lambda x, u, t, p: 0.5 * x @ x + 0.05 * u @ u,
                           lambda x, p: 5.0 * x @ x, T)
    return problem, jnp.array([1.0, -1.0, 0.5]), jnp.zeros((T, m)), None


#: Tasks whose goal state is the origin: the multiple-shooting rows start from the line from ``x0`` to it.
ORIGIN_GOAL = ("lq (n=3, m=2, T=30)", "pendulum state cost (trajax)", "pendulum", "cartpole", "acrobot", "unicycle")
MULTIPLE_SHOOTING = "default, xs_init = line to goal"


def _line(x0, T):
    return np.linspace(np.asarray(x0, float), np.zeros(np.shape(x0)), T + 1)


def _suite(quick: bool):
    """``(name, problem, x0, us_init, params, random_starts?)`` per task."""
    import jax
    import jax.numpy as jnp

    from ilqg_jax.systems import TASKS, get_task

    hanging = jnp.array([jnp.pi, 0.0])
    us_sc = 0.1 * jax.random.normal(jax.random.PRNGKey(0), (99, 1))
    suite = [("lq (n=3, m=2, T=30)", *_lq_problem(), False),
             ("pendulum state cost (trajax)", _state_cost_problem(), hanging, us_sc, None, True)]
    names = ["pendulum"] if quick else ["pendulum", "pendulum-seed", "cartpole", "acrobot", "arm", "unicycle"]
    for name in names:
        if name not in TASKS:
            continue
        task = get_task(name)
        suite.append((name, task.problem, task.x0, task.us_init, task.params, name == "pendulum"))
    return suite


def _options():
    import ilqg_jax as ilqg

    return {"default": ilqg.Options(max_iter=MAX_ITER),
            "plain iLQG": ilqg.Options(max_iter=MAX_ITER, convexify=False, ddp_switch=0.0)}


def _single(problem, x0, us0, params, options, repeats, xs_init=None):
    import jax

    import ilqg_jax as ilqg

    sol = jax.block_until_ready(ilqg.solve(problem, x0, us0, params, options, xs_init=xs_init))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(ilqg.solve(problem, x0, us0, params, options, xs_init=xs_init))
        times.append(time.perf_counter() - t0)
    return sol, float(np.median(times))


def _random(problem, options, n_starts, shooting=False):
    import ilqg_jax as ilqg

    rng = np.random.default_rng(0)
    x0s = np.stack([rng.uniform(-np.pi, np.pi, n_starts), rng.uniform(-8.0, 8.0, n_starts)], axis=1)
    guesses = np.stack([_line(x0, problem.horizon) for x0 in x0s]) if shooting else None
    sols = ilqg.solve_batch(problem, x0s, np.zeros((problem.horizon, 1)), options=options, xs_inits=guesses)
    it, st = np.asarray(sols.iterations), np.asarray(sols.status)
    return {"n": n_starts, "mean_iterations": float(it.mean()), "median_iterations": float(np.median(it)),
            "at_max_iter": float(np.mean(st == int(ilqg.Status.MAX_ITER))),
            "converged": float(np.mean(st == int(ilqg.Status.CONVERGED))),
            "mean_cost": float(np.mean(np.asarray(sols.cost))),
            "status_counts": {ilqg.Status(s).name: int(np.sum(st == s)) for s in np.unique(st)}}


def run(quick: bool = False, results_dir: str = common.DEFAULT_RESULTS_DIR) -> dict:
    """Solves the suite with both option sets; returns the JSON dict."""
    common.enable_x64()
    import ilqg_jax as ilqg

    n_starts, repeats = (16, 1) if quick else (256, 5)
    rows, random_rows, data, histories = [], [], [], {}
    for name, problem, x0, us0, params, random_starts in _suite(quick):
        variants = [(label, options, None) for label, options in _options().items()]
        if name in ORIGIN_GOAL:
            variants.append((MULTIPLE_SHOOTING, _options()["default"], _line(x0, problem.horizon)))
        for label, options, xs_init in variants:
            print(f"[convergence] {name}: {label}", flush=True)
            sol, t = _single(problem, x0, us0, params, options, repeats, xs_init)
            it = int(sol.iterations)
            entry = {"task": name, "options": label, "iterations": it, "status": ilqg.Status(int(sol.status)).name,
                     "cost": float(sol.cost), "stationarity": float(sol.stationarity), "time_ms": 1e3 * t}
            if random_starts:
                entry["random"] = _random(problem, options, n_starts, shooting=xs_init is not None)
                r = entry["random"]
                random_rows.append([name, label, r["n"], r["mean_iterations"], r["median_iterations"],
                                    r["at_max_iter"], r["converged"], r["mean_cost"]])
            histories[f"{name} / {label}"] = np.asarray(sol.history.cost[: it + 1]).tolist()
            data.append(entry)
            rows.append([name, label, it, entry["status"], entry["cost"], entry["stationarity"], entry["time_ms"]])
    checks = _checks(data)
    figures = [_plot(histories, results_dir)]
    tables = [
        common.table("Canonical start, float64, max_iter = 100",
                     ["task", "options", "iterations", "status", "cost", "stationarity", "time (ms)"], rows),
        common.table(f"Random starts (theta in [-pi, pi), theta_dot in [-8, 8], zero controls), max_iter = {MAX_ITER}",
                     ["task", "options", "starts", "mean iterations", "median iterations", "fraction at max_iter",
                      "fraction CONVERGED", "mean cost"], random_rows)]
    return {"description": __doc__.split("\n\n")[0], "tables": tables, "figures": figures, "checks": checks,
            "data": data}


def _checks(data) -> dict:
    by = {(d["task"], d["options"]): d for d in data}
    checks = {}
    lq = by.get(("lq (n=3, m=2, T=30)", "default"))
    if lq is not None:
        checks["lq_converged"] = lq["status"] == "CONVERGED"
    for d in data:
        if d["options"] == "default" and d["status"] == "CONVERGED":
            checks[f"certified_{d['task']}"] = d["stationarity"] <= 1e-5
    return checks


def _plot(histories, results_dir) -> str:
    fig, axes = common.new_figure()
    ax = np.atleast_1d(axes).ravel()[0]
    curves = {k: np.asarray(c) for k, c in histories.items() if k.startswith("pendulum state cost")}
    best = min(c.min() for c in curves.values())
    for key, costs in curves.items():
        ax.semilogy(costs - best + 1e-12, label=key)
    ax.set_xlabel("iteration")
    ax.set_ylabel("cost - best cost")
    ax.set_title("State-cost swing-up from hanging")
    ax.legend()
    return common.save_figure(fig, results_dir, "convergence.png")
