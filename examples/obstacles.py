"""A unicycle around circular obstacles to a goal it must reach exactly (path and terminal constraints).

The problem (:mod:`ilqg_jax.systems.obstacles`, the ``unicycle-obstacles``
task): Crocoddyl's unicycle, effort cost, ``r_i^2 - |p_t - c_i|^2 <= 0`` for
every obstacle and every step, ``p_T = goal``. ``ilqg_jax.solve`` handles the
constraints by an augmented Lagrangian around iLQG (ALTRO, Howell, Jackson &
Manchester 2019): the whole solve -- inner iLQG solves, multiplier and penalty
updates -- is one compiled program. The script

1. solves it from zero controls and prints status, cost, largest violation
   and the multipliers of the active constraints;
2. compares with the path that ignores the obstacles (the same problem
   without ``path_constraint``);
3. solves it from a batch of start positions (``solve_batch``: every member
   its own multipliers and penalty);
4. differentiates the optimal cost with respect to the obstacles' centres
   (implicit differentiation of the KKT conditions with the active
   constraints): the direction in which moving each obstacle helps most;
5. draws everything into ``outputs/obstacles.png``.

Run ``python examples/obstacles.py [output.png]``.
"""

from __future__ import annotations

import os
import sys

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import ilqg_jax as ilqg  # noqa: E402
from ilqg_jax import viz  # noqa: E402
from ilqg_jax.systems import get_task, obstacles  # noqa: E402


def main(out: str = os.path.join("outputs", "obstacles.png")) -> int:
    task = get_task("unicycle-obstacles")
    options = ilqg.Options(tol=1e-10, constraint_tol=1e-8)
    sol = ilqg.solve(task.problem, task.x0, task.us_init, task.params, options)
    status = ilqg.Status(int(sol.status))
    print(f"{task.name}: {status.name}, {int(sol.iterations)} inner iterations, cost {float(sol.cost):.6f}, "
          f"largest violation {float(sol.violation):.2e}, final penalty {float(sol.multipliers.penalty):.0e}")
    print(f"terminal multipliers {np.array2string(np.asarray(sol.multipliers.terminal), precision=4)}; "
          f"path multipliers > 0 at {int(jnp.sum(sol.multipliers.path > 0))} (step, obstacle) pairs; "
          f"closest approach {float(jnp.min(obstacles.clearance(sol.xs, task.params))):+.2e} m")

    free = ilqg.solve(task.problem.replace(path_constraint=None), task.x0, task.us_init, task.params, options)
    print(f"ignoring the obstacles: cost {float(free.cost):.6f}, closest approach "
          f"{float(jnp.min(obstacles.clearance(free.xs, task.params))):+.3f} m (negative: through an obstacle)")

    starts = jnp.array([[0.0, y, 0.0] for y in (-0.6, -0.3, 0.3, 0.6)])
    batch = ilqg.solve_batch(task.problem, starts, task.us_init, task.params, options)
    print("from other starts: " + ", ".join(f"y0={float(x[1]):+.1f}: {ilqg.Status(int(s)).name} cost {float(c):.3f}"
                                             for x, s, c in zip(starts, batch.status, batch.cost)))

    def cost_of(centers):
        return ilqg.solve(task.problem, task.x0, task.us_init, task.params._replace(centers=centers), options).cost

    grad = jax.grad(cost_of)(task.params.centers)
    print(f"d cost / d centres (implicit, KKT with the active constraints):\n{np.array2string(np.asarray(grad), precision=4)}")

    paths = [sol.xs, free.xs, *batch.xs]
    labels = [f"constrained ({status.name}, cost {float(sol.cost):.3f})",
              f"ignoring obstacles (cost {float(free.cost):.3f})", *[None] * len(starts)]
    fig = viz.plot_paths_and_obstacles(paths, task.params.centers, task.params.radii, task.params.goal, labels,
                                       title="unicycle around obstacles: augmented-Lagrangian iLQG")
    ax = fig.axes[0]
    for c, g in zip(np.asarray(task.params.centers), np.asarray(grad)):
        ax.annotate("", xy=tuple(c - 0.05 * g), xytext=tuple(c), arrowprops=dict(arrowstyle="->", color="C3"))
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    print(f"wrote {viz.save(fig, out)} (red arrows: moving an obstacle that way lowers the optimal cost)")
    return 0 if status == ilqg.Status.CONVERGED else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:2]))
