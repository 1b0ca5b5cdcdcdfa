"""End to end: whole solves of the pendulum swing-up over a sweep of horizons.

The same 5-second swing-up discretised ever finer: for each ``T``,
``pendulum.swing_up(T, dt=5/T)`` from ``x0 = [pi, 0]`` with
``us_init = 0.1 randn(T, 1)`` (seed 0); ``T = 100`` is the default
``swing_up(100)`` (``dt = 0.05``). Fixing the duration keeps the problem the
same (the optimal cost tends to its continuous-time value, about 2.29 for
``T >= 100``) and the iteration count nearly constant, so the sweep measures
the cost of an iteration. (At a fixed ``dt = 0.05`` long horizons need
hundreds of iterations: 150 at ``T = 500``, over 300 at ``T = 2000``.)

* **NumPy FD**: ``benchmarks/numpy_ilqr.py`` (float64; finite differences one
  point per call, "loop", and, in full mode, whole-trajectory "vectorized");
* **JAX + FD**: the ilqg_jax solver with its derivatives replaced by the
  central-difference twin ``ilqg_jax.derivatives.finite_difference``;
* **JAX + AD**: the ilqg_jax solver as shipped (jacfwd/hessian).

Both JAX rows are ``ilqg_jax.solver.solve_unchecked`` compiled ahead of
time (no per-call input validation), differing only in its
``derivatives_fn`` argument (``trajectory_derivatives`` or
``finite_difference``), in float32 and float64 (under ``--quick``: JAX + AD in
float64 at every ``T``, the other JAX variants at ``T = 100`` only, and NumPy
"loop" only). One iteration is a
backward pass over ``T`` steps plus a few rollouts of ``T`` steps, so the
time per iteration should grow linearly with ``T``.
"""

from __future__ import annotations

import numpy as np

from benchmarks import common, numpy_ilqr, numpy_systems

TITLE = "End to end: solves over a horizon sweep (NumPy FD, JAX + FD, JAX + AD)"
DEFAULT_DTYPES = ("float32", "float64")
COST_RTOL = 1e-6
FD_VIA = "ilqg_jax.solver.solve_unchecked(..., derivatives_fn=ilqg_jax.derivatives.finite_difference)"


DURATION = 5.0


def _sizes(quick):
    return (50, 100, 200) if quick else (50, 100, 200, 500, 1000, 2000)


def _dt(T: int) -> float:
    return DURATION / T


def _jax_solve(problem, x0, us0, dtype, method, quick):
    import inspect

    import jax.numpy as jnp

    import ilqg_jax as ilqg
    import ilqg_jax.solver as S
    from ilqg_jax.derivatives import finite_difference, trajectory_derivatives

    if "derivatives_fn" not in inspect.signature(S.solve_unchecked).parameters:
        return None                       # an ilqg_jax without the hook: no JAX + FD row
    derivatives_fn = trajectory_derivatives if method == "JAX + AD" else finite_difference
    x0j, usj = jnp.asarray(x0, dtype), jnp.asarray(us0, dtype)
    compiled, comp = common.aot_compile(
        lambda a, b: S.solve_unchecked(problem, a, b, None, ilqg.Options(), derivatives_fn=derivatives_fn),
        x0j, usj)
    sol = compiled(x0j, usj)
    t = common.time_call(lambda: compiled(x0j, usj), repeats=3 if quick else 7)
    it = int(sol.iterations)
    return {"timing": t, "compile": comp, "iterations": it, "status": ilqg.Status(int(sol.status)).name,
            "cost": float(sol.cost), "cost_dtype": str(sol.cost.dtype)}


def _numpy_solve(npb, x0, us0, T, mode, quick):
    box = {}

    def call():
        box["r"] = numpy_ilqr.solve(npb.dynamics, npb.running_cost, npb.terminal_cost, x0, us0,
                                    vectorized=mode == "vectorized")

    small = T <= 200 and not quick
    t = common.time_call(call, repeats=3 if small else 1, warmup=1 if small else 0, min_sample_s=0.0)
    r = box["r"]
    return {"timing": t, "compile": None, "iterations": r.iterations, "status": r.status, "cost": r.cost,
            "cost_dtype": "float64", "derivative_fraction": r.time_derivatives / r.time_total}


def run(quick: bool = False, dtypes=DEFAULT_DTYPES, results_dir: str = common.DEFAULT_RESULTS_DIR) -> dict:
    common.enable_x64()
    from ilqg_jax.systems import pendulum

    x0 = np.array([np.pi, 0.0])
    records, checks = [], {}
    numpy_modes = ("loop",) if quick else ("loop", "vectorized")
    primary = "float64" if "float64" in dtypes else dtypes[0]
    for T in _sizes(quick):
        problem = pendulum.swing_up(T, dt=_dt(T))
        npb = numpy_systems.pendulum_swing_up(dt=_dt(T))
        numpy_systems.check_matches(npb, problem)
        us0 = 0.1 * np.random.default_rng(0).standard_normal((T, 1))
        for mode in numpy_modes:
            print(f"[end_to_end] T={T} NumPy FD {mode}", flush=True)
            records.append({"T": T, "method": f"NumPy FD {mode}", "dtype": "float64",
                            **_numpy_solve(npb, x0, us0, T, mode, quick)})
        ref_rec = next(r for r in records if r["T"] == T and r["method"] == "NumPy FD loop")
        ref = ref_rec["cost"]
        for dtype in dtypes:
            for method in ("JAX + FD", "JAX + AD"):
                if quick and (method, dtype) != ("JAX + AD", primary) and T != 100:
                    continue          # --quick: each variant is a compile; the others at T = 100 only
                print(f"[end_to_end] T={T} {method} {dtype}", flush=True)
                out = _jax_solve(problem, x0, us0, common.jnp_dtype(dtype), method, quick)
                if out is None:
                    continue
                records.append({"T": T, "method": method, "dtype": dtype, **out})
        for r in records:
            if r["T"] == T:
                r["cost_rel_diff_vs_numpy"] = common.rel_diff(r["cost"], ref)
                # Same steps, same cost -- once converged (at max_iter the FD/AD differences
                # have had 100 iterations to steer the two apart).
                if r["dtype"] == "float64" and r["method"] == "JAX + AD" and ref_rec["status"] == "converged":
                    # The baseline stops on a small decrease, ilqg_jax at a stationary point: no higher.
                    checks[f"cost_agreement_T{T}"] = r["cost"] <= ref * (1 + COST_RTOL)
                if r["method"].startswith("JAX"):
                    checks[f"output_dtype_{r['method']}_{r['dtype']}_T{T}"] = r["cost_dtype"] == r["dtype"]

    rows = [[r["T"], _dt(r["T"]), r["method"], r["dtype"], r["iterations"], r["status"], r["timing"]["median_s"] * 1e3,
             common.iqr_ms(r["timing"]), r["timing"]["median_s"] / max(r["iterations"], 1) * 1e6,
             r["compile"]["total_s"] if r["compile"] else None, r["cost"], r["cost_rel_diff_vs_numpy"]]
            for r in records]
    slopes = []
    for key in sorted({(r["method"], r["dtype"]) for r in records}):
        rs = sorted((r for r in records if (r["method"], r["dtype"]) == key), key=lambda r: r["T"])
        if len(rs) >= 2:
            T = np.log([r["T"] for r in rs])
            y = np.log([r["timing"]["median_s"] / max(r["iterations"], 1) for r in rs])
            big = T >= np.log(200) if np.sum(T >= np.log(200)) >= 2 else np.ones_like(T, bool)
            slopes.append([key[0], key[1], float(np.polyfit(T, y, 1)[0]), float(np.polyfit(T[big], y[big], 1)[0])])
    tables = [
        common.table("Solves over the horizon sweep", [
            "T", "dt (s)", "method", "dtype", "iterations", "status", "time/solve (ms)", "IQR (ms)", "time/iteration (us)",
            "compile (s)", "final cost", "rel. diff vs NumPy FD loop"], rows,
            note="JAX times are the compiled executable; compile = trace + lower + XLA compile after "
                 "`jax.clear_caches()`."),
        common.table("Growth of time per iteration with T (log-log slope; 1 = linear)",
                     ["method", "dtype", "slope over all T", "slope for T >= 200"], slopes),
    ]
    figures = _plot(records, results_dir)
    return {"description": __doc__.split("\n\n", 1)[1], "tables": tables, "figures": figures, "checks": checks,
            "data": {"records": records, "fd_via": FD_VIA, "x0": x0.tolist(), "duration_s": DURATION,
                     "dt": {T: _dt(T) for T in _sizes(quick)}, "us_init": "0.1*randn(T,1), seed 0"}}


def _plot(records, results_dir):
    fig, axes = common.new_figure(ncols=3, width=5.0)
    keys = sorted({(r["method"], r["dtype"]) for r in records})
    colors = {"NumPy FD loop": "tab:red", "NumPy FD vectorized": "tab:orange", "JAX + FD": "tab:purple",
              "JAX + AD": "tab:blue"}
    for method, dtype in keys:
        rs = sorted((r for r in records if (r["method"], r["dtype"]) == (method, dtype)), key=lambda r: r["T"])
        T = np.array([r["T"] for r in rs])
        solve = np.array([r["timing"]["median_s"] for r in rs])
        its = np.array([r["iterations"] for r in rs])
        style = "o-" if dtype == "float64" else "s--"
        label = f"{method}, {dtype}"
        axes[0, 0].loglog(T, solve / np.maximum(its, 1) * 1e6, style, color=colors.get(method), label=label)
        axes[0, 1].loglog(T, solve * 1e3, style, color=colors.get(method), label=label)
        axes[0, 2].semilogx(T, its, style, color=colors.get(method), label=label)
    Ts = np.array(sorted({r["T"] for r in records}), dtype=float)
    ref = [r for r in records if r["method"] == "JAX + AD" and r["dtype"] == "float64"]
    if ref:
        r0 = min(ref, key=lambda r: r["T"])
        y0 = r0["timing"]["median_s"] / max(r0["iterations"], 1) * 1e6
        axes[0, 0].loglog(Ts, y0 * Ts / r0["T"], ":", color="gray", label="linear in T (reference)")
    axes[0, 0].set_ylabel("time per iteration (us, log scale)")
    axes[0, 0].set_title("Time per iteration vs horizon")
    axes[0, 1].set_ylabel("time per solve (ms, log scale)")
    axes[0, 1].set_title("Time per solve vs horizon")
    axes[0, 2].set_ylabel("iterations to converge")
    axes[0, 2].set_title("Iterations vs horizon")
    for ax in axes[0]:
        ax.set_xlabel(f"horizon T (time steps over {DURATION:g} s, log scale)")
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=7)
    return [common.save_figure(fig, results_dir, "end_to_end.png")]
