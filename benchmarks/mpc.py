"""MPC on gymnasium's Pendulum-v1: episode return and time per control step.

The headline runs ``examples/gym_pendulum_mpc.py`` itself: the real
environment, controlled from its (float32) observations, one episode per seed
``0..N-1`` (quick: 5, full: 100), 200 steps each. Time per control step is the
controller's call (``MPC.step`` plus reading ``u`` back to NumPy, i.e. after
``block_until_ready``), median and 95th percentile over every step, after a
warm-up episode that compiles it; the CPU time of the process per step is
given too, since wall time on a shared machine includes waiting for a core.

The ablation (full mode) justifies the tuned settings: each variant is run in
closed loop on the environment's exact model (:func:`gym_pendulum.env_step`,
speed clip included) from the same 100 initial states as the seeds, all
episodes at once (``vmap`` of :func:`ilqg_jax.mpc.simulate`), once as is and
once with random kicks of the speed after every step (where the feedback warm
start matters: without disturbances the measured state is the predicted one);
its time per step is the median of warm ``MPC.step`` calls. float64
throughout (what the example uses).
"""

from __future__ import annotations

import importlib.util
import os
import time

import numpy as np

from benchmarks import common

TITLE = "MPC on gymnasium Pendulum-v1: return over seeds and time per control step"
QUICK_SEEDS = 5
FULL_SEEDS = 100
#: Targets the results are reported against (not enforced: measured, never faked).
TARGETS = {"mean_return": -150.0, "step_ms": 5.0}
#: Standard deviation (rad/s) of the velocity noise added after every step in the ablation's second column.
NOISE_SIGMA = 0.3
EXAMPLE = os.path.join(os.path.dirname(common.HERE), "examples", "gym_pendulum_mpc.py")


def _example():
    spec = importlib.util.spec_from_file_location("gym_pendulum_mpc", EXAMPLE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _initial_states(seeds) -> np.ndarray:
    import gymnasium as gym

    env = gym.make("Pendulum-v1").unwrapped
    out = []
    for s in seeds:
        env.reset(seed=int(s))
        out.append(np.array(env.state, dtype=np.float64))
    env.close()
    return np.stack(out)


def _variants():
    from ilqg_jax.systems import gym_pendulum as gp

    H, it = gp.MPC_HORIZON, gp.MPC_MAX_ITER
    tuned = dict(horizon=H, max_iter=it)
    return [
        ("tuned", tuned),
        (f"horizon {H // 2}", dict(tuned, horizon=H // 2)),
        (f"horizon {2 * H}", dict(tuned, horizon=2 * H)),
        (f"{it - 1} iterations", dict(tuned, max_iter=it - 1)),
        (f"{it + 2} iterations", dict(tuned, max_iter=it + 2)),
        ("no energy term in the terminal cost", dict(tuned, qf_energy=0.0)),
        ("warm start without feedback", dict(tuned, feedback=False)),
        ("speed clip inside the planning model", dict(tuned, clip_speed=True)),
    ]


def _controller(horizon, max_iter, qf_energy=None, feedback=True, clip_speed=False):
    import ilqg_jax as ilqg
    from ilqg_jax.mpc import MPC
    from ilqg_jax.systems import gym_pendulum as gp

    params = gp.default_params()
    if qf_energy is not None:
        params = params._replace(qf_energy=qf_energy)
    return MPC(gp.problem(horizon, clip_speed=clip_speed), ilqg.Options(max_iter=max_iter), params,
               feedback=feedback)


def _closed_loop_returns(mpc, x0s, disturbances=None) -> np.ndarray:
    """Returns of episodes from each of ``x0s`` on the exact model, all at once; ``disturbances: (N, S, 2)``."""
    import jax
    import jax.numpy as jnp

    from ilqg_jax.mpc import simulate
    from ilqg_jax.systems import gym_pendulum as gp

    def episode(x0, d):
        r = simulate(mpc, x0, gp.EPISODE_STEPS, plant=gp.env_step, disturbances=d)
        return jnp.sum(gp.env_reward(r.xs[:-1], r.us))

    x0s = jnp.asarray(x0s)
    if disturbances is None:
        disturbances = jnp.zeros((x0s.shape[0], gp.EPISODE_STEPS, x0s.shape[1]), x0s.dtype)
    return np.asarray(jax.jit(jax.vmap(episode))(x0s, jnp.asarray(disturbances)))


def _velocity_noise(n: int, sigma: float, seed: int = 0) -> np.ndarray:
    """``(n, 200, 2)`` kicks of the speed, ``N(0, sigma^2)`` rad/s after every step."""
    from ilqg_jax.systems import gym_pendulum as gp

    d = np.zeros((n, gp.EPISODE_STEPS, 2))
    d[:, :, 1] = sigma * np.random.default_rng(seed).standard_normal((n, gp.EPISODE_STEPS))
    return d


def _step_timing(mpc, x0, steps: int = 200) -> dict:
    """Median and p95 wall time, and median process CPU time, of warm ``mpc.step`` calls along a closed
    loop on the exact model."""
    import jax.numpy as jnp

    from ilqg_jax.systems import gym_pendulum as gp

    x = np.asarray(x0, dtype=np.float64)
    state = mpc.init(x)
    wall, cpu = [], []
    for i in range(steps + 5):
        t0, c0 = time.perf_counter(), time.process_time()
        u, state = mpc.step(state, x)
        u = np.asarray(u)
        if i >= 5:
            wall.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        x = np.asarray(gp.env_step(jnp.asarray(x), jnp.asarray(u)))
    wall, cpu = 1e3 * np.asarray(wall), 1e3 * np.asarray(cpu)
    return {"median_ms": float(np.median(wall)), "p95_ms": float(np.percentile(wall, 95)),
            "cpu_median_ms": float(np.median(cpu))}


def _ablation(n_seeds: int):
    x0s = _initial_states(range(n_seeds))
    noise = _velocity_noise(n_seeds, NOISE_SIGMA)
    rows, data = [], []
    for label, kw in _variants():
        print(f"[mpc] ablation: {label}", flush=True)
        mpc = _controller(**kw)
        returns = _closed_loop_returns(mpc, x0s)
        noisy = _closed_loop_returns(mpc, x0s, noise)
        t = _step_timing(mpc, x0s[0])
        data.append({"label": label, "settings": kw, "returns": returns.tolist(), "returns_noisy": noisy.tolist(),
                     **t})
        rows.append([label, kw["horizon"], kw["max_iter"], float(returns.mean()), float(returns.min()),
                     float(noisy.mean()), t["cpu_median_ms"], t["median_ms"], t["p95_ms"]])
    return rows, data


def _plot(returns, step_ms, results_dir):
    fig, axes = common.new_figure(ncols=2, width=5.8)
    ax = axes[0, 0]
    ax.hist(returns, bins=25, color="tab:blue")
    ax.axvline(np.mean(returns), color="k", label=f"mean {np.mean(returns):.1f}")
    ax.axvline(TARGETS["mean_return"], color="tab:red", ls="--", label=f"target {TARGETS['mean_return']:g}")
    ax.set_xlabel("episode return")
    ax.set_ylabel("episodes")
    ax.set_title(f"Pendulum-v1 under MPC, {len(returns)} seeds")
    ax.legend(fontsize=8)
    ax = axes[0, 1]
    ax.hist(step_ms, bins=50, color="tab:green")
    ax.axvline(np.median(step_ms), color="k", label=f"median {np.median(step_ms):.2f} ms")
    ax.axvline(TARGETS["step_ms"], color="tab:red", ls="--", label=f"target {TARGETS['step_ms']:g} ms")
    ax.set_xlabel("time per control step (ms, wall)")
    ax.set_ylabel("steps")
    ax.set_title("Controller call, warm")
    ax.legend(fontsize=8)
    return [common.save_figure(fig, results_dir, "mpc.png")]


def run(quick: bool = False, results_dir: str = common.DEFAULT_RESULTS_DIR) -> dict:
    """Runs the example's episodes (and, in full mode, the ablation); returns the JSON dict."""
    common.enable_x64()
    from ilqg_jax.systems import gym_pendulum as gp

    n = QUICK_SEEDS if quick else FULL_SEEDS
    print(f"[mpc] example: {n} episodes of Pendulum-v1", flush=True)
    out = _example().main(seeds=range(n), verbose=False)
    returns = np.asarray(out["returns"])
    step_ms = np.asarray(out["step_ms"])
    head = [
        ["mean return", float(returns.mean()), f">= {TARGETS['mean_return']:g}",
         bool(returns.mean() >= TARGETS["mean_return"])],
        ["worst return", float(returns.min()), "-", None],
        ["time per control step, median (ms)", out["step_ms_median"], f"< {TARGETS['step_ms']:g}",
         out["step_ms_median"] < TARGETS["step_ms"]],
        ["time per control step, p95 (ms)", out["step_ms_p95"], "-", None],
        ["CPU time per control step, median (ms)", out["cpu_ms_median"], "-", None],
    ]
    tables = [common.table(
        f"Headline: {n} episodes (seeds 0..{n - 1}), horizon {out['horizon']}, {out['max_iter']} iterations "
        "per step, float64", ["metric", "measured", "target", "met"], head,
        note="Wall time includes waiting for a core on a shared machine; the CPU-time row is the "
             "process's own time per step.")]
    data = {"seeds": out["seeds"], "returns": returns.tolist(), "step_ms": step_ms.tolist(),
            "horizon": out["horizon"], "max_iter": out["max_iter"], "targets": TARGETS,
            "params": gp.default_params()._asdict() | {"model": gp.default_params().model._asdict()}}
    if not quick:
        rows, ablation = _ablation(n)
        data["ablation"] = ablation
        tables.append(common.table(
            f"Ablation: closed loop on the exact model (vmap over the {n} seeds' initial states)",
            ["variant", "horizon", "iterations", "mean return", "worst return",
             f"mean return, noise {NOISE_SIGMA:g} rad/s", "step CPU median (ms)", "step wall median (ms)",
             "step wall p95 (ms)"], rows,
            note=f"Each row changes one setting of the tuned controller. The noise column adds N(0, "
                 f"{NOISE_SIGMA:g}^2) rad/s to the speed after every step (the same draws for every row). "
                 "Step times: 200 warm calls of MPC.step along one episode; wall times depend on the "
                 "machine's load while that row ran, CPU times much less."))
    figures = _plot(returns, step_ms, results_dir)
    checks = {"returns_finite": bool(np.isfinite(returns).all()),
              "every_episode_swings_up": bool((returns > -500).all())}
    return {"description": __doc__.split("\n\n", 1)[1], "tables": tables, "figures": figures, "data": data,
            "checks": checks}
