"""Hostile inputs: every mistake gets a ``TypeError``/``ValueError`` before tracing, naming the
argument, what was expected and what was received -- never an XLA stack trace.

The table below is the specification: one row per mistake -- in ``Problem``, ``solve``,
``Options``, ``solve_batch`` and ``MPC`` / ``simulate`` -- with the exception and the
fragments its message must contain. Validation costs no compilation (the functions are
checked with ``jax.eval_shape``), so the whole file runs in seconds; end-to-end checks
under ``jit``/``vmap``/``grad`` use ``jax.eval_shape`` of the public ``solve`` too (the
whole solver is traced, nothing is compiled).

Dtype policy (see :mod:`ilqg_jax.problem`): real floats keep their precision (half
precision becomes float32; x0/us_init of two precisions give the wider), integers are
converted to float, bool/complex/string/object are rejected; the functions must return
the solve's dtype.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ilqg_jax as ilqg
from ilqg_jax.batch import solve_batch
from ilqg_jax.mpc import MPC, MPCState, simulate
from ilqg_jax.problem import check_bounds, float_dtype, validate_inputs
from ilqg_jax.solver import validate_options

T, N, M = 5, 2, 1
X0 = np.array([1.0, 0.0])
US = np.zeros((T, M))


def dynamics(x, u, t, p):
    return x + 0.1 * jnp.stack([x[1], u[0]])


def running_cost(x, u, t, p):
    return x @ x + u @ u


def terminal_cost(x, p):
    return x @ x


PROBLEM = ilqg.Problem(dynamics, running_cost, terminal_cost, T)
LIMITED = ilqg.Problem(dynamics, running_cost, terminal_cost, T, np.array([-1.0]), np.array([1.0]))


def problem_with(**fns):
    kw = dict(dynamics=dynamics, running_cost=running_cost, terminal_cost=terminal_cost, horizon=T)
    kw.update(fns)
    return ilqg.Problem(**kw)


def solve(problem=PROBLEM, x0=X0, us=US, params=None, options=ilqg.Options()):
    return lambda: ilqg.solve(problem, x0, us, params, options)


def make(**kw):
    return lambda: problem_with(**kw)


def limits(lo, hi):
    return lambda: ilqg.Problem(dynamics, running_cost, terminal_cost, T, lo, hi)


def options(**kw):
    return solve(options=ilqg.Options(**kw))


def batch(x0s=np.zeros((3, N)), us=US, params=None, options=ilqg.Options(), **kw):
    return lambda: solve_batch(PROBLEM, x0s, us, params, options, **kw)


MPC_STATE = MPCState(xs=np.zeros((T + 1, N)), us=np.zeros((T, M)), K=np.zeros((T, M, N)), cost=np.nan, iterations=0,
                     status=-1, t=0)


class Unhashable:
    __hash__ = None

    def __call__(self, x, u, t, p):
        return x


# (id, thunk, exception, fragments of the message)
HOSTILE = [
    # --- the problem ---
    ("problem_not_a_problem", solve(problem=(dynamics, running_cost)), TypeError, ["problem", "Problem", "tuple"]),
    ("dynamics_not_callable", make(dynamics="x + u"), TypeError, ["Problem.dynamics", "callable", "str"]),
    ("running_cost_not_callable", make(running_cost=None), TypeError, ["Problem.running_cost", "callable", "NoneType"]),
    ("terminal_cost_not_callable", make(terminal_cost=1.0), TypeError, ["Problem.terminal_cost", "callable", "float"]),
    ("dynamics_unhashable", make(dynamics=Unhashable()), TypeError, ["Problem.dynamics", "hashable"]),
    ("horizon_zero", make(horizon=0), ValueError, ["Problem.horizon", ">= 1", "got 0"]),
    ("horizon_negative", make(horizon=-3), ValueError, ["Problem.horizon", ">= 1", "-3"]),
    ("horizon_float", make(horizon=5.0), TypeError, ["Problem.horizon", "int", "float"]),
    ("horizon_bool", make(horizon=True), TypeError, ["Problem.horizon", "int", "bool"]),
    ("horizon_str", make(horizon="5"), TypeError, ["Problem.horizon", "int", "str"]),
    ("horizon_array", make(horizon=jnp.array(5)), TypeError, ["Problem.horizon", "int"]),
    # --- path and terminal constraints ---
    ("path_constraint_not_callable", make(path_constraint="x < 1"), TypeError,
     ["Problem.path_constraint", "callable", "str"]),
    ("terminal_constraint_unhashable", make(terminal_constraint=Unhashable()), TypeError,
     ["Problem.terminal_constraint", "hashable"]),
    ("path_constraint_scalar", solve(problem_with(path_constraint=lambda x, u, t, p: x[0] - 1.0)), ValueError,
     ["problem.path_constraint", "shape (p,)", "shape ()", "g[None]"]),
    ("path_constraint_rank_2", solve(problem_with(path_constraint=lambda x, u, t, p: x[None])), ValueError,
     ["problem.path_constraint", "shape (p,)", "(1, 2)"]),
    ("path_constraint_empty", solve(problem_with(path_constraint=lambda x, u, t, p: x[:0])), ValueError,
     ["problem.path_constraint", "p >= 1", "(0,)"]),
    ("path_constraint_raises", solve(problem_with(path_constraint=lambda x, u, t, p: x @ u)), TypeError,
     ["problem.path_constraint failed", "(n,) = (2,)", "u: (m,) = (1,)"]),
    ("terminal_constraint_int", solve(problem_with(terminal_constraint=lambda x, p: jnp.round(x).astype(jnp.int32))),
     TypeError, ["problem.terminal_constraint", "floating", "int32"]),
    ("terminal_constraint_float32_for_float64",
     solve(problem_with(terminal_constraint=lambda x, p: x.astype(jnp.float32))), TypeError,
     ["problem.terminal_constraint", "float64", "float32"]),
    ("terminal_constraint_raises", solve(problem_with(terminal_constraint=lambda x, p: x - p["goal"])), TypeError,
     ["problem.terminal_constraint failed", "x: (n,) = (2,)", "NoneType"]),
    # --- control limits ---
    ("limits_lower_above_upper", limits([1.0, 0.0], [2.0, -1.0]), ValueError,
     ["control_lower must be <= control_upper", "index [1]", "0.0", "-1.0"]),
    ("limits_nan", limits([np.nan], [1.0]), ValueError, ["control_lower", "NaN"]),
    ("limits_upper_nan", limits([0.0], [np.nan]), ValueError, ["control_upper", "NaN"]),
    ("limits_lower_plus_inf", limits([np.inf], [np.inf]), ValueError, ["control_lower", "+inf"]),
    ("limits_upper_minus_inf", limits([-np.inf], [-np.inf]), ValueError, ["control_upper", "-inf"]),
    ("limits_scalar", limits(-1.0, 1.0), ValueError, ["control_lower", "shape (m,)", "shape ()"]),
    ("limits_rank_2", limits(np.zeros((1, 1)), np.ones((1, 1))), ValueError, ["control_lower", "(m,)", "(1, 1)"]),
    ("limits_shapes_differ", limits([-1.0], [1.0, 1.0]), ValueError, ["control_upper", "(1,)", "(2,)"]),
    ("limits_empty", limits(np.zeros(0), np.zeros(0)), ValueError, ["control limits", "m >= 1"]),
    ("limits_complex", limits(np.array([-1j]), np.array([1j])), TypeError, ["control_lower", "complex"]),
    ("limits_bool", limits(np.array([False]), np.array([True])), TypeError, ["control_lower", "bool"]),
    ("limits_str", limits(["a"], ["b"]), TypeError, ["control_lower", "<U1"]),
    ("one_sided_limit_bad_shape", lambda: problem_with(control_upper=1.0), ValueError, ["control_lower", "(m,)"]),
    ("limits_do_not_match_m", solve(problem=ilqg.Problem(dynamics, running_cost, terminal_cost, T, [-1.0, -1.0],
                                                         [1.0, 1.0])),
     ValueError, ["problem.control_lower", "(m,) = (1,)", "(5, 1)", "got shape (2,)"]),
    # --- x0 ---
    ("x0_scalar", solve(x0=1.0), ValueError, ["x0", "shape (n,)", "shape ()"]),
    ("x0_rank_2", solve(x0=X0[None]), ValueError, ["x0", "shape (n,)", "(1, 2)", "vmap"]),
    ("x0_empty", solve(x0=np.zeros(0)), ValueError, ["at least one state", "n = 0"]),
    ("x0_wrong_size_for_dynamics", solve(x0=np.zeros(3)), TypeError,
     ["problem.dynamics failed", "x: (n,) = (3,)", "u: (m,) = (1,)", "from x0"]),
    ("x0_nan", solve(x0=np.array([1.0, np.nan])), ValueError, ["x0 must be finite", "NaN", "[[1]]"]),
    ("x0_inf", solve(x0=np.array([np.inf, 0.0])), ValueError, ["x0 must be finite", "inf", "[[0]]"]),
    ("x0_complex", solve(x0=X0 + 0j), TypeError, ["x0", "real", "complex128"]),
    ("x0_bool", solve(x0=np.array([True, False])), TypeError, ["x0", "bool"]),
    ("x0_object", solve(x0=np.array([1.0, None])), TypeError, ["x0", "object"]),
    ("x0_none", solve(x0=None), TypeError, ["x0", "object"]),
    ("x0_str", solve(x0="1, 0"), TypeError, ["x0", "<U4"]),
    ("x0_ragged", solve(x0=[[1.0], [1.0, 2.0]]), TypeError, ["x0", "array of real numbers", "list"]),
    # --- xs_init (multiple shooting) ---
    ("xs_init_missing_first_row", lambda: ilqg.solve(PROBLEM, X0, US, xs_init=np.zeros((T, N))), ValueError,
     ["xs_init", "(T+1, n)", f"({T + 1}, {N})", f"({T}, {N})"]),
    ("xs_init_wrong_state_size", lambda: ilqg.solve(PROBLEM, X0, US, xs_init=np.zeros((T + 1, N + 1))), ValueError,
     ["xs_init", f"({T + 1}, {N})", f"({T + 1}, {N + 1})"]),
    ("xs_init_nan", lambda: ilqg.solve(PROBLEM, X0, US, xs_init=np.full((T + 1, N), np.nan)), ValueError,
     ["xs_init must be finite", "NaN"]),
    ("xs_init_bool", lambda: ilqg.solve(PROBLEM, X0, US, xs_init=np.zeros((T + 1, N), bool)), TypeError,
     ["xs_init", "bool"]),
    # --- us_init ---
    ("us_init_rank_1", solve(us=np.zeros(T)), ValueError, ["us_init", "(T, m)", "T = problem.horizon = 5", "(5,)",
                                                          "us_init[:, None]"]),
    ("us_init_rank_3", solve(us=np.zeros((T, 1, 1))), ValueError, ["us_init", "(T, m)", "(5, 1, 1)"]),
    ("us_init_length_not_horizon", solve(us=np.zeros((T - 1, M))), ValueError,
     ["us_init", "T = problem.horizon = 5", "(4, 1)", "T = 4"]),
    ("us_init_no_controls", solve(us=np.zeros((T, 0))), ValueError, ["at least one", "control", "m = 0"]),
    ("us_init_nan", solve(us=np.full((T, M), np.nan)), ValueError, ["us_init must be finite", "NaN"]),
    ("us_init_inf", solve(us=np.full((T, M), -np.inf)), ValueError, ["us_init must be finite", "inf"]),
    ("us_init_complex", solve(us=US.astype(np.complex64)), TypeError, ["us_init", "complex64"]),
    ("us_init_bool", solve(us=US.astype(bool)), TypeError, ["us_init", "bool"]),
    # --- params ---
    ("params_str_leaf", solve(params={"mass": 1.0, "name": "pendulum"}), TypeError,
     ["params['name']", "array or a number", "str"]),
    ("params_function_leaf", solve(params=(1.0, jnp.sin)), TypeError, ["params[1]", "array or a number"]),
    # --- what the functions return ---
    ("dynamics_wrong_shape", solve(problem_with(dynamics=lambda x, u, t, p: jnp.concatenate([x, u]))), ValueError,
     ["problem.dynamics", "shape (n,) = (2,)", "shape (3,)"]),
    ("dynamics_returns_list", solve(problem_with(dynamics=lambda x, u, t, p: [x[0], x[1]])), ValueError,
     ["problem.dynamics", "(n,) = (2,)", "list"]),
    ("dynamics_returns_int", solve(problem_with(dynamics=lambda x, u, t, p: jnp.round(x).astype(jnp.int32))),
     TypeError, ["problem.dynamics", "floating", "int32"]),
    ("dynamics_returns_float32_for_float64",
     solve(problem_with(dynamics=lambda x, u, t, p: dynamics(x, u, t, p).astype(jnp.float32))), TypeError,
     ["problem.dynamics", "float64", "float32"]),
    ("dynamics_returns_complex", solve(problem_with(dynamics=lambda x, u, t, p: x * (1 + 1j))), TypeError,
     ["problem.dynamics", "complex128"]),
    ("dynamics_raises", solve(problem_with(dynamics=lambda x, u, t, p: x * p["k"])), TypeError,
     ["problem.dynamics failed", "(n,) = (2,)", "NoneType"]),
    ("dynamics_python_if_on_tracer", solve(problem_with(dynamics=lambda x, u, t, p: x if x[0] > 0 else -x)),
     TypeError, ["problem.dynamics failed", "TracerBoolConversionError"]),
    ("running_cost_vector", solve(problem_with(running_cost=lambda x, u, t, p: x**2)), ValueError,
     ["problem.running_cost", "scalar (shape ())", "shape (2,)"]),
    ("running_cost_shape_1", solve(problem_with(running_cost=lambda x, u, t, p: u**2)), ValueError,
     ["problem.running_cost", "scalar", "shape (1,)"]),
    ("terminal_cost_vector", solve(problem_with(terminal_cost=lambda x, p: x)), ValueError,
     ["problem.terminal_cost", "scalar", "shape (2,)"]),
    ("running_cost_int", solve(problem_with(running_cost=lambda x, u, t, p: 0)), TypeError,
     ["problem.running_cost", "floating", "int", "0.0"]),
    ("terminal_cost_float32_for_float64",
     solve(problem_with(terminal_cost=lambda x, p: (x @ x).astype(jnp.float32))), TypeError,
     ["problem.terminal_cost", "float64", "float32"]),
    ("terminal_cost_raises", solve(problem_with(terminal_cost=lambda x, p: x[0] @ x)), ValueError,
     ["problem.terminal_cost failed", "(n,) = (2,)", "ValueError", "ndim"]),
    # --- options ---
    ("options_dict", solve(options={"max_iter": 10}), TypeError, ["options", "Options", "dict"]),
    ("options_max_iter_negative", options(max_iter=-1), ValueError, ["Options.max_iter", ">= 0", "-1"]),
    ("options_max_iter_float", options(max_iter=10.5), TypeError, ["Options.max_iter", "int", "float"]),
    ("options_max_iter_str", options(max_iter="10"), TypeError, ["Options.max_iter", "int", "str"]),
    ("options_max_iter_bool", options(max_iter=True), TypeError, ["Options.max_iter", "int", "bool"]),
    ("options_tol_zero", options(tol=0.0), ValueError, ["Options.tol", "> 0", "0.0"]),
    ("options_tol_nan", options(tol=float("nan")), ValueError, ["Options.tol", "finite", "nan"]),
    ("options_tol_str", options(tol="1e-6"), TypeError, ["Options.tol", "real number", "str"]),
    ("options_tol_jax_array", options(tol=jnp.array(1e-6)), TypeError, ["Options.tol", "static", "Array"]),
    ("options_mu_factor_one", options(mu_factor=1.0), ValueError, ["Options.mu_factor", "> 1"]),
    ("options_mu_min_above_mu_max", options(mu_min=1.0, mu_max=0.5, mu_init=0.0), ValueError,
     ["mu_min <= mu_max", "mu_min=1.0", "mu_max=0.5"]),
    ("options_mu_init_above_mu_max", options(mu_init=1e11), ValueError,
     ["mu_init <= mu_max", "mu_init=100000000000.0"]),
    ("options_mu_max_inf", options(mu_max=float("inf")), ValueError, ["Options.mu_max", "finite", "inf"]),
    ("options_min_step_zero", options(min_step=0.0), ValueError, ["Options.min_step", "(0, 1]"]),
    ("options_min_step_above_one", options(min_step=2.0), ValueError, ["Options.min_step", "(0, 1]", "2.0"]),
    ("options_line_search_unknown", options(line_search="newton"), ValueError,
     ["Options.line_search", "'backtracking' or 'parallel'", "'newton'"]),
    ("options_line_search_int", options(line_search=1), TypeError, ["Options.line_search", "str", "int"]),
    ("options_backward_unknown", options(backward="fast"), ValueError, ["Options.backward", "'parallel'", "'fast'"]),
    ("options_backward_int", options(backward=1), TypeError, ["Options.backward", "str", "int"]),
    ("options_line_search_steps_zero", options(line_search_steps=0), ValueError,
     ["Options.line_search_steps", ">= 1"]),
    ("options_min_reduction_ratio_one", options(min_reduction_ratio=1.0), ValueError,
     ["Options.min_reduction_ratio", "[0, 1)"]),
    ("options_min_reduction_ratio_negative", options(min_reduction_ratio=-0.1), ValueError,
     ["Options.min_reduction_ratio", "[0, 1)", "-0.1"]),
    ("options_second_order_str", options(second_order="yes"), TypeError, ["Options.second_order", "bool", "str"]),
    ("options_verbose_int", options(verbose=1), TypeError, ["Options.verbose", "bool", "int"]),
    ("options_unroll_zero", options(unroll=0), ValueError, ["Options.unroll", ">= 1"]),
    ("options_constraint_tol_zero", options(constraint_tol=0.0), ValueError, ["Options.constraint_tol", "> 0"]),
    ("options_penalty_factor_one", options(penalty_factor=1.0), ValueError, ["Options.penalty_factor", "> 1"]),
    ("options_penalty_max_below_init", options(penalty_init=10.0, penalty_max=1.0), ValueError,
     ["Options.penalty_max", ">= penalty_init"]),
    ("options_max_outer_zero", options(max_outer=0), ValueError, ["Options.max_outer", ">= 1"]),
    # --- solve_batch ---
    ("batch_x0s_rank_1", batch(x0s=X0), ValueError, ["x0s", "(N, n)", "(2,)"]),
    ("batch_x0s_complex", batch(x0s=np.zeros((3, N), complex)), TypeError, ["x0s", "complex128"]),
    ("batch_us_inits_other_batch_size", batch(us=np.zeros((2, T, M))), ValueError, ["us_inits", "N = 3", "(2, 5, 1)"]),
    ("batch_us_inits_rank_1", batch(us=np.zeros(T)), ValueError, ["us_inits", "(T, m) = (5, m)", "(5,)"]),
    ("batch_params_axis_1", batch(params={"k": np.ones(3)}, params_axis=1), ValueError, ["params_axis", "1"]),
    ("batch_params_without_batch_axis", batch(params={"k": np.ones(2)}, params_axis=0), ValueError,
     ["params['k']", "N = 3", "(2,)"]),
    ("batch_member_nan", batch(x0s=np.array([[0.0, 0.0], [np.nan, 0.0], [1.0, 1.0]])), ValueError,
     ["x0s[1] is not finite", "on_nonfinite='status'"]),
    ("batch_on_nonfinite_unknown", batch(on_nonfinite="skip"), ValueError, ["on_nonfinite", "'skip'"]),
    ("batch_slots_zero", batch(slots=0), ValueError, ["slots", "0"]),
    ("batch_options_wrong", batch(options=ilqg.Options(tol=-1.0)), ValueError, ["Options.tol", "> 0"]),
    ("batch_member_wrong_state_size", batch(x0s=np.zeros((3, 3))), TypeError,
     ["member 0", "problem.dynamics failed", "(n,) = (3,)"]),
    # --- MPC ---
    ("mpc_problem_not_a_problem", lambda: MPC("problem"), TypeError, ["problem", "Problem", "str"]),
    ("mpc_fill_unknown", lambda: MPC(PROBLEM, fill="last"), ValueError, ["fill", "'last'"]),
    ("mpc_feedback_not_bool", lambda: MPC(PROBLEM, feedback="yes"), TypeError, ["feedback", "bool", "str"]),
    ("mpc_options_wrong", lambda: MPC(PROBLEM, ilqg.Options(max_iter=-1)), ValueError, ["Options.max_iter", "-1"]),
    ("mpc_init_x0_nan", lambda: MPC(PROBLEM).init(np.array([np.nan, 0.0]), US), ValueError, ["x0 must be finite"]),
    ("mpc_init_us_init_wrong_horizon", lambda: MPC(PROBLEM).init(X0, np.zeros((T + 1, M))), ValueError,
     ["us_init", "T = problem.horizon = 5", "(6, 1)"]),
    ("mpc_init_plan_guesses_shorter_than_horizon",
     lambda: MPC(PROBLEM).init(X0, np.zeros((2, T - 1, M)), ilqg.Options(max_iter=2)), ValueError,
     ["us_init", "at least the horizon T = 5", "(2, 4, 1)"]),
    ("mpc_init_rehearse_without_options", lambda: MPC(PROBLEM).init(X0, US, rehearse=10), ValueError,
     ["rehearse = 10 needs options"]),
    ("mpc_init_rehearse_negative",
     lambda: MPC(PROBLEM).init(X0, np.zeros((2, T, M)), ilqg.Options(max_iter=2), rehearse=-3), ValueError,
     ["rehearse", "int >= 0", "-3"]),
    ("mpc_init_without_us_init_or_limits", lambda: MPC(PROBLEM).init(X0), ValueError, ["us_init is required"]),
    ("mpc_step_state_wrong_type", lambda: MPC(PROBLEM).step(MPC_STATE._asdict(), X0), TypeError,
     ["state", "MPCState", "dict"]),
    ("mpc_step_x_wrong_shape", lambda: MPC(PROBLEM).step(MPC_STATE, np.zeros(3)), ValueError,
     ["x must have shape (n,) = (2,)", "(3,)"]),
    ("mpc_step_x_nan", lambda: MPC(PROBLEM).step(MPC_STATE, np.array([0.0, np.inf])), ValueError,
     ["x must be finite", "inf"]),
    ("mpc_step_x_bool", lambda: MPC(PROBLEM).step(MPC_STATE, np.array([True, False])), TypeError, ["x", "bool"]),
    ("mpc_simulate_steps_zero", lambda: simulate(MPC(PROBLEM), X0, 0, state=MPC_STATE), ValueError,
     ["steps", ">= 1", "0"]),
    ("mpc_simulate_steps_float", lambda: simulate(MPC(PROBLEM), X0, 2.0, state=MPC_STATE), ValueError,
     ["steps", "2.0"]),
    ("mpc_simulate_plant_not_callable", lambda: simulate(MPC(PROBLEM), X0, 3, plant="env", state=MPC_STATE),
     TypeError, ["plant", "callable", "str"]),
    ("mpc_simulate_disturbances_wrong_shape",
     lambda: simulate(MPC(PROBLEM), X0, 3, disturbances=np.zeros((3, 3)), state=MPC_STATE), ValueError,
     ["disturbances", "(steps, n) = (3, 2)", "(3, 3)"]),
    ("mpc_simulate_disturbances_nan",
     lambda: simulate(MPC(PROBLEM), X0, 3, disturbances=np.full((3, 2), np.nan), state=MPC_STATE), ValueError,
     ["disturbances must be finite", "NaN"]),
]


@pytest.mark.parametrize("thunk,exception,fragments", [pytest.param(*row[1:], id=row[0]) for row in HOSTILE])
def test_hostile_input_raises_a_clear_error(thunk, exception, fragments):
    with pytest.raises(exception) as info:
        thunk()
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


# --- What is accepted, and how it is converted ---------------------------------------------------------


@pytest.mark.parametrize("x0,us,expected", [
    (np.array([1, 0]), np.zeros((T, M), np.int64), jnp.result_type(float)),  # integers -> default float
    (np.array([1, 0]), np.zeros((T, M), np.float32), np.float32),  # integers -> the other argument's float
    (np.array([1.0, 0.0], np.float16), np.zeros((T, M), np.float16), np.float32),  # half -> float32
    (np.array([1.0, 0.0], np.float32), np.zeros((T, M), np.float64), np.float64),  # mixed -> the wider
    ([1.0, 0.0], [[0.0]] * T, np.float64),  # nested lists
    (jnp.array([1.0, 0.0], jnp.bfloat16), jnp.zeros((T, M), jnp.float32), np.float32),
], ids=["int", "int_with_float32", "float16", "float32_with_float64", "lists", "bfloat16"])
def test_dtype_policy(x0, us, expected):
    x0_out, us_out = validate_inputs(PROBLEM, x0, us)
    assert x0_out.dtype == expected and us_out.dtype == expected
    np.testing.assert_array_equal(x0_out, np.asarray(x0, np.float64))


def test_float_dtype_of_limits_and_integers():
    p = ilqg.Problem(dynamics, running_cost, terminal_cost, T, [-1], [1])  # integer limits
    assert p.control_lower.dtype == jnp.result_type(float)
    p32 = ilqg.Problem(dynamics, running_cost, terminal_cost, T, np.float32([-1]), np.float32([1]))
    assert p32.control_lower.dtype == np.float32  # floats keep their precision
    assert float_dtype(np.dtype(np.int8)) == jnp.result_type(float)


def test_accepted_edge_cases():
    assert problem_with(horizon=np.int64(3)).horizon == 3 and isinstance(problem_with(horizon=np.int64(3)).horizon, int)
    lo, hi = check_bounds([-np.inf, 0.0], [np.inf, 0.0])  # open sides and a fixed control are fine
    np.testing.assert_array_equal(lo, [-np.inf, 0.0])
    upper_only = problem_with(control_upper=[2.0])
    np.testing.assert_array_equal(upper_only.control_lower, [-np.inf])
    lower_only = problem_with(control_lower=[-2.0])
    np.testing.assert_array_equal(lower_only.control_upper, [np.inf])
    validate_options(ilqg.Options(max_iter=np.int64(5), tol=np.float32(1e-6), mu_init=0.0))
    validate_options(ilqg.Options(max_iter=0))
    # us_init outside the limits is not an error: the solver clips it.
    validate_inputs(LIMITED, X0, np.full((T, M), 5.0))


def test_function_checks_are_cached_per_signature():
    traces = []

    def counting(x, u, t, p):
        traces.append(1)
        return dynamics(x, u, t, p)

    problem = problem_with(dynamics=counting)
    validate_inputs(problem, X0, US)
    validate_inputs(problem, X0 + 1.0, US + 1.0)  # same shapes and dtypes: no new trace
    assert len(traces) == 1
    validate_inputs(problem, X0.astype(np.float32), US.astype(np.float32))  # another dtype: checked again
    assert len(traces) == 2


# --- Under jit, vmap and grad: tracers get the shape checks only ------------------------------------------


def test_validation_accepts_tracers_and_checks_only_their_shapes():
    check = lambda x0: validate_inputs(PROBLEM, x0, US)[0]  # noqa: E731
    nan_x0 = jnp.array([jnp.nan, 0.0])
    np.testing.assert_array_equal(jax.jit(check)(nan_x0), nan_x0)  # a value inside jit is not checked
    assert jax.vmap(check)(jnp.ones((4, N))).shape == (4, N)
    np.testing.assert_array_equal(jax.grad(lambda x0: jnp.sum(check(x0)))(X0), np.ones(N))
    with pytest.raises(ValueError, match=r"x0 must have shape \(n,\)"):
        jax.jit(check)(jnp.ones((1, N)))  # shapes are still checked


def test_problem_with_traced_limits():
    make_problem = lambda lo: ilqg.Problem(dynamics, running_cost, terminal_cost, T, lo, lo + 1.0)  # noqa: E731
    assert jax.jit(lambda lo: make_problem(lo).control_upper)(jnp.zeros(1)).shape == (1,)
    with pytest.raises(ValueError, match=r"control_lower must have shape \(m,\), got shape \(1, 1\)"):
        jax.jit(make_problem)(jnp.zeros((1, 1)))
    # JAX's own reconstructions (in_axes specs, batched limits) are not validated as user input.
    axes = jax.tree.map(lambda _: 0, LIMITED)
    batched = jax.tree.map(lambda a: jnp.stack([a, a]), LIMITED)
    assert axes.control_lower == 0 and batched.control_lower.shape == (2, 1)


@pytest.mark.parametrize("transform", ["jit", "vmap", "grad", "float32_with_float64_limits", "integers"])
def test_solve_traces_under_transforms(transform):
    """The public solve traces end to end (``jax.eval_shape``: the whole solver, no compilation)."""
    if transform == "jit":
        out = jax.eval_shape(jax.jit(lambda x0, lo: ilqg.solve(
            ilqg.Problem(dynamics, running_cost, terminal_cost, T, lo, -lo), x0, US)), X0, -jnp.ones(1))
        assert out.us.shape == (T, M)
    elif transform == "vmap":
        out = jax.eval_shape(jax.vmap(lambda x0: ilqg.solve(LIMITED, x0, US)), jnp.ones((3, N)))
        assert out.xs.shape == (3, T + 1, N) and out.status.shape == (3,)
    elif transform == "grad":
        out = jax.eval_shape(jax.grad(lambda x0: ilqg.solve(PROBLEM, x0, US).cost), X0)
        assert out.shape == (N,)
    elif transform == "float32_with_float64_limits":
        out = jax.eval_shape(lambda: ilqg.solve(LIMITED, X0.astype(np.float32), US.astype(np.float32)))
        assert LIMITED.control_lower.dtype == jnp.float64 and out.xs.dtype == out.us.dtype == jnp.float32
    else:
        out = jax.eval_shape(lambda: ilqg.solve(PROBLEM, np.array([1, 0]), np.zeros((T, M), int)))
        assert out.xs.dtype == out.us.dtype == out.cost.dtype == jnp.result_type(float)
