"""Long and large: a chain of 10 masses (n = 20 states, m = 5 forces) over T = 1,000 and 10,000 steps.

The system: masses on a line joined by hardening springs (``k d + k3 d^3``), with
walls at both ends and damping, semi-implicit Euler with ``dt = 0.01``; a force
acts on every other mass. From a random displacement (seed 0) the controller
brings the chain to rest at zero; the cubic springs make it nonlinear, so a solve
takes several iterations. All weights and spring constants are ``params``
(traced), so a second call with other values must not recompile.

Each horizon runs in a fresh subprocess (``python -m benchmarks.large --child``),
so that its peak resident memory is its own. The subprocess calls the public
``ilqg_jax.solve`` and reports:

* **compiles**: XLA compilations counted with a ``jax.monitoring`` listener
  (``/jax/core/compile/backend_compile_duration`` events) on the first call
  and on a second call with another ``x0`` and other ``params`` (must be 0);
* **compile time**: first call minus a warm call;
* **time per solve / per iteration**: median of warm calls (``common.time_call``),
  divided by the iterations of the solve;
* **memory**: XLA's ``memory_analysis()`` of the compiled solve (arguments,
  outputs and temporaries: the device memory a call needs), and the peak
  resident set size of the whole process (``resource.getrusage``:
  ``ru_maxrss``), next to its value after the imports and before the first solve.

The checks: no recompilation on the second call; a finite solution; the
temporaries of the compiled solve grow at most linearly with ``T`` (below
``MAX_TEMP_BYTES_PER_STEP``, about 40 float64 ``n x n`` matrices per time step).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

from benchmarks import common

TITLE = "Long and large: horizons of 1,000 and 10,000 steps with n = 20, m = 5"
DEFAULT_DTYPES = ("float64",)
N_MASSES, N_FORCES = 10, 5
DT = 0.01
#: Upper bound of XLA temporaries per time step: linear memory, no (T, T) or per-step-size copies.
MAX_TEMP_BYTES_PER_STEP = 40 * (2 * N_MASSES) ** 2 * 8
MAX_ITER = 50


def _sizes(quick: bool):
    return (1000,) if quick else (1000, 10_000)


# ----------------------------------------------------------------------------- the problem


def dynamics(x, u, t, p):
    import jax.numpy as jnp

    q, v = x[:N_MASSES], x[N_MASSES:]
    walls = jnp.concatenate([jnp.zeros(1, x.dtype), q, jnp.zeros(1, x.dtype)])
    d = jnp.diff(walls)  # extensions of the N_MASSES + 1 springs
    tension = p["k"] * d + p["k3"] * d**3
    force = tension[1:] - tension[:-1] - p["damping"] * v
    force = force.at[::2].add(u)  # actuators on masses 0, 2, 4, 6, 8
    v_next = v + DT * force
    return jnp.concatenate([q + DT * v_next, v_next])


def running_cost(x, u, t, p):
    q, v = x[:N_MASSES], x[N_MASSES:]
    return DT * (0.5 * p["wq"] * q @ q + 0.5 * p["wv"] * v @ v + 0.5 * p["wu"] * u @ u)


def terminal_cost(x, p):
    return 0.5 * p["wf"] * x @ x


def make_problem(T: int):
    import ilqg_jax as ilqg

    return ilqg.Problem(dynamics, running_cost, terminal_cost, T)


def make_params(dtype, scale: float = 1.0):
    import jax.numpy as jnp

    p = dict(k=10.0 * scale, k3=50.0 * scale, damping=0.1, wq=1.0, wv=0.1, wu=0.01, wf=100.0)
    return {k: jnp.asarray(v, dtype) for k, v in p.items()}


def initial_state(seed: int = 0) -> np.ndarray:
    q = 0.5 * np.random.default_rng(seed).standard_normal(N_MASSES)
    return np.concatenate([q, np.zeros(N_MASSES)])


# ----------------------------------------------------------------------------- one horizon (subprocess)


def _child(T: int, dtype_name: str, quick: bool) -> dict:
    import resource

    if dtype_name == "float64":
        common.enable_x64()
    import jax
    import jax.monitoring
    import jax.numpy as jnp

    import ilqg_jax as ilqg

    compiles = []

    def listener(event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            compiles.append(duration)

    jax.monitoring.register_event_duration_secs_listener(listener)
    common.warm_compiler()
    dtype = common.jnp_dtype(dtype_name)
    problem = make_problem(T)
    options = ilqg.Options(max_iter=MAX_ITER)
    x0, us = jnp.asarray(initial_state(0), dtype), jnp.zeros((T, N_FORCES), dtype)
    params = make_params(dtype)
    before = len(compiles)
    rss_before_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    import time

    t0 = time.perf_counter()
    sol = jax.block_until_ready(ilqg.solve(problem, x0, us, params, options))
    first_s = time.perf_counter() - t0
    compiles_first = len(compiles) - before
    # Another x0 and other params: the same program.
    other = jax.block_until_ready(ilqg.solve(problem, jnp.asarray(initial_state(1), dtype), us,
                                             make_params(dtype, 1.1), options))
    compiles_second = len(compiles) - before - compiles_first
    timing = common.time_call(lambda: ilqg.solve(problem, x0, us, params, options),
                              repeats=3 if quick else 5, warmup=0, min_sample_s=0.0)
    compiles_timing = len(compiles) - before - compiles_first - compiles_second

    memory = None
    solve_jit = getattr(ilqg.solver, "_solve_jit", None)
    if solve_jit is not None and hasattr(solve_jit, "lower"):
        n_before = len(compiles)
        try:  # the executable the calls above compiled: a cache hit, no new compilation
            stats = solve_jit.lower(problem, x0, us, params, options).compile().memory_analysis()
            memory = {k: int(getattr(stats, k)) for k in ("argument_size_in_bytes", "output_size_in_bytes",
                                                           "alias_size_in_bytes", "temp_size_in_bytes")}
            memory["cache_hit"] = len(compiles) == n_before
        except Exception as e:  # pragma: no cover - private API changed
            memory = {"error": f"{type(e).__name__}: {e}"}
    rss_peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    it = int(sol.iterations)
    return {
        "T": T, "n": 2 * N_MASSES, "m": N_FORCES, "dtype": dtype_name, "iterations": it,
        "status": ilqg.Status(int(sol.status)).name, "cost": float(sol.cost),
        "initial_cost": float(sol.history.cost[0]),
        "finite": bool(np.all(np.isfinite(np.asarray(sol.xs))) and np.isfinite(float(sol.cost))),
        "other_status": ilqg.Status(int(other.status)).name, "other_iterations": int(other.iterations),
        "compiles_first_call": compiles_first, "compiles_second_call": compiles_second,
        "compiles_while_timing": compiles_timing, "first_call_s": first_s,
        "compile_s": first_s - timing["median_s"], "timing": timing,
        "time_per_iteration_s": timing["median_s"] / max(it, 1),
        "memory_analysis": memory, "rss_before_solve_mb": rss_before_kb / 1024, "rss_peak_mb": rss_peak_kb / 1024,
    }


def _run_child(T: int, dtype: str, quick: bool) -> dict:
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=repo + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-m", "benchmarks.large", "--child", str(T), dtype] + (["--quick"] if quick else [])
    proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- the benchmark


def run(quick: bool = False, dtypes=DEFAULT_DTYPES, results_dir: str = common.DEFAULT_RESULTS_DIR) -> dict:
    del results_dir  # no figures
    records, checks = [], {}
    for dtype in dtypes:
        for T in _sizes(quick):
            print(f"[large] T={T} n={2 * N_MASSES} m={N_FORCES} {dtype} (subprocess)", flush=True)
            r = _run_child(T, dtype, quick)
            records.append(r)
            key = f"T{T}_{dtype}"
            checks[f"no_recompile_{key}"] = (r["compiles_first_call"] >= 1 and r["compiles_second_call"] == 0
                                             and r["compiles_while_timing"] == 0)
            checks[f"finite_solution_{key}"] = r["finite"] and r["status"] != "NONFINITE"
            mem = r["memory_analysis"] or {}
            if "temp_size_in_bytes" in mem:
                checks[f"temp_memory_linear_in_T_{key}"] = mem["temp_size_in_bytes"] <= MAX_TEMP_BYTES_PER_STEP * T

    def mb(r, key):
        mem = r["memory_analysis"] or {}
        return mem[key] / 2**20 if key in mem else None

    rows = [[r["T"], r["n"], r["m"], r["dtype"], r["iterations"], r["status"], r["timing"]["median_s"] * 1e3,
             r["time_per_iteration_s"] * 1e3, r["compile_s"], r["compiles_second_call"],
             mb(r, "argument_size_in_bytes"), mb(r, "output_size_in_bytes"), mb(r, "temp_size_in_bytes"),
             (r["memory_analysis"] or {}).get("temp_size_in_bytes", np.nan) / r["T"] / 1024,
             r["rss_before_solve_mb"], r["rss_peak_mb"]] for r in records]
    tables = [common.table(
        "Long horizons: spring-mass chain, public ilqg_jax.solve",
        ["T", "n", "m", "dtype", "iterations", "status", "time/solve (ms)", "time/iteration (ms)", "compile (s)",
         "recompiles on 2nd call", "XLA args (MB)", "XLA outputs (MB)", "XLA temps (MB)", "temps/step (KB)",
         "RSS before (MB)", "peak RSS (MB)"], rows,
        note="Each T in its own process. XLA sizes from `memory_analysis()` of the compiled solve; RSS is the "
             "process's resident set (ru_maxrss) after imports and at its peak. Compile = first call - warm call.")]
    return {"description": __doc__.split("\n\n", 1)[1], "tables": tables, "checks": checks,
            "data": {"records": records, "max_temp_bytes_per_step": MAX_TEMP_BYTES_PER_STEP, "max_iter": MAX_ITER,
                     "dt": DT}}


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "--child":
        print(json.dumps(common._jsonable(_child(int(sys.argv[2]), sys.argv[3], "--quick" in sys.argv))))
    else:
        out = run(quick="--quick" in sys.argv)
        for t in out["tables"]:
            print("\n".join(common._render_table(t)))
        print(out["checks"])
