"""Peers side by side: Crocoddyl and trajax against ilqg_jax, on the same problems.

The problems (``benchmarks/peer_models.py``) are built once for Crocoddyl and
once for ilqg_jax, and the two discrete models are checked to agree to 1e-12
on random states and controls *before* anything is timed: Crocoddyl's own
unicycle (``ActionModelUnicycle``, T = 100, starts in [-1, 1]^3); an LQ
problem (``ActionModelLQR``, n = 10, m = 5); a pendulum and an acrobot-like
double pendulum built with pinocchio (``DifferentialActionModelFreeFwdDynamics``
+ ``IntegratedActionModelEuler``, semi-implicit Euler at 0.05 s, quadratic
costs to upright from random starts around hanging). trajax's ``ilqr``
(``make_psd=True``, jit-compiled) solves the JAX twins.

Every solver starts from the same states, zero controls and their rollout
(Crocoddyl: ``solve(rollout(us0), us0, 100, is_feasible=True)``, single
threaded), with its own default settings and at most 100 iterations; float64.
**One solve**: for each start the median of warm calls; the table gives the
median and IQR of those over the starts. Compile time (JAX) is separate.
**Stationarity**: each solver's own measure (Crocoddyl ``solver.stop``: the
expected decrease of a full step, 1/2 sum_t Qu_t' k_t; trajax: the 2-norm of the
gradient it returns, taken one iterate before the last; ilqg_jax:
``Solution.stationarity`` where it exists), and one common yardstick computed
here for every solver: ``max_t |dJ/du_t|`` of the shooting cost at the
returned controls. **Batch**: ``ilqg_jax.solve_batch`` with one CPU device
per core (in a subprocess, as ``ilqg-jax batch`` does) against each solver
looping over the same starts in a ``multiprocessing`` pool with one process
per core; wall time of the whole batch after a warm-up pass.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from typing import Any, Callable, NamedTuple, Optional

import numpy as np

from benchmarks import common, peer_models

TITLE = "Peers: Crocoddyl and trajax against ilqg_jax on the same problems"
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: google/trajax is not on the package index; a copy sits beside the repository.
PEERS_DIR = os.path.join(os.path.dirname(REPO), "shared", "peers")
MAX_ITER = 100
SEED, BATCH_SEED = 0, 1
SOLVERS = ("Crocoddyl SolverDDP", "Crocoddyl SolverFDDP", "ilqg_jax.solve", "trajax ilqr")
REFERENCE = "Crocoddyl SolverFDDP"
#: Relative cost agreement required on the convex LQ problem.
COST_RTOL = 1e-6
#: Two final costs this close (relative) count as the same local optimum.
SAME_RTOL = 1e-4


class Config(NamedTuple):
    systems: tuple
    starts: int
    repeats: int
    batch_systems: tuple
    batch_n: int
    batch_repeats: int
    loop_solvers: tuple


FULL = Config(peer_models.SYSTEMS, 20, 5, peer_models.SYSTEMS, 1024, 3, SOLVERS)
QUICK = Config(("unicycle",), 3, 3, ("unicycle",), 32, 1, SOLVERS[:2])


# ----------------------------------------------------------------------------- peers

def _package(solver: str) -> str:
    return solver.split()[0].split(".")[0].lower()


def versions() -> dict:
    """``{"crocoddyl": version or None, "trajax": version or None, "ilqg_jax": version}``."""
    out = {}
    try:
        import crocoddyl

        out["crocoddyl"] = crocoddyl.__version__
    except ImportError:
        out["crocoddyl"] = None
    if os.path.isdir(PEERS_DIR) and PEERS_DIR not in sys.path:
        sys.path.append(PEERS_DIR)
    try:
        from trajax import optimizers  # noqa: F401
        from trajax import version

        out["trajax"] = getattr(version, "__version__", "unknown")
    except ImportError:
        out["trajax"] = None
    import ilqg_jax

    out["ilqg_jax"] = ilqg_jax.__version__
    return out


class Outcome(NamedTuple):
    """One solve, as NumPy: ``us: (T, m)``; ``measure`` is the solver's own stationarity measure."""

    us: np.ndarray
    cost: float
    iterations: int
    converged: bool
    measure: Optional[float]


class Runner(NamedTuple):
    """``solve(x0) -> raw`` (timed), ``outcome(raw) -> Outcome``, compile time (s, JAX only)."""

    solve: Callable[[np.ndarray], Any]
    outcome: Callable[[Any], Outcome]
    compile_s: Optional[float]
    measure_name: str


def _crocoddyl_runner(kind: str, system: str) -> Runner:
    import crocoddyl

    problem = peer_models.crocoddyl_problem(system)
    solver = getattr(crocoddyl, "Solver" + kind)(problem)
    us0 = [np.zeros(peer_models.DIMS[system][1])] * problem.T

    def solve(x0):
        problem.x0 = np.asarray(x0, dtype=float)
        return solver.solve(problem.rollout(us0), us0, MAX_ITER, True)

    def outcome(ok):
        return Outcome(np.array(solver.us), float(solver.cost), int(solver.iter), bool(ok), float(solver.stop))

    return Runner(solve, outcome, None, "solver.stop (expected decrease)")


def _zeros(system: str):
    import jax.numpy as jnp

    n, m = peer_models.DIMS[system]
    return jnp.zeros(n), jnp.zeros((peer_models.HORIZON, m))


def _ilqg_runner(system: str) -> Runner:
    common.enable_x64()
    import ilqg_jax as ilqg

    problem, params = peer_models.jax_problem(system)
    x0, us0 = _zeros(system)
    _, compile_t = common.aot_compile(lambda a, b: ilqg.solve(problem, a, b, params), x0, us0)

    def outcome(sol):
        measure = getattr(sol, "stationarity", None)
        return Outcome(np.asarray(sol.us), float(sol.cost), int(sol.iterations), bool(sol.converged),
                       None if measure is None else float(measure))

    name = ("Solution.stationarity (max |k|/(1+|u|))" if "stationarity" in ilqg.Solution._fields
            else "none reported")
    return Runner(lambda a: ilqg.solve(problem, a, us0, params), outcome, compile_t["total_s"], name)


def _trajax_functions(system: str):
    """trajax's ``cost(x, u, t)`` (``t == T``: terminal) and ``dynamics(x, u, t)`` of the JAX twin."""
    import jax.numpy as jnp

    problem, params = peer_models.jax_problem(system)
    T = problem.horizon

    def cost(x, u, t):
        return jnp.where(t == T, problem.terminal_cost(x, params), problem.running_cost(x, u, t, params))

    def dynamics(x, u, t):
        return problem.dynamics(x, u, t, params)

    return cost, dynamics


def _trajax_runner(system: str) -> Runner:
    common.enable_x64()
    versions()
    from trajax import optimizers

    cost, dynamics = _trajax_functions(system)
    x0, us0 = _zeros(system)
    compiled, compile_t = common.aot_compile(
        lambda a, b: optimizers.ilqr(cost, dynamics, a, b, maxiter=MAX_ITER, make_psd=True), x0, us0)

    def outcome(out):
        _, U, obj, gradient, _, _, it = out
        return Outcome(np.asarray(U), float(obj), int(it), int(it) < MAX_ITER, float(np.linalg.norm(gradient)))

    return Runner(lambda a: compiled(a, us0), outcome, compile_t["total_s"], "2-norm of gradient")


def make_runner(solver: str, system: str) -> Runner:
    """The :class:`Runner` of ``solver`` (one of :data:`SOLVERS`) on ``system``."""
    if solver.startswith("Crocoddyl"):
        return _crocoddyl_runner(solver.split("Solver")[1], system)
    if solver == "ilqg_jax.solve":
        return _ilqg_runner(system)
    if solver == "trajax ilqr":
        return _trajax_runner(system)
    raise ValueError(f"unknown solver {solver!r}; choose one of {SOLVERS}.")


# ----------------------------------------------------------------------------- one solve at a time

def _gradient_fn(system: str):
    """``(x0: (n,), us: (T, m)) -> max_t |dJ/du_t|`` of the JAX twin's shooting cost (jit-compiled)."""
    import jax
    import jax.numpy as jnp

    from ilqg_jax import derivatives

    problem, params = peer_models.jax_problem(system)

    def shooting_cost(us, x0):
        return derivatives.trajectory_cost(problem, derivatives.rollout(problem.dynamics, x0, us, params), us,
                                           params)

    return jax.jit(lambda x0, us: (jnp.max(jnp.abs(jax.grad(shooting_cost)(us, x0))), shooting_cost(us, x0)))


def _single(solver: str, system: str, x0s: np.ndarray, repeats: int, gradient) -> dict:
    """Times ``solver`` from each start; returns per-start times, iterations, costs and measures."""
    runner = make_runner(solver, system)
    rows = []
    for x0 in x0s:
        timing = common.time_call(lambda: runner.solve(x0), repeats=repeats, min_sample_s=0.0)
        out = runner.outcome(runner.solve(x0))
        grad, cost_here = gradient(x0, out.us)
        rows.append({"time_s": timing["median_s"], "iqr_s": timing["iqr_s"], "iterations": out.iterations,
                     "converged": out.converged, "cost": out.cost, "cost_recomputed": float(cost_here),
                     "max_dJdu": float(grad), "measure": out.measure})
    times = np.array([r["time_s"] for r in rows])
    q1, med, q3 = np.percentile(times, [25, 50, 75])
    its = [r["iterations"] for r in rows]
    return {"solver": solver, "system": system, "runs": rows, "median_s": float(med), "iqr_s": float(q3 - q1),
            "iterations_median": float(np.median(its)), "iterations_min": int(min(its)),
            "iterations_max": int(max(its)), "converged": int(sum(r["converged"] for r in rows)),
            "compile_s": runner.compile_s, "measure_name": runner.measure_name}


def _single_all(cfg: Config, available: dict) -> list:
    """Every installed solver on every timed system, from the same ``cfg.starts`` starts."""
    records = []
    for system in cfg.systems:
        x0s = peer_models.starts(system, cfg.starts, SEED)
        gradient = _gradient_fn(system)
        for solver in SOLVERS:
            if available.get(_package(solver)) is None:
                records.append({"solver": solver, "system": system, "installed": False})
                continue
            print(f"[peers] {system}: {solver}, {cfg.starts} starts", flush=True)
            records.append({"installed": True, **_single(solver, system, x0s, cfg.repeats, gradient)})
    return records


# ----------------------------------------------------------------------------- batches

_WORKER: dict = {}


def _worker_init(jobs) -> None:
    """Builds (and warms) every runner a pool worker will need, before it takes any task."""
    for solver, system in jobs:
        runner = make_runner(solver, system)
        runner.outcome(runner.solve(peer_models.starts(system, 1, BATCH_SEED)[0]))
        _WORKER[(solver, system)] = runner


def _worker_ready(_) -> int:
    time.sleep(0.2)
    return os.getpid()


def _worker_solve(task) -> list:
    """Solves a chunk of starts one after another in a pool worker; ``[(iterations, cost), ...]``."""
    solver, system, x0s = task
    runner = _WORKER[(solver, system)]
    return [(o.iterations, o.cost) for o in (runner.outcome(runner.solve(x0)) for x0 in x0s)]


def _pool_case(pool, procs: int, solver: str, system: str, x0s: np.ndarray, repeats: int) -> dict:
    tasks = [(solver, system, chunk) for chunk in np.array_split(x0s, procs)]
    timing = common.time_call(lambda: pool.map(_worker_solve, tasks, chunksize=1), repeats=repeats,
                              min_sample_s=0.0)
    res = [r for chunk in pool.map(_worker_solve, tasks, chunksize=1) for r in chunk]
    return {"solver": solver, "system": system, "how": f"multiprocessing, {procs} processes", "N": len(x0s),
            "timing": timing, "solves_per_s": len(x0s) / timing["median_s"],
            "iterations_mean": float(np.mean([r[0] for r in res])), "costs": [r[1] for r in res]}


def _pools(cfg: Config, available: dict, procs: int) -> list:
    """Every installed peer loops over the batch in a pool of ``procs`` processes (spawned, warmed)."""
    import multiprocessing as mp

    solvers = [s for s in cfg.loop_solvers if available.get(_package(s)) is not None]
    jobs = [(s, system) for s in solvers for system in cfg.batch_systems]
    if not jobs:
        return []
    print(f"[peers] pool of {procs} processes for {len(jobs)} (solver, system) loops", flush=True)
    with mp.get_context("spawn").Pool(procs, initializer=_worker_init, initargs=(jobs,)) as pool:
        while len(set(pool.map(_worker_ready, range(4 * procs), chunksize=1))) < procs:
            pass   # every worker has built and warmed its runners
        return [_pool_case(pool, procs, s, system, peer_models.starts(system, cfg.batch_n, BATCH_SEED),
                           cfg.batch_repeats) for s, system in jobs]


def _batch_child(systems, N: int, repeats: int) -> dict:
    """In a subprocess with one CPU device per core: ``solve_batch`` over each system's ``N`` starts."""
    common.enable_x64()
    import jax

    from ilqg_jax import batch

    out = []
    for system in systems:
        problem, params = peer_models.jax_problem(system)
        x0s = peer_models.starts(system, N, BATCH_SEED)
        us0 = np.zeros((problem.horizon, peer_models.DIMS[system][1]))
        t0 = time.perf_counter()
        batch.lower(problem, x0s, us0, params).compile()
        compile_s = time.perf_counter() - t0
        run = lambda: batch.solve_batch(problem, x0s, us0, params)  # noqa: E731
        timing = common.time_call(run, repeats=repeats, min_sample_s=0.0)
        sol = run()
        out.append({"solver": "ilqg_jax.solve_batch", "system": system, "N": N, "timing": timing,
                    "how": f"solve_batch, {len(jax.devices())} CPU devices", "compile_s": compile_s,
                    "solves_per_s": N / timing["median_s"], "iterations_mean": float(np.mean(sol.iterations)),
                    "costs": np.asarray(sol.cost).tolist()})
    return {"records": out}


def _solve_batch(cfg: Config, procs: int) -> list:
    """``solve_batch`` records from a subprocess with ``procs`` CPU devices; error records if it fails or hangs."""
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={procs}", JAX_PLATFORMS="cpu")
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    print(f"[peers] solve_batch over {procs} CPU devices (subprocess)", flush=True)
    args = [",".join(cfg.batch_systems), str(cfg.batch_n), str(cfg.batch_repeats)]
    timeout = 300 if cfg.batch_n <= 64 else 1800
    try:
        proc = subprocess.run([sys.executable, "-m", "benchmarks.peers", "--batch-child", *args], env=env,
                              cwd=REPO, capture_output=True, text=True, timeout=timeout)
        error = None if proc.returncode == 0 else f"failed (exit code {proc.returncode}): {_last_error(proc.stderr)}"
    except subprocess.TimeoutExpired:
        error = f"no result within {timeout} s"
    if error is None:
        return json.loads(proc.stdout.strip().splitlines()[-1])["records"]
    print(f"[peers] solve_batch {error}", flush=True)
    return [{"solver": "ilqg_jax.solve_batch", "system": s, "error": error} for s in cfg.batch_systems]


def _last_error(stderr: str) -> str:
    """The last exception line of a child's ``stderr`` (XLA's warnings come after it), else its last line."""
    lines = [ln.strip() for ln in stderr.strip().splitlines() if ln.strip()]
    errors = [ln for ln in lines if re.match(r"^[\w.]*(Error|Exception)\b", ln)]
    return (errors or lines or ["no output"])[-1][:300]


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


# ----------------------------------------------------------------------------- tables, checks, plot

def _find(records, system: str, solver: str) -> Optional[dict]:
    return next((r for r in records if r["system"] == system and r["solver"] == solver
                 and r.get("installed", True) and "error" not in r), None)


def _costs(record: dict) -> list:
    """Final costs of a single-solve record (per start) or a batch record (per member)."""
    return record["costs"] if "costs" in record else [x["cost"] for x in record["runs"]]


def _max_rel(costs, reference) -> float:
    return max(common.rel_diff(a, b) for a, b in zip(costs, reference))


def _versus(record: dict, reference: Optional[dict]) -> list:
    """``[max relative cost difference, "same/lower/higher"]`` against ``reference``, start by start.

    "same" is within :data:`SAME_RTOL` (the same local optimum); "lower"/"higher" count the starts where
    ``record`` ended at a lower / higher cost than ``reference``.
    """
    if reference is None:
        return [None, None]
    a, b = np.array(_costs(record)), np.array(_costs(reference))
    rel = np.abs(a - b) / np.abs(b)
    same = rel <= SAME_RTOL
    return [float(rel.max()), f"{same.sum()}/{(~same & (a < b)).sum()}/{(~same & (a > b)).sum()}"]


def _single_rows(single: list, available: dict) -> list:
    rows = []
    for r in single:
        version = available.get(_package(r["solver"]))
        if not r["installed"]:
            rows.append([r["system"], r["solver"], "not installed"] + [None] * 12)
            continue
        runs = r["runs"]
        measures = [x["measure"] for x in runs if x["measure"] is not None]
        rows.append([r["system"], r["solver"], version, r["median_s"] * 1e3, r["iqr_s"] * 1e3,
                     r["iterations_median"], f"{r['iterations_min']}-{r['iterations_max']}",
                     f"{r['converged']}/{len(runs)}", r["compile_s"], runs[0]["cost"],
                     *_versus(r, _find(single, r["system"], REFERENCE)),
                     max(x["max_dJdu"] for x in runs), r["measure_name"], max(measures) if measures else None])
    return rows


def _batch_rows(batches: list, cfg: Config, available: dict) -> list:
    rows = []
    for system in cfg.batch_systems:
        ref = _find(batches, system, REFERENCE)
        for solver in ("ilqg_jax.solve_batch",) + tuple(cfg.loop_solvers):
            r = _find(batches, system, solver)
            if r is None:
                failed = [b["error"] for b in batches if b["system"] == system and b["solver"] == solver]
                if failed or available.get(_package(solver)) is None:
                    rows.append([system, solver, failed[0] if failed else "not installed"] + [None] * 6)
                continue
            rows.append([system, solver, r["how"], r["N"], r["timing"]["median_s"], r["solves_per_s"],
                         r["iterations_mean"], *_versus(r, ref)])
    return rows


def _ratios(single: list, batches: list, cfg: Config) -> list:
    """Rows ``[system, ratio, value]``; every value > 1 means ilqg_jax is ahead."""
    rows = []
    for system in cfg.systems:
        ours = _find(single, system, "ilqg_jax.solve")
        for peer in (s for s in SOLVERS if s != "ilqg_jax.solve"):
            r = _find(single, system, peer)
            if ours and r:
                rows.append([system, f"time per solve: {peer} / ilqg_jax.solve", r["median_s"] / ours["median_s"]])
    for system in cfg.batch_systems:
        ours = _find(batches, system, "ilqg_jax.solve_batch")
        for r in (b for b in batches if ours and b["system"] == system and b is not ours and "error" not in b):
            rows.append([system, f"batch solves/s: ilqg_jax.solve_batch / {r['solver']} ({r['how']})",
                         ours["solves_per_s"] / r["solves_per_s"]])
    return rows


def _checks(agreement: dict, single: list, batches: list) -> dict:
    """Model agreement (1e-12) on every system; on the convex LQ problem, the same optimum (1e-6)."""
    checks = {f"dynamics_agree_{s}": a["agree"] for s, a in agreement.items()}
    checks["solve_batch_finished"] = not any("error" in b for b in batches)
    for key, records, ours in (("", single, "ilqg_jax.solve"), ("batch_", batches, "ilqg_jax.solve_batch")):
        mine, ref = _find(records, "lq", ours), _find(records, "lq", REFERENCE)
        if mine and ref:
            checks[f"same_optimum_{key}lq"] = _max_rel(_costs(mine), _costs(ref)) <= COST_RTOL
    return checks


COLORS = {"Crocoddyl SolverDDP": "tab:orange", "Crocoddyl SolverFDDP": "tab:red", "ilqg_jax.solve": "tab:cyan",
          "ilqg_jax.solve_batch": "tab:blue", "trajax ilqr": "tab:purple"}


def _bars(ax, values: dict, systems, solvers, ylabel: str, suffix=lambda s: "") -> None:
    """Grouped bars: ``values[(system, solver)]``, one group per system, one bar (colour) per solver."""
    width = 0.8 / max(1, len(solvers))
    for j, solver in enumerate(solvers):
        xs = [i + j * width for i, s in enumerate(systems) if (s, solver) in values]
        ax.bar(xs, [values[(s, solver)] for s in systems if (s, solver) in values], width,
               label=solver + suffix(solver), color=COLORS[solver])
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(systems))])
    ax.set_xticklabels(systems)
    ax.set_yscale("log")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7)


def _plot(single: list, batches: list, cfg: Config, results_dir: str, procs: int) -> list:
    fig, axes = common.new_figure(ncols=2, width=6.4)
    per_solve = {(r["system"], r["solver"]): r["median_s"] * 1e3 for r in single if r["installed"]}
    _bars(axes[0, 0], per_solve, cfg.systems, SOLVERS, "time per solve (ms, median over starts)")
    axes[0, 0].set_title(f"One solve, T = {peer_models.HORIZON}, float64")
    rate = {(r["system"], r["solver"]): r["solves_per_s"] for r in batches if "error" not in r}
    solvers = ("ilqg_jax.solve_batch",) + tuple(cfg.loop_solvers)
    _bars(axes[0, 1], rate, cfg.batch_systems, solvers, "solves per second (wall, all cores)",
          lambda s: f" ({procs} devices)" if s.endswith("batch") else f" (loop, {procs} processes)")
    axes[0, 1].set_title(f"Batch of {cfg.batch_n} starts on {procs} cores")
    return [common.save_figure(fig, results_dir, "peers.png")]


def _tables(agreement, single, batches, ratios, cfg, available) -> list:
    return [
        common.table("The two models agree (checked before timing; max |a - b| / max(1, |b|) at 20 random (x, u))",
                     ["system", "dynamics", "running cost", "terminal cost", "tolerance", "agree"],
                     [[s, a["dynamics"], a["running_cost"], a["terminal_cost"], peer_models.AGREEMENT_TOL,
                       a["agree"]] for s, a in agreement.items()]),
        common.table(f"One solve at a time ({cfg.starts} random starts, zero initial controls, T = "
                     f"{peer_models.HORIZON}, at most {MAX_ITER} iterations)",
                     ["system", "solver", "version", "time/solve (ms)", "IQR (ms)", "iterations (median)",
                      "iterations (range)", "converged", "compile (s)", "cost, first start",
                      f"max rel. cost diff vs {REFERENCE}", "same/lower/higher cost", "max abs dJ/du_t",
                      "own measure", "own measure (max)"],
                     _single_rows(single, available),
                     note="Time: median over the starts of each start's median warm call; IQR over the starts. "
                          f"same/lower/higher: starts whose final cost is within {SAME_RTOL:g} (relative) of "
                          f"{REFERENCE}'s, below it, above it. `max abs dJ/du_t` is computed here, for every "
                          "solver alike, at the returned controls (largest over the starts)."),
        common.table(f"Batch throughput on every core ({_usable_cores()})",
                     ["system", "solver", "how", "N", "wall (s)", "solves/s", "iterations (mean)",
                      f"max rel. cost diff vs {REFERENCE}", "same/lower/higher cost"],
                     _batch_rows(batches, cfg, available),
                     note="Wall time of the whole batch (median of the timed passes after a warm-up pass)."),
        common.table("Ratios, measured in this run (> 1: ilqg_jax ahead)", ["system", "ratio", "value"], ratios),
    ]


def run(quick: bool = False, results_dir: str = common.DEFAULT_RESULTS_DIR) -> dict:
    """Runs the peer comparison (see the module docstring); returns the harness dict."""
    common.enable_x64()
    cfg = QUICK if quick else FULL
    available = versions()
    print(f"[peers] versions: {available}", flush=True)
    agreement = ({s: peer_models.check_agreement(s) for s in peer_models.SYSTEMS}
                 if available["crocoddyl"] else {})
    bad = {s for s, a in agreement.items() if not a["agree"]}   # never time models that disagree
    cfg = cfg._replace(systems=tuple(s for s in cfg.systems if s not in bad),
                       batch_systems=tuple(s for s in cfg.batch_systems if s not in bad))
    single = _single_all(cfg, available)
    procs = _usable_cores()
    batches = _solve_batch(cfg, procs) + _pools(cfg, available, procs)
    ratios = _ratios(single, batches, cfg)
    data = {"config": cfg._asdict(), "versions": available, "agreement": agreement, "single": single,
            "batches": batches, "ratios": ratios, "processes": procs, "max_iter": MAX_ITER,
            "load_average_end": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}
    return {"description": __doc__.split("\n\n", 1)[1], "checks": _checks(agreement, single, batches),
            "tables": _tables(agreement, single, batches, ratios, cfg, available),
            "figures": _plot(single, batches, cfg, results_dir, procs), "data": data}


if __name__ == "__main__":
    if sys.argv[1:2] == ["--batch-child"]:
        systems, N, repeats = sys.argv[2].split(","), int(sys.argv[3]), int(sys.argv[4])
        print(json.dumps(common._jsonable(_batch_child(systems, N, repeats))))
    else:
        print("usage: python -m benchmarks --only peers  (this module's own entry point is for a subprocess)")
