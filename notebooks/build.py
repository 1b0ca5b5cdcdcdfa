"""Generates the notebooks in this folder from code, so that they can be reviewed as code.

    python notebooks/build.py           # (re)write every notebook, without outputs
    python notebooks/build.py --check   # exit 1 if a stored notebook differs from what this writes

Each notebook is a list of markdown and code cells below. The notebooks read
``ILQG_NOTEBOOK_SMALL=1`` (set by ``tests/test_notebooks.py``) to use smaller
problem sizes, so that CI can execute them top to bottom in a couple of minutes.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent


def md(text: str):
    return new_markdown_cell(textwrap.dedent(text).strip("\n"))


def code(text: str):
    return new_code_cell(textwrap.dedent(text).strip("\n"))


SETUP = '''
import os
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Image, display

jax.config.update("jax_enable_x64", True)   # float64 throughout (the derivative comparisons need it)

import ilqg_jax as ilqg
from ilqg_jax import viz

SMALL = os.environ.get("ILQG_NOTEBOOK_SMALL") == "1"   # CI runs the notebooks with smaller sizes
%matplotlib inline
plt.rcParams["figure.dpi"] = 80
'''


# --------------------------------------------------------------------------------------------------
# 01: the seed walkthrough
# --------------------------------------------------------------------------------------------------

def seed_walkthrough():
    return [
        md(r"""
        # 1 · The seed notebook, done right

        This project started from a research notebook: iLQG on gym's pendulum, with derivatives
        by finite differences. It never converged — its last line of output was

        ```
        lamb > lamb_max. Dit not converge!
        ```

        Here is the same pendulum, the same model and the same cost weights. First each of its
        bugs is measured, one at a time; then `ilqg_jax.solve` converges on the seed's own
        problem, we look at *what* that optimum is, and finally solve a well-posed swing-up.
        """),
        code(SETUP + '''
from ilqg_jax.backward import backward_pass
from ilqg_jax.solver import closed_loop_rollout
from ilqg_jax.systems import get_task, pendulum
'''),
        md(r"""
        ## The problem

        A uniform rod of mass $m = 1$ kg and length $l = 1$ m, $g = 10$ m/s², angle $\theta$ from
        upright ($\theta = \pi$ hanging), torque $u$ at the pivot:

        $$\ddot\theta = \frac{3g}{2l}\sin\theta + \frac{3}{ml^2}\,u ,$$

        stepped with semi-implicit Euler at $\Delta t = 0.05$ s, the torque clipped to ±8 N m and
        the speed to ±2 rad/s *inside* the dynamics. Horizon $T = 100$ steps (5 s) from
        $x_0 = (\pi, 0)$, and the seed's cost:

        $$J = \sum_{t=0}^{T-1} 0.01\,u_t^2 \;+\; (1-\cos\theta_T)^2 + 0.1\,\dot\theta_T^2 .$$

        `pendulum.seed_problem()` is exactly this. The seed started from random torques
        `np.random.randn(T, 1)`; we do the same, with a fixed seed.
        """),
        code('''
problem = pendulum.seed_problem()
T, dt = problem.horizon, pendulum.SEED_DT
x0 = jnp.array([jnp.pi, 0.0])
us_rand = jnp.asarray(np.random.default_rng(0).standard_normal((T, 1)))
xs_rand = ilqg.derivatives.rollout(problem.dynamics, x0, us_rand)
cost_rand = float(ilqg.derivatives.trajectory_cost(problem, xs_rand, us_rand))
print(f"cost of the random initial torques: {cost_rand:.3f}")
'''),
        md(r"""
        (The seed printed a cost of 399 for its random torques. This model cannot cost more
        than about 5.5 — the terminal term is at most $4 + 0.1\cdot 2^2$ and the effort of
        $\mathcal N(0,1)$ torques about 1 — so the `env` the seed simulated was not quite the
        `dynamics` it differentiated. Here one function does both.)

        ## Where the seed went wrong

        ### 1. Derivatives: finite differences vs automatic differentiation

        The seed took central differences with $\varepsilon = 10^{-8}$; `ilqg_jax` uses
        `jax.jacfwd`, exact to rounding. The error of the seed's central differences of the
        Jacobian $[f_x\; f_u]$ along the random trajectory, against the step size:
        """),
        code('''
ad = ilqg.derivatives.trajectory_derivatives(problem, xs_rand, us_rand)
J_ad = jnp.concatenate([ad.fx, ad.fu], axis=2)                     # (T, n, n + m)

def fd_jacobian(x, u, eps):
    """The seed's central differences: column i is (f(z + eps e_i) - f(z - eps e_i)) / (2 eps)."""
    z = jnp.concatenate([x, u])
    f = jax.vmap(lambda z: problem.dynamics(z[:2], z[2:], 0, None))
    E = eps * jnp.eye(z.shape[0], dtype=z.dtype)
    return ((f(z + E) - f(z - E)) / (2 * eps)).T                      # (n, n + m)

fd_trajectory = jax.jit(jax.vmap(jax.vmap(fd_jacobian, (0, 0, None)), (None, None, 0)))   # over eps, time
steps = np.logspace(-12, -1, 12 if SMALL else 23)
fig, ax = plt.subplots(figsize=(6, 3.8))
for dtype in (jnp.float64, jnp.float32):
    J_fd = fd_trajectory(xs_rand[:-1].astype(dtype), us_rand.astype(dtype), jnp.asarray(steps, dtype))
    err = jnp.max(jnp.abs(J_fd - J_ad), axis=(1, 2, 3)) / jnp.max(jnp.abs(J_ad))
    ax.loglog(steps, err, "o-", ms=3, label=jnp.dtype(dtype).name)
ax.axvline(1e-8, color="k", ls=":", label="seed's ε = 1e-8")
ax.set(xlabel="finite-difference step ε", ylabel="max |J_FD − J_AD| / max |J_AD|",
       title="Central differences of the seed dynamics vs jax.jacfwd")
ax.legend()
plt.show()
'''),
        md(r"""
        The V is the usual trade-off: truncation error $O(\varepsilon^2)$ on the right, rounding
        error $O(\epsilon_{\text{mach}}/\varepsilon)$ on the left. In float64 the seed's
        $\varepsilon = 10^{-8}$ costs about eight digits — not why it failed (in float32 the same
        step returns noise). What finite differences and AD share is the clipping: wherever
        the speed clip is active, $\partial\dot\theta_{t+1}/\partial u_t = 0$ — the model tells
        the optimizer that torque cannot change the speed. We will meet this again below.

        ### 2. A discrete Jacobian made "discrete" a second time

        `dynamics(x, u)` already returns $x_{t+1}$, so $f_x = \partial x_{t+1}/\partial x_t$. The
        seed stored $I + f_x\,\Delta t$ and $f_u\,\Delta t$, the Euler step of a *continuous*
        model. From our exact Jacobian at $x_0$ this reproduces, digit for digit, what the seed
        printed (`[[1.048125, 0.0025], [-0.0375, 1.05]]`):
        """),
        code('''
fx0 = ad.fx[0]
seed_fx0 = jnp.eye(2) + fx0 * dt
print("f_x (exact):\\n", fx0)
print("I + f_x dt (the seed's):\\n", seed_fx0)
print("|eigenvalues|: exact", jnp.abs(jnp.linalg.eigvals(fx0)), " seed's", jnp.abs(jnp.linalg.eigvals(seed_fx0)))
'''),
        md(r"""
        The hanging pendulum is stable — the exact eigenvalues lie on the unit circle (the
        semi-implicit step conserves phase-space area) — but the seed's model grows by 4.9 % a
        step, about $1.049^{100} \approx 120\times$ over the horizon, and turns 20 times too
        slowly. Propagating a 0.1 rad nudge of $\theta_0$ through the three models:
        """),
        code('''
def propagate(A, dx0):
    def step(dx, A_t):
        return A_t @ dx, A_t @ dx
    return jnp.concatenate([dx0[None], jax.lax.scan(step, dx0, A)[1]])

dx0 = jnp.array([0.1, 0.0])
nonlinear = ilqg.derivatives.rollout(problem.dynamics, x0 + dx0, us_rand) - xs_rand
t = np.arange(T + 1) * dt
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.semilogy(t, jnp.linalg.norm(nonlinear, axis=1), lw=3, alpha=0.5, label="nonlinear model")
ax.semilogy(t, jnp.linalg.norm(propagate(ad.fx, dx0), axis=1), "--", label="exact Jacobian $f_x$")
ax.semilogy(t, jnp.linalg.norm(propagate(jnp.eye(2) + ad.fx * dt, dx0), axis=1), label="seed's $I + f_x Δt$")
ax.set(xlabel="time (s)", ylabel="‖δx‖ (rad, rad/s)", title="A 0.1 rad perturbation of θ₀, propagated")
ax.legend()
plt.show()
'''),
        md(r"""
        ### 3. $Q_{uu}^{-1}$: an SVD that cannot see negative curvature, applied elementwise

        The seed inverted $Q_{uu}$ by SVD, zeroed negative singular values, added $\lambda$, and
        then multiplied `-Quu_inv * Qux` **elementwise**. With one control $Q_{uu}$ is $1\times1$
        and the elementwise product equals the matrix product — harmless here, wrong for any
        system with two controls:
        """),
        code('''
Quu2 = np.array([[2.0, 0.9], [0.9, 1.0]])           # a positive definite Quu for two controls
Qux2 = np.array([[1.0, 0.5, 0.0], [0.0, 1.0, 2.0]])
U, S, V = np.linalg.svd(Quu2)
seed_inv = U @ np.diag(1.0 / S) @ V.T
print("K, seed (elementwise):\\n", -seed_inv * Qux2[:, :2], "\\nK, true:\\n", -np.linalg.solve(Quu2, Qux2)[:, :2])
'''),
        md(r"""
        For the pendulum the part that bites is the clamp `S[S < 0] = 0`: singular values are
        never negative, so it never fires. $Q_{uu}$ *is* negative on this problem — the terminal
        cost $(1-\cos\theta)^2$ is at its **maximum** hanging down ($l_{xx} = -4$ there) — and the
        seed's "inverse" of $Q_{uu} = -a$ is $-1/(a+\lambda)$: the step $k = -Q_{uu}^{-1}Q_u$
        points **uphill**, and raising $\lambda$ only shortens it. A Cholesky factorisation
        of $Q_{uu} + \mu I$ fails instead, and the solver raises $\mu$ until it succeeds.
        The library's backward pass on the random trajectory, for a range of $\mu$ at once:
        """),
        code('''
def scale_cost(d, c):
    """Cost derivatives times c (the seed used c = dt)."""
    return d._replace(lx=c * d.lx, lu=c * d.lu, lxx=c * d.lxx, luu=c * d.luu, lux=c * d.lux)

backward_over_mu = jax.jit(jax.vmap(backward_pass, (None, 0)))
mus = jnp.concatenate([jnp.zeros(1), jnp.logspace(-1, 3, 9 if SMALL else 17)])
bw_mu, bw_mu_seed = backward_over_mu(ad, mus), backward_over_mu(scale_cost(ad, dt), mus)
for mu, ok in list(zip(mus, bw_mu.ok))[:4]:
    print(f"mu = {float(mu):5.2f}: Cholesky of Quu + mu I succeeded at every step: {bool(ok)}")
'''),
        md(r"""
        ### 4. Cost derivatives scaled by $\Delta t$, the cost not

        The seed multiplied $l_x, l_u, l_{xx}, l_{uu}, l_{ux}$ by $\Delta t$ but summed the cost
        unscaled. Scaling *every* cost derivative by $c$ leaves $K = -Q_{uu}^{-1}Q_{ux}$ and
        $k$ unchanged — except through the regularisation: $(cQ_{uu} + \lambda)^{-1}cQ_u =
        (Q_{uu} + \lambda/c)^{-1}Q_u$. So the scaling silently multiplied $\lambda$ by
        $1/\Delta t = 20$, on top of a starting $\lambda = 1$ that already dwarfed
        $l_{uu}\Delta t = 0.001$:
        """),
        code('''
def step_norm(bw):
    """|k| over the horizon; NaN where Quu + mu I was not positive definite."""
    return np.where(bw.ok, np.linalg.norm(bw.k, axis=(1, 2)), np.nan)

fig, ax = plt.subplots(figsize=(6, 3.5))
ax.loglog(mus, step_norm(bw_mu), "o-", ms=3, label="cost derivatives as they are")
ax.loglog(mus, step_norm(bw_mu_seed), "s-", ms=3, label="× Δt (the seed)")
ax.axvline(1.0, color="k", ls=":", label="seed's initial λ = 1")
ax.set(xlabel="regularisation μ (λ in the seed)", ylabel="‖k‖ over the horizon (N m)",
       title="First step: Δt-scaled derivatives = 20× more regularisation")
ax.legend()
plt.show()
at_1 = int(np.argmin(np.abs(np.asarray(mus) - 1.0)))
print(f"at lambda = 1 the seed's first step is {step_norm(bw_mu)[at_1] / step_norm(bw_mu_seed)[at_1]:.0f} times shorter")
'''),
        md(r"""
        (Missing points are values of $\mu$ at which $Q_{uu} + \mu I$ is not positive definite —
        point 3.)

        ### 5. The value update

        The seed updated $V_x = Q_x - K^\top Q_{uu} k$, $V_{xx} = Q_{xx} - K^\top Q_{uu} K$, which is
        right only when $K, k$ come from the *unregularised* $Q_{uu}$. With regularised gains the
        value of the policy $\delta u = k + K\delta x$ actually applied is (Tassa et al. 2012, eq. 11)

        $$V_x = Q_x + K^\top Q_{uu}k + K^\top Q_u + Q_{ux}^\top k, \qquad
          V_{xx} = Q_{xx} + K^\top Q_{uu}K + K^\top Q_{ux} + Q_{ux}^\top K .$$

        An independent check: $V_x$ is the gradient, at $\delta x = 0$, of the quadratic model
        $Q(\delta x, k + K\delta x)$ — which `jax.grad` computes without any formula. At the
        last step of the random trajectory:
        """),
        code('''
d = jax.tree_util.tree_map(np.asarray, ad)
Vx_T, Vxx_T = d.lx[T], d.lxx[T]                        # terminal cost expansion
fx, fu = d.fx[T - 1], d.fu[T - 1]
Qx, Qu = d.lx[T - 1] + fx.T @ Vx_T, d.lu[T - 1] + fu.T @ Vx_T
Qxx, Quu, Qux = d.lxx[T - 1] + fx.T @ Vxx_T @ fx, d.luu[T - 1] + fu.T @ Vxx_T @ fu, d.lux[T - 1] + fu.T @ Vxx_T @ fx

@jax.jit
def value_gradient(K, k):
    """Oracle: d/d(dx) of Q(dx, k + K dx) at dx = 0."""
    def q_model(dx):
        du = k + K @ dx
        return Qx @ dx + Qu @ du + 0.5 * dx @ Qxx @ dx + 0.5 * du @ Quu @ du + du @ Qux @ dx
    return jax.grad(q_model)(jnp.zeros(2))

for mu in (0.0, 0.01, 1.0):
    K = -np.linalg.solve(Quu + mu * np.eye(1), Qux)
    k = -np.linalg.solve(Quu + mu * np.eye(1), Qu)
    oracle = np.asarray(value_gradient(K, k))
    seed = Qx - K.T @ Quu @ k
    tassa = Qx + K.T @ Quu @ k + K.T @ Qu + Qux.T @ k
    print(f"mu = {mu:4}:  |error| seed {np.linalg.norm(seed - oracle):.1e}   "
          f"Tassa {np.linalg.norm(tassa - oracle):.1e}   (|Vx| = {np.linalg.norm(oracle):.3f})")
'''),
        md(r"""
        ### 6. $K x$ instead of $K(x - \bar x)$, and no re-simulation

        The seed's new controls were `pi[i] + k[i] + K[i] @ trajectory[i]`: the feedback gain
        times the *old state itself*, not the deviation from it, and never simulated. Its
        own printout shows the size of that: $K_0 = [-42.51, -3.24]$ and $\bar x_0 = [\pi, 0]$
        give a "correction" of
        """),
        code('''
K0_seed, x0_seed = np.array([-42.51047564, -3.24080289]), np.array([np.pi, 0.0])
print(f"K_0 x_0 = {K0_seed @ x0_seed:.1f} N m   (the right correction at t = 0, K_0 (x_0 - x_0), is 0)")
'''),
        md(r"""
        — clipped to −8 N m by the dynamics. The forward pass must re-simulate,
        $u_t = \bar u_t + \alpha k_t + K_t(x_t - \bar x_t)$ with $x_{t+1} = f(x_t, u_t)$, so that the
        feedback corrects for where the new controls actually take the state, and accept the
        step only if the cost goes down ($\alpha$ halved otherwise). With the gains of a correct
        backward pass ($\mu = 1$) on the random trajectory, one update each way:
        """),
        code('''
bw = jax.tree_util.tree_map(lambda a: a[at_1], bw_mu)                             # mu = 1
us_open = us_rand + bw.k + jnp.einsum("tmn,tn->tm", bw.K, xs_rand[:-1])          # the seed's update
cost_open = ilqg.derivatives.trajectory_cost(problem, ilqg.derivatives.rollout(problem.dynamics, x0, us_open), us_open)
_, _, cost_closed = closed_loop_rollout(problem, x0, xs_rand, us_rand, bw.K, bw.k, 1.0)
print(f"cost before: {cost_rand:.4f}   seed's update: {float(cost_open):.4f}   "
      f"closed loop: {float(cost_closed):.4f}   (predicted: {cost_rand + float(bw.dV.sum()):.4f})")
'''),
        md(r"""
        The closed-loop step achieves the decrease the quadratic model predicted; the seed's
        update gets about a quarter of it even with correct gains. With its own gains (the
        −134 N m above) the update made the cost worse — its loop printed `new_cost > cost`,
        multiplied $\lambda$ by 5, and gave up once $\lambda > 1000$.

        ## The fixed solver on the seed's problem

        `ilqg.solve` is the seed's algorithm with all six fixed (and a Levenberg–Marquardt
        schedule on $\mu$ with a backtracking line search, Tassa et al. 2012). Same problem,
        same random start:
        """),
        code('''
sol = ilqg.solve(problem, x0, us_rand)
t0 = time.perf_counter(); ilqg.solve(problem, x0, us_rand).cost.block_until_ready(); elapsed = time.perf_counter() - t0
print(f"{ilqg.Status(int(sol.status)).name} after {int(sol.iterations)} iterations, cost {float(sol.cost):.4f} "
      f"(from {cost_rand:.4f}), {1e3 * elapsed:.0f} ms once compiled")
fig = viz.plot_history(sol.history, sol.iterations, title="Seed problem: convergence")
'''),
        md(r"""
        It stops within a few dozen iterations. The status is honest about what it could
        prove: with the seed's speed clip the cost is not smooth where the optimum rides the
        limit, so the solver may only be able to say that the cost stopped moving (`STALLED`)
        rather than certify a stationary point (`CONVERGED`). But look at where it ends:
        """),
        code('''
theta_T, effort = float(sol.xs[-1, 0]), float(0.01 * jnp.sum(sol.us ** 2))
terminal = float(pendulum.seed_terminal_cost(sol.xs[-1]))
print(f"final angle {theta_T:.2f} rad = {np.degrees(theta_T):.0f}° from upright; "
      f"effort {effort:.2f} + terminal {terminal:.2f} = {float(sol.cost):.2f}")
print(f"speed clip active at {int(jnp.sum(jnp.abs(sol.xs[1:, 1]) >= 2.0))} of {T} steps")
fig = viz.plot_trajectory(sol.xs, sol.us, dt, state_labels=("angle θ (rad)", "velocity θ̇ (rad/s)"),
                          control_labels=("torque u (N m)",), control_limits=([-8.0], [8.0]),
                          reference=[0.0, 0.0], title="Seed problem: the optimum stops short of upright")
'''),
        md(r"""
        The rod ends below horizontal, and that is an optimum of the problem as posed, not a
        failure of the solver. There is no state cost along the way, so only the end matters,
        and the terminal term is at most $(1-\cos\pi)^2 = 4$: hanging still costs 4. The
        optimum pumps a swing with small torques, but the speed clip at 2 rad/s caps the
        kinetic energy at $ml^2\omega^2/6 = 0.67$ J — enough to rise about 30° from hanging,
        against the $mgl = 10$ J needed to reach upright. The rest of the climb must be *pushed*
        against gravity's $5\sin\theta$ N m, step after step, at $0.01u^2$ a step. Getting
        close to upright costs more effort than the terminal penalty it saves.

        Weighting the terminal cost by $w$ shows the trade-off. A problem of our own, with $w$
        as its `params` — traced, so every $w$ reuses one compiled solver:
        """),
        code('''
def seed_dynamics(x, u, t, w):
    return pendulum.seed_dynamics(x, u, t)

def effort_cost(x, u, t, w):
    return 0.01 * jnp.sum(u ** 2)

def weighted_terminal(x, w):
    return w * pendulum.seed_terminal_cost(x)

weighted = ilqg.Problem(seed_dynamics, effort_cost, weighted_terminal, T)
ws = np.logspace(-1, 2, 4 if SMALL else 7)
solutions = [ilqg.solve(weighted, x0, us_rand, w, ilqg.Options(max_iter=200)) for w in ws]  # compiled once
sweep = jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves), *solutions)
efforts = 0.01 * jnp.sum(sweep.us ** 2, axis=(1, 2))
terminals = jax.vmap(pendulum.seed_terminal_cost)(sweep.xs[:, -1])

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 3.5))
ax1.semilogx(ws, np.degrees(np.abs(sweep.xs[:, -1, 0])), "o-")
ax1.set(xlabel="terminal weight w", ylabel="final |θ_T| (degrees from upright)", title="Where the rod ends")
ax2.semilogx(ws, efforts, "o-", label="effort  Σ 0.01 u²")
ax2.semilogx(ws, terminals, "s-", label="terminal (1 − cos θ_T)² + 0.1 θ̇_T²")
ax2.axhline(4.0, color="k", ls=":", label="terminal cost hanging still")
ax2.set(xlabel="terminal weight w", ylabel="cost (unweighted)", title="What it costs")
for ax in (ax1, ax2):
    ax.axvline(1.0, color="0.6", lw=1)
ax2.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0))
fig.tight_layout()
plt.show()
print("status per w:", [ilqg.Status(int(s)).name for s in sweep.status])
'''),
        md(r"""
        At $w = 1$ (grey line, the seed) the solver stops where the marginal effort equals the
        marginal terminal saving. To end near upright the effort rises above 4 — more than
        the whole terminal penalty at $w = 1$. At large $w$ the solves also need many more
        iterations (and may hit `MAX_ITER`): once the speed is at the clip, its derivative
        with respect to the torque is zero, so the quadratic models see no way to go faster.
        The problem, not the solver, needs fixing.

        ## A well-posed swing-up

        `pendulum.swing_up()` keeps the model but drops the clips (a torque limit, if wanted, is a
        box constraint the solver handles exactly) and puts a cost on the way, not only at the
        end:

        $$J = \sum_t \Delta t\left(q_\theta(1-\cos\theta_t) + \tfrac12 q_{\dot\theta}\dot\theta_t^2
              + \tfrac12 r u_t^2\right) + q_f(1-\cos\theta_T) + \tfrac12 q_{f\dot\theta}\dot\theta_T^2$$

        with $q_\theta = 1$, $q_{\dot\theta} = 0.1$, $r = 0.1$, $q_f = 100$, $q_{f\dot\theta} = 10$.
        With `Options(verbose=True)` the solver prints one line per iteration:
        """),
        code('''
task = get_task("pendulum")
swing = ilqg.solve(task.problem, task.x0, task.us_init, task.params, ilqg.Options(verbose=True))
print(f"\\nupright at t = {T * dt:.0f} s: {task.success(swing.xs)}  ({task.goal})")
'''),
        code('''
fig = viz.plot_history(swing.history, swing.iterations, title="Swing-up: convergence")
fig = viz.plot_trajectory(swing.xs, swing.us, task.dt, task.state_labels, task.control_labels,
                          reference=[0.0, 0.0], title="Swing-up from hanging to upright")
'''),
        md(r"""
        The log shows the schedule at work: $\mu$ starts at `mu_init` $= 1$ (a backward pass
        that fails is run again at a larger $\mu$ within the same iteration, and a step the
        line search rejects raises it for the next); it falls after every accepted step to
        zero, and then with full steps
        ($\alpha = 1$) the expected decrease shrinks about tenfold per iteration until it is
        below the tolerance. The torque first swings the rod *away* to gain energy, then brings
        it over the top and brakes.
        """),
        code('''
gif = viz.animation_gif(swing.xs, task.points, task.dt, extent=task.extent, title="iLQG swing-up",
                        frames=12 if SMALL else 40)
display(Image(data=gif, format="gif"))
'''),
        md(r"""
        **Next:** [02 · batches](02_batch.ipynb) solves thousands of these at once,
        [03 · differentiable](03_differentiable.ipynb) takes gradients through the solver, and
        [04 · systems](04_systems.ipynb) solves the arm, the cart-pole and the acrobot.
        """),
    ]


# --------------------------------------------------------------------------------------------------
# 02: batches
# --------------------------------------------------------------------------------------------------

def batch():
    return [
        md(r"""
        # 2 · Thousands of swing-ups in one call

        `solve_batch(problem, x0s, us_inits, params=None, options=..., sharding=None)` solves one
        problem from every row of `x0s` in a single compiled program. Each member is solved
        exactly as `ilqg.solve` would solve it — same iterations, same result, its own status —
        and the batch is split over all devices when there are several (`sharding`).

        The question here: **from which initial states can a 2 N m motor bring the pendulum
        upright within 1.5 s?** Gravity exerts up to 5 N m on the horizontal rod, so the motor
        cannot simply lift it; it has to use or pump the rod's energy.
        """),
        code(SETUP + """
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from ilqg_jax.batch import solve_batch
from ilqg_jax.systems import get_task, pendulum

print("devices:", jax.devices())
"""),
        md(r"""
        ## One call, a grid of initial states

        The task `pendulum-limited` is the swing-up of notebook 1 with $|u| \le 2$ N m (a box
        constraint, handled by the projected-Newton QP of Tassa et al. 2014); a horizon of 30
        steps makes it 1.5 s. Every member starts from the same small random torques.
        """),
        code("""
task = get_task("pendulum-limited", horizon=30)
n = 24 if SMALL else 64                                   # grid points per axis
thetas, omegas = np.linspace(-np.pi, np.pi, n), np.linspace(-6.0, 6.0, n)
TH, OM = np.meshgrid(thetas, omegas)
x0s = jnp.stack([TH.ravel(), OM.ravel()], axis=1)         # (N, 2)

t0 = time.perf_counter()
sol = solve_batch(task.problem, x0s, task.us_init, task.params)
sol.cost.block_until_ready()
first = time.perf_counter() - t0
t0 = time.perf_counter()
sol = solve_batch(task.problem, x0s, task.us_init, task.params)
sol.cost.block_until_ready()
again = time.perf_counter() - t0
N = x0s.shape[0]
print(f"{N} problems: first call {first:.1f} s (with compilation), again {again:.2f} s = {1e3 * again / N:.2f} ms per problem")
print("xs:", sol.xs.shape, " us:", sol.us.shape, " K:", sol.K.shape)
statuses = np.bincount(np.asarray(sol.status), minlength=len(ilqg.Status))
print("status:", {s.name: int(c) for s, c in zip(ilqg.Status, statuses)})
print(f"iterations: mean {float(sol.iterations.mean()):.1f}, max {int(sol.iterations.max())}")
"""),
        md(r"""
        ## The basin map

        A member succeeds when it ends upright ($|\theta_T| < 0.05$ rad, $|\dot\theta_T| < 0.1$ rad/s).
        The dashed curve is the energy of the upright rod at rest, $E = mgl$: states on it
        coast to the top by themselves (the separatrix).
        """),
        code("""
success = pendulum.upright(sol.xs[:, -1])
fig = viz.basin_map(x0s, success, labels=("initial angle θ₀ (rad)", "initial velocity θ̇₀ (rad/s)"),
                    grid_shape=(n, n),
                    title=f"Upright within 1.5 s with |u| ≤ 2 N m: {float(success.mean()):.0%} of {N} states")
ax = fig.axes[0]
E = pendulum.energy(jnp.stack([TH, OM], axis=-1))
ax.contour(TH, OM, E, levels=[pendulum.energy(jnp.zeros(2))], colors="k", linestyles="--")
handles = [Patch(color=plt.get_cmap("RdYlGn")(1.0), label="upright at 1.5 s"),
           Patch(color=plt.get_cmap("RdYlGn")(0.0), label="not upright"),
           Line2D([], [], color="k", ls="--", label="separatrix E = m g l")]
ax.legend(handles=handles, loc="upper right", fontsize=8, framealpha=0.9)
plt.show()
"""),
        md(r"""
        The basin is a band around the separatrix: states with about the energy of the upright
        rod, moving toward it. The rod hanging at rest ($\theta_0 = \pm\pi$, $\dot\theta_0 = 0$)
        is far outside — it needs several swings to pump 10 J with 2 N m, more than 1.5 s allows.
        Isolated failures inside the band are local minima: iLQG is a local method, and from a
        few states the same initial torques lead it to a worse swing. (Notebook 1 solved the
        hanging start with no torque limit and 5 s.)

        ## Throughput vs batch size

        The same problem from random initial states, timed after a first (compiling) call for
        each batch size, against a Python loop of single compiled `ilqg.solve` calls.
        """),
        code("""
rng = np.random.default_rng(0)
def random_states(N):
    return jnp.asarray(np.stack([rng.uniform(-np.pi, np.pi, N), rng.uniform(-6, 6, N)], axis=1))

def best_time(fn, repeats=2):
    fn()                                                  # compile (once per shape)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter(); fn(); times.append(time.perf_counter() - t0)
    return min(times)

loop_states = random_states(8 if SMALL else 32)
def loop():
    for x0 in loop_states:
        ilqg.solve(task.problem, x0, task.us_init, task.params).cost.block_until_ready()
loop_rate = len(loop_states) / best_time(loop)

sizes = [N] if SMALL else [16, 64, 256, 1024, 4096]
rates = []
for size in sizes:
    states = x0s if size == N else random_states(size)
    run = lambda: solve_batch(task.problem, states, task.us_init, task.params).cost.block_until_ready()
    rates.append(size / best_time(run, repeats=1 if size >= 1024 else 2))
    print(f"batch of {size:5d}: {rates[-1]:8.0f} problems/s")
print(f"loop of single solves: {loop_rate:8.0f} problems/s")

fig, ax = plt.subplots(figsize=(6, 3.8))
ax.loglog(sizes, rates, "o-", label="solve_batch")
ax.axhline(loop_rate, color="C1", ls="--", label="loop of ilqg.solve")
ax.set(xlabel="batch size N (problems)", ylabel="throughput (problems/s)",
       title=f"Pendulum swing-up, T = {task.problem.horizon}, on {jax.devices()[0].platform.upper()}")
ax.legend()
plt.show()
"""),
        md(r"""
        On a CPU the batch wins by keeping the work of many members in one program: no Python
        between iterations, one line-search rollout for all members that accept the full
        step, and finished members replaced by new ones (`slots`) so that a slow member does
        not hold the others up. On a GPU the same call runs all members at once. The numbers
        above are from whatever machine ran this notebook; `benchmarks/` has the measured
        tables.
        """),
    ]


# --------------------------------------------------------------------------------------------------
# 03: differentiable
# --------------------------------------------------------------------------------------------------

def differentiable():
    return [
        md(r"""
        # 3 · Gradients through the solver

        At a local optimum the trajectory $(x^*, u^*)$ is a function of the initial state $x_0$ and
        of the parameters $p$ (model and cost weights), defined implicitly by the optimality
        conditions $\nabla_z L(z; x_0, p) = 0$ of the Lagrangian in $z = (x, u, \lambda)$. By the
        implicit function theorem

        $$\frac{dz^*}{dp} = -\left(\nabla^2_{zz} L\right)^{-1} \nabla^2_{zp} L ,$$

        and $\nabla^2_{zz}L$ is the KKT matrix of a time-varying LQR problem, so one Riccati sweep
        solves it (Amos et al. 2018). `jax.grad` of anything computed from `ilqg.solve(...)`
        uses exactly that — it never differentiates through the iterations.

        This notebook checks those gradients against finite differences of re-solves, then
        uses them to learn cost weights from demonstrations.
        """),
        code(SETUP + """
from ilqg_jax.solver import closed_loop_rollout
from ilqg_jax.systems import get_task, pendulum
"""),
        md(r"""
        ## Gradients vs finite differences of re-solves

        The well-posed swing-up of notebook 1. Its parameters `SwingUpParams` hold the model
        ($g, m, l$) and the five cost weights. Two functions of the optimum: the optimal cost
        $J^*$ and the control effort $E = \Delta t\sum_t u_t^{*2}$, differentiated with respect to
        $x_0$ and every parameter in one reverse-mode call (`jax.jacrev`, i.e. `jax.grad` of each).
        """),
        code("""
task = get_task("pendulum")
problem, x0, dt = task.problem, task.x0, task.dt
params = pendulum.swing_up_params()
options = ilqg.Options(tol=1e-12)                     # tight: the finite differences below need it
sol = ilqg.solve(problem, x0, task.us_init, params, options)
print(ilqg.Status(int(sol.status)).name, int(sol.iterations), "iterations, cost", float(sol.cost))

@jax.jit
def warm_start(x0, p):
    \"\"\"Controls of the optimum's feedback policy u = u* + K (x - x*), simulated from x0 with params p.\"\"\"
    return closed_loop_rollout(problem, x0, sol.xs, sol.us, sol.K, sol.k, 0.0, params=p)[1]

def resolve(x0, p):
    \"\"\"Re-solves from a nearby x0 or p, warm-started on the same optimum.\"\"\"
    return ilqg.solve(problem, x0, warm_start(x0, p), p, options)

def effort_and_cost(x0, p):
    s = resolve(x0, p)
    return jnp.stack([dt * jnp.sum(s.us ** 2), s.cost])

def effort(x0, p):
    return effort_and_cost(x0, p)[0]

def optimal_cost(x0, p):
    return effort_and_cost(x0, p)[1]

t0 = time.perf_counter()
d_x0, d_p = jax.jit(jax.jacrev(effort_and_cost, argnums=(0, 1)))(x0, params)   # rows: effort, J*
g_x0, g_cost = d_x0
g_p = jax.tree_util.tree_map(lambda a: a[0], d_p)
print(f"jax.jacrev of (effort, J*) w.r.t. (x0, params), compiled and run: {time.perf_counter() - t0:.1f} s")
"""),
        md(r"""
        Central differences of re-solves, $\big(E(p + h e_i) - E(p - h e_i)\big)/2h$ with
        $h = 10^{-2}\max(|p_i|, 0.1)$, one parameter at a time (why so large: below). Each re-solve is warm-started by the optimum's
        feedback policy $u = u^* + K(x - x^*)$, not by replaying $u^*$: the swing-up ends at the
        unstable upright, where replayed open-loop torques drift away from a perturbed start
        ($e^{\sqrt{15}\,t}$, about $10^5$ over 3 s) and the re-solve can land on another
        local optimum.
        """),
        code("""
def central(f, x0, p, leaf, h):
    \"\"\"d f / d(leaf) by central differences; `leaf` selects one scalar of (x0, params).\"\"\"
    def shifted(delta):
        return float(f(*leaf(x0, p, delta)))
    return (shifted(h) - shifted(-h)) / (2 * h)

def nudge_param(name, sub=None):
    def leaf(x0, p, delta):
        if sub is None:
            return x0, p._replace(**{name: getattr(p, name) + delta})
        return x0, p._replace(**{name: getattr(p, name)._replace(**{sub: getattr(getattr(p, name), sub) + delta})})
    return leaf

def nudge_x0(i):
    return lambda x0, p, delta: (x0.at[i].add(delta), p)

rows = [("x0[0] = θ0", x0[0], g_x0[0], nudge_x0(0)), ("x0[1] = θ̇0", x0[1], g_x0[1], nudge_x0(1))]
rows += [(f"model.{k}", getattr(params.model, k), getattr(g_p.model, k), nudge_param("model", k)) for k in ("g", "m", "l")]
rows += [(k, getattr(params, k), getattr(g_p, k), nudge_param(k))
         for k in ("q_angle", "q_velocity", "r_torque", "qf_angle", "qf_velocity")]
scale = max(abs(float(g)) for _, _, g, _ in rows)
print(f"{'d effort / d':>14} {'jax.grad':>13} {'finite diff.':>13} {'|difference|':>12} {'relative':>9}")
for name, value, g, leaf in rows:
    fd = central(effort, x0, params, leaf, 1e-2 * max(abs(float(value)), 0.1))
    diff = abs(float(g) - fd)
    print(f"{name:>14} {float(g):13.6e} {fd:13.6e} {diff:12.1e} {diff / max(abs(fd), 1e-6 * scale):9.1e}")
"""),
        md(r"""
        (The terminal weights barely matter: the optimum ends exactly upright, where the
        terminal cost's gradient is zero whatever its weight.) The differences are those of the
        finite differences. A central difference has $O(h^2)$ truncation error, plus the
        re-solves' error divided by $h$ — and a re-solve stops once its Newton step is below
        `Options.stationarity_tol` relative to the controls, so its optimum is only that
        accurate: for small $h$ that error, divided by $h$, dominates. For the rod's mass:
        """),
        code("""
hs = np.logspace(-7, -1, 7 if SMALL else 13)
leaf_m = nudge_param("model", "m")
errors = [abs(central(effort, x0, params, leaf_m, h) - float(g_p.model.m)) / abs(float(g_p.model.m)) for h in hs]
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.loglog(hs, errors, "o-")
ax.set(xlabel="finite-difference step h (kg)", ylabel="|FD − jax.grad| / |jax.grad|",
       title="d effort / d mass: finite differences of re-solves vs implicit gradient")
plt.show()
"""),
        md(r"""
        Large steps agree with the implicit gradient to the truncation error; small steps
        measure the re-solves' stopping tolerance. The implicit gradient has neither problem: it is one linear
        solve at the returned optimum.
        """),
        md(r"""
        The optimal cost obeys the envelope theorem, $dJ^*/dx_0 = \lambda_0$ (the costate, i.e.
        $V_x$ at $t = 0$): the gradient needs no linear solve at all.
        """),
        code("""
fd_cost = [central(optimal_cost, x0, params, nudge_x0(i), 1e-5) for i in range(2)]
print("dJ*/dx0  jax.grad:", np.asarray(g_cost), "  finite differences:", np.round(fd_cost, 8))
"""),
        md(r"""
        ## Learning cost weights from demonstrations

        An expert controls the pendulum optimally for a rod mass $m$ and running weights
        $q_\theta$ (angle) and $r$ (torque) that we do not know. From a few demonstrated
        trajectories $(x^d, u^d)$ we fit $\theta = (m, q_\theta, r)$ by gradient descent (optax's
        Adam, on $\log\theta$) on the imitation loss

        $$\mathcal L(\theta) = \frac{1}{D}\sum_{d}\Big(\overline{|x^*_t(\theta) - x^{d}_t|^2}
          + \overline{|u^*_t(\theta) - u^{d}_t|^2}\Big),$$

        where $x^*(\theta), u^*(\theta)$ is the optimum for the guessed parameters: every Adam
        step solves the demonstrations' problems and differentiates through the solutions.
        Cost weights matter only up to a common scale, so the other weights are taken as
        known; seeing the torques as well as the states separates the mass from the torque
        weight. `examples/inverse_optimal_control.py` implements this (its docstring has the
        details); we run it:
        """),
        code("""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(ilqg.__file__).resolve().parents[1] / "examples"))
import inverse_optimal_control as ioc

result = ioc.main(steps=20 if SMALL else 150, quiet=True)
print(f"{len(result['losses'])} Adam steps in {result['seconds']:.1f} s (including compilation); "
      f"every solve converged: {result['all_converged']}")
print(f"{'':10} {'initial':>9} {'recovered':>9} {'true':>9}")
for k in result["true"]:
    print(f"{k:10} {result['initial'][k]:9.4f} {result['recovered'][k]:9.4f} {result['true'][k]:9.4f}")
"""),
        code("""
names = list(result["true"])
fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
axes[0].semilogy(result["losses"])
axes[0].set(xlabel="Adam step", ylabel="imitation loss (mixed units²)", title="Imitation loss")
for j, (label, values) in enumerate([("initial guess", result["initial"]), ("recovered", result["recovered"])]):
    axes[1].bar(np.arange(len(names)) + 0.35 * (j - 0.5), [values[k] / result["true"][k] for k in names],
                width=0.35, label=label)
axes[1].axhline(1.0, color="k", ls="--", lw=1, label="true value")
axes[1].set_xticks(np.arange(len(names)), names)
axes[1].set(ylabel="value / true value", title="Parameters, relative to the truth")
axes[1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
fig.tight_layout()
plt.show()
"""),
        code("""
ratio = {key: result[key]["q_angle"] / result[key]["r_torque"] for key in ("initial", "recovered", "true")}
print("q_angle / r_torque:", {k: round(v, 2) for k, v in ratio.items()})
"""),
        md(r"""
        The weights are found more slowly than the mass: what the demonstrations pin down
        first is their ratio, the trade-off between angle error and torque, and only then
        the scale against the fixed weights. The loss is an implicit function of $\theta$
        through the optimizer, yet each gradient costs one LQR sweep per demonstration — no
        unrolled iterations, no finite differences.
        """),
    ]


# --------------------------------------------------------------------------------------------------
# 04: other systems
# --------------------------------------------------------------------------------------------------

def systems():
    return [
        md(r"""
        # 4 · Arm, cart-pole, acrobot, and constraints

        The same solver on three more systems from `ilqg_jax.systems`. `get_task(name)` returns a
        `Task`: the problem, a documented initial state and initial controls, parameters,
        axis labels with units, a success test, and the joint positions for drawing. Every
        model is continuous-time mechanics $M(q)\ddot q + C(q,\dot q) = \tau$ discretised with
        RK4; control limits are box constraints the solver respects exactly.
        """),
        code(SETUP + """
from ilqg_jax.systems import get_task


def solve_and_show(name):
    \"\"\"Solves a registered task, prints how it went, plots the trajectory and animates it.\"\"\"
    task = get_task(name)
    sol = ilqg.solve(task.problem, task.x0, task.us_init, task.params)
    print(f"{task.description}\\n{ilqg.Status(int(sol.status)).name} after {int(sol.iterations)} iterations, "
          f"cost {float(sol.cost):.4g}; goal ({task.goal}) reached: {task.success(sol.xs)}")
    limits = None
    if task.problem.control_lower is not None:
        limits = (task.problem.control_lower, task.problem.control_upper)
    viz.plot_trajectory(sol.xs, sol.us, task.dt, task.state_labels, task.control_labels, control_limits=limits,
                        title=f"{name}: {task.problem.horizon} steps of {task.dt} s")
    plt.show()
    gif = viz.animation_gif(sol.xs, task.points, task.dt, extent=task.extent, title=name,
                            frames=12 if SMALL else 40)
    display(Image(data=gif, format="gif"))
    return task, sol
"""),
        md(r"""
        ## Two-link arm reaching (Li & Todorov 2004)

        The planar arm of the original iLQG paper, in the horizontal plane (no gravity), with
        joint friction and torques limited to ±10 N m. The cost is the effort
        $\sum_t \Delta t\, w_u |u_t|^2$ plus a heavy terminal penalty on the hand's distance to
        the target and on the final joint speeds: an energy-optimal 0.5 s reach.
        """),
        code("""
arm, arm_sol = solve_and_show("arm")
"""),
        md(r"""
        Two torques now ($m = 2$): the backward pass solves a $2\times2$ system per step — the
        case where the seed's elementwise $Q_{uu}^{-1}$ would have been wrong. The torques are
        nearly linear ramps — push, then brake — the minimum-effort profile for moving an
        inertia, and both joints come to rest at the end.

        ## Cart-pole swing-up

        A force on the cart (±10 N) swings the pole up from hanging and brings the cart back
        to the centre: one actuator for two degrees of freedom.
        """),
        code("""
cartpole, cartpole_sol = solve_and_show("cartpole")
"""),
        md(r"""
        ## Acrobot swing-up

        Two links, a motor at the elbow only, nothing at the shoulder: the solver has to pump
        energy into the first link through the coupling (Spong 1995).
        """),
        code("""
acrobot, acrobot_sol = solve_and_show("acrobot")
"""),
        md(r"""
        The three share nothing but `ilqg.solve`: each problem is a handful of pure functions,
        and derivatives, backward pass, box QP and line search are the same code for all.

        ## Constraints: a unicycle around obstacles

        State constraints are two more pure functions: `path_constraint(x, u, t, params)`
        (feasible where $\le 0$) and `terminal_constraint(x, params)` (feasible where $= 0$).
        Here Crocoddyl's unicycle must keep every position $p_t$ outside circular obstacles,
        $r_i^2 - |p_t - c_i|^2 \le 0$, and end exactly at the goal. `ilqg.solve` wraps iLQG in
        an augmented Lagrangian (ALTRO): inner solves, multiplier and penalty updates in one
        compiled loop. `Solution.violation` is the largest violation left and
        `Solution.multipliers` the Lagrange multipliers; `CONVERGED` needs both stationarity and
        feasibility.
        """),
        code("""
from ilqg_jax.systems import obstacles

task = get_task("unicycle-obstacles")
sol = ilqg.solve(task.problem, task.x0, task.us_init, task.params)
free = ilqg.solve(task.problem.replace(path_constraint=None), task.x0, task.us_init, task.params)
print(f"{ilqg.Status(int(sol.status)).name}: cost {float(sol.cost):.4f}, largest violation "
      f"{float(sol.violation):.1e}, closest approach {float(jnp.min(obstacles.clearance(sol.xs, task.params))):+.1e} m")
print(f"ignoring the obstacles: cost {float(free.cost):.4f}, closest approach "
      f"{float(jnp.min(obstacles.clearance(free.xs, task.params))):+.2f} m (negative: through an obstacle)")
viz.plot_paths_and_obstacles([sol.xs, free.xs], task.params.centers, task.params.radii, task.params.goal,
                             ["with the obstacles", "ignoring them"], title="augmented-Lagrangian iLQG")
plt.show()
"""),
        md(r"""
        The constrained optimum is differentiable too: the gradient of the optimal cost with
        respect to the obstacles' centres comes from the KKT conditions with the active
        constraints, one linear solve, not from the outer iterations.
        """),
        code("""
grad = jax.grad(lambda c: ilqg.solve(task.problem, task.x0, task.us_init,
                                     task.params._replace(centers=c)).cost)(task.params.centers)
print("d cost / d centres:", np.round(np.asarray(grad), 4).tolist())
"""),
        md(r"""
        ## Multiple shooting: start from a state guess

        `solve(..., xs_init=xs)` starts from states that need not be a rollout of the initial
        controls — here the straight line from hanging to upright, which no torque sequence
        follows. The solver sees the *gaps* $f(x_t, u_t) - x_{t+1}$ and closes them (a full
        step closes all of them); the guess tells it where to go, so the swing-up needs
        fewer iterations than from the controls alone. `CONVERGED` needs every gap closed.
        """),
        code("""
from ilqg_jax.systems import pendulum

problem = pendulum.swing_up()
T = problem.horizon
x0 = jnp.array([jnp.pi, 0.0])
line = jnp.linspace(x0, jnp.zeros(2), T + 1)          # hanging -> upright, not dynamically feasible
task = get_task("pendulum")
for label, kwargs in [("from the task's controls", {}), ("from the line as state guess", {"xs_init": line})]:
    sol = ilqg.solve(problem, x0, task.us_init, **kwargs)
    print(f"{label:30s} {ilqg.Status(int(sol.status)).name} after {int(sol.iterations):2d} iterations, "
          f"cost {float(sol.cost):.4f}")
"""),
    ]


NOTEBOOKS = {
    "01_seed_walkthrough.ipynb": seed_walkthrough,
    "02_batch.ipynb": batch,
    "03_differentiable.ipynb": differentiable,
    "04_systems.ipynb": systems,
}


def build(name: str):
    nb = new_notebook(cells=NOTEBOOKS[name]())
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"{Path(name).stem[:2]}-{i:02d}"   # stable ids: rebuilding changes nothing
    return nb


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check that the stored notebooks are current")
    args = parser.parse_args(argv)
    stale = []
    for name in NOTEBOOKS:
        text = nbformat.writes(build(name)) + "\n"
        path = HERE / name
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
            print(f"wrote {path}")
    if stale:
        print("out of date (run python notebooks/build.py):", ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
