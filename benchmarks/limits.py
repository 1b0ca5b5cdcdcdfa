"""What control limits cost: the same solves with and without a box on the controls.

Each problem is solved without limits, with limits so wide they never bind
(the box-QP backward pass and the clipped forward pass run, but the
trajectory is the unconstrained one, so the iterations are the same and the
difference per iteration is the price of the machinery), and with limits that
bind. The pendulum swing-up (``x0 = [pi, 0]``, ``us_init = 0.1 randn``, seed
0, T = 100) is bounded at 2 N m by ``pendulum.swing_up_limited``: too weak to
lift it directly, so it pumps over several swings. The two-link arm reach
(``systems.get_task("arm")``, m = 2) is bounded at 1 N m (its task's 10 N m
never binds), where the projected-Newton box QP has free and clamped controls
to tell apart; with one control the box QP is solved in closed form.

Besides whole solves, the backward pass alone is timed on one trajectory (the
limited solution's) with and without limits: that ratio is the cost of the
box QP per time step, free of the differences in line search between the
solves. The target: limits cost less than 1.5x per iteration.
"""

from __future__ import annotations

import numpy as np

from benchmarks import common

TITLE = "Control limits: iterations and time per iteration with and without a box on u"
#: Reported, never enforced.
TARGETS = {"per_iteration_ratio": 1.5}
HORIZON = 100
#: The arm's task limit (10 N m) never binds on its reach (|u| <= 1.8 N m); 1 N m does.
ARM_U_MAX = 1.0


def _cases(quick: bool):
    """``[(system, label, problem, x0, us_init, params, u_max or None)]``; the pendulum only under ``--quick``."""
    import jax.numpy as jnp

    from benchmarks.single_solve import initial_controls
    from ilqg_jax.systems import get_task, pendulum

    x0 = jnp.array([np.pi, 0.0])
    us0 = jnp.asarray(initial_controls(HORIZON))
    arm = get_task("arm")
    arm_free = arm.problem.replace(control_lower=None, control_upper=None)
    cases = [
        ("pendulum", "no limits", pendulum.swing_up(HORIZON), x0, us0, None, None),
        ("pendulum", "|u| <= 1000 (never binds)", pendulum.swing_up(HORIZON, u_max=1e3), x0, us0, None, 1e3),
        ("pendulum", "|u| <= 2 (binds)", pendulum.swing_up_limited(2.0, HORIZON), x0, us0, None, 2.0),
        ("arm", "no limits", arm_free, arm.x0, arm.us_init, arm.params, None),
        ("arm", "|u| <= 1000 (never binds)",
         arm.problem.replace(control_lower=jnp.full(2, -1e3), control_upper=jnp.full(2, 1e3)), arm.x0,
         arm.us_init, arm.params, 1e3),
        ("arm", f"|u| <= {ARM_U_MAX:g} (binds)",
         arm.problem.replace(control_lower=jnp.full(2, -ARM_U_MAX), control_upper=jnp.full(2, ARM_U_MAX)),
         arm.x0, arm.us_init, arm.params, ARM_U_MAX),
    ]
    return [c for c in cases if c[0] == "pendulum"] if quick else cases


def _rollouts_per_iteration(alpha_history, alphas, iterations):
    """Forward passes of the backtracking search per iteration, from the accepted step sizes.

    An accepted ``alpha = alphas[i]`` took ``i + 1`` rollouts; a rejected
    iteration (NaN) is counted as all of them (it may have had none, when the
    backward pass failed, so this is an upper bound).
    """
    a = np.asarray(alpha_history)[1: iterations + 1]
    total = 0
    for v in a:
        total += len(alphas) if not np.isfinite(v) else int(np.argmin(np.abs(alphas - v))) + 1
    return total / max(iterations, 1)


def _solve_case(problem, x0, us0, params, quick):
    import ilqg_jax as ilqg

    compiled, compile_t = common.aot_compile(lambda a, b, p: ilqg.solve(problem, a, b, p), x0, us0, params)
    sol = compiled(x0, us0, params)
    timing = common.time_call(lambda: compiled(x0, us0, params), repeats=5 if quick else 21)
    it = int(sol.iterations)
    alphas = np.asarray(ilqg.solver.step_sizes(ilqg.Options(), np.float64))
    return sol, {
        "iterations": it, "status": ilqg.Status(int(sol.status)).name, "cost": float(sol.cost),
        "timing": timing, "compile": compile_t, "us_per_iteration": timing["median_s"] / max(it, 1) * 1e6,
        "rollouts_per_iteration": _rollouts_per_iteration(sol.history.alpha, alphas, it),
        "max_abs_u": float(np.max(np.abs(np.asarray(sol.us)))),
    }


def _backward_timing(problem, sol, params, quick):
    """The backward pass alone at ``sol``'s trajectory: ``(with the problem's limits, without)`` timings."""
    import jax
    import jax.numpy as jnp

    from ilqg_jax.backward import backward_pass
    from ilqg_jax.derivatives import trajectory_derivatives

    d = trajectory_derivatives(problem, sol.xs, sol.us, params)
    mu = jnp.asarray(1e-3)
    lower, upper = problem.control_lower, problem.control_upper
    with_limits = jax.jit(lambda d, us, k: backward_pass(d, mu, us, lower, upper, k_warm=k)[:3])
    without = jax.jit(lambda d: backward_pass(d, mu)[:3])
    repeats = 5 if quick else 15
    return (common.time_call(lambda: with_limits(d, sol.us, sol.k), repeats=repeats),
            common.time_call(lambda: without(d), repeats=repeats))


def _plot(cases, solutions, results_dir):
    fig, axes = common.new_figure(ncols=2, width=6.0)
    ax = axes[0, 0]
    labels = [f"{c['system']}\n{c['label']}" for c in cases]
    values = [c["us_per_iteration"] for c in cases]
    colors = ["tab:blue" if c["u_max"] is None else ("tab:cyan" if c["u_max"] >= 1e3 else "tab:red") for c in cases]
    ax.bar(range(len(values)), values, color=colors)
    ax.set_xticks(range(len(values)))
    ax.set_xticklabels(labels, rotation=90, fontsize=7)
    ax.set_ylabel("time per iteration (us, median solve / iterations)")
    ax.set_title("Cost of control limits per iteration")

    ax = axes[0, 1]
    dt = 0.05
    for c, sol in zip(cases, solutions):
        if c["system"] != "pendulum" or (c["u_max"] is not None and c["u_max"] >= 1e3):
            continue
        u = np.asarray(sol.us)[:, 0]
        ax.step(np.arange(len(u)) * dt, u, where="post", label=c["label"],
                color="tab:blue" if c["u_max"] is None else "tab:red")
        if c["u_max"] is not None:
            for s in (-1, 1):
                ax.axhline(s * c["u_max"], color="k", ls="--", lw=0.8)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("torque u (N m)")
    ax.set_title("Pendulum swing-up: optimal torque, limit dashed")
    ax.legend(fontsize=8)
    return [common.save_figure(fig, results_dir, "limits.png")]


def run(quick: bool = False, results_dir: str = common.DEFAULT_RESULTS_DIR) -> dict:
    """Solves every case of :func:`_cases`, times the backward passes; returns the JSON dict."""
    common.enable_x64()
    from ilqg_jax.systems import get_task, pendulum

    arm = get_task("arm")
    cases, solutions, checks = [], [], {}
    reference, unconstrained = {}, {}
    for system, label, problem, x0, us0, params, u_max in _cases(quick):
        print(f"[limits] {system}: {label}", flush=True)
        sol, row = _solve_case(problem, x0, us0, params, quick)
        row.update(system=system, label=label, u_max=u_max)
        if u_max is None:
            reference[system] = row
            unconstrained[system] = problem
        else:
            ref = reference[system]
            row["iteration_ratio"] = row["iterations"] / ref["iterations"]
            row["per_iteration_ratio"] = row["us_per_iteration"] / ref["us_per_iteration"]
            row["per_rollout_normalised_ratio"] = (row["per_iteration_ratio"] * ref["rollouts_per_iteration"]
                                                   / row["rollouts_per_iteration"])
            row["cost_vs_unconstrained"] = row["cost"] / ref["cost"]
            bw_lim, bw_free = _backward_timing(problem, sol, params, quick)
            row["backward_with_limits_us"] = bw_lim["median_s"] * 1e6
            row["backward_without_limits_us"] = bw_free["median_s"] * 1e6
            row["backward_ratio"] = bw_lim["median_s"] / bw_free["median_s"]
            key = f"{system}_{'wide' if u_max >= 1e3 else 'binding'}"
            checks[f"limits_respected_{key}"] = row["max_abs_u"] <= u_max * (1 + 1e-12)
            # A box can only raise the optimum; wide limits must give the unconstrained solution.
            if u_max >= 1e3:
                checks[f"wide_limits_equal_unconstrained_{system}"] = (
                    common.rel_diff(row["cost"], ref["cost"]) <= 1e-9 and row["iterations"] == ref["iterations"])
            else:
                # Both are local optima: the unconstrained problem started from the limited optimum (feasible
                # for it) can only go lower.
                import ilqg_jax as ilqg

                free = ilqg.solve(unconstrained[system], x0, sol.us, params)
                checks[f"limited_cost_not_below_unconstrained_{system}"] = float(free.cost) <= row["cost"] * (1 + 1e-9)
            if system == "pendulum":
                checks[f"ends_upright_{key}"] = bool(pendulum.upright(sol.xs[-1]))
            else:
                checks[f"reaches_target_{key}"] = bool(arm.success(sol.xs))
        checks[f"converged_{system}_{label}"] = row["status"] == "CONVERGED"
        cases.append(row)
        solutions.append(sol)

    rows = [[c["system"], c["label"], c["iterations"], c["status"], c["cost"], c["max_abs_u"],
             c["timing"]["median_s"] * 1e3, common.iqr_ms(c["timing"]), c["us_per_iteration"],
             c["rollouts_per_iteration"], c["compile"]["total_s"]] for c in cases]
    head = []
    for c in cases:
        if c["u_max"] is None:
            continue
        head += [
            [c["system"], c["label"], "iterations (limited / unconstrained)", c["iteration_ratio"], "-", None],
            [c["system"], c["label"], "time per iteration (limited / unconstrained)", c["per_iteration_ratio"],
             f"< {TARGETS['per_iteration_ratio']:g}", c["per_iteration_ratio"] < TARGETS["per_iteration_ratio"]],
            [c["system"], c["label"], "time per iteration per line-search rollout (limited / unconstrained)",
             c["per_rollout_normalised_ratio"], "-", None],
            [c["system"], c["label"], "backward pass alone, same trajectory (with / without limits)",
             c["backward_ratio"], "-", None],
            [c["system"], c["label"], "optimal cost (limited / unconstrained)", c["cost_vs_unconstrained"],
             ">= 1", c["cost_vs_unconstrained"] >= 1 - 1e-9],
        ]
    tables = [
        common.table("Headline: what the limits cost", ["system", "limits", "metric", "measured", "target", "met"],
                     head, note="Time per iteration is the median warm solve divided by its iterations; the "
                     "backward pass alone is timed at the limited solution's trajectory with mu = 1e-3."),
        common.table("All solves (float64)",
                     ["system", "limits", "iterations", "status", "final cost", "max |u|", "time/solve (ms)",
                      "IQR (ms)", "time/iteration (us)", "rollouts/iteration", "compile (s)"], rows,
                     note="Rollouts per iteration of the backtracking line search, from the accepted step "
                     "sizes (a rejected iteration counted as all 11)."),
    ]
    figures = _plot(cases, solutions, results_dir)
    return {"description": __doc__.split("\n\n", 1)[1], "tables": tables, "figures": figures, "checks": checks,
            "data": {"cases": cases, "targets": TARGETS, "horizon": HORIZON}}
