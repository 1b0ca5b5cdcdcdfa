"""solve_batch: every member is the single solve of that member, whatever the batch around it.

Oracles: :func:`ilqg_jax.solve` member by member (same iterations, statuses,
histories and results to 1e-8 in float64), and the unsharded batch for the
sharded one (4 fake CPU devices in a subprocess). Compilations dominate the
run time, so the tests share two batch programs (batched and shared inputs).
"""

import json
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

import ilqg_jax as ilqg
from ilqg_jax import batch
from ilqg_jax.systems import pendulum

T = 40
N = 6
ATOL = 1e-8
PROBLEM = pendulum.swing_up_limited(u_max=3.0, horizon=T)  # control limits: the box-QP backward pass too


def member(tree, i):
    return jax.tree_util.tree_map(lambda a: a[i], tree)


def member_params():
    """One :class:`SwingUpParams` per member (a leading axis on every leaf): other masses and torque weights."""
    p = jax.tree_util.tree_map(lambda a: np.full((N,), a, np.float64), pendulum.swing_up_params())
    return p._replace(model=p.model._replace(m=np.array([1.0, 1.0, 0.8, 1.2, 1.0, 0.9])),
                      r_torque=np.array([0.1, 0.1, 0.3, 0.05, 0.1, 0.2]))


def assert_member_equals(sol, i, single, atol=ATOL):
    """Member ``i`` of a batched Solution equals a single Solution: every field, history included."""
    assert int(sol.iterations[i]) == int(single.iterations), f"member {i}: iterations"
    assert int(sol.status[i]) == int(single.status), f"member {i}: status"
    assert bool(sol.converged[i]) == bool(single.converged)
    for name in ("xs", "us", "K", "k", "cost"):
        np.testing.assert_allclose(getattr(sol, name)[i], getattr(single, name), rtol=0, atol=atol,
                                   err_msg=f"member {i}: {name}")
    for name in single.history._fields:
        np.testing.assert_allclose(getattr(sol.history, name)[i], getattr(single.history, name), rtol=0,
                                   atol=atol, equal_nan=True, err_msg=f"member {i}: history.{name}")


@pytest.fixture(scope="module")
def inputs():
    """Six mixed members, each with its own controls and params.

    0: upright at rest with zero controls (cost 0: stops early); 1: hanging; 2-4: random;
    5: starts from its own optimum (converges at once).
    """
    rng = np.random.default_rng(0)
    x0s = np.stack([rng.uniform(-np.pi, np.pi, N), rng.uniform(-2.0, 2.0, N)], axis=1)
    x0s[0], x0s[1] = [0.0, 0.0], [np.pi, 0.0]
    us = 0.1 * rng.standard_normal((N, T, 1))
    us[0] = 0.0
    params = member_params()
    us[5] = ilqg.solve(PROBLEM, x0s[5], us[5], member(params, 5)).us
    return x0s, us, params


@pytest.fixture(scope="module")
def sharded(inputs, tmp_path_factory):
    """Starts the 4-device subprocess early (it compiles while this process does); returns its output paths."""
    x0s, us, params = inputs
    tmp = tmp_path_factory.mktemp("sharded")
    paths = {k: str(tmp / f"{k}.npz") for k in ("inputs", "batched", "shared")}
    np.savez(paths["inputs"], x0s=x0s, us=us,
             **{f"p{i}": np.asarray(a) for i, a in enumerate(jax.tree_util.tree_leaves(params))})
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    with open(tmp / "stdout", "w") as out, open(tmp / "stderr", "w") as err:
        proc = subprocess.Popen([sys.executable, "-c", SHARDED.format(T=T, **paths)], env=env, stdout=out,
                                stderr=err, text=True)
    yield proc, paths, tmp
    if proc.poll() is None:
        proc.kill()


@pytest.fixture(scope="module")
def case(inputs, sharded):
    """The members solved two slots at a time (members finish and are replaced while others run), and alone."""
    x0s, us, params = inputs
    sol = batch.solve_batch(PROBLEM, x0s, us, params, params_axis=0, slots=2, sharding=False)
    singles = [ilqg.solve(PROBLEM, x0s[i], us[i], member(params, i)) for i in range(N)]
    return x0s, us, params, sol, singles


def test_every_member_equals_its_single_solve(case):
    x0s, us, params, sol, singles = case
    assert sol.xs.shape == (N, T + 1, 2) and sol.K.shape == (N, T, 1, 2) and sol.history.cost.shape == (N, 101)
    for i in range(N):
        assert_member_equals(sol, i, singles[i])


def test_each_member_stops_on_its_own(case):
    x0s, us, params, sol, singles = case
    iterations, status = np.asarray(sol.iterations), np.asarray(sol.status)
    # Member 5 starts at its optimum: converged at once. Member 0, upright at rest with zero controls, has
    # cost exactly 0 and nothing to gain: converged in one iteration (as in solve).
    assert iterations[5] <= 2 and status[5] == ilqg.Status.CONVERGED
    assert iterations[0] == 1 and status[0] == ilqg.Status.CONVERGED
    assert iterations[1] > 2 * iterations[0]  # hanging: a real swing-up
    assert len(set(iterations.tolist())) >= 4
    cost = np.asarray(sol.history.cost)
    for i, it in enumerate(iterations):  # each member's own history: its iterations, then NaN
        assert np.all(np.isfinite(cost[i, :it + 1])) and np.all(np.isnan(cost[i, it + 1:]))


def test_nonfinite_member_gets_its_status_and_leaves_the_others_alone(case):
    x0s, us, params, sol, singles = case
    bad = x0s.copy()
    bad[3] = [np.nan, 0.0]
    out = batch.solve_batch(PROBLEM, bad, us, params, params_axis=0, slots=2, sharding=False,
                            on_nonfinite="status")
    assert int(out.status[3]) == ilqg.Status.NONFINITE and int(out.iterations[3]) == 0
    for i in (0, 1, 2, 4, 5):
        assert_member_equals(out, i, singles[i])


def test_nonfinite_member_raises_by_default_naming_it(case):
    x0s, us, params, sol, singles = case
    bad = x0s.copy()
    bad[4, 1] = np.inf
    with pytest.raises(ValueError, match=r"x0s\[4\] is not finite.*\[4\].*on_nonfinite='status'"):
        batch.solve_batch(PROBLEM, bad, us, params, params_axis=0)


@pytest.mark.parametrize("change, match", [
    (dict(x0s=np.zeros(2)), r"x0s must have shape \(N, n\).*got shape \(2,\)"),
    (dict(us_inits=np.zeros((7, T, 1))), r"us_inits must have a leading batch axis of size N = 6.*\(7, 40, 1\)"),
    (dict(us_inits=np.zeros((T + 1, 1))), r"us_inits must have shape \(T, m\) = \(40, m\).*got shape \(41, 1\)"),
    (dict(us_inits=np.zeros((N, T, 1, 1))), r"us_inits must have shape \(T, m\) = \(40, m\).*\(N, T, m\)"),
    (dict(params=pendulum.swing_up_params(), params_axis=0), r"params\.model\.g must have a leading batch axis"),
    (dict(params_axis=1), r"params_axis must be None .* or 0"),
    (dict(slots=0), r"slots must be None or an int >= 1"),
    (dict(on_nonfinite="ignore"), r"on_nonfinite must be 'raise' or 'status'"),
    (dict(sharding="cpu"), r"sharding must be None"),
    (dict(x0s=np.zeros((N, 3))), r"checking member 0 .*problem.dynamics failed"),
])
def test_malformed_batches_raise_naming_the_argument(change, match):
    args = dict(x0s=np.zeros((N, 2)), us_inits=np.zeros((T, 1)), params=None)
    args.update(change)
    with pytest.raises((ValueError, TypeError), match=match):
        batch.solve_batch(PROBLEM, **args)


SHARDED = textwrap.dedent("""
    import json
    import jax
    jax.config.update("jax_enable_x64", True)
    import numpy as np
    from ilqg_jax import batch
    from ilqg_jax.systems import pendulum
    data = np.load({inputs!r})
    tree = jax.tree_util.tree_structure(pendulum.swing_up_params())
    params = jax.tree_util.tree_unflatten(tree, [data[f"p{{i}}"] for i in range(tree.num_leaves)])
    problem = pendulum.swing_up_limited(u_max=3.0, horizon={T})

    def save(path, sol):
        np.savez(path, **{{k: np.asarray(v) for k, v in sol._asdict().items() if k != "history"}},
                 history_cost=np.asarray(sol.history.cost))
        return len({{d for leaf in jax.tree_util.tree_leaves(sol) for d in leaf.devices()}})

    # 6 members with their own controls and params, padded to 8: 2 per device, 2 slots each.
    on = save({batched!r}, batch.solve_batch(problem, data["x0s"], data["us"], params, params_axis=0, slots=2))
    # 2 members sharing member 2's controls and params, padded to 4: 1 per device.
    shared = jax.tree_util.tree_map(lambda a: a[2], params)
    save({shared!r}, batch.solve_batch(problem, data["x0s"][1:3], data["us"][2], shared))
    print(json.dumps({{"devices": len(jax.devices()), "result_devices": on}}))
""")


def sharded_results(sharded):
    """Waits for the subprocess; ``(batched, shared)`` results as ``np.load`` archives."""
    proc, paths, tmp = sharded
    proc.wait(timeout=900)
    assert proc.returncode == 0, (tmp / "stderr").read_text()[-3000:]
    info = json.loads((tmp / "stdout").read_text().strip().splitlines()[-1])
    assert info["devices"] == 4 and info["result_devices"] == 4
    return np.load(paths["batched"]), np.load(paths["shared"])


def test_sharded_over_four_devices_equals_unsharded(case, sharded):
    x0s, us, params, sol, singles = case
    on, _ = sharded_results(sharded)
    for name in ("xs", "us", "K", "k", "cost", "iterations", "status", "converged"):
        np.testing.assert_allclose(on[name], np.asarray(getattr(sol, name)), rtol=1e-12, atol=1e-12, err_msg=name)
    np.testing.assert_allclose(on["history_cost"], sol.history.cost, rtol=0, atol=1e-12, equal_nan=True)


def test_shared_controls_and_params_are_those_of_every_member(case, sharded):
    x0s, us, params, sol, singles = case
    _, shared = sharded_results(sharded)
    for i in range(2):
        single = ilqg.solve(PROBLEM, x0s[1 + i], us[2], member(params, 2))
        assert int(shared["iterations"][i]) == int(single.iterations)
        assert int(shared["status"][i]) == int(single.status)
        for name in ("xs", "us", "K", "k", "cost"):
            np.testing.assert_allclose(shared[name][i], getattr(single, name), rtol=0, atol=ATOL, err_msg=name)


LARGE_JOINT = textwrap.dedent("""
    import jax
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp, numpy as np, ilqg_jax as ilqg
    n, m, T = 10, 5, 50                     # n + m = 15: the PSD projection would use LAPACK eigh
    rng = np.random.default_rng(0)
    A = jnp.asarray(np.eye(n) + 0.1 * rng.standard_normal((n, n)))
    B = jnp.asarray(0.3 * rng.standard_normal((n, m)))
    problem = ilqg.Problem(lambda x, u, t, p: A @ x + B @ u, lambda x, u, t, p: x @ x + 0.1 * u @ u,
                           lambda x, p: 10.0 * x @ x, T)
    x0s = rng.standard_normal((128, n))
    sol = ilqg.solve_batch(problem, x0s, np.zeros((T, m)))
    one = ilqg.solve(problem, x0s[3], np.zeros((T, m)))
    print(len(jax.devices()), int(sol.iterations[3]) == int(one.iterations),
          float(np.max(np.abs(np.asarray(sol.us[3]) - np.asarray(one.us)))))
""")


def test_sharded_batch_with_a_large_joint_hessian_finishes():
    """Regression: the first (probe) and last backward passes of every member computed the PSD projection under
    ``vmap`` -- LAPACK's eigh above 6 x 6, which deadlocks when the batch is sharded over CPU devices."""
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2", JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", LARGE_JOINT], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    devices, same_iterations, diff = out.stdout.split()[-3:]
    assert devices == "2" and same_iterations == "True" and float(diff) < 1e-10
