"""Automatic differentiation vs finite differences: the V-shaped error curve.

Along a trajectory of each system (random controls), the Jacobian of the
dynamics ``[fx fu]``, the cost gradient ``[lx lu]`` and the cost Hessian
``[lxx luu lux]`` (running cost at every step and the terminal cost) are
computed by ``ilqg_jax.derivatives.trajectory_derivatives`` (jacfwd/hessian)
and by forward and central differences of the same JAX functions with steps
``h = 1e-1 ... 1e-12`` (relative: ``h max(1, |z_i|)``). The error is
``||FD - AD||_F / max(||AD||_F, 1e-8)`` per time step; the table and plot
give its maximum over the trajectory, the worst point (the JSON also has the
median: many running costs are quadratic in most variables, where any step is
exact, so the median hides the points that matter).
Truncation error falls with ``h`` (``h`` forward, ``h^2`` central) until
round-off ``eps/h`` (``eps/h^2`` for Hessians) takes over: a V whose bottom is
the best any finite-difference step can do. Two markers per system: the seed
notebook's choice (central differences, absolute ``eps = 1e-8``, on the
dynamics; on the seed problem this is its own clipped model) and the library's
FD twin ``ilqg_jax.derivatives.finite_difference`` at its default steps (full mode only).
FD is evaluated in float64 (and float32 with ``--dtype float32/both``); AD in
float64 is the reference.
"""

from __future__ import annotations

import importlib
from typing import Callable, NamedTuple

import numpy as np

from benchmarks import common
from benchmarks.numpy_ilqr import _hessian_from_values, _hessian_points

TITLE = "Derivative accuracy: AD vs forward/central finite differences"
DEFAULT_DTYPES = ("float64",)
STEPS = tuple(10.0 ** -np.arange(1, 13))          # 1e-1 ... 1e-12
SEED_EPS = 1e-8
QUANTITIES = ("dynamics Jacobian", "cost gradient", "cost Hessian")
SCHEMES = ("forward", "central")


class Case(NamedTuple):
    name: str
    problem: object
    params: object
    x0: np.ndarray
    us: np.ndarray       # (T, m)


def _pendulum_swing_up(T, rng):
    from ilqg_jax.systems import pendulum
    return Case("pendulum.swing_up", pendulum.swing_up(T), None, np.array([np.pi, 0.0]),
                rng.standard_normal((T, 1)))


def _pendulum_seed(T, rng):
    # The notebook's own test: x0 = [pi, 0], pi = np.random.randn(T, 1).
    from ilqg_jax.systems import pendulum
    return Case("pendulum.seed_problem", pendulum.seed_problem(T), None, np.array([np.pi, 0.0]),
                rng.standard_normal((T, 1)))


def _from_module(module: str, factory: str, noise: float):
    """A system module with ``default_params``, ``initial_state``, ``initial_controls`` and a factory."""

    def make(T, rng):
        mod = importlib.import_module(f"ilqg_jax.systems.{module}")
        problem = getattr(mod, factory)(horizon=T)
        us = np.asarray(mod.initial_controls(T), dtype=float)
        us = us + noise * rng.standard_normal(us.shape)
        if problem.has_limits:
            us = np.clip(us, np.asarray(problem.control_lower), np.asarray(problem.control_upper))
        return Case(f"{module}.{factory}", problem, mod.default_params(), np.asarray(mod.initial_state(), float), us)

    return make


#: Systems to sweep: ``make(T, rng) -> Case``. Add a system by appending here.
SYSTEMS: list[Callable] = [
    _pendulum_swing_up,
    _pendulum_seed,
    _from_module("cartpole", "swing_up", 2.0),
    _from_module("acrobot", "swing_up", 1.0),
    _from_module("two_link_arm", "reach", 1.0),
]


# ----------------------------------------------------------------------------- stencils

def _steps(z, h, relative=True):
    """``h max(1, |z|)`` (or ``h``), rounded so that ``z + step`` is exact in ``z``'s dtype."""
    step = (h * np.maximum(1.0, np.abs(z)) if relative else np.full_like(z, h)).astype(z.dtype)
    return (z + step) - z


def _jac_points(z, s, scheme):
    d = z.shape[-1]
    E = np.eye(d, dtype=z.dtype)[None] * s[:, None, :]
    if scheme == "forward":
        return np.concatenate([z[:, None, :], z[:, None, :] + E], axis=1)
    return np.concatenate([z[:, None, :] + E, z[:, None, :] - E], axis=1)


def _jac_from_values(v, s, scheme):
    """``v: (P, k, *out)`` at :func:`_jac_points` -> ``(P, *out, d)``."""
    d = s.shape[-1]
    shape = (s.shape[0], d) + (1,) * (v.ndim - 2)
    if scheme == "forward":
        J = (v[:, 1:] - v[:, :1]) / s.reshape(shape)
    else:
        J = (v[:, :d] - v[:, d:]) / (2.0 * s.reshape(shape))
    return np.moveaxis(J, 1, -1)


def _hess_points(z, s, scheme):
    if scheme == "central":
        return _hessian_points(z, s)[0]
    P, d = z.shape
    pts = [z]
    for i in range(d):
        e = np.zeros_like(z); e[:, i] = s[:, i]
        pts.append(z + e)
    for i in range(d):
        for j in range(i, d):
            e = np.zeros_like(z); e[:, i] += s[:, i]; e[:, j] += s[:, j]
            pts.append(z + e)
    return np.stack(pts, axis=1)


def _hess_from_values(v, s, scheme):
    P, d = s.shape
    if scheme == "central":
        pairs = [(i, j) for i in range(d) for j in range(i + 1, d)]
        return _hessian_from_values(v, s, pairs)
    H = np.empty((P, d, d))
    f0, fi = v[:, 0], v[:, 1:1 + d]
    q = 1 + d
    for i in range(d):
        for j in range(i, d):
            H[:, i, j] = H[:, j, i] = (v[:, q] - fi[:, i] - fi[:, j] + f0) / (s[:, i] * s[:, j])
            q += 1
    return H


# ----------------------------------------------------------------------------- evaluation

def _evaluators(case: Case, n: int):
    """Jitted, doubly vmapped ``(points (P, k, d), ts (P,)) -> values`` for dynamics and costs."""
    import jax

    p, params = case.problem, case.params

    def batched(fn):
        return jax.jit(jax.vmap(jax.vmap(fn, in_axes=(0, None)), in_axes=(0, 0)))

    return {
        "dynamics": batched(lambda z, t: p.dynamics(z[:n], z[n:], t, params)),
        "running": batched(lambda z, t: p.running_cost(z[:n], z[n:], t, params)),
        "terminal": batched(lambda z, t: p.terminal_cost(z, params)),
    }


def _fd_all(ev, zr, zt, h, dtype, relative=True, schemes=SCHEMES):
    """All FD derivatives at step ``h`` for each scheme, from one evaluation per function.

    Returns ``{scheme: (J (P, n, d), g (P, d), H (P, d, d), gT (1, n), HT (1, n, n))}``.
    """
    import jax.numpy as jnp

    zr = zr.astype(dtype)
    zt = zt.astype(dtype)
    ts = np.arange(zr.shape[0])
    s = _steps(zr, h, relative)
    sT = _steps(zt, h, relative)

    def values(fn, z, step, tt, kinds):
        """Evaluates ``fn`` at the points of every ``(kind, scheme)`` at once; returns a dict of values."""
        sets = [(k, sc, (_jac_points if k == "jac" else _hess_points)(z, step, sc)) for k in kinds for sc in schemes]
        pts = np.concatenate([p for _, _, p in sets], axis=1)
        v = np.asarray(fn(jnp.asarray(pts), jnp.asarray(tt)), dtype=float)
        out, i = {}, 0
        for k, sc, p in sets:
            out[k, sc] = v[:, i:i + p.shape[1]]
            i += p.shape[1]
        return out

    sf, sTf = s.astype(float), sT.astype(float)
    vd = values(ev["dynamics"], zr, s, ts, ("jac",))
    vr = values(ev["running"], zr, s, ts, ("jac", "hess"))
    vt = values(ev["terminal"], zt, sT, ts[:1], ("jac", "hess"))
    return {sc: (_jac_from_values(vd["jac", sc], sf, sc), _jac_from_values(vr["jac", sc], sf, sc),
                 _hess_from_values(vr["hess", sc], sf, sc), _jac_from_values(vt["jac", sc], sTf, sc),
                 _hess_from_values(vt["hess", sc], sTf, sc))
            for sc in schemes}


def _pack(J, g, H, gT, HT, n):
    """Per-point arrays of each quantity: running points then the terminal point."""
    P, d = g.shape
    jac = J.reshape(P, -1)
    grad = [g[i] for i in range(P)] + [gT[0]]
    hess = [H[i].ravel() for i in range(P)] + [HT[0].ravel()]
    return {"dynamics Jacobian": [jac[i] for i in range(P)], "cost gradient": grad, "cost Hessian": hess}


def _errors(fd: dict, ad: dict) -> dict:
    out = {}
    for q in QUANTITIES:
        e = np.array([np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-8) for a, b in zip(fd[q], ad[q])])
        e = np.where(np.isfinite(e), e, np.inf)
        out[q] = {"median": float(np.median(e)), "max": float(np.max(e))}
    return out


def _ad(case: Case, xs, us):
    import jax
    import jax.numpy as jnp

    from ilqg_jax.derivatives import trajectory_derivatives

    D = jax.jit(trajectory_derivatives)(case.problem, jnp.asarray(xs), jnp.asarray(us), case.params)
    D = type(D)(*(np.asarray(a, dtype=float) for a in D))
    n = xs.shape[1]
    T = us.shape[0]
    J = np.concatenate([D.fx, D.fu], axis=2)
    g = np.concatenate([D.lx[:T], D.lu], axis=1)
    top = np.concatenate([D.lxx[:T], np.swapaxes(D.lux, 1, 2)], axis=2)
    bot = np.concatenate([D.lux, D.luu], axis=2)
    H = np.concatenate([top, bot], axis=1)
    return _pack(J, g, H, D.lx[T:], D.lxx[T:], n), D


def _twin(case: Case, xs, us, D_ad):
    """Errors of the library's ``finite_difference`` at its default steps."""
    import jax
    import jax.numpy as jnp

    from ilqg_jax.derivatives import finite_difference

    F = jax.jit(finite_difference)(case.problem, jnp.asarray(xs), jnp.asarray(us), case.params)
    F = type(F)(*(np.asarray(a, dtype=float) for a in F))
    T = us.shape[0]
    J = np.concatenate([F.fx, F.fu], axis=2)
    g = np.concatenate([F.lx[:T], F.lu], axis=1)
    H = np.concatenate([np.concatenate([F.lxx[:T], np.swapaxes(F.lux, 1, 2)], axis=2),
                        np.concatenate([F.lux, F.luu], axis=2)], axis=1)
    return _pack(J, g, H, F.lx[T:], F.lxx[T:], xs.shape[1])


def _sweep_case(case: Case, dtypes, with_twin: bool = True) -> dict:
    import jax.numpy as jnp

    from ilqg_jax.derivatives import rollout

    xs = np.asarray(rollout(case.problem.dynamics, jnp.asarray(case.x0), jnp.asarray(case.us), case.params))
    us = case.us
    n = xs.shape[1]
    zr = np.concatenate([xs[:-1], us], axis=1)
    zt = xs[-1:]
    ad, D = _ad(case, xs, us)
    ev = _evaluators(case, n)
    curves = {}
    for dtype in dtypes:
        for scheme in SCHEMES:
            curves[f"{scheme}/{dtype}"] = {q: {"median": [], "max": []} for q in QUANTITIES}
        for h in STEPS:
            fd = _fd_all(ev, zr, zt, h, np.dtype(dtype))
            for scheme in SCHEMES:
                err = _errors(_pack(*fd[scheme], n), ad)
                for q in QUANTITIES:
                    curves[f"{scheme}/{dtype}"][q]["median"].append(err[q]["median"])
                    curves[f"{scheme}/{dtype}"][q]["max"].append(err[q]["max"])
    seed_fd = _errors(_pack(*_fd_all(ev, zr, zt, SEED_EPS, np.dtype("float64"), relative=False)["central"], n),
                      ad)
    twin = _errors(_twin(case, xs, us, D), ad) if with_twin else None
    finite_states = bool(np.isfinite(xs).all())
    return {"system": case.name, "points": int(us.shape[0]), "n": int(n), "m": int(us.shape[1]),
            "curves": curves, "seed_eps": {"eps": SEED_EPS, "dynamics Jacobian": seed_fd["dynamics Jacobian"]},
            "twin": twin, "twin_steps": _twin_steps(), "finite_states": finite_states}


def _twin_steps():
    eps = float(np.finfo(np.float64).eps)
    return {"first": eps ** (1 / 3), "hessian": eps ** 0.25}


def _plot(results, dtypes, results_dir):
    k = len(results)
    ncols = min(3, k)
    nrows = int(np.ceil(k / ncols))
    fig, axes = common.new_figure(ncols=ncols, nrows=nrows, width=5.2, height=4.2)
    colors = {"dynamics Jacobian": "tab:blue", "cost gradient": "tab:green", "cost Hessian": "tab:red"}
    styles = {"forward": "--", "central": "-"}
    steps = np.asarray(STEPS)
    for ax, r in zip(axes.ravel(), results):
        for key, per_q in r["curves"].items():
            scheme, dtype = key.split("/")
            for q in QUANTITIES:
                y = np.array([np.nan if v is None else v for v in per_q[q]["max"]], dtype=float)
                ax.loglog(steps, np.maximum(y, 1e-17), styles[scheme], color=colors[q],
                          alpha=1.0 if dtype == "float64" else 0.45, lw=1.6 if dtype == "float64" else 1.0,
                          label=f"{q}, {scheme}" + ("" if dtype == "float64" else " (float32)"))
        v = r["seed_eps"]["dynamics Jacobian"]["max"]
        ax.loglog([SEED_EPS], [max(v, 1e-17)], "k*", ms=11, label="seed: central, abs. eps=1e-8 (Jacobian)")
        ts = r["twin_steps"]
        for q, h in (("dynamics Jacobian", ts["first"]), ("cost gradient", ts["first"]),
                     ("cost Hessian", ts["hessian"])):
            if r["twin"] is not None:
                ax.loglog([h], [max(r["twin"][q]["max"], 1e-17)], "D", color=colors[q], mec="k", ms=7,
                          label=f"finite_difference twin, {q}")
        ax.invert_xaxis()
        ax.set_ylim(top=1e2)          # errors above 100 % are off the chart
        ax.set_xlabel("finite-difference step h (relative, log scale)")
        ax.set_ylabel("relative error vs AD (worst point, log scale)")
        ax.set_title(f"{r['system']} (n={r['n']}, m={r['m']})")
        ax.grid(True, which="major", alpha=0.3)
    for ax in axes.ravel()[k:]:
        ax.axis("off")
    handles, labels = max((a.get_legend_handles_labels() for a in axes.ravel()[:k]), key=lambda hl: len(hl[0]))
    spare = axes.ravel()[k] if k < axes.size else None
    if spare is not None:
        spare.legend(handles, labels, loc="center", fontsize=8)
    else:
        axes.ravel()[0].legend(fontsize=6)
    fig.suptitle("Finite differences vs automatic differentiation: truncation (left) vs round-off (right)")
    return [common.save_figure(fig, results_dir, "derivative_accuracy.png")]


def run(quick: bool = False, dtypes=DEFAULT_DTYPES, results_dir: str = common.DEFAULT_RESULTS_DIR) -> dict:
    common.enable_x64()
    T = 20 if quick else 100
    results, skipped = [], []
    for make in SYSTEMS:
        rng = np.random.default_rng(0)
        try:
            case = make(T, rng)
        except (ImportError, AttributeError) as e:  # a system module not written yet
            skipped.append(f"{getattr(make, '__name__', make)}: {e}")
            continue
        print(f"[derivative_accuracy] {case.name}", flush=True)
        # Under --quick the FD twin (slow to compile) is skipped; derivative_speed checks it against AD.
        results.append(_sweep_case(case, dtypes, with_twin=not quick))

    rows = []
    steps = np.asarray(STEPS)
    for r in results:
        for key, per_q in r["curves"].items():
            scheme, dtype = key.split("/")
            for q in QUANTITIES:
                worst = np.array([np.inf if v is None else v for v in per_q[q]["max"]])
                i = int(np.argmin(worst))
                default_h = 1e-6 if q != "cost Hessian" else 1e-4
                j = int(np.argmin(np.abs(np.log10(steps / default_h))))
                rows.append([r["system"], q, scheme, dtype, float(steps[i]), float(worst[i]),
                             per_q[q]["median"][i], float(worst[j])])
    marks = []
    for r in results:
        marks.append([r["system"], "seed: central, absolute eps = 1e-8", "dynamics Jacobian", SEED_EPS,
                      r["seed_eps"]["dynamics Jacobian"]["median"], r["seed_eps"]["dynamics Jacobian"]["max"]])
        for q in QUANTITIES if r["twin"] is not None else ():
            h = r["twin_steps"]["hessian" if q == "cost Hessian" else "first"]
            marks.append([r["system"], "ilqg_jax finite_difference (defaults)", q, h, r["twin"][q]["median"],
                          r["twin"][q]["max"]])
    tables = [
        common.table("Best step per system, quantity and scheme",
                     ["system", "quantity", "scheme", "FD dtype", "best h", "worst-point rel. error at best h",
                      "median rel. error at best h", "worst-point rel. error at h = 1e-6 (Hessian: 1e-4)"], rows,
                     note="AD (float64) is the reference. Points per system: "
                          + ", ".join(f"{r['system']} {r['points']}" for r in results) + "."),
        common.table("The seed's step and the library's FD twin",
                     ["system", "method", "quantity", "step", "median rel. error", "max rel. error"], marks),
    ]
    if skipped:
        tables.append(common.table("Systems skipped", ["reason"], [[s] for s in skipped]))
    figures = _plot(results, dtypes, results_dir) if results else []
    checks = {"ad_matches_central_fd_1e-6": all(
        min(v for v in r["curves"]["central/float64"][q]["max"] if v is not None) < 1e-6
        for r in results for q in QUANTITIES)} if "float64" in dtypes else {}
    return {"description": __doc__.split("\n\n", 1)[1], "tables": tables, "figures": figures, "checks": checks,
            "data": {"steps": list(STEPS), "systems": results, "skipped": skipped}}
