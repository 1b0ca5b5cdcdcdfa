"""One solve of the pendulum swing-up: ilqg_jax against the NumPy finite-difference iLQR.

Both solvers run the same iteration (``benchmarks/numpy_ilqr.py`` mirrors
``ilqg_jax.solver``), from the same ``us_init = 0.1 randn(T, 1)`` (seed 0), in
one process, after warm-up, so they take the same steps and must reach the
same cost (checked to a relative 1e-6 in float64). Two problems:
``pendulum.swing_up(100)`` from ``x0 = [pi, 0]`` and the seed notebook's
``pendulum.seed_problem()`` (clipped dynamics, no state cost).
"""

from __future__ import annotations

import numpy as np

from benchmarks import common, numpy_ilqr, numpy_systems

TITLE = "Single solve: pendulum swing-up, ilqg_jax vs NumPy finite-difference iLQR"
#: float64 is the reference; the full run adds float32 rows (``--dtype`` overrides both).
DEFAULT_DTYPES = ("float64", "float32")
QUICK_DTYPES = ("float64",)
HORIZON = 100
SEED = 0
COST_RTOL = {"float64": 1e-6, "float32": 1e-3}
#: Targets the results are reported against (not enforced: measured, never faked).
TARGETS = {"speedup": 300.0, "us_per_iteration": 60.0, "compile_s": 3.0}


def _problems():
    from ilqg_jax.systems import pendulum

    return [
        ("swing_up", "pendulum.swing_up(100)", pendulum.swing_up(HORIZON), numpy_systems.pendulum_swing_up()),
        ("seed", "pendulum.seed_problem()", pendulum.seed_problem(HORIZON), numpy_systems.pendulum_seed()),
    ]


def initial_controls(horizon: int = HORIZON, seed: int = SEED) -> np.ndarray:
    """``0.1 * randn(T, 1)`` from ``numpy.random.default_rng(seed)``."""
    return 0.1 * np.random.default_rng(seed).standard_normal((horizon, 1))


def _numpy_case(npb, x0, us0, quick, modes=("loop", "vectorized")):
    """Times the NumPy solver, loop and/or vectorized; returns ``{mode: row}``."""
    out = {}
    for mode in modes:
        vectorized = mode == "vectorized"
        box = {}

        def call():
            box["r"] = numpy_ilqr.solve(npb.dynamics, npb.running_cost, npb.terminal_cost, x0, us0,
                                        vectorized=vectorized)

        timing = common.time_call(call, repeats=1 if quick else 5, warmup=0 if quick else 1, min_sample_s=0.0)
        r = box["r"]
        out[mode] = {
            "timing": timing, "iterations": r.iterations, "status": r.status, "converged": r.converged,
            "cost": r.cost, "history_cost": r.history_cost,
            "derivative_fraction": r.time_derivatives / r.time_total,
            "time_derivatives_s": r.time_derivatives, "time_total_s": r.time_total,
        }
    return out


def _jax_case(problem, x0, us0, dtype, quick):
    import jax.numpy as jnp

    import ilqg_jax as ilqg

    x0j = jnp.asarray(x0, dtype)
    usj = jnp.asarray(us0, dtype)
    compiled, compile_t = common.aot_compile(lambda a, b: ilqg.solve(problem, a, b), x0j, usj)
    sol = compiled(x0j, usj)
    repeats = 5 if quick else 21
    t_public = common.time_call(lambda: ilqg.solve(problem, x0j, usj), repeats=repeats)
    t_compiled = common.time_call(lambda: compiled(x0j, usj), repeats=repeats)
    # Cross-check of the compile time (skipped under --quick: it compiles everything once more).
    first = None if quick else common.first_call_overhead(lambda: ilqg.solve(problem, x0j, usj),
                                                          t_public["median_s"])
    it = int(sol.iterations)
    return {
        "timing_public": t_public, "timing_compiled": t_compiled, "compile": compile_t, "first_call": first,
        "iterations": it, "status": ilqg.Status(int(sol.status)).name, "converged": bool(sol.converged),
        "cost": float(sol.cost), "cost_dtype": str(sol.cost.dtype),
        "history_cost": np.asarray(sol.history.cost)[: it + 1].tolist(),
    }


def _plot(data, results_dir):
    fig, axes = common.new_figure(ncols=2, width=6.2)
    ax = axes[0, 0]
    labels, values, colors = [], [], []
    palette = {"ilqg_jax.solve": "tab:blue", "compiled": "tab:cyan", "NumPy FD loop": "tab:red",
               "NumPy FD vectorized": "tab:orange"}
    for case in data["cases"]:
        bars = [("ilqg_jax.solve", case["jax"]["timing_public"]["median_s"]),
                ("compiled", case["jax"]["timing_compiled"]["median_s"])]
        if case["dtype"] == "float64":   # the NumPy baseline runs once per problem, in float64
            bars += [(f"NumPy FD {mode}", r["timing"]["median_s"]) for mode, r in case["numpy"].items()]
        for impl, sec in bars:
            labels.append(f"{case['problem']}\n{case['dtype']}\n{impl}")
            values.append(sec * 1e3)
            colors.append(palette[impl])
    ax.bar(range(len(values)), values, color=colors)
    ax.set_xticks(range(len(values)))
    ax.set_xticklabels(labels, rotation=90, fontsize=7)
    ax.set_yscale("log")
    ax.set_ylabel("time per solve (ms, log scale)")
    ax.set_title(f"Pendulum, T={HORIZON}: wall time of one solve (median)")
    from matplotlib.patches import Patch

    ax.legend(handles=[Patch(color=c, label=n) for n, c in palette.items()], fontsize=8)

    ax = axes[0, 1]
    for case, ls in zip(data["cases"], ("-", "--", ":", "-.")):
        best = min(case["jax"]["cost"], case["numpy"]["loop"]["cost"])
        lines = [("ilqg_jax", case["jax"]["history_cost"], "tab:blue" if case["dtype"] == "float64" else "tab:cyan")]
        if case["dtype"] == "float64":
            lines.append(("NumPy FD", case["numpy"]["loop"]["history_cost"], "tab:red"))
        for impl, hist, color in lines:
            h = np.asarray(hist, dtype=float)
            gap = np.maximum((h - best) / abs(best), 1e-17)
            ax.semilogy(np.arange(len(h)), gap, ls, color=color, label=f"{impl}, {case['problem']} ({case['dtype']})")
    ax.set_xlabel("iteration")
    ax.set_ylabel("(J - J_final) / |J_final|  (log scale)")
    ax.set_title("Convergence: both solvers take the same steps")
    ax.legend(fontsize=8)
    return [common.save_figure(fig, results_dir, "single_solve.png")]


def run(quick: bool = False, dtypes=None, results_dir: str = common.DEFAULT_RESULTS_DIR) -> dict:
    """Solves both pendulum problems with ilqg_jax and the NumPy baseline; returns the JSON dict."""
    common.enable_x64()
    if dtypes is None:
        dtypes = QUICK_DTYPES if quick else DEFAULT_DTYPES
    x0 = np.array([np.pi, 0.0])
    us0 = initial_controls()
    cases, checks = [], {}
    for key, label, problem, npb in _problems():
        port_err = numpy_systems.check_matches(npb, problem)
        print(f"[single_solve] {key}: NumPy baseline", flush=True)
        # Under --quick the slow seed problem runs the (seed-style) loop baseline only.
        modes = ("loop",) if quick and key == "seed" else ("loop", "vectorized")
        np_res = _numpy_case(npb, x0, us0, quick, modes)
        for dtype in dtypes:
            print(f"[single_solve] {key}: ilqg_jax {dtype}", flush=True)
            jx = _jax_case(problem, x0, us0, common.jnp_dtype(dtype), quick)
            diff = common.rel_diff(jx["cost"], np_res["loop"]["cost"])
            # The baseline stops when a step gains less than tol; ilqg_jax goes on to a stationary point
            # (the same optimum, certified): its cost may only be lower.
            agree = jx["cost"] <= np_res["loop"]["cost"] * (1 + COST_RTOL[dtype])
            checks[f"cost_agreement_{key}_{dtype}"] = agree
            if dtype == "float64" and "vectorized" in np_res:
                checks[f"numpy_loop_equals_vectorized_{key}"] = common.rel_diff(
                    np_res["vectorized"]["cost"], np_res["loop"]["cost"]) <= 1e-9
            cases.append({"problem": key, "label": label, "dtype": dtype, "port_max_rel_diff": port_err,
                          "jax": jx, "numpy": np_res, "cost_rel_diff": diff, "cost_rtol": COST_RTOL[dtype],
                          "cost_agree": agree,
                          "jax_dtype_ok": jx["cost_dtype"] == dtype})
            checks[f"jax_output_dtype_{key}_{dtype}"] = jx["cost_dtype"] == dtype

    data = {"cases": cases, "horizon": HORIZON, "x0": x0.tolist(), "us_init": f"0.1*randn(T,1), seed {SEED}",
            "targets": TARGETS}
    rows, head = [], []
    for c in cases:
        jx, npr = c["jax"], c["numpy"]
        impls = [("ilqg_jax.solve", jx["timing_public"], jx["iterations"], jx["status"], jx["cost"],
                  jx["compile"]["total_s"]),
                 ("ilqg_jax compiled", jx["timing_compiled"], jx["iterations"], jx["status"], jx["cost"], None)]
        impls += [(f"NumPy FD {mode}", r["timing"], r["iterations"], r["status"], r["cost"], None)
                  for mode, r in npr.items()]
        for impl, t, it, st, cost, comp in impls:
            if impl.startswith("NumPy") and c["dtype"] != "float64":
                continue
            rows.append([c["problem"], impl, c["dtype"] if not impl.startswith("NumPy") else "float64", it, st,
                         t["median_s"] * 1e3, common.iqr_ms(t), t["median_s"] / max(it, 1) * 1e6, comp, cost,
                         common.rel_diff(cost, npr["loop"]["cost"])])
        base = npr["loop"]["timing"]["median_s"]
        pub, cmp_ = jx["timing_public"]["median_s"], jx["timing_compiled"]["median_s"]
        head += [
            [c["problem"], c["dtype"], "speedup per solve vs NumPy FD loop (ilqg_jax.solve)", base / pub,
             f">= {TARGETS['speedup']:g}x", base / pub >= TARGETS["speedup"]],
            [c["problem"], c["dtype"], "speedup per solve vs NumPy FD loop (compiled)", base / cmp_,
             f">= {TARGETS['speedup']:g}x", base / cmp_ >= TARGETS["speedup"]],
        ]
        if "vectorized" in npr:
            head.append([c["problem"], c["dtype"], "speedup per solve vs NumPy FD vectorized (ilqg_jax.solve)",
                         npr["vectorized"]["timing"]["median_s"] / pub, "-", None])
        head += [
            [c["problem"], c["dtype"], "time per iteration, ilqg_jax.solve (us)", pub / jx["iterations"] * 1e6,
             f"<= {TARGETS['us_per_iteration']:g}", pub / jx["iterations"] * 1e6 <= TARGETS["us_per_iteration"]],
            [c["problem"], c["dtype"], "time per iteration, compiled (us)", cmp_ / jx["iterations"] * 1e6,
             f"<= {TARGETS['us_per_iteration']:g}", cmp_ / jx["iterations"] * 1e6 <= TARGETS["us_per_iteration"]],
            [c["problem"], c["dtype"], "compile time (s)", jx["compile"]["total_s"],
             f"<= {TARGETS['compile_s']:g}", jx["compile"]["total_s"] <= TARGETS["compile_s"]],
            [c["problem"], c["dtype"], "final cost |JAX - NumPy| / |NumPy|", c["cost_rel_diff"],
             f"<= {c['cost_rtol']:g}", c["cost_agree"]],
        ]
    breakdown = [[c["problem"], mode, c["numpy"][mode]["time_total_s"] * 1e3,
                  c["numpy"][mode]["time_derivatives_s"] * 1e3, 100 * c["numpy"][mode]["derivative_fraction"]]
                 for c in cases if c["dtype"] == cases[0]["dtype"] for mode in c["numpy"]]
    tables = [
        common.table("Headline against the targets", ["problem", "dtype", "metric", "measured", "target", "met"],
                     head),
        common.table("All solves (T = 100, x0 = [pi, 0], us_init = 0.1 randn, seed 0)",
                     ["problem", "implementation", "dtype", "iterations", "status", "time/solve (ms)", "IQR (ms)",
                      "time/iteration (us)", "compile (s)", "final cost", "rel. diff vs NumPy loop"], rows,
                     note="Compile = trace + lower + XLA compile of `ilqg_jax.solve` after `jax.clear_caches()`."),
        common.table("Where the NumPy baseline spends its time (last timed solve)",
                     ["problem", "mode", "solve (ms)", "finite differences (ms)", "finite differences (%)"],
                     breakdown),
    ]
    figures = _plot(data, results_dir)
    return {"description": __doc__.split("\n\n", 1)[1], "tables": tables, "figures": figures, "checks": checks,
            "data": data}
