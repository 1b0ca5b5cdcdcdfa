"""Time to differentiate one trajectory: AD vs JAX finite differences vs NumPy finite differences.

All seven derivative arrays ``fx, fu, lx, lu, lxx, luu, lux`` of the pendulum
swing-up along a rollout of ``0.1 randn(T, 1)`` controls, for several ``T``:

* **AD**: ``ilqg_jax.derivatives.trajectory_derivatives`` (jacfwd/hessian,
  vmapped over time), jitted;
* **JAX FD**: its central-difference twin ``finite_difference``, jitted;
* **NumPy FD loop / vectorized**: ``benchmarks.numpy_ilqr.fd_derivatives``,
  one call per perturbed point (the seed's way) or one call per function for
  the whole trajectory.

Warm medians; JAX compile time (per ``T`` and dtype) is listed separately.
"""

from __future__ import annotations

import numpy as np

from benchmarks import common, numpy_ilqr, numpy_systems

TITLE = "Derivative speed: one trajectory's fx, fu, lx, lu, lxx, luu, lux"
DEFAULT_DTYPES = ("float64",)


def _sizes(quick):
    return (100, 1000) if quick else (100, 1000, 10000)


def _max_rel(a, b) -> float:
    """Largest ``max|a - b| / max|b|`` over the fields (a field that is all zeros, like the
    pendulum's ``lux``, is measured against 1e-3 of the largest field)."""
    a = [np.asarray(x, float) for x in a]
    b = [np.asarray(y, float) for y in b]
    floor = 1e-3 * max(float(np.max(np.abs(y))) for y in b)
    return max(float(np.max(np.abs(x - y))) / max(float(np.max(np.abs(y))), floor) for x, y in zip(a, b))


def run(quick: bool = False, dtypes=DEFAULT_DTYPES, results_dir: str = common.DEFAULT_RESULTS_DIR) -> dict:
    common.enable_x64()
    import jax.numpy as jnp

    from ilqg_jax.derivatives import finite_difference, rollout, trajectory_derivatives
    from ilqg_jax.systems import pendulum

    npb = numpy_systems.pendulum_swing_up()
    numpy_systems.check_matches(npb, pendulum.swing_up(100))
    records, checks = [], {}
    for T in _sizes(quick):
        problem = pendulum.swing_up(T)
        us = 0.1 * np.random.default_rng(0).standard_normal((T, 1))
        xs = np.asarray(rollout(problem.dynamics, jnp.asarray([np.pi, 0.0]), jnp.asarray(us)))
        ref = None
        for dtype in dtypes:
            xj, uj = jnp.asarray(xs, dtype), jnp.asarray(us, dtype)
            for method, fn in (("AD (trajectory_derivatives)", trajectory_derivatives),
                               ("JAX FD (finite_difference)", finite_difference)):
                print(f"[derivative_speed] T={T} {dtype} {method}", flush=True)
                compiled, comp = common.aot_compile(lambda a, b, fn=fn: fn(problem, a, b, None), xj, uj)
                out = compiled(xj, uj)
                t = common.time_call(lambda: compiled(xj, uj), repeats=5 if quick else 15)
                if method.startswith("AD") and dtype == "float64":
                    ref = out
                records.append({"T": T, "method": method, "dtype": dtype, "timing": t, "compile": comp,
                                "out": out})
        for mode in ("loop", "vectorized"):
            print(f"[derivative_speed] T={T} NumPy FD {mode}", flush=True)
            box = {}

            def call():
                box["d"] = numpy_ilqr.fd_derivatives(npb.dynamics, npb.running_cost, npb.terminal_cost, xs, us,
                                                     vectorized=mode == "vectorized")

            slow = mode == "loop" and T >= 10000
            t = common.time_call(call, repeats=1 if quick else (3 if slow else 7), warmup=0 if (quick or slow) else 1,
                                 min_sample_s=0.0 if mode == "loop" else 0.02)
            records.append({"T": T, "method": f"NumPy FD {mode}", "dtype": "float64", "timing": t, "compile": None,
                            "out": box["d"]})
        if ref is not None:
            for r in records:
                if r["T"] == T and not r["method"].startswith("AD"):
                    r["max_rel_diff_vs_ad"] = _max_rel(r["out"], ref)
                    if r["dtype"] == "float64":
                        checks[f"{r['method'].split(' (')[0]} matches AD, T={T}"] = r["max_rel_diff_vs_ad"] < 1e-5

    for r in records:
        r.pop("out")
    rows = [[r["T"], r["method"], r["dtype"], r["timing"]["median_s"] * 1e3, common.iqr_ms(r["timing"]),
             r["timing"]["median_s"] / r["T"] * 1e6, r["compile"]["total_s"] if r["compile"] else None,
             r.get("max_rel_diff_vs_ad")] for r in records]
    speed = []
    for T in _sizes(quick):
        by = {(r["method"], r["dtype"]): r["timing"]["median_s"] for r in records if r["T"] == T}
        for dtype in dtypes:
            ad = by.get(("AD (trajectory_derivatives)", dtype))
            speed.append([T, dtype, by.get(("JAX FD (finite_difference)", dtype)) / ad,
                          by[("NumPy FD loop", "float64")] / ad, by[("NumPy FD vectorized", "float64")] / ad])
    tables = [
        common.table("Derivatives of one pendulum trajectory (n = 2, m = 1)",
                     ["T", "method", "dtype", "time (ms)", "IQR (ms)", "per time step (us)", "compile (s)",
                      "max rel. diff vs AD"], rows),
        common.table("How many times slower than AD", ["T", "AD dtype", "JAX FD", "NumPy FD loop",
                                                       "NumPy FD vectorized"], speed),
    ]
    figures = _plot(records, results_dir)
    return {"description": __doc__.split("\n\n", 1)[1], "tables": tables, "figures": figures, "checks": checks,
            "data": {"records": records}}


def _plot(records, results_dir):
    fig, axes = common.new_figure(ncols=2, width=6.0)
    keys = sorted({(r["method"], r["dtype"]) for r in records})
    for ax, per_step in zip(axes[0], (False, True)):
        for method, dtype in keys:
            rs = sorted((r for r in records if (r["method"], r["dtype"]) == (method, dtype)), key=lambda r: r["T"])
            T = np.array([r["T"] for r in rs])
            y = np.array([r["timing"]["median_s"] for r in rs])
            y = y / T * 1e6 if per_step else y * 1e3
            ax.loglog(T, y, "o-" if dtype == "float64" else "s--", label=f"{method}, {dtype}")
        ax.set_xlabel("trajectory length T (time steps, log scale)")
        ax.set_ylabel("time per time step (us, log scale)" if per_step else "time per trajectory (ms, log scale)")
        ax.set_title("Per time step" if per_step else "Derivatives of one trajectory (warm, median)")
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=7)
    return [common.save_figure(fig, results_dir, "derivative_speed.png")]
