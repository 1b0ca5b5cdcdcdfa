"""Gradients through the solver: implicit differentiation against finite differences and unrolling.

The pendulum swing-up ``pendulum.swing_up(T, dt=5/T)`` (the same 5 s task at
every ``T``) from ``x0 = [pi, 0]``, ``us_init = 0.1 randn(T, 1)`` (seed 0),
solved by full DDP to ``tol = 1e-10`` (``Options(second_order=True)``: a
gradient by implicit differentiation is only meaningful at a stationary point,
and iLQG's default ``tol = 1e-7`` can stop short of one on this problem; the
"stationarity" column is ``max |dL/du|`` at the returned solution). The loss
touches the whole solution,
``L = |x_{T/2}|^2 + 0.1 |us|^2 + cost``, and the gradient is taken with
respect to ``x0`` and all 8 leaves of ``SwingUpParams`` (``dim = 10``):

* **forward**: ``L`` alone (one solve), the reference;
* **implicit**: ``jax.value_and_grad(L)`` through ``ilqg_jax.solve`` -- the solve
  plus one LQR sweep at the optimum (``ilqg_jax.implicit``);
* **finite differences**: central differences, ``2 dim = 20`` re-solves from
  ``us_init`` (a loop of the compiled forward program);
* **unrolled**: reverse mode through a fixed number of iterations of a
  differentiable DDP written here (the solver's iteration and regularisation
  schedule, a line search that keeps the best of 8 step sizes), as many
  iterations as ``ilqg_jax.solve`` took, from the same ``us_init``.

Times are warm medians of the compiled programs (the headline ratio of
value_and_grad to forward is the median ratio of back-to-back pairs of
calls, which a shared machine's changing load does not skew); memory is XLA's
``memory_analysis()`` of each compiled program (temporaries + arguments +
outputs); compile time is trace + lower + compile
(JAX caches not cleared, so shared pieces may be reused). The "rel. error"
columns compare each gradient with the implicit one: finite differences of
re-solves inherit the solver's accuracy (and jump if a perturbed re-solve
lands on another local optimum), and the unrolled gradient is that of wherever
its fixed iterations ended.
"""

from __future__ import annotations

import time

import numpy as np

from benchmarks import common

TITLE = "Gradients through the solver: implicit vs finite differences vs unrolled"
DEFAULT_DTYPES = ("float64",)
DURATION = 5.0
SEED = 0
#: Goal, reported not enforced: value_and_grad at most this many times the forward solve.
TARGET_RATIO = 2.0
#: Full DDP to a tight tolerance: gradients are only meaningful at a stationary point, and on this
#: problem iLQG with the default ``tol = 1e-7`` can stop where the control gradient is still ~5e-3
#: (``swing_up(50, dt=0.1)``: the trajectory ends after two extra turns).
def _options():
    import ilqg_jax as ilqg

    return ilqg.Options(tol=1e-10, max_iter=300, second_order=True)
UNROLL_ALPHAS = (1.0, 0.5, 0.25, 0.1, 0.03, 0.01, 0.001, 0.0)


def _sizes(quick):
    return (50, 100) if quick else (50, 100, 200, 500, 1000)


def _memory(compiled) -> int | None:
    """Bytes XLA reserves for the program: temporaries + arguments + outputs (``memory_analysis()``)."""
    try:
        m = compiled.memory_analysis()
    except Exception:  # pragma: no cover - backends without it
        return None
    if m is None:
        return None
    return int(m.temp_size_in_bytes + m.argument_size_in_bytes + m.output_size_in_bytes)


def _interleaved_ratio(fn, ref, pairs: int) -> float:
    """Median over ``pairs`` back-to-back calls of ``time(fn) / time(ref)``: robust to a machine whose
    load changes between two separately timed medians."""
    import jax

    ratios = []
    for _ in range(pairs):
        t0 = time.perf_counter()
        jax.block_until_ready(ref())
        t1 = time.perf_counter()
        jax.block_until_ready(fn())
        t2 = time.perf_counter()
        ratios.append((t2 - t1) / (t1 - t0))
    return float(np.median(ratios))


def _compile(fn, *args):
    import jax

    t0 = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    return compiled, time.perf_counter() - t0


def _loss_of(problem, xs, us, cost):
    import jax.numpy as jnp

    T = us.shape[0]
    return jnp.sum(xs[T // 2] ** 2) + 0.1 * jnp.sum(us**2) + cost


def _riccati(d, d2, mu):
    """Backward pass with ``jnp.linalg.solve`` (no NaN to poison reverse mode when ``Quu + mu I`` is
    indefinite; ``ok`` says whether it was positive definite). Returns ``(K, k, ok)``."""
    import jax
    import jax.numpy as jnp

    m = d.lu.shape[1]

    def step(carry, inp):
        Vx, Vxx, ok = carry
        (fx, fu, lx, lu, lxx, luu, lux), second = inp
        Qx, Qu = lx + fx.T @ Vx, lu + fu.T @ Vx
        Qxx, Quu, Qux = lxx + fx.T @ Vxx @ fx, luu + fu.T @ Vxx @ fu, lux + fu.T @ Vxx @ fx
        if second is not None:
            fxx, fuu, fux = second
            Qxx, Quu, Qux = (Qxx + jnp.tensordot(Vx, fxx, axes=1), Quu + jnp.tensordot(Vx, fuu, axes=1),
                             Qux + jnp.tensordot(Vx, fux, axes=1))
        Quu_reg = 0.5 * (Quu + Quu.T) + mu * jnp.eye(m, dtype=Quu.dtype)
        kK = -jnp.linalg.solve(Quu_reg, jnp.concatenate([Qu[:, None], Qux], axis=1))
        k, K = kK[:, 0], kK[:, 1:]
        ok = ok & jnp.all(jnp.linalg.eigvalsh(jax.lax.stop_gradient(Quu_reg)) > 0)
        Vx = Qx + K.T @ Quu @ k + K.T @ Qu + Qux.T @ k
        Vxx = Qxx + K.T @ Quu @ K + K.T @ Qux + Qux.T @ K
        return (Vx, 0.5 * (Vxx + Vxx.T), ok), (K, k)

    inputs = ((d.fx, d.fu, d.lx[:-1], d.lu, d.lxx[:-1], d.luu, d.lux), d2)
    (_, _, ok), (K, k) = jax.lax.scan(step, (d.lx[-1], d.lxx[-1], jnp.array(True)), inputs, reverse=True)
    return K, k, ok


def unrolled_solve(problem, x0, us_init, params, iterations: int, second_order: bool = False):
    """``iterations`` iLQG/DDP steps as a ``lax.scan`` (reverse-mode differentiable); returns ``(xs, us, cost)``.

    The iteration of :func:`ilqg_jax.solve` without its early exits: the same
    derivatives (with the dynamics' Hessians when ``second_order``), a
    backward pass regularised by ``mu`` with the same Levenberg-Marquardt
    schedule (``Options`` defaults), and a line search over
    :data:`UNROLL_ALPHAS` that keeps the cheapest rollout (``alpha = 0`` keeps
    the current trajectory). Memory grows with ``iterations * T``: reverse mode
    stores every iteration's derivatives and rollouts.
    """
    import jax
    import jax.numpy as jnp

    import ilqg_jax as ilqg
    from ilqg_jax.derivatives import dynamics_hessians, rollout, trajectory_cost, trajectory_derivatives
    from ilqg_jax.solver import closed_loop_rollout

    dtype = x0.dtype
    alphas = jnp.asarray(UNROLL_ALPHAS, dtype)
    o = ilqg.Options()

    def step(carry, _):
        xs, us, cost, mu, dmu = carry
        d = trajectory_derivatives(problem, xs, us, params)
        d2 = dynamics_hessians(problem.dynamics, xs, us, params) if second_order else None
        K, k, ok = _riccati(d, d2, mu)
        K, k = jnp.where(ok, K, 0.0), jnp.where(ok, k, 0.0)
        cand_xs, cand_us, costs = jax.vmap(
            lambda a: closed_loop_rollout(problem, x0, xs, us, K, k, a, params))(alphas)
        costs = jnp.where(jnp.isfinite(costs), costs, jnp.inf)
        i = jnp.argmin(costs)
        better = ok & (costs[i] < cost)
        dmu_down, dmu_up = jnp.minimum(dmu / o.mu_factor, 1 / o.mu_factor), jnp.maximum(dmu * o.mu_factor,
                                                                                          o.mu_factor)
        mu_down = mu * dmu_down
        mu = jnp.where(better, jnp.where(mu_down > o.mu_min, mu_down, 0.0), jnp.maximum(mu * dmu_up, o.mu_min))
        dmu = jnp.where(better, dmu_down, dmu_up)
        return (cand_xs[i], cand_us[i], costs[i], mu, dmu), None

    xs = rollout(problem.dynamics, x0, us_init, params)
    init = (xs, us_init, trajectory_cost(problem, xs, us_init, params), jnp.asarray(o.mu_init, dtype),
            jnp.asarray(1.0, dtype))
    (xs, us, cost, _, _), _ = jax.lax.scan(step, init, None, length=iterations)
    return xs, us, cost


def _flatten(g):
    import jax

    return np.concatenate([np.ravel(np.asarray(leaf, float)) for leaf in jax.tree_util.tree_leaves(g)])


def _rel_err(g, ref) -> float:
    return float(np.max(np.abs(g - ref)) / np.max(np.abs(ref)))


def _case(T, dtype, quick):
    import jax
    import jax.numpy as jnp

    import ilqg_jax as ilqg
    from ilqg_jax import implicit
    from ilqg_jax.systems import pendulum

    problem = pendulum.swing_up(T, dt=DURATION / T)
    x0 = jnp.asarray([np.pi, 0.0], dtype)
    us0 = jnp.asarray(0.1 * np.random.default_rng(SEED).standard_normal((T, 1)), dtype)
    params = jax.tree_util.tree_map(lambda v: jnp.asarray(v, dtype), pendulum.swing_up_params())
    options = _options()
    repeats = 5 if quick else 11

    def forward(params, x0):
        sol = ilqg.solve(problem, x0, us0, params, options)
        return _loss_of(problem, sol.xs, sol.us, sol.cost)

    def solution(params, x0):
        return ilqg.solve(problem, x0, us0, params, options)

    rec = {"T": T, "dtype": str(np.dtype(dtype))}
    c_fwd, rec["compile_forward_s"] = _compile(forward, params, x0)
    sol = jax.jit(solution)(params, x0)
    rec.update(iterations=int(sol.iterations), status=ilqg.Status(int(sol.status)).name, cost=float(sol.cost))
    lams = implicit.costates(problem, sol.xs, sol.us, params)
    rec["stationarity"] = float(jnp.max(jnp.abs(implicit.kkt_residual(problem, sol.xs, sol.us, lams, params, x0)[1])))
    rec["forward"] = common.time_call(lambda: c_fwd(params, x0), repeats=repeats)
    rec["memory_forward"] = _memory(c_fwd)

    vg = jax.value_and_grad(forward, argnums=(0, 1))
    c_vg, rec["compile_implicit_s"] = _compile(vg, params, x0)
    value, g_implicit = c_vg(params, x0)
    rec["implicit"] = common.time_call(lambda: c_vg(params, x0), repeats=repeats)
    rec["implicit_over_forward_interleaved"] = _interleaved_ratio(lambda: c_vg(params, x0), lambda: c_fwd(params, x0),
                                                                  pairs=2 * repeats + 1)
    rec["memory_implicit"] = _memory(c_vg)
    g_ref = _flatten(g_implicit)

    # Central differences: 2 dim re-solves with the compiled forward program.
    leaves, treedef = jax.tree_util.tree_flatten((params, x0))
    flat = np.concatenate([np.ravel(np.asarray(v, float)) for v in leaves])
    sizes = [int(np.size(v)) for v in leaves]
    h = float(np.finfo(np.dtype(dtype)).eps) ** (1 / 3)

    def unflatten(vec):
        parts, i = [], 0
        for leaf, s in zip(leaves, sizes):
            parts.append(jnp.asarray(vec[i:i + s].reshape(np.shape(leaf)), dtype))
            i += s
        return jax.tree_util.tree_unflatten(treedef, parts)

    points = []
    for j in range(flat.size):
        step = h * max(1.0, abs(flat[j]))
        for sign in (1.0, -1.0):
            v = flat.copy()
            v[j] += sign * step
            points.append((unflatten(v), step))

    def fd():
        values = [c_fwd(*p) for p, _ in points]
        return [(float(values[2 * j]) - float(values[2 * j + 1])) / (2 * points[2 * j][1])
                for j in range(flat.size)]

    g_fd = np.asarray(fd())
    rec["finite_differences"] = common.time_call(fd, repeats=3 if quick else 5, warmup=0, min_sample_s=0.0)
    rec["memory_finite_differences"] = rec["memory_forward"]
    rec["fd_rel_err"] = _rel_err(g_fd, g_ref)
    rec["fd_solves"] = len(points)

    iterations = max(rec["iterations"], 1)

    def unrolled(params, x0):
        xs, us, cost = unrolled_solve(problem, x0, us0, params, iterations, options.second_order)
        return _loss_of(problem, xs, us, cost), cost

    uvg = jax.value_and_grad(unrolled, argnums=(0, 1), has_aux=True)
    c_un, rec["compile_unrolled_s"] = _compile(uvg, params, x0)
    (_, un_cost), g_un = c_un(params, x0)
    rec["unrolled"] = common.time_call(lambda: c_un(params, x0), repeats=repeats)
    rec["memory_unrolled"] = _memory(c_un)
    rec["unrolled_iterations"] = iterations
    rec["unrolled_cost_rel_diff"] = common.rel_diff(float(un_cost), rec["cost"])
    rec["unrolled_rel_err"] = _rel_err(_flatten(g_un), g_ref)
    rec["value"] = float(value)
    rec["grad_finite"] = bool(np.all(np.isfinite(g_ref)))
    return rec


def run(quick: bool = False, dtypes=DEFAULT_DTYPES, results_dir: str = common.DEFAULT_RESULTS_DIR) -> dict:
    common.enable_x64()
    records, checks = [], {}
    for dtype in dtypes:
        for T in _sizes(quick):
            print(f"[gradients] T={T} {dtype}", flush=True)
            r = _case(T, common.jnp_dtype(dtype), quick)
            records.append(r)
            checks[f"gradient_finite_T{T}_{dtype}"] = r["grad_finite"]
            if dtype == "float64" and r["status"] == "CONVERGED":
                checks[f"fd_agrees_with_implicit_T{T}"] = r["fd_rel_err"] < 1e-3

    def ms(t):
        return t["median_s"] * 1e3

    def mib(b):
        return None if b is None else b / 2**20

    rows = []
    for r in records:
        f = r["forward"]["median_s"]
        for name, key, mem, err in (("forward solve", "forward", "memory_forward", None),
                                    ("implicit value_and_grad", "implicit", "memory_implicit", 0.0),
                                    (f"finite differences ({r['fd_solves']} solves)", "finite_differences",
                                     "memory_finite_differences", r["fd_rel_err"]),
                                    (f"unrolled ({r['unrolled_iterations']} it.) value_and_grad", "unrolled",
                                     "memory_unrolled", r["unrolled_rel_err"])):
            compile_s = {"forward": r["compile_forward_s"], "implicit": r["compile_implicit_s"],
                         "unrolled": r["compile_unrolled_s"]}.get(key)
            rows.append([r["T"], r["dtype"], name, ms(r[key]), common.iqr_ms(r[key]), r[key]["median_s"] / f,
                         mib(r[mem]), compile_s, err])
    head = [[r["T"], r["dtype"], r["iterations"], r["status"], r["stationarity"],
             r["implicit_over_forward_interleaved"], r["implicit_over_forward_interleaved"] <= TARGET_RATIO,
             r["finite_differences"]["median_s"] / r["implicit"]["median_s"],
             r["unrolled"]["median_s"] / r["implicit"]["median_s"],
             (r["memory_unrolled"] / r["memory_implicit"]) if r["memory_unrolled"] and r["memory_implicit"] else None,
             r["unrolled_cost_rel_diff"]] for r in records]
    tables = [
        common.table("Headline: gradient of L w.r.t. x0 and 8 params (dim = 10)",
                     ["T", "dtype", "solver iterations", "status", "stationarity",
                      "value_and_grad / forward (interleaved)",
                      f"<= {TARGET_RATIO:g}x", "FD / implicit (time)", "unrolled / implicit (time)",
                      "unrolled / implicit (memory)", "unrolled final cost rel. diff"], head),
        common.table("All methods", ["T", "dtype", "method", "time (ms)", "IQR (ms)", "x forward", "memory (MiB)",
                                     "compile (s)", "grad rel. error vs implicit"], rows,
                     note="memory: XLA memory_analysis() of the compiled program; finite differences run the "
                          "forward program once per point, so their memory is the forward's."),
    ]
    figures = _plot(records, results_dir)
    return {"description": __doc__.split("\n\n", 1)[1], "tables": tables, "figures": figures, "checks": checks,
            "data": {"records": records, "target_ratio": TARGET_RATIO,
                     "unroll_alphas": list(UNROLL_ALPHAS), "us_init": f"0.1*randn(T,1), seed {SEED}",
                     "duration_s": DURATION}}


def _plot(records, results_dir):
    fig, axes = common.new_figure(ncols=2, width=5.5)
    methods = (("forward", "forward solve", "k"), ("implicit", "implicit value_and_grad", "tab:blue"),
               ("finite_differences", "finite differences", "tab:red"), ("unrolled", "unrolled", "tab:orange"))
    for dtype in sorted({r["dtype"] for r in records}):
        rs = sorted((r for r in records if r["dtype"] == dtype), key=lambda r: r["T"])
        T = np.array([r["T"] for r in rs])
        for key, label, color in methods:
            axes[0][0].loglog(T, [r[key]["median_s"] * 1e3 for r in rs], "o-", color=color, label=f"{label}, {dtype}")
            mem_key = "memory_finite_differences" if key == "finite_differences" else f"memory_{key}"
            mem = [r[mem_key] for r in rs]
            if all(m for m in mem):
                style = "x--" if key == "finite_differences" else "o-"  # FD memory = forward memory
                axes[0][1].loglog(T, np.array(mem) / 2**20, style, color=color, label=f"{label}, {dtype}")
    axes[0][0].set_xlabel("horizon T (log scale)")
    axes[0][0].set_ylabel("time (ms, log scale)")
    axes[0][0].set_title("Gradient of L(x0, params): time (warm, median)")
    axes[0][1].set_xlabel("horizon T (log scale)")
    axes[0][1].set_ylabel("XLA memory (MiB, log scale)")
    axes[0][1].set_title("Memory of the compiled program")
    for ax in axes[0]:
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=7)
    return [common.save_figure(fig, results_dir, "gradients.png")]


if __name__ == "__main__":
    import sys

    from benchmarks.__main__ import main

    sys.exit(main(["--only", "gradients"] + sys.argv[1:]))
