"""Batches: the pendulum swing-up from many random initial states at once.

``N`` initial states ``theta ~ U(-pi, pi)``, ``theta_dot ~ U(-2, 2)`` rad/s
(seed 0), one shared ``us_init = 0.1 randn(T, 1)`` (seed 0), ``T = 100``,
default ``Options`` (``max_iter = 100``, ``tol = 1e-7``). Side by side, in one
process, after warm-up:

* **solve_batch**: ``ilqg_jax.batch.solve_batch`` (public call, validation
  included) on the whole batch; solves/s = ``N`` / median wall time. The
  process CPU time of one call is recorded too: the machine is shared, and
  wall time on a loaded machine overstates the cost (the load average is in
  the JSON and in every row).
* **jax.vmap(solve)**: the naive batch, ``jax.jit(jax.vmap(solve_unchecked))``,
  with the backtracking and the parallel line search (full mode).
* **loop of solves**: ``ilqg_jax.solve`` (jitted, public) called in a Python
  loop on a sample of the members; time per solve extrapolated to ``N``.
* **NumPy FD**: ``benchmarks/numpy_ilqr.py`` (vectorized finite differences,
  float64) on a smaller sample.

Members take different numbers of iterations (mean and max reported), so
solves/s is the honest unit. Every member of a sample is checked: in float64
against its single solve (same iterations and status, ``xs`` to 1e-8); in
float32 against ``jax.vmap(solve)`` (batched code rounds differently from a
single solve, which float32 iterations can amplify), with the share of members
equal to their single solve reported.

**Profile** (full mode): where the time of one batch goes, from an XLA trace
(``--xla_cpu_enable_xprof_traceme``, in a subprocess) of ``solve_batch`` and
of ``jax.vmap(solve)``: every executed kernel is attributed, through the
source locations XLA keeps, to the derivatives, the backward pass, the line
search (rollouts), the rest of the update, or the slot refills. Kernel times
under tracing are inflated by the tracer, so the shares matter, not the sums.
The same subprocess measures the single solve with each line search (the
default of ``Options.line_search`` is the faster one on this machine).
"""

from __future__ import annotations

import collections
import glob
import gzip
import json
import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np

from benchmarks import common, numpy_ilqr, numpy_systems

TITLE = "Batches: many initial states of the pendulum swing-up (solve_batch, vmap, loop of solves, NumPy)"
DEFAULT_DTYPES = ("float64", "float32")
HORIZON = 100
SEED = 0
#: Reported against, never enforced (N = 1024, float64, 2 CPU cores).
TARGETS = {"solves_per_s": 2000.0, "speedup_vs_loop": 10.0}
PROFILE_N = 128  # a bigger batch overflows the tracer's 1,000,000 events


def _sizes(quick: bool):
    return (1, 16, 128) if quick else (1, 16, 128, 1024, 10_000)


def initial_states(N: int, seed: int = SEED) -> np.ndarray:
    """``(N, 2)``: ``theta ~ U(-pi, pi)``, ``theta_dot ~ U(-2, 2)``."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.uniform(-np.pi, np.pi, N), rng.uniform(-2.0, 2.0, N)], axis=1)


def initial_controls(T: int = HORIZON, seed: int = SEED) -> np.ndarray:
    return 0.1 * np.random.default_rng(seed).standard_normal((T, 1))


def _load() -> float:
    return float(os.getloadavg()[0])


def _cpu_call(fn) -> dict:
    """Wall and process CPU time of one (warm) call."""
    import jax

    t0, c0 = time.perf_counter(), time.process_time()
    jax.block_until_ready(fn())
    return {"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0}


def _stats(sol) -> dict:
    from ilqg_jax import Status
    from ilqg_jax.systems import pendulum

    it = np.asarray(sol.iterations)
    status = np.asarray(sol.status)
    return {"iterations_mean": float(it.mean()), "iterations_max": int(it.max()),
            "status_counts": {s.name: int((status == s).sum()) for s in Status},
            "upright": float(np.mean(np.asarray(pendulum.upright(sol.xs[:, -1])))),
            "cost_dtype": str(sol.cost.dtype)}


def _batch_case(problem, x0s, us0, quick) -> dict:
    import jax

    from ilqg_jax import batch

    common.warm_compiler()
    jax.clear_caches()
    t0 = time.perf_counter()
    lowered = batch.lower(problem, x0s, us0)
    t1 = time.perf_counter()
    lowered.compile()  # fills the cache solve_batch uses
    t2 = time.perf_counter()
    run = lambda: batch.solve_batch(problem, x0s, us0)  # noqa: E731
    load0 = _load()
    timing = common.time_call(run, repeats=3 if quick or len(x0s) >= 1024 else 5, min_sample_s=0.0)
    cpu = _cpu_call(run)
    sol = run()
    N = len(x0s)
    return {"timing": timing, "cpu": cpu, "compile": {"lower_s": t1 - t0, "compile_s": t2 - t1, "total_s": t2 - t0},
            "solves_per_s": N / timing["median_s"], "solves_per_cpu_s": N / cpu["cpu_s"],
            "load_before": load0, "load_after": _load(), **_stats(sol), "_sol": sol}


def _vmap_case(problem, x0s, us0, line_search, quick) -> dict:
    import jax

    import ilqg_jax as ilqg
    from ilqg_jax import solver

    options = ilqg.Options(line_search=line_search)
    f = jax.jit(jax.vmap(lambda x, u: solver.solve_unchecked(problem, x, u, None, options), in_axes=(0, None)))
    t0 = time.perf_counter()
    f.lower(x0s, us0).compile()
    comp = time.perf_counter() - t0
    timing = common.time_call(lambda: f(x0s, us0), repeats=3, min_sample_s=0.0)
    cpu = _cpu_call(lambda: f(x0s, us0))
    N = len(x0s)
    return {"timing": timing, "cpu": cpu, "compile": {"total_s": comp}, "solves_per_s": N / timing["median_s"],
            "solves_per_cpu_s": N / cpu["cpu_s"], "load_before": _load(), **_stats(f(x0s, us0))}


def _agreement(sols, sol_batch, idx, tol):
    """Share of the certified (``CONVERGED``) single solves that the batch matches (status, ``xs`` to
    ``tol``), and the largest ``xs`` difference over them. A member still running at ``max_iter`` has had
    up to 100 iterations to amplify the different rounding of batched code into another path; its
    agreement says nothing about the batch, so it is left out (and counted in the JSON)."""
    pairs = [(i, s) for i, s in zip(idx, sols) if int(s.status) == 0]
    diffs = [float(np.max(np.abs(np.asarray(s.xs) - np.asarray(sol_batch.xs[i])))) for i, s in pairs]
    same = [int(s.status) == int(sol_batch.status[i]) and d <= tol for (i, s), d in zip(pairs, diffs)]
    return (float(np.mean(same)) if same else 1.0), max(diffs, default=0.0)


def _loop_case(problem, x0s, us0, sample: int, sol_batch) -> dict:
    """A Python loop of public ``ilqg_jax.solve`` calls on the first ``sample`` members, compared with the batch.

    float64: every certified member must equal its single solve (status, ``xs`` to 1e-6). float32:
    rounding differs between batched (vectorized) and single code, and an optimisation can amplify it
    into another iteration path, so the batch is checked against ``jax.vmap(solve)`` of the sample
    (batched code, same rounding) and the share of members equal to their single solve is reported.
    """
    import jax

    import ilqg_jax as ilqg
    from ilqg_jax import solver

    jax.block_until_ready(ilqg.solve(problem, x0s[0], us0))  # compile
    idx = range(min(sample, len(x0s)))
    t0, c0 = time.perf_counter(), time.process_time()
    sols = [jax.block_until_ready(ilqg.solve(problem, x0s[i], us0)) for i in idx]
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    n = len(sols)
    f64 = sols[0].xs.dtype == np.float64
    # Batched and single solves round differently (batched matrix products); decisions at the noise
    # level can then differ by an iteration, and both stop within the stationarity certificate (1e-8).
    share, err = _agreement(sols, sol_batch, idx, 1e-6 if f64 else 1e-4)
    certified = sum(int(s.status) == 0 for s in sols)
    out = {"sample": n, "wall_s": wall, "cpu_s": cpu, "per_solve_s": wall / n, "solves_per_s": n / wall,
           "solves_per_cpu_s": n / cpu, "iterations_mean": float(np.mean([int(s.iterations) for s in sols])),
           "share_equal_to_single_solve": share, "max_abs_diff_xs_single": err, "compared_converged": certified,
           "load": _load()}
    if f64:
        out["members_agree"] = share == 1.0
    else:
        vm = jax.jit(jax.vmap(lambda x: solver.solve_unchecked(problem, x, us0)))(x0s[:n])
        vsols = [jax.tree_util.tree_map(lambda a, i=i: a[i], vm) for i in idx]
        vshare, verr = _agreement(vsols, sol_batch, idx, 1e-5)
        out.update(share_equal_to_vmap=vshare, max_abs_diff_xs_vmap=verr, members_agree=vshare == 1.0)
    return out


def _numpy_case(x0s, us0, sample: int) -> dict:
    npb = numpy_systems.pendulum_swing_up()
    t0 = time.perf_counter()
    res = [numpy_ilqr.solve(npb.dynamics, npb.running_cost, npb.terminal_cost, x0s[i], us0, vectorized=True)
           for i in range(sample)]
    wall = time.perf_counter() - t0
    return {"sample": sample, "wall_s": wall, "per_solve_s": wall / sample, "solves_per_s": sample / wall,
            "iterations_mean": float(np.mean([r.iterations for r in res]))}


# ----------------------------------------------------------------------------- profile (subprocess)

_CONTAINER = re.compile(r"^(while|conditional|call)(\.\d+)?$")
#: Innermost source function -> category; the first match walking out from an op's own source line wins.
_CATEGORIES = [
    ("_solution", "finish (gains at the result)"),
    ("closed_loop_rollout", "line search (rollouts)"),
    ("_line_search", "line search (rollouts)"),
    ("_retry", "line search (rollouts)"),
    ("_regularised_backward", "backward pass"),
    ("_try_steps", "line search (rollouts)"),
    ("backward_pass", "backward pass"),
    ("_backward", "backward pass"),
    ("trajectory_derivatives", "derivatives"),
    ("linearize", "derivatives"),
    ("quadratize", "derivatives"),
    ("_init_state", "initial rollouts (load)"),
    ("harvest", "slot refill (gather/scatter)"),
    ("load", "slot refill (gather/scatter)"),
    ("_update", "update (mu, status, history, select)"),
    ("_iterate", "update (mu, status, history, select)"),
    ("_where", "update (mu, status, history, select)"),
    ("_iteration", "update (mu, status, history, select)"),
]


def _hlo_categories(text: str) -> dict:
    """``{instruction: category}`` for the instructions of a compiled HLO module (its text).

    XLA keeps the Python source of every operation (``stack_frame_id`` and the
    module's stack-frame tables). A kernel is attributed to the part of the
    solver most of its operations come from: a fusion by the operations inside
    its fused computation (so a ``select`` that took the derivatives into its
    fusion counts as derivatives), walking each operation's stack outwards to
    the first function named in :data:`_CATEGORIES`.
    """
    tables, section = {"FunctionNames": {}, "FileLocations": {}, "StackFrames": {}}, None
    for line in text.splitlines():
        if line in tables:
            section = line
            continue
        m = re.match(r"^(\d+) (.*)$", line) if section else None
        if not m:
            section = None
            continue
        i, rest = int(m.group(1)), m.group(2)
        if section == "FunctionNames":
            tables[section][i] = rest.strip('"')
        else:
            tables[section][i] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", rest)}

    def frame_category(frame):
        names, seen = [], set()
        while frame and frame in tables["StackFrames"] and frame not in seen:
            seen.add(frame)
            f = tables["StackFrames"][frame]
            loc = tables["FileLocations"].get(f["file_location_id"], {})
            names.append(tables["FunctionNames"].get(loc.get("function_name_id"), "?"))
            frame = f["parent_frame_id"] - 1  # printed one-based; 0: no parent
        return _category(names)

    computations, current, own, calls = {}, None, {}, {}
    for line in text.splitlines():
        head = re.match(r"^(?:ENTRY )?%([\w.\-]+) .*\{$", line)
        if head:
            current = head.group(1)
            computations[current] = []
            continue
        ins = re.match(r"^\s*(?:ROOT )?%([\w.\-]+) = ", line)
        if not ins or current is None:
            continue
        name = ins.group(1)
        frame = re.search(r"stack_frame_id=(\d+)", line)
        category = frame_category(int(frame.group(1))) if frame else None
        computations[current].append(category)
        own[name] = category
        called = re.search(r"kind=k\w+, calls=%([\w.\-]+)", line)
        if called:
            calls[name] = called.group(1)

    out = {}
    for name, category in own.items():
        votes = collections.Counter(c for c in computations.get(calls.get(name), []) if c and c != "other")
        out[name] = votes.most_common(1)[0][0] if votes else (category or "other")
    return out


def _category(functions) -> str:
    for fn in functions:
        base = fn.split(".<locals>.")
        for name, category in _CATEGORIES:
            if name in base:
                return category
    return "other"


def _trace(compiled, args, categories, trace_dir):
    import jax

    jax.block_until_ready(compiled(*args))
    jax.profiler.start_trace(trace_dir, create_perfetto_trace=True)
    t0 = time.perf_counter()
    jax.block_until_ready(compiled(*args))
    wall = time.perf_counter() - t0
    jax.profiler.stop_trace()
    path = sorted(glob.glob(os.path.join(trace_dir, "**", "perfetto_trace.json.gz"), recursive=True))[-1]
    with gzip.open(path) as f:
        events = json.load(f)
    events = events["traceEvents"] if isinstance(events, dict) else events
    seconds, counts = collections.Counter(), collections.Counter()
    for e in events:
        name = e.get("name")
        if e.get("ph") != "X" or name not in categories or _CONTAINER.match(name):
            continue
        category = categories[name]
        seconds[category] += e.get("dur", 0) / 1e6
        counts[category] += 1
    return {"wall_traced_s": wall, "kernel_s": sum(seconds.values()), "seconds": dict(seconds),
            "kernels": dict(counts), "events": len(events), "truncated": len(events) >= 1_000_000}


def _profile_child(N: int) -> dict:
    """Runs in a subprocess with ``--xla_cpu_enable_xprof_traceme``: traces and single-solve timings."""
    common.enable_x64()
    import jax
    import jax.numpy as jnp

    import ilqg_jax as ilqg
    from ilqg_jax import batch, solver
    from ilqg_jax.systems import pendulum

    problem = pendulum.swing_up(HORIZON)
    x0s, us0 = jnp.asarray(initial_states(N)), jnp.asarray(initial_controls())
    out = {"N": N, "slots": batch.default_slots()}
    with tempfile.TemporaryDirectory() as tmp:
        compiled = batch.lower(problem, x0s, us0).compile()
        out["solve_batch"] = _trace(compiled, (problem, x0s, us0, None, None), _hlo_categories(compiled.as_text()),
                                    os.path.join(tmp, "batch"))
        for ls in ("backtracking", "parallel"):
            options = ilqg.Options(line_search=ls)
            f = jax.jit(jax.vmap(lambda x, u: solver.solve_unchecked(problem, x, u, None, options),
                                 in_axes=(0, None)))
            compiled = f.lower(x0s, us0).compile()
            out[f"vmap_{ls}"] = _trace(compiled, (x0s, us0), _hlo_categories(compiled.as_text()),
                                       os.path.join(tmp, ls))
    # The single solve with each line search: which one is the faster default on this machine.
    single = {}
    sample = initial_states(8, seed=1)
    for ls in ("backtracking", "parallel"):
        options = ilqg.Options(line_search=ls)
        ilqg.solve(problem, sample[0], us0, None, options).cost.block_until_ready()
        iters, t0, c0 = 0, time.perf_counter(), time.process_time()
        for x0 in sample:
            iters += int(ilqg.solve(problem, x0, us0, None, options).iterations)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        single[ls] = {"per_solve_s": wall / len(sample), "cpu_per_iteration_s": cpu / iters,
                      "wall_per_iteration_s": wall / iters, "iterations": iters}
    out["single_solve"] = single
    out["load"] = _load()
    return out


def _profile(N: int) -> dict:
    env = dict(os.environ, XLA_FLAGS=(os.environ.get("XLA_FLAGS", "") + " --xla_cpu_enable_xprof_traceme=true"),
               JAX_PLATFORMS="cpu")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, "-m", "benchmarks.batch", "--profile", str(N)], env=env, cwd=root,
                          capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        return {"error": common.child_error(proc.stderr)}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _devices_child(N: int, devices: int) -> dict:
    """Runs with ``--xla_force_host_platform_device_count``: solve_batch split over ``devices`` CPU devices."""
    common.enable_x64()
    import jax

    from ilqg_jax import batch
    from ilqg_jax.systems import pendulum

    problem = pendulum.swing_up(HORIZON)
    x0s, us0 = initial_states(N), initial_controls()
    batch.lower(problem, x0s, us0).compile()
    run = lambda: batch.solve_batch(problem, x0s, us0)  # noqa: E731
    timing = common.time_call(run, repeats=3, min_sample_s=0.0)
    return {"devices": len(jax.devices()), "N": N, "timing": timing, "solves_per_s": N / timing["median_s"],
            "cpu": _cpu_call(run), "load": _load()}


def _devices(N: int, devices: int) -> dict:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}", JAX_PLATFORMS="cpu")
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, "-m", "benchmarks.batch", "--devices", str(devices), str(N)], env=env,
                          cwd=root, capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        return {"error": common.child_error(proc.stderr)}
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- run


def _plot(records, profile, results_dir):
    fig, axes = common.new_figure(ncols=2, width=6.4)
    ax = axes[0, 0]
    styles = {"solve_batch": ("tab:blue", "o-"), "vmap backtracking": ("tab:purple", "s--"),
              "vmap parallel": ("tab:pink", "s:"), "loop of solves": ("tab:green", "^-"),
              "NumPy FD": ("tab:red", "v-")}
    for (method, dtype) in sorted({(r["method"], r["dtype"]) for r in records}):
        rs = sorted((r for r in records if (r["method"], r["dtype"]) == (method, dtype)), key=lambda r: r["N"])
        color, style = styles[method]
        ax.loglog([r["N"] for r in rs], [r["solves_per_s"] for r in rs], style, color=color,
                  alpha=1.0 if dtype == "float64" else 0.5, label=f"{method} ({dtype})")
    ax.axhline(TARGETS["solves_per_s"], color="k", lw=0.8, ls=":", label="target at N = 1024")
    ax.set_xlabel("batch size N")
    ax.set_ylabel("solves per second (wall)")
    ax.set_title("Pendulum swing-up, T = 100: throughput")
    ax.legend(fontsize=7)
    ax = axes[0, 1]
    if profile and "solve_batch" in profile:
        runs = [(k, profile[k]) for k in ("vmap_backtracking", "vmap_parallel", "solve_batch") if k in profile]
        cats = sorted({c for _, p in runs for c in p["seconds"]})
        bottom = np.zeros(len(runs))
        for c in cats:
            v = np.array([p["seconds"].get(c, 0.0) / max(p["kernel_s"], 1e-12) for _, p in runs]) * 100
            ax.bar(range(len(runs)), v, bottom=bottom, label=c)
            bottom += v
        ax.set_xticks(range(len(runs)))
        ax.set_xticklabels([k.replace("_", "\n") for k, _ in runs])
        ax.set_ylabel("share of kernel time (%)")
        ax.set_title(f"Where the time goes (N = {profile['N']}, float64, XLA trace)")
        ax.legend(fontsize=7)
    else:
        ax.text(0.5, 0.5, "profile: full mode only", ha="center")
        ax.set_axis_off()
    return [common.save_figure(fig, results_dir, "batch.png")]


def run(quick: bool = False, dtypes=DEFAULT_DTYPES, results_dir: str = common.DEFAULT_RESULTS_DIR) -> dict:
    common.enable_x64()
    import jax.numpy as jnp

    from ilqg_jax import batch
    from ilqg_jax.systems import pendulum

    if quick:
        dtypes = tuple(d for d in dtypes if d == "float64") or dtypes[:1]
    problem = pendulum.swing_up(HORIZON)
    numpy_systems.check_matches(numpy_systems.pendulum_swing_up(), problem)
    records, checks = [], {}
    loop_sample = 8 if quick else 32
    for dtype in dtypes:
        dt = common.jnp_dtype(dtype)
        us0 = jnp.asarray(initial_controls(), dt)
        for N in _sizes(quick):
            x0s = jnp.asarray(initial_states(N), dt)
            print(f"[batch] N={N} {dtype}: solve_batch", flush=True)
            rec = _batch_case(problem, x0s, us0, quick)
            sol = rec.pop("_sol")
            records.append({"method": "solve_batch", "dtype": dtype, "N": N, **rec})
            checks[f"output_dtype_{dtype}_N{N}"] = rec["cost_dtype"] == dtype
            if N == max(_sizes(quick)) or (N == 1024 and not quick):
                print(f"[batch] N={N} {dtype}: loop of {loop_sample} solves", flush=True)
                loop = _loop_case(problem, x0s, us0, loop_sample, sol)
                records.append({"method": "loop of solves", "dtype": dtype, "N": N, **loop})
                oracle = "single_solves" if dtype == "float64" else "vmap_of_solve"
                checks[f"members_equal_{oracle}_{dtype}_N{N}"] = loop["members_agree"]
            if not quick and dtype == "float64" and N in (128, 1024):
                for ls in ("backtracking", "parallel"):
                    print(f"[batch] N={N} {dtype}: jax.vmap(solve), {ls}", flush=True)
                    records.append({"method": f"vmap {ls}", "dtype": dtype, "N": N,
                                    **_vmap_case(problem, x0s, us0, ls, quick)})
        if dtype == "float64":
            sample = 2 if quick else 4
            print(f"[batch] NumPy FD on {sample} members", flush=True)
            x0s = initial_states(max(_sizes(quick)))
            records.append({"method": "NumPy FD", "dtype": "float64", "N": sample,
                            **_numpy_case(x0s, initial_controls(), sample)})

    profile = devices = None
    if not quick:
        print(f"[batch] profile (subprocess, N={PROFILE_N})", flush=True)
        profile = _profile(PROFILE_N)
        print("[batch] solve_batch over 2 CPU devices (subprocess, N=1024)", flush=True)
        devices = _devices(1024, 2)

    rows = []
    for r in records:
        per_it = None
        if r.get("iterations_mean"):
            per_it = 1e6 / (r["solves_per_s"] * r["iterations_mean"])
        size = r["N"] if r["method"] != "loop of solves" else f"{r['sample']} of {r['N']}"
        rows.append([r["method"], r["dtype"], size,
                     r["solves_per_s"], r.get("solves_per_cpu_s"), r.get("iterations_mean"), per_it,
                     (r.get("compile") or {}).get("total_s"), r.get("upright"),
                     r.get("load_before", r.get("load"))])
    tables = [common.table(
        "Throughput (pendulum swing-up, T = 100, random initial states)",
        ["method", "dtype", "N", "solves/s (wall)", "solves/s (CPU time)", "mean iterations",
         "us per member-iteration (wall)", "compile (s)", "upright", "load avg"], rows,
        note="solves/s (wall) = N / median wall time of warm calls; (CPU time) = N / process CPU seconds of one "
             "warm call, a measure of the work that the machine's load does not inflate. Loop rows: a sample of "
             "members solved one by one with ilqg_jax.solve, extrapolated. NumPy FD: vectorized finite "
             "differences, float64.")]
    head = []
    for dtype in dtypes:
        big = 1024 if not quick else max(_sizes(quick))
        b = next((r for r in records if r["method"] == "solve_batch" and r["dtype"] == dtype and r["N"] == big), None)
        lp = next((r for r in records if r["method"] == "loop of solves" and r["dtype"] == dtype and r["N"] == big),
                  None)
        if b:
            head.append([dtype, big, "solves/s (wall)", b["solves_per_s"], f">= {TARGETS['solves_per_s']:.0f}",
                         b["solves_per_s"] >= TARGETS["solves_per_s"] if big == 1024 else None])
            head.append([dtype, big, "solves/s (CPU time)", b["solves_per_cpu_s"], "-", None])
        if b and lp:
            sp = b["solves_per_s"] / lp["solves_per_s"]
            head.append([dtype, big, "speedup vs loop of solves (wall)", sp,
                         f">= {TARGETS['speedup_vs_loop']:.0f}x", sp >= TARGETS["speedup_vs_loop"] if big == 1024
                         else None])
    tables.insert(0, common.table("Headline against the targets", ["dtype", "N", "metric", "measured", "target",
                                                                  "met"], head))
    tables.append(common.table(
        "Members against their single solves (a sample of the batch)",
        ["dtype", "N", "sample", "share equal to ilqg_jax.solve", "max |xs diff| vs solve",
         "share equal to jax.vmap(solve)", "max |xs diff| vs vmap"],
        [[r["dtype"], r["N"], r["sample"], r["share_equal_to_single_solve"], r["max_abs_diff_xs_single"],
          r.get("share_equal_to_vmap"), r.get("max_abs_diff_xs_vmap")]
         for r in records if r["method"] == "loop of solves"],
        note="Equal: same iterations and status, xs within 1e-8 (float64) or 1e-4 (float32; 1e-5 against vmap). "
             "In float32 the vectorized code of a batch rounds differently from a single solve, and the "
             "optimisation can turn that into another iteration path (another local optimum); solve_batch "
             "then agrees with jax.vmap(solve), which rounds the same way."))
    if profile and "solve_batch" in profile:
        prow = []
        for key in ("vmap_backtracking", "vmap_parallel", "solve_batch"):
            p = profile.get(key)
            if p:
                for c, s in sorted(p["seconds"].items(), key=lambda kv: -kv[1]):
                    prow.append([key, c, 100.0 * s / p["kernel_s"], s, p["kernels"][c]])
        tables.append(common.table(f"Profile: share of kernel time (N = {profile['N']}, float64)",
                                   ["program", "part", "share (%)", "kernel time (s, traced)", "kernels run"], prow))
        single = profile.get("single_solve", {})
        tables.append(common.table("Line search of a single solve (8 random states, float64)",
                                   ["line_search", "time/solve (ms)", "CPU us/iteration"],
                                   [[k, v["per_solve_s"] * 1e3, v["cpu_per_iteration_s"] * 1e6]
                                    for k, v in single.items()]))
    if devices and "solves_per_s" in devices:
        tables.append(common.table("solve_batch split over CPU devices (XLA_FLAGS="
                                   "--xla_force_host_platform_device_count=2)",
                                   ["devices", "N", "solves/s (wall)", "CPU s", "load avg"],
                                   [[devices["devices"], devices["N"], devices["solves_per_s"],
                                     devices["cpu"]["cpu_s"], devices["load"]]]))
    figures = _plot(records, profile, results_dir)
    return {"description": __doc__.split("\n\n", 1)[1], "tables": tables, "figures": figures, "checks": checks,
            "data": {"records": records, "profile": profile, "devices": devices, "targets": TARGETS,
                     "slots": batch.default_slots(), "line_search_stages": batch.LINE_SEARCH_STAGES,
                     "load_average": _load()}}


if __name__ == "__main__":
    if sys.argv[1:2] == ["--profile"]:
        print(json.dumps(common._jsonable(_profile_child(int(sys.argv[2])))))
    elif sys.argv[1:2] == ["--devices"]:
        print(json.dumps(common._jsonable(_devices_child(int(sys.argv[3]), int(sys.argv[2])))))
    else:
        print("usage: python -m benchmarks --only batch  (this module's own entry points are for subprocesses)")
