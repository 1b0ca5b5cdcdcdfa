"""ilqg_jax: differentiable iLQG / DDP optimal control in JAX.

The public API::

    import ilqg_jax as ilqg
    problem = ilqg.Problem(dynamics, running_cost, terminal_cost, horizon)
    sol = ilqg.solve(problem, x0, us_init, params=None, options=ilqg.Options())
"""

from ilqg_jax import derivatives
from ilqg_jax.problem import Problem
from ilqg_jax.solver import History, Options, Solution, Status, solve

__version__ = "0.1.0"

__all__ = ["Problem", "Options", "Solution", "History", "Status", "solve", "derivatives"]
