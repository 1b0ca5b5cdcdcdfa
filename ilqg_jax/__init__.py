"""ilqg_jax: differentiable iLQG / DDP optimal control in JAX.

The public API::

    import ilqg_jax as ilqg
    problem = ilqg.Problem(dynamics, running_cost, terminal_cost, horizon)
    sol = ilqg.solve(problem, x0, us_init, params=None, options=ilqg.Options())
    sols = ilqg.solve_batch(problem, x0s, us_inits)
    mpc = ilqg.MPC(problem); state = mpc.init(x0); u, state = mpc.step(state, x)

Modules: :mod:`ilqg_jax.derivatives`, :mod:`ilqg_jax.boxqp`,
:mod:`ilqg_jax.implicit`, :mod:`ilqg_jax.constrained`, :mod:`ilqg_jax.systems`, :mod:`ilqg_jax.viz`.
"""

from ilqg_jax import boxqp, constrained, derivatives, implicit
from ilqg_jax.batch import solve_batch
from ilqg_jax.constrained import Multipliers
from ilqg_jax.mpc import MPC, ClosedLoop, MPCState, simulate
from ilqg_jax.problem import Problem
from ilqg_jax.solver import History, Options, Solution, Status, solve

__version__ = "0.1.0"

__all__ = [
    "Problem", "Options", "Solution", "History", "Status", "Multipliers", "solve", "solve_batch",
    "MPC", "MPCState", "ClosedLoop", "simulate",
    "derivatives", "boxqp", "implicit", "constrained",
]
