"""The benchmark baseline and harness.

Oracles: a Riccati recursion for the linear-quadratic problem, hand-derived
derivatives of the pendulum for the finite differences, and the JSON schema
the README generator relies on for ``python -m benchmarks --quick``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from benchmarks import numpy_ilqr, numpy_systems
from oracles import riccati

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ----------------------------------------------------------------------------- LQR oracle

def _lq_problem(n=3, m=2, T=30, seed=0):
    rng = np.random.default_rng(seed)
    A = np.eye(n) + 0.1 * rng.standard_normal((n, n))
    B = 0.5 * rng.standard_normal((n, m))
    G = rng.standard_normal((n, n))
    Q = 0.1 * G @ G.T + 0.1 * np.eye(n)
    R = np.diag(rng.uniform(0.5, 2.0, m))
    Qf = 10.0 * np.eye(n)
    x0 = rng.standard_normal(n)
    return A, B, Q, R, Qf, x0, T


def _riccati(A, B, Q, R, Qf, x0, T):
    """The time-invariant LQ problem by the shared Riccati oracle; returns ``(xs, us, cost)``."""
    n, m = B.shape
    lq = dict(A=np.broadcast_to(A, (T, n, n)), B=np.broadcast_to(B, (T, n, m)), c=np.zeros((T, n)),
              Q=np.broadcast_to(Q, (T, n, n)), R=np.broadcast_to(R, (T, m, m)), S=np.zeros((T, m, n)),
              q=np.zeros((T, n)), r=np.zeros((T, m)), Qf=Qf, qf=np.zeros(n))
    return riccati(lq, x0, T)


def _lq_callables(A, B, Q, R, Qf):
    return (lambda x, u, t: A @ x + B @ u,
            lambda x, u, t: 0.5 * x @ Q @ x + 0.5 * u @ R @ u,
            lambda x: 0.5 * x @ Qf @ x)


def test_numpy_ilqr_matches_riccati_in_one_step_without_regularization():
    A, B, Q, R, Qf, x0, T = _lq_problem()
    xs_ref, us_ref, cost_ref = _riccati(A, B, Q, R, Qf, x0, T)
    f, l, lf = _lq_callables(A, B, Q, R, Qf)
    res = numpy_ilqr.solve(f, l, lf, x0, np.zeros((T, B.shape[1])), mu_init=0.0)
    assert res.converged, res.status
    # One Newton step solves an LQ problem exactly; the second iteration sees no expected decrease.
    assert res.iterations == 2
    np.testing.assert_allclose(res.us, us_ref, rtol=0, atol=1e-7 * np.abs(us_ref).max())
    np.testing.assert_allclose(res.xs, xs_ref, rtol=0, atol=1e-7 * np.abs(xs_ref).max())
    assert res.cost == pytest.approx(cost_ref, rel=1e-10)


def test_numpy_ilqr_matches_riccati_with_default_options():
    A, B, Q, R, Qf, x0, T = _lq_problem(seed=1)
    xs_ref, us_ref, cost_ref = _riccati(A, B, Q, R, Qf, x0, T)
    f, l, lf = _lq_callables(A, B, Q, R, Qf)
    res = numpy_ilqr.solve(f, l, lf, x0, np.random.default_rng(2).standard_normal((T, B.shape[1])))
    assert res.converged, res.status
    assert res.cost == pytest.approx(cost_ref, rel=1e-7)
    # Cost within 1e-7 of optimal bounds the control error by ~sqrt(1e-7) of its scale.
    np.testing.assert_allclose(res.us, us_ref, rtol=0, atol=1e-3 * np.abs(us_ref).max())
    assert len(res.history_cost) == res.iterations + 1
    assert np.all(np.diff(res.history_cost) <= 0)
    assert res.time_derivatives > 0 and res.time_total >= res.time_derivatives


def test_numpy_ilqr_stops_at_the_regularization_limit_when_quu_stays_indefinite():
    # Running cost -u^2 (+ terminal x^2, so Quu = -2 + 2 at the last step, < 0 before it
    # for mu < 2): with mu_max = 1 the Cholesky never succeeds.
    f = lambda x, u, t: x + u  # noqa: E731
    l = lambda x, u, t: -float(u @ u)  # noqa: E731
    lf = lambda x: 0.5 * float(x @ x)  # noqa: E731
    res = numpy_ilqr.solve(f, l, lf, np.ones(1), np.zeros((3, 1)), mu_init=1e-3, mu_max=1.0)
    assert res.status == "regularization limit"
    assert not res.converged
    assert res.history_mu[-1] > 1.0
    assert np.all(np.isnan(res.history_alpha))


# ----------------------------------------------------------------------------- finite differences

def _pendulum_analytic(xs, us, dt=0.05, g=10.0, m=1.0, l=1.0, qa=1.0, qv=0.1, r=0.1, qfa=100.0, qfv=10.0):
    ag, au = 3 * g / (2 * l), 3 / (m * l**2)
    c = np.cos(xs[:-1, 0])
    T = us.shape[0]
    fx = np.zeros((T, 2, 2))
    fx[:, 0, 0] = 1 + dt**2 * ag * c
    fx[:, 0, 1] = dt
    fx[:, 1, 0] = dt * ag * c
    fx[:, 1, 1] = 1
    fu = np.zeros((T, 2, 1))
    fu[:, 0, 0] = dt**2 * au
    fu[:, 1, 0] = dt * au
    lx = np.concatenate([dt * np.stack([qa * np.sin(xs[:-1, 0]), qv * xs[:-1, 1]], 1),
                         [[qfa * np.sin(xs[-1, 0]), qfv * xs[-1, 1]]]])
    lxx = np.zeros((T + 1, 2, 2))
    lxx[:T, 0, 0] = dt * qa * c
    lxx[:T, 1, 1] = dt * qv
    lxx[T] = np.diag([qfa * np.cos(xs[-1, 0]), qfv])
    return numpy_ilqr.FDDerivatives(fx=fx, fu=fu, lx=lx, lu=dt * r * us, lxx=lxx,
                                    luu=np.full((T, 1, 1), dt * r), lux=np.zeros((T, 1, 2)))


@pytest.mark.parametrize("vectorized", [False, True])
def test_fd_derivatives_match_hand_derived_pendulum_derivatives(vectorized):
    p = numpy_systems.pendulum_swing_up()
    rng = np.random.default_rng(0)
    us = rng.standard_normal((15, 1))
    xs, _ = numpy_ilqr.rollout(p.dynamics, np.array([np.pi, 0.0]), us)
    fd = numpy_ilqr.fd_derivatives(p.dynamics, p.running_cost, p.terminal_cost, xs, us, vectorized=vectorized)
    ref = _pendulum_analytic(xs, us)
    for name in ref._fields:
        got, want = getattr(fd, name), getattr(ref, name)
        assert got.shape == want.shape, name
        # Central differences: round-off |f| eps / h, ~1e-9 (h = 1e-6) and ~1e-7 (h = 1e-4) of the largest entry.
        tol = (1e-8 if name in ("fx", "fu", "lx", "lu") else 1e-6) * max(1.0, np.abs(want).max())
        np.testing.assert_allclose(got, want, rtol=0, atol=tol, err_msg=name)


def test_numpy_ports_equal_the_ilqg_jax_pendulum():
    import jax

    jax.config.update("jax_enable_x64", True)
    from ilqg_jax.systems import pendulum

    assert numpy_systems.check_matches(numpy_systems.pendulum_swing_up(), pendulum.swing_up(100)) <= 1e-12
    assert numpy_systems.check_matches(numpy_systems.pendulum_seed(), pendulum.seed_problem()) <= 1e-12


# ----------------------------------------------------------------------------- the harness

def _positive(x):
    return isinstance(x, (int, float)) and x > 0


#: ``python -m benchmarks --quick`` in groups of about equal run time, one subprocess each, so that
#: pytest-xdist spreads them over its workers (one run of them all would be one six-minute test).
QUICK_GROUPS = {
    "solver": ["single_solve", "convergence", "backward"],
    "limits_batch_mpc": ["limits", "large", "batch", "mpc"],
    "derivatives": ["derivative_accuracy", "derivative_speed", "end_to_end", "gradients", "constrained"],
    "peers": ["peers"],
}


def test_quick_groups_cover_every_registered_benchmark_once():
    from benchmarks.__main__ import REGISTRY

    assert sorted(n for group in QUICK_GROUPS.values() for n in group) == sorted(REGISTRY)


def _run_quick(names, results_dir):
    """``--quick --only names``: exit 0, and JSON/PNG/README the README generator can read; returns the JSONs."""
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""), MPLBACKEND="Agg")
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "--quick", "--only", ",".join(names),
                           "--results-dir", str(results_dir)], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    print(f"python -m benchmarks --quick --only {','.join(names)} took {time.perf_counter() - t0:.0f} s")
    results = {}
    for name in names:
        path = results_dir / f"{name}.json"
        assert path.exists(), name
        data = json.loads(path.read_text())
        for key in ("name", "title", "quick", "command", "machine", "duration_s", "tables", "checks", "data"):
            assert key in data, (name, key)
        assert data["quick"] is True
        assert data["machine"]["cpu_count"] >= 1 and data["machine"]["jax"]
        assert all(data["checks"].values()), (name, data["checks"])
        for t in data["tables"]:
            assert all(len(r) == len(t["columns"]) for r in t["rows"]), (name, t["title"])
        for fig in data.get("figures", []):
            assert (results_dir / fig).stat().st_size > 10_000, fig
        results[name] = data
    readme = (results_dir / "README.md").read_text()
    assert all(d["title"] in readme for d in results.values())
    return results


def _check_single_solve(out):
    single = out["data"]
    assert {c["problem"] for c in single["cases"]} == {"swing_up", "seed"}
    for c in single["cases"]:
        # The baseline stops on a small decrease; ilqg_jax at a certified stationary point: no higher cost.
        assert c["cost_agree"] is True
        assert c["numpy"]["loop"]["converged"]
        assert _positive(c["jax"]["timing_public"]["median_s"]) and _positive(c["jax"]["timing_compiled"]["median_s"])
        assert _positive(c["jax"]["compile"]["total_s"])
        assert _positive(c["numpy"]["loop"]["timing"]["median_s"])
        if c["problem"] == "swing_up":  # smooth: certified, the same optimum, in no more iterations
            assert c["jax"]["converged"] and c["cost_rel_diff"] <= 1e-6
            assert c["jax"]["iterations"] <= c["numpy"]["loop"]["iterations"]


def _check_backward(out):
    """Both schedules timed, their outputs equal; the GPU rows say "not measured" (no GPU here)."""
    assert out["checks"] == {"parallel_equals_sequential": True}
    for r in out["data"]["rows"]:
        assert r["diff_mu0"] <= 1e-10 and r["rounds_mu0"] == 0
        assert _positive(r["seq_mu0_us"]) and _positive(r["par_mu0_us"]) and _positive(r["compile_par_mu0_s"])
    gpu = [row for row in out["tables"][0]["rows"] if row[2] == "gpu"]
    assert gpu and all(v == "not measured" for row in gpu for v in row[3:])


def _check_end_to_end(out):
    records = out["data"]["records"]
    assert {r["T"] for r in records} == {50, 100, 200}
    assert {r["method"] for r in records} >= {"NumPy FD loop", "JAX + AD"}
    assert all(_positive(r["timing"]["median_s"]) for r in records)


def _check_derivative_speed(out):
    assert all(_positive(r["timing"]["median_s"]) for r in out["data"]["records"])


def _check_derivative_accuracy(out):
    assert any(s["system"] == "pendulum.seed_problem" for s in out["data"]["systems"])


def _check_peers(out):
    peers = out["data"]
    if peers["versions"]["crocoddyl"]:   # the models were checked against Crocoddyl's before timing
        assert set(peers["agreement"]) == {"unicycle", "lq", "pendulum", "double_pendulum"}
        assert all(a["max"] <= 1e-12 for a in peers["agreement"].values()), peers["agreement"]
    ours = [r for r in peers["single"] if r["solver"] == "ilqg_jax.solve"]
    assert ours and all(_positive(r["median_s"]) and r["converged"] >= 1 for r in ours)
    assert any(r["solver"] == "ilqg_jax.solve_batch" and _positive(r["solves_per_s"]) for r in peers["batches"])


def _check_constrained(out):
    """Every solver row filled; ilqg_jax feasible and at IPOPT's cost or below (the benchmark's checks)."""
    rows = out["tables"][0]["rows"]
    assert {r[1] for r in rows} >= ({"ilqg_jax.solve", "IPOPT (CasADi)"} if _installed("casadi") else {"ilqg_jax.solve"})
    for r in rows:
        assert r[3] > 0 and r[4] > 0, r  # iterations, time


def _installed(module):
    import importlib.util

    return importlib.util.find_spec(module) is not None


#: Checks of a benchmark's own numbers beyond the common schema.
SPECIFIC = {"single_solve": _check_single_solve, "backward": _check_backward, "end_to_end": _check_end_to_end,
            "derivative_speed": _check_derivative_speed, "derivative_accuracy": _check_derivative_accuracy,
            "constrained": _check_constrained, "peers": _check_peers}


@pytest.mark.parametrize("group", list(QUICK_GROUPS))
def test_quick_benchmarks_run_and_write_sane_results(group, tmp_path):
    for name, out in _run_quick(QUICK_GROUPS[group], tmp_path).items():
        SPECIFIC.get(name, lambda out: None)(out)


# ----------------------------------------------------------------------------- peers

@pytest.mark.parametrize("system", ["unicycle", "lq", "pendulum", "double_pendulum"])
def test_peer_models_equal_their_crocoddyl_twins(system):
    pytest.importorskip("crocoddyl")
    import jax

    jax.config.update("jax_enable_x64", True)
    from benchmarks import peer_models

    err = peer_models.check_agreement(system, count=10, seed=3)
    assert err["agree"] and err["max"] <= 1e-12, err


def test_crocoddyl_optimum_is_certified_from_a_warm_start():
    """Crocoddyl's DDP solution of the double pendulum, as a warm start, is certified stationary here.

    Near that minimum Gauss-Newton steps only earn ``alpha < 1`` (the dynamics' curvature matters):
    the solver must switch to Newton steps and certify the point (``CONVERGED``, same cost), not
    crawl on until it stalls.
    """
    crocoddyl = pytest.importorskip("crocoddyl")
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    import ilqg_jax as ilqg
    from benchmarks import peer_models

    x0 = peer_models.starts("double_pendulum", 1, 0)[0]
    ocp = peer_models.crocoddyl_problem("double_pendulum")
    ocp.x0 = x0
    ddp = crocoddyl.SolverDDP(ocp)
    us0 = [np.zeros(1)] * ocp.T
    assert ddp.solve(ocp.rollout(us0), us0, 200, True)
    problem, params = peer_models.jax_problem("double_pendulum")
    sol = ilqg.solve(problem, jnp.asarray(x0), jnp.asarray(np.array(ddp.us)), params)
    assert sol.status == ilqg.Status.CONVERGED, (int(sol.status), int(sol.iterations), float(sol.stationarity))
    assert sol.iterations <= 20
    assert float(sol.cost) <= ddp.cost * (1 + 1e-12)
    np.testing.assert_allclose(float(sol.cost), ddp.cost, rtol=1e-8)


def test_missing_peers_get_rows_that_say_not_installed():
    from benchmarks import peers

    available = {"crocoddyl": None, "trajax": None, "ilqg_jax": "0"}
    single = [{"solver": s, "system": "unicycle", "installed": False} for s in peers.SOLVERS[:2]]
    rows = peers._single_rows(single, available) + peers._batch_rows([], peers.QUICK, available)
    assert len(rows) == 4
    assert all(r[2] == "not installed" and r[3:] == [None] * (len(r) - 3) for r in rows), rows


# ----------------------------------------------------------------------------- MPC

def test_the_mpc_benchmarks_first_state_is_the_controllers_own_plan():
    """The benchmark's traceable plan (vmapped over episodes) is ``MPC.init`` with the guesses over the
    plan's look-ahead and its rehearsal, bit for bit; a look-ahead below the horizon is raised to it."""
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    import ilqg_jax as ilqg
    from benchmarks import mpc as bm
    from ilqg_jax.systems import gym_pendulum as gp

    mpc, plan = bm._controller(horizon=20, plan_iter=15, plan_horizon=40, rehearse=30)
    assert plan == bm.Plan(ilqg.Options(max_iter=15), 40, 30)
    assert bm._controller(horizon=20, plan_horizon=10)[1].horizon == 20
    assert bm._controller()[1] == bm.Plan(ilqg.Options(max_iter=gp.MPC_PLAN_ITER), gp.MPC_PLAN_HORIZON,
                                          gp.MPC_REHEARSE)
    assert bm._controller(plan_iter=0)[1] is None
    x0 = jnp.array([2.8, -0.5])
    first_state = jax.jit(bm._first_state, static_argnames=("plan",))
    got = first_state(mpc, plan, x0)
    want = mpc.init(x0, gp.initial_guesses(x0, 40, mpc.params), plan.options, rehearse=30)
    for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
