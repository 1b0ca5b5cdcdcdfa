"""The ``ilqg-jax`` command line.

::

    ilqg-jax solve pendulum                 # swing-up: iteration log + outputs/pendulum.png
    ilqg-jax solve cartpole --animate cartpole.gif
    ilqg-jax batch pendulum --n 1024        # many initial states at once + basin map
    ilqg-jax mpc pendulum-gym --animate mpc.gif   # MPC on gymnasium's Pendulum-v1
    ilqg-jax bench --quick                  # the benchmark suite (from a source checkout)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

__all__ = ["main"]


def _configure(args) -> None:
    import jax

    if not getattr(args, "float32", False):
        jax.config.update("jax_enable_x64", True)


def _default_output(name: str, suffix: str) -> str:
    os.makedirs("outputs", exist_ok=True)
    return os.path.join("outputs", f"{name}{suffix}")


def solve_main(args) -> int:
    _configure(args)
    import jax
    import numpy as np

    import ilqg_jax as ilqg
    from ilqg_jax import viz
    from ilqg_jax.systems import get_task

    task = get_task(args.system, args.horizon)
    dtype = jax.numpy.float32 if args.float32 else jax.numpy.float64
    options = ilqg.Options(max_iter=args.max_iter, verbose=not args.quiet)
    T, m = task.us_init.shape
    print(f"{task.name}: {task.description}")
    print(f"horizon T={T} (dt={task.dt} s), n={task.x0.shape[0]} states, m={m} controls, "
          f"{jax.numpy.dtype(dtype).name} on {jax.default_backend()}; goal: {task.goal}")
    start = time.perf_counter()
    sol = ilqg.solve(task.problem, task.x0.astype(dtype), task.us_init.astype(dtype), task.params, options)
    jax.block_until_ready(sol)
    wall = time.perf_counter() - start
    status = ilqg.Status(int(sol.status))
    reached = task.success(sol.xs)
    print(f"status {status.name} after {int(sol.iterations)} iterations; cost {float(sol.cost):.8g}; "
          f"{wall:.2f} s including compilation")
    print(f"final state {np.array2string(np.asarray(sol.xs[-1]), precision=4)}; goal "
          f"{'reached' if reached else 'NOT reached'} ({task.goal})")

    out = args.output or _default_output(task.name, ".png")
    limits = None
    if task.problem.has_limits:
        limits = (task.problem.control_lower, task.problem.control_upper)
    fig = viz.plot_trajectory(sol.xs, sol.us, dt=task.dt, state_labels=task.state_labels,
                              control_labels=task.control_labels, control_limits=limits,
                              title=f"{task.name}: {status.name}, cost {float(sol.cost):.4g}")
    print(f"wrote {viz.save(fig, out)}")
    if args.history:
        print(f"wrote {viz.save(viz.plot_history(sol.history, int(sol.iterations)), args.history)}")
    if args.animate:
        viz.animate(sol.xs, task.points, dt=task.dt, path=args.animate, extent=task.extent, title=task.name)
        print(f"wrote {args.animate}")
    return 0 if status in (ilqg.Status.CONVERGED, ilqg.Status.STALLED, ilqg.Status.MAX_ITER) else 1


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _cpu_devices(requested) -> None:
    """One CPU device per core (or ``requested``) so that ``solve_batch`` splits the batch over every core.

    XLA runs the batch's small kernels on one core per device. Set before JAX starts its backends; an
    explicit ``--xla_force_host_platform_device_count`` in ``XLA_FLAGS``, or a backend already started
    (the command called from a running program), is left as it is.
    """
    import jax

    if "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", ""):
        return
    count = _usable_cores() if requested is None else int(requested)
    if count < 1:
        raise ValueError(f"--cpu-devices must be >= 1, got {count}.")
    try:
        jax.config.update("jax_num_cpu_devices", count)
    except RuntimeError:  # backends already initialised: keep their devices
        pass


def batch_main(args) -> int:
    _configure(args)
    _cpu_devices(getattr(args, "cpu_devices", None))
    from ilqg_jax import _batch_cli

    return _batch_cli.batch_main(args)


def mpc_main(args) -> int:
    _configure(args)
    from ilqg_jax import _mpc_cli

    return _mpc_cli.mpc_main(args)


def bench_main(args, rest) -> int:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if not os.path.isdir(os.path.join(root, "benchmarks")):
        print("the benchmarks live in the source checkout: clone the repository and run from its root",
              file=sys.stderr)
        return 2
    return subprocess.call([sys.executable, "-m", "benchmarks", *rest], cwd=root)


def build_parser() -> argparse.ArgumentParser:
    from ilqg_jax.systems import TASKS

    parser = argparse.ArgumentParser(prog="ilqg-jax", description="iLQG optimal control in JAX.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("solve", help="solve a ready problem, print the iteration log, plot it")
    p.add_argument("system", choices=sorted(TASKS), metavar="SYSTEM",
                   help=f"one of {', '.join(sorted(TASKS))}")
    p.add_argument("--output", "-o", help="PNG of states and controls (default outputs/<system>.png)")
    p.add_argument("--history", help="also write a PNG of cost, mu and step size per iteration")
    p.add_argument("--animate", help="write an animation (.gif or .html)")
    p.add_argument("--horizon", type=int, default=None, help="number of time steps T")
    p.add_argument("--max-iter", type=int, default=200)
    p.add_argument("--float32", action="store_true", help="solve in float32 (default float64)")
    p.add_argument("--quiet", action="store_true", help="no per-iteration log")
    p.set_defaults(func=solve_main)

    b = sub.add_parser("batch", help="solve from many initial states at once; basin map")
    b.add_argument("system", choices=["pendulum", "pendulum-limited", "pendulum-seed"])
    b.add_argument("--n", type=int, default=1024, help="number of initial states")
    b.add_argument("--output", "-o", help="PNG basin map (default outputs/<system>_basin.png)")
    b.add_argument("--max-iter", type=int, default=200)
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--float32", action="store_true")
    b.add_argument("--cpu-devices", type=int, default=None,
                   help="CPU devices to split the batch over, one core each (default: one per usable core)")
    b.set_defaults(func=batch_main)

    c = sub.add_parser("mpc", help="receding-horizon control of gymnasium's Pendulum-v1, one episode per seed")
    c.add_argument("system", choices=["pendulum-gym"])
    c.add_argument("--seeds", type=int, nargs="+", default=[10_000, 10_001, 10_002],
                   help="Pendulum-v1 reset seeds, one episode each (default 10000 10001 10002)")
    c.add_argument("--animate", help="write the episodes, one after the other, as a GIF")
    c.add_argument("--stride", type=int, default=4, help="animate every STRIDE-th step (default 4)")
    c.set_defaults(func=mpc_main)

    s = sub.add_parser("bench", help="run the benchmark suite (arguments go to python -m benchmarks)")
    s.set_defaults(func=None)
    return parser


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:
        return bench_main(None, argv[1:])
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
