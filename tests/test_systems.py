"""Specifications of the ready-made systems: two-link arm, cart-pole, acrobot.

Oracles, all independent of the modules under test:
  * the equations of motion are re-derived here from first principles: the
    kinetic energy from the velocities of the centres of mass and the link
    rotations, the potential energy from their heights; Lagrange's equations
    by automatic differentiation;
  * energy is conserved by the exact flow, so by RK4 at a small step;
  * equilibria are where gravity's torque vanishes;
  * the ready problems are judged by their physical goal (hand on target,
    pole/links upright), not by a cost value.
"""

import functools

import jax

jax.config.update("jax_enable_x64", True)

import chex  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from jax import lax  # noqa: E402

from ilqg_jax.problem import Problem  # noqa: E402
from ilqg_jax.systems import acrobot, angles, cartpole, integrators, two_link_arm  # noqa: E402


# ---------------------------------------------------------------------------
# The oracle: Lagrangian mechanics from first principles.
#
# Each model below lists its rigid bodies as (mass, moment of inertia about the
# centre of mass, centre-of-mass position r(q): (2,), angle phi(q)); the
# generalised forces are (actuation matrix) @ u - (friction) @ qdot.
# ---------------------------------------------------------------------------

def _unit_from_x_axis(a):  # the arm: angles from the x-axis, counter-clockwise
    return jnp.array([jnp.cos(a), jnp.sin(a)])


def _unit_from_up(a):  # cart-pole, acrobot: angles from the upward vertical, clockwise
    return jnp.array([jnp.sin(a), jnp.cos(a)])


def arm_bodies(q, p):
    # Li & Todorov's I1, I2 are about the joints (a1 = I1 + I2 + m2 l1^2), so
    # the inertias about the centres of mass follow from the parallel-axis theorem.
    return [
        (p.m1, p.I1 - p.m1 * p.s1 ** 2, p.s1 * _unit_from_x_axis(q[0]), q[0]),
        (p.m2, p.I2 - p.m2 * p.s2 ** 2,
         p.l1 * _unit_from_x_axis(q[0]) + p.s2 * _unit_from_x_axis(q[0] + q[1]), q[0] + q[1]),
    ]


def cartpole_bodies(q, p):
    return [
        (p.cart_mass, 0.0, jnp.array([q[0], 0.0]), 0.0 * q[0]),
        (p.pole_mass, p.pole_inertia, jnp.array([q[0], 0.0]) + p.pole_com * _unit_from_up(q[1]), q[1]),
    ]


def acrobot_bodies(q, p):
    return [
        (p.m1, p.I1 - p.m1 * p.lc1 ** 2, p.lc1 * _unit_from_up(q[0]), q[0]),
        (p.m2, p.I2 - p.m2 * p.lc2 ** 2,
         p.l1 * _unit_from_up(q[0]) + p.lc2 * _unit_from_up(q[0] + q[1]), q[0] + q[1]),
    ]


MODELS = {
    # name: (module, bodies, gravity(p), actuation matrix, friction(p))
    "two_link_arm": (two_link_arm, arm_bodies, lambda p: 0.0, np.eye(2), lambda p: p.B),
    "cartpole": (cartpole, cartpole_bodies, lambda p: p.gravity, np.array([[1.0], [0.0]]),
                 lambda p: jnp.zeros((2, 2))),
    "acrobot": (acrobot, acrobot_bodies, lambda p: p.gravity, np.array([[0.0], [1.0]]),
                lambda p: jnp.zeros((2, 2))),
}
SYSTEMS = sorted(MODELS)


def kinetic(name, q, qdot, p):
    def pose(q):
        return [(r, phi) for _, _, r, phi in MODELS[name][1](q, p)]

    _, velocities = jax.jvp(pose, (q,), (qdot,))
    total = 0.0
    for (m, inertia, _, _), (v, omega) in zip(MODELS[name][1](q, p), velocities):
        total = total + 0.5 * m * v @ v + 0.5 * inertia * omega ** 2
    return total


def potential(name, q, p):
    g = MODELS[name][2](p)
    return sum(g * m * r[1] for m, _, r, _ in MODELS[name][1](q, p))


def lagrangian_acceleration(name, x, u, p):
    """qddot = M^-1 (tau + dL/dq - (d^2 L / dqdot dq) qdot - friction qdot), M = d^2 T / dqdot^2."""
    _, _, _, actuation, friction = MODELS[name]
    q, qdot = x[:2], x[2:]

    def lagrangian(q, qdot):
        return kinetic(name, q, qdot, p) - potential(name, q, p)

    M = jax.hessian(kinetic, argnums=2)(name, q, qdot, p)
    dL_dq = jax.grad(lagrangian, 0)(q, qdot)
    mixed = jax.jacfwd(jax.grad(lagrangian, 1), 0)(q, qdot)
    tau = jnp.asarray(actuation) @ u - friction(p) @ qdot
    return jnp.linalg.solve(M, tau + dL_dq - mixed @ qdot)


def random_states(seed, count=20):
    k1, k2, k3 = jax.random.split(jax.random.PRNGKey(seed), 3)
    q = jax.random.uniform(k1, (count, 2), minval=-jnp.pi, maxval=jnp.pi)
    qdot = 2.0 * jax.random.normal(k2, (count, 2))
    u = 3.0 * jax.random.normal(k3, (count, 2))
    return jnp.concatenate([q, qdot], axis=1), u


def frictionless(name, p):
    return p._replace(B=jnp.zeros((2, 2))) if name == "two_link_arm" else p


def simulate(dynamics, x0, p, steps, m):
    def step(x, _):
        x = dynamics(x, jnp.zeros(m), 0, p)
        return x, x

    _, xs = lax.scan(step, x0, None, length=steps)
    return jnp.vstack([x0[None], xs])


# ---------------------------------------------------------------------------
# Dynamics against the Lagrangian oracle.
# ---------------------------------------------------------------------------

def perturbed_params(p, seed, count):
    """``count`` copies of ``p`` with every leaf scaled by a random factor in [0.95, 1.05]."""
    leaves, tree = jax.tree_util.tree_flatten(p)
    keys = jax.random.split(jax.random.PRNGKey(seed), len(leaves))
    scaled = [leaf * jax.random.uniform(k, (count,) + leaf.shape, minval=0.95, maxval=1.05)
              for leaf, k in zip(leaves, keys)]
    return jax.tree_util.tree_unflatten(tree, scaled)


@pytest.mark.parametrize("name", SYSTEMS)
def test_dynamics_match_lagrangian_oracle(name):
    # 20 random states, controls and parameter sets (vmapped over all three),
    # and the derivative along a random parameter direction (params are a
    # differentiable pytree).
    module, _, _, actuation, _ = MODELS[name]
    seed = SYSTEMS.index(name)
    xs, us = random_states(seed)
    us = us[:, :actuation.shape[1]]
    ps = perturbed_params(module.default_params(), seed, len(xs))
    tangent = jax.tree_util.tree_map(lambda a: a[::-1] - a, ps)

    @jax.jit
    @jax.vmap
    def both(x, u, p, dp):
        mine = jax.jvp(lambda p: module.continuous_dynamics(x, u, p), (p,), (dp,))
        oracle = jax.jvp(lambda p: lagrangian_acceleration(name, x, u, p), (p,), (dp,))
        return mine, oracle

    (got, dgot), (want, dwant) = both(xs, us, ps, tangent)
    chex.assert_trees_all_close(got[:, :2], xs[:, 2:], rtol=0, atol=0)
    chex.assert_trees_all_close((got[:, 2:], dgot[:, 2:]), (want, dwant), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", SYSTEMS)
def test_energy_helpers_match_oracle(name):
    module = MODELS[name][0]
    p = module.default_params()
    xs, _ = random_states(seed=10 + SYSTEMS.index(name))

    @jax.jit
    @jax.vmap
    def both(x):
        T, V = kinetic(name, x[:2], x[2:], p), potential(name, x[:2], p)
        mine = (module.kinetic_energy(x, p), module.potential_energy(x, p), module.energy(x, p))
        return mine, (T, V + 0.0 * T, T + V)

    mine, oracle = both(xs)
    chex.assert_trees_all_close(mine, oracle, rtol=1e-12, atol=1e-12)


def test_arm_matches_li_todorov_coefficients():
    # The paper's a1, a2, a3 at its parameters, by hand: a1 = 0.025 + 0.045 + 1.1 * 0.09,
    # a2 = 1.1 * 0.3 * 0.16, a3 = 0.045; M at th2 = 0 and th2 = pi/2.
    p = two_link_arm.default_params()
    a1, a2, a3 = 0.169, 0.0528, 0.045
    mass = jax.jit(lambda q: jax.hessian(kinetic, argnums=2)("two_link_arm", q, jnp.zeros(2), p))
    for th2, c in ((0.0, 1.0), (jnp.pi / 2, 0.0)):
        chex.assert_trees_all_close(mass(jnp.array([0.3, th2])),
                                    jnp.array([[a1 + 2 * a2 * c, a3 + a2 * c], [a3 + a2 * c, a3]]),
                                    atol=1e-12)


def test_hand_position_at_known_postures():
    p = two_link_arm.default_params()
    reach_ = 0.3 + 0.33
    for q, want in (((0.0, 0.0), (reach_, 0.0)), ((jnp.pi / 2, 0.0), (0.0, reach_)),
                    ((0.0, jnp.pi / 2), (0.3, 0.33)), ((0.0, jnp.pi), (0.3 - 0.33, 0.0))):
        x = jnp.array([q[0], q[1], 0.0, 0.0])
        chex.assert_trees_all_close(two_link_arm.hand_position(x, p), jnp.array(want), atol=1e-12)


# ---------------------------------------------------------------------------
# Energy: conserved by the flow (checked with RK4), bounded under symplectic Euler.
# ---------------------------------------------------------------------------

@functools.partial(jax.jit, static_argnames=("name", "method"))
def energy_run(name, method, x0, p, dt, steps):
    """Integrates ``steps`` steps of ``dt`` from ``x0`` with ``u = 0``.

    Returns ``(max_t |E_t - E_0|, max_t (E_{t+1} - E_t))`` relative to the
    largest kinetic energy on the way (the energy that sloshes around).
    """
    module, _, _, actuation, _ = MODELS[name]
    step = integrators.METHODS[method]
    u = jnp.zeros(actuation.shape[1])
    E0 = module.energy(x0, p)

    def body(_, carry):
        x, E, err, ke, rise = carry
        x = step(module.continuous_dynamics, x, u, p, dt)
        E_next = module.energy(x, p)
        return (x, E_next, jnp.maximum(err, jnp.abs(E_next - E0)),
                jnp.maximum(ke, module.kinetic_energy(x, p)), jnp.maximum(rise, E_next - E))

    init = (x0, E0, 0.0 * E0, module.kinetic_energy(x0, p), -jnp.inf + 0.0 * E0)
    _, _, err, ke, rise = lax.fori_loop(0, steps, body, init)
    return err / ke, rise / ke


def energy_drift(name, method, dt, seconds, seed):
    module = MODELS[name][0]
    xs, _ = random_states(seed, count=1)
    p = frictionless(name, module.default_params())
    return float(energy_run(name, method, xs[0], p, dt, int(round(seconds / dt)))[0])


@pytest.mark.parametrize("name", SYSTEMS)
def test_rk4_conserves_energy_without_control_or_friction(name):
    drift = energy_drift(name, "rk4", dt=1e-3, seconds=3.0, seed=20 + SYSTEMS.index(name))
    assert drift < 1e-8, drift


def _pendulum(x, u, params):  # constant mass matrix: a separable Hamiltonian
    return jnp.array([x[1], -params * jnp.sin(x[0]) + u[0]])


def _pendulum_energy(x, params):
    return 0.5 * x[1] ** 2 - params * jnp.cos(x[0])


def test_semi_implicit_euler_energy_error_stays_bounded_for_constant_mass_matrix():
    # Symplectic: the energy error oscillates at O(dt) and does not grow over
    # 100 periods, while explicit Euler keeps pumping energy in.
    x0, g, dt = jnp.array([2.0, 0.0]), 9.81, 0.01
    errors = {}
    for method in ("semi_implicit_euler", "euler"):
        traj = simulate(integrators.discretize(_pendulum, dt, method), x0, g, 20000, 1)
        E = jax.vmap(_pendulum_energy, (0, None))(traj, g)
        errors[method] = np.asarray(jnp.abs(E - E[0]) / g)
    semi, explicit = errors["semi_implicit_euler"], errors["euler"]
    tenth = len(semi) // 10
    assert semi.max() < 0.05, semi.max()
    assert semi[-tenth:].max() < 1.1 * semi[:tenth].max(), (semi[:tenth].max(), semi[-tenth:].max())
    assert explicit[-1] > 10 * semi.max(), explicit[-1]


@pytest.mark.parametrize("name", SYSTEMS)
def test_semi_implicit_euler_energy_error_is_first_order(name):
    # With a configuration-dependent mass matrix the velocity-form scheme is not
    # symplectic, so only a bound is promised: the energy error over a second
    # is O(dt) -- small at dt = 1 ms, halved when dt is halved.
    seed = 30 + SYSTEMS.index(name)
    coarse, fine = (energy_drift(name, "semi_implicit_euler", dt=dt, seconds=1.0, seed=seed)
                    for dt in (1e-3, 5e-4))
    assert coarse < 2e-2, coarse
    assert 1.8 < coarse / fine < 2.2, (coarse, fine)


def test_arm_friction_only_dissipates():
    p = two_link_arm.default_params()
    xs, _ = random_states(seed=40, count=1)
    loss, rise = energy_run("two_link_arm", "rk4", xs[0], p, 1e-3, 2000)
    assert rise <= 0.0 and loss > 0.1, (rise, loss)  # never gains energy; loses a good part of it
    # dE/dt = -qdot' B qdot.
    dE = jax.jvp(lambda x: two_link_arm.energy(x, p), (xs[0],),
                 (two_link_arm.continuous_dynamics(xs[0], jnp.zeros(2), p),))[1]
    np.testing.assert_allclose(dE, -xs[0, 2:] @ p.B @ xs[0, 2:], rtol=1e-12)


# ---------------------------------------------------------------------------
# Integrators on systems with a known answer.
# ---------------------------------------------------------------------------

def _linear(x, u, params):
    return params @ x + jnp.concatenate([jnp.zeros(1), u])


def test_rk4_is_fourth_order_on_a_harmonic_oscillator():
    # x'' = -4 x, exactly x(t) = x0 cos 2t + v0 sin(2t) / 2. The local error of
    # one step is O(dt^5): halving dt divides it by 2^5 = 32.
    A = jnp.array([[0.0, 1.0], [-4.0, 0.0]])
    x0 = jnp.array([1.0, -0.5])
    step = jax.jit(lambda dt: integrators.rk4_step(_linear, x0, jnp.zeros(1), A, dt))

    def exact(dt):
        c, s = np.cos(2 * dt), np.sin(2 * dt)
        return np.array([[c, s / 2], [-2 * s, c]]) @ np.asarray(x0)

    errors = [float(np.linalg.norm(step(dt) - exact(dt))) for dt in (0.1, 0.05)]
    assert 28.0 < errors[0] / errors[1] < 36.0, errors


def test_semi_implicit_euler_is_symplectic_for_a_pendulum():
    # A constant mass matrix: the one-step map must preserve area, det J = 1.
    step = integrators.discretize(_pendulum, 0.1, "semi_implicit_euler")
    for x in (jnp.array([0.3, -1.0]), jnp.array([2.5, 3.0])):
        J = jax.jacfwd(step)(x, jnp.array([0.7]), 0, 9.81)
        np.testing.assert_allclose(jnp.linalg.det(J), 1.0, atol=1e-12)
    J = jax.jacfwd(integrators.discretize(_pendulum, 0.1, "euler"))(x, jnp.array([0.7]), 0, 9.81)
    assert abs(jnp.linalg.det(J) - 1.0) > 1e-3  # explicit Euler is not


def test_discretize_validates_and_compares_by_value():
    f = cartpole.continuous_dynamics
    assert integrators.discretize(f, 0.05) == integrators.discretize(f, 0.05)
    a, b = cartpole.swing_up(), cartpole.swing_up()
    assert (a.dynamics, a.running_cost, a.terminal_cost) == (b.dynamics, b.running_cost, b.terminal_cost)
    assert hash(a.running_cost) == hash(b.running_cost)  # static under jit: one compilation for both
    with pytest.raises(ValueError, match="method"):
        integrators.discretize(f, 0.05, "midpoint")
    with pytest.raises(ValueError, match="dt"):
        integrators.discretize(f, 0.0)


# ---------------------------------------------------------------------------
# Equilibria.
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("name, hanging, upright", [
    ("cartpole", [0.7, jnp.pi, 0.0, 0.0], [-0.4, 0.0, 0.0, 0.0]),
    ("acrobot", [jnp.pi, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]),
])
def test_hanging_is_stable_and_upright_unstable_equilibrium(name, hanging, upright):
    module, _, _, actuation, _ = MODELS[name]
    p = module.default_params()
    u = jnp.zeros(actuation.shape[1])

    @jax.jit
    @jax.vmap
    def check(x):
        # xdot, the oracle's gravity torque dV/dq (zero at an equilibrium), and the linearisation
        return (module.continuous_dynamics(x, u, p), jax.grad(potential, 1)(name, x[:2], p),
                jax.jacfwd(module.continuous_dynamics)(x, u, p))

    xdot, dV, A = check(jnp.array([hanging, upright]))
    chex.assert_trees_all_close((xdot, dV), (jnp.zeros((2, 4)), jnp.zeros((2, 2))), atol=1e-12)
    eig_down, eig_up = np.linalg.eigvals(np.asarray(A[0])), np.linalg.eigvals(np.asarray(A[1]))
    assert eig_down.real.max() < 1e-9  # marginally stable (no friction)
    assert eig_up.real.max() > 1.0  # a fast unstable mode


def test_arm_at_rest_with_zero_torque_stays_at_rest():
    p = two_link_arm.default_params()
    step = two_link_arm.dynamics()
    qs = jax.random.uniform(jax.random.PRNGKey(50), (20, 2), minval=-jnp.pi, maxval=jnp.pi)
    xs = jnp.concatenate([qs, jnp.zeros((20, 2))], axis=1)
    xdot, x_next = jax.jit(jax.vmap(
        lambda x: (two_link_arm.continuous_dynamics(x, jnp.zeros(2), p), step(x, jnp.zeros(2), 0, p))))(xs)
    chex.assert_trees_all_close((xdot, x_next), (jnp.zeros((20, 4)), xs), atol=0, rtol=0)


def test_angle_costs_are_periodic_and_quadratic_near_target():
    theta = jnp.array([0.01, 0.01 + 2 * jnp.pi, -0.01 - 4 * jnp.pi])
    np.testing.assert_allclose(angles.angle_cost(theta), 0.5 * 0.01 ** 2, rtol=1e-4)
    np.testing.assert_allclose(angles.wrap(theta), [0.01, 0.01, -0.01], atol=1e-12)
    w = jnp.array([2.0, 3.0])
    np.testing.assert_allclose(
        angles.periodic_quadratic(jnp.array([0.2, 0.2 + 2 * jnp.pi]), jnp.zeros(2), w, (False, True)),
        2.0 * 0.04 + 3.0 * 2.0 * (1 - jnp.cos(0.2)), rtol=1e-12)


# ---------------------------------------------------------------------------
# Ready problems, solved by ilqg_jax.solver.
# ---------------------------------------------------------------------------

def solve_ready(module, problem, params, options=None):
    from ilqg_jax.solver import Options, solve

    assert isinstance(problem, Problem)
    x0 = module.initial_state(jnp.float64)
    us0 = module.initial_controls(problem.horizon, jnp.float64)
    sol = solve(problem, x0, us0, params, options or Options())
    assert bool(sol.converged), (sol.status, sol.iterations)
    assert jnp.all(jnp.isfinite(sol.xs)) and jnp.all(jnp.isfinite(sol.us))
    chex.assert_trees_all_close(sol.xs[0], x0)
    assert jnp.all(sol.us >= problem.control_lower) and jnp.all(sol.us <= problem.control_upper)
    return sol


def test_arm_reach_puts_hand_within_1cm_of_target():
    p = two_link_arm.default_params()
    sol = solve_ready(two_link_arm, two_link_arm.reach(), p)
    miss = jnp.linalg.norm(two_link_arm.hand_position(sol.xs[-1], p) - jnp.array(two_link_arm.DEFAULT_TARGET))
    assert miss < 0.01, miss
    assert jnp.max(jnp.abs(sol.xs[-1, 2:])) < 0.1  # nearly at rest, rad/s


def test_cartpole_swings_up_and_returns_to_centre():
    p = cartpole.default_params()
    sol = solve_ready(cartpole, cartpole.swing_up(), p)
    xT = sol.xs[-1]
    assert abs(angles.wrap(xT[1])) < 0.05, xT  # upright within ~3 degrees
    assert abs(xT[0]) < 0.05, xT  # cart within 5 cm of the centre
    assert jnp.max(jnp.abs(xT[2:])) < 0.1, xT  # and nearly at rest


def test_acrobot_swings_up():
    p = acrobot.default_params()
    sol = solve_ready(acrobot, acrobot.swing_up(), p)
    xT = sol.xs[-1]
    assert jnp.max(jnp.abs(angles.wrap(xT[:2]))) < 0.05, xT  # both links upright within ~3 degrees
    assert jnp.max(jnp.abs(xT[2:])) < 0.2, xT  # and nearly at rest


# ---------------------------------------------------------------------------
# The unicycle: Crocoddyl's ActionModelUnicycle, reproduced.
# ---------------------------------------------------------------------------

def _unicycle_samples(seed, count=20):
    rng = np.random.default_rng(seed)
    return 2.0 * rng.standard_normal((count, 3)), 2.0 * rng.standard_normal((count, 2))


def test_unicycle_follows_known_motions():
    from ilqg_jax.systems import unicycle

    step, dt = unicycle.dynamics(), unicycle.DT
    x = jnp.array([0.3, -0.2, 0.7])
    # Straight ahead at v for 10 steps: the heading is fixed, so the position moves by 10 dt v along it.
    straight = lax.fori_loop(0, 10, lambda i, s: step(s, jnp.array([2.0, 0.0]), i, None), x)
    chex.assert_trees_all_close(straight, x + 10 * dt * 2.0 * jnp.array([jnp.cos(0.7), jnp.sin(0.7), 0.0]),
                                atol=1e-14)
    # Turning on the spot: the heading advances by dt w per step; standing still changes nothing.
    chex.assert_trees_all_close(step(x, jnp.array([0.0, 3.0]), 0, None), x + jnp.array([0.0, 0.0, dt * 3.0]),
                                atol=1e-15)
    chex.assert_trees_all_close(step(x, jnp.zeros(2), 0, None), x, atol=0.0)


def test_unicycle_costs_are_crocoddyls_formula_with_weights_as_params():
    from ilqg_jax.systems import unicycle

    x, u = jnp.array([1.0, -2.0, 0.5]), jnp.array([0.3, -1.0])
    assert float(unicycle.running_cost(x, u, 0)) == pytest.approx(0.5 * (100 * 5.25 + 1.09), rel=1e-15)
    assert float(unicycle.terminal_cost(x)) == pytest.approx(0.5 * 100 * 5.25, rel=1e-15)
    w = unicycle.UnicycleParams(state_weight=2.0, control_weight=3.0)
    assert float(unicycle.running_cost(x, u, 0, w)) == pytest.approx(0.5 * (4 * 5.25 + 9 * 1.09), rel=1e-15)
    assert float(unicycle.terminal_cost(x, w)) == pytest.approx(0.5 * 4 * 5.25, rel=1e-15)


def test_unicycle_matches_crocoddyl_values_and_derivatives():
    crocoddyl = pytest.importorskip("crocoddyl")
    from ilqg_jax.systems import unicycle

    model = crocoddyl.ActionModelUnicycle()
    data = model.createData()
    step, params = unicycle.dynamics(), unicycle.default_params()
    for x, u in zip(*_unicycle_samples(0)):
        model.calc(data, x, u)
        model.calcDiff(data, x, u)
        xj, uj = jnp.asarray(x), jnp.asarray(u)
        chex.assert_trees_all_close(step(xj, uj, 0, params), data.xnext, rtol=0, atol=1e-14)
        assert float(unicycle.running_cost(xj, uj, 0, params)) == pytest.approx(data.cost, rel=1e-14)
        fx, fu = jax.jacfwd(step, argnums=(0, 1))(xj, uj, 0, params)
        chex.assert_trees_all_close((fx, fu), (data.Fx, data.Fu), rtol=0, atol=1e-14)
        lxx, luu = (jax.hessian(unicycle.running_cost, argnums=k)(xj, uj, 0, params) for k in (0, 1))
        chex.assert_trees_all_close((lxx, luu), (data.Lxx, data.Luu), rtol=1e-14, atol=1e-14)
        model.calc(data, x)   # Crocoddyl's terminal model: the same action model called without a control
        assert float(unicycle.terminal_cost(xj, params)) == pytest.approx(data.cost, rel=1e-14)


def test_unicycle_task_reaches_the_origin_with_crocoddyls_optimal_cost():
    from ilqg_jax.solver import solve
    from ilqg_jax.systems import get_task

    task = get_task("unicycle")
    sol = solve(task.problem, task.x0, task.us_init, task.params)
    assert bool(sol.converged) and task.success(sol.xs), (sol.status, sol.xs[-1])
    crocoddyl = pytest.importorskip("crocoddyl")
    model = crocoddyl.ActionModelUnicycle()
    problem = crocoddyl.ShootingProblem(np.asarray(task.x0), [model] * task.problem.horizon, model)
    solver = crocoddyl.SolverFDDP(problem)
    assert solver.solve([], [], 200)
    assert float(sol.cost) == pytest.approx(solver.cost, rel=1e-6)
