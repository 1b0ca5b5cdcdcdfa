"""The ``ilqg-jax batch`` command: the pendulum swing-up from many initial states, and a basin map.

Kept apart from :mod:`ilqg_jax.batch` (the library), which needs neither the
systems nor the figures.
"""

from __future__ import annotations

import math
import os
import time

import jax
import numpy as np

from ilqg_jax.batch import solve_batch
from ilqg_jax.solver import Options, Status

__all__ = ["batch_main"]


def _initial_states(n: int, seed: int, max_speed: float = 8.0):
    """``(x0s, grid_shape)``: a ``k x k`` grid over ``theta in [-pi, pi)``, ``theta_dot in [-8, 8]`` rad/s
    when ``n = k^2``, else ``n`` uniform random states (``seed``)."""
    k = math.isqrt(n)
    if k * k == n and k > 1:
        theta, speed = np.meshgrid(np.linspace(-np.pi, np.pi, k, endpoint=False),
                                   np.linspace(-max_speed, max_speed, k))
        return np.stack([theta.ravel(), speed.ravel()], axis=1), (k, k)
    rng = np.random.default_rng(seed)
    return np.stack([rng.uniform(-np.pi, np.pi, n), rng.uniform(-max_speed, max_speed, n)], axis=1), None


class _Progress:
    """Prints ``solved k / N`` at most every half second (a ``progress`` callback of :func:`solve_batch`)."""

    def __init__(self):
        self.start = time.perf_counter()
        self.last = -1.0

    def __call__(self, done, total):
        now = time.perf_counter() - self.start
        done, total = int(done), int(total)
        if now - self.last >= 0.5 or done == total:
            self.last = now
            print(f"  solved {done:6d} / {total}  ({now:6.1f} s)", flush=True)


def batch_main(args) -> int:
    """``ilqg-jax batch pendulum --n N``: the swing-up from ``N`` initial states, and a basin map.

    ``args`` (argparse): ``system`` (a pendulum task: ``"pendulum"``,
    ``"pendulum-limited"`` or ``"pendulum-seed"``), ``n``, ``output`` (PNG
    path or ``None``: ``outputs/<system>_basin.png``), ``max_iter``, ``seed``,
    ``float32``. Initial states are a grid over ``(theta, theta_dot)`` when
    ``n`` is a square, else random; ``us_init`` is the task's. Prints
    progress, throughput, the success rate (final state upright) and the count
    of each status; writes the basin map.
    """
    from ilqg_jax import viz
    from ilqg_jax.systems import get_task, pendulum

    if not args.system.startswith("pendulum"):
        raise ValueError(f"batch supports the pendulum tasks only (pendulum, pendulum-limited, pendulum-seed), "
                         f"got {args.system!r}.")
    task = get_task(args.system)
    dtype = np.float32 if getattr(args, "float32", False) else np.float64
    n = int(args.n)
    if n < 1:
        raise ValueError(f"--n must be >= 1, got {n}.")
    x0s, grid = _initial_states(n, getattr(args, "seed", 0))
    options = Options(max_iter=getattr(args, "max_iter", Options().max_iter))
    us_init = np.asarray(task.us_init, dtype)
    devices = jax.devices()
    print(f"{task.name}: {n} initial states ({'a %d x %d grid' % grid if grid else 'random'} over "
          f"θ₀ ∈ [-π, π), θ̇₀ ∈ [-8, 8] rad/s), horizon T={task.problem.horizon}, "
          f"max_iter={options.max_iter}, {np.dtype(dtype).name} on {len(devices)} {jax.default_backend()} "
          "device(s)", flush=True)

    start = time.perf_counter()
    sol = solve_batch(task.problem, x0s.astype(dtype), us_init, task.params, options, progress=_Progress())
    jax.block_until_ready(sol)
    first = time.perf_counter() - start
    start = time.perf_counter()
    jax.block_until_ready(solve_batch(task.problem, x0s.astype(dtype), us_init, task.params, options,
                                      progress=lambda done, total: None))  # same program: no recompilation
    warm = time.perf_counter() - start
    print(f"first call {first:.1f} s (compilation included); warm call {warm:.2f} s: {n / warm:,.0f} solves/s")

    status = np.asarray(sol.status)
    iterations = np.asarray(sol.iterations)
    success = np.asarray(pendulum.upright(sol.xs[:, -1]))
    print(f"iterations per member: mean {iterations.mean():.1f}, max {iterations.max()}")
    print(f"reached upright (|wrap(θ_T)| < 0.05 rad, |θ̇_T| < 0.1 rad/s): {success.mean():.1%} "
          f"({int(success.sum())} of {n})")
    print("status: " + ", ".join(f"{s.name} {int((status == s).sum())}" for s in Status))

    out = args.output or os.path.join("outputs", f"{args.system}_basin.png")
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    fig = viz.basin_map(x0s, success, grid_shape=grid,
                        title=f"pendulum swing-up: {success.mean():.1%} of {n} initial states end upright")
    print(f"wrote {viz.save(fig, out)}")
    return 0
