"""Figures and animations shared by the command line, the notebooks and the examples.

Every function takes arrays (NumPy or JAX), returns a ``matplotlib`` figure
(or writes a file), and never calls ``plt.show``: notebooks display the
returned figure, scripts save it. Import cost is kept off the solver: this
module is only imported where pictures are made.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import matplotlib.pyplot as plt
import numpy as np

__all__ = ["plot_trajectory", "plot_history", "basin_map", "plot_paths_and_obstacles", "animate", "animation_gif",
           "save"]


def _time_axes(xs, us, dt):
    xs, us = np.asarray(xs), np.asarray(us)
    t_x = np.arange(xs.shape[0]) * dt
    t_u = np.arange(us.shape[0]) * dt
    return xs, us, t_x, t_u


def plot_trajectory(xs, us, dt: float = 1.0, state_labels: Optional[Sequence[str]] = None,
                    control_labels: Optional[Sequence[str]] = None, control_limits=None,
                    title: Optional[str] = None, reference: Optional[Sequence[float]] = None):
    """One panel per state and per control over time.

    Args:
      xs: ``(T+1, n)`` states; us: ``(T, m)`` controls; dt: step (s) for the time axis.
      state_labels, control_labels: axis labels with units, e.g. ``"angle θ (rad)"``.
      control_limits: ``(lower (m,), upper (m,))`` drawn as dashed lines.
      title: figure title.
      reference: ``(n,)`` target state drawn as dotted lines (NaN entries skipped).

    Returns:
      The ``matplotlib.figure.Figure``.
    """
    xs, us, t_x, t_u = _time_axes(xs, us, dt)
    n, m = xs.shape[1], us.shape[1]
    state_labels = list(state_labels or [f"x[{i}]" for i in range(n)])
    control_labels = list(control_labels or [f"u[{j}]" for j in range(m)])
    fig, axes = plt.subplots(n + m, 1, figsize=(7, 1.9 * (n + m) + 0.6), sharex=True, squeeze=False)
    axes = axes[:, 0]
    for i in range(n):
        axes[i].plot(t_x, xs[:, i], color="C0")
        axes[i].set_ylabel(state_labels[i])
        if reference is not None and np.isfinite(reference[i]):
            axes[i].axhline(reference[i], color="k", ls=":", lw=1, label="target")
            axes[i].legend(loc="best", fontsize=8)
    for j in range(m):
        ax = axes[n + j]
        ax.step(t_u, us[:, j], where="post", color="C1")
        ax.set_ylabel(control_labels[j])
        if control_limits is not None:
            lo, hi = (np.broadcast_to(np.asarray(b, float), (m,)) for b in control_limits)
            for b in (lo[j], hi[j]):
                if np.isfinite(b):
                    ax.axhline(b, color="r", ls="--", lw=1)
            ax.plot([], [], color="r", ls="--", lw=1, label="limit")
            ax.legend(loc="best", fontsize=8)
    axes[-1].set_xlabel("time (s)" if dt != 1.0 else "time step")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_history(history, iterations: Optional[int] = None, title: Optional[str] = None):
    """Cost, regularisation ``mu`` and accepted step ``alpha`` per iteration (from ``Solution.history``)."""
    cost = np.asarray(history.cost)
    n = int(iterations) + 1 if iterations is not None else int(np.sum(np.isfinite(cost)))
    it = np.arange(n)
    fig, axes = plt.subplots(3, 1, figsize=(6, 6), sharex=True)
    axes[0].semilogy(it, cost[:n] - np.nanmin(cost[:n]) + 1e-16 * max(1.0, abs(np.nanmin(cost[:n]))), "o-", ms=3)
    axes[0].set_ylabel("cost − final cost")
    mu = np.asarray(history.mu)[:n]
    axes[1].semilogy(it, np.where(mu > 0, mu, np.nan), "o-", ms=3, color="C2")
    axes[1].set_ylabel("regularisation μ\n(0 not shown)")
    alpha = np.asarray(history.alpha)[:n]
    axes[2].semilogy(it, alpha, "o", ms=4, color="C1", label="accepted")
    rejected = it[(it > 0) & ~np.isfinite(alpha)]
    axes[2].semilogy(rejected, np.full(rejected.shape, 1.0), "x", color="r", label="rejected (μ raised)")
    axes[2].set_ylabel("step size α")
    axes[2].set_xlabel("iteration")
    axes[2].legend(loc="lower right", fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def basin_map(points, success, labels: Sequence[str] = ("θ₀ (rad)", "θ̇₀ (rad/s)"), title: Optional[str] = None,
              grid_shape: Optional[tuple[int, int]] = None):
    """Which initial states succeeded: ``points: (N, 2)``, ``success: (N,)`` bool.

    With ``grid_shape = (rows, cols)`` the points are a grid and are drawn as
    an image; otherwise as a scatter plot.
    """
    points, success = np.asarray(points), np.asarray(success, bool)
    fig, ax = plt.subplots(figsize=(6, 5))
    if grid_shape is not None:
        x = points[:, 0].reshape(grid_shape)
        y = points[:, 1].reshape(grid_shape)
        ax.pcolormesh(x, y, success.reshape(grid_shape).astype(float), cmap="RdYlGn", vmin=0, vmax=1,
                      shading="nearest")
    else:
        ax.scatter(points[~success, 0], points[~success, 1], s=6, c="tab:red", label="failed")
        ax.scatter(points[success, 0], points[success, 1], s=6, c="tab:green", label="reached upright")
        ax.legend(loc="upper right", fontsize=8)
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    ax.set_title(title or f"basin map: {success.mean():.1%} of {success.size} initial states succeed")
    fig.tight_layout()
    return fig


def plot_paths_and_obstacles(paths: Sequence, centers, radii, goal=None, labels: Optional[Sequence[str]] = None,
                             title: Optional[str] = None):
    """Planar paths among circular obstacles.

    Args:
      paths: a sequence of ``(T+1, >= 2)`` trajectories; columns 0 and 1 are the position (m).
      centers: ``(k, 2)`` obstacle centres; radii: ``(k,)``.
      goal: ``(2,)`` drawn as a star, or ``None``.
      labels: one legend entry per path.

    Returns:
      The ``matplotlib.figure.Figure`` (equal axis scales).
    """
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for c, r in zip(np.asarray(centers, float), np.asarray(radii, float)):
        ax.add_patch(plt.Circle(tuple(c), r, color="0.6", alpha=0.6, lw=0))
    labels = list(labels or [None] * len(paths))
    for i, (xs, label) in enumerate(zip(paths, labels)):
        xs = np.asarray(xs, float)
        ax.plot(xs[:, 0], xs[:, 1], "-", color=f"C{i}", lw=1.6, label=label)
        ax.plot(xs[0, 0], xs[0, 1], "o", color=f"C{i}", ms=5)
    if goal is not None:
        ax.plot(*np.asarray(goal, float), "*", color="k", ms=12, label="goal")
    ax.set_aspect("equal")
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")
    if any(label is not None for label in labels) or goal is not None:
        ax.legend(loc="best", fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def animate(xs, draw: Callable, dt: float = 0.05, path: Optional[str] = None, extent: float = 1.2,
            title: Optional[str] = None, fps: Optional[int] = None):
    """Animates a planar mechanism.

    Args:
      xs: ``(T+1, n)`` states.
      draw: ``draw(x) -> (k, 2)`` array of joint positions (a polyline from the base).
      dt: time step (s); the animation runs in real time unless ``fps`` is given.
      path: ``.gif`` (Pillow) or ``.html`` (JavaScript) file to write; ``None`` returns the animation.
      extent: half-width of the square view (m).

    Returns:
      The ``matplotlib.animation.FuncAnimation`` (also written to ``path`` if given).
    """
    from matplotlib import animation

    xs = np.asarray(xs)
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.set_xlim(-extent, extent)
    ax.set_ylim(-extent, extent)
    ax.set_aspect("equal")
    ax.axhline(0, color="0.8", lw=0.5)
    (line,) = ax.plot([], [], "o-", lw=3, ms=6, color="C0")
    text = ax.text(0.02, 0.95, "", transform=ax.transAxes)
    if title:
        ax.set_title(title)

    def frame(i):
        pts = np.asarray(draw(xs[i]))
        line.set_data(pts[:, 0], pts[:, 1])
        text.set_text(f"t = {i * dt:.2f} s")
        return line, text

    fps = fps or max(1, int(round(1.0 / dt)))
    anim = animation.FuncAnimation(fig, frame, frames=xs.shape[0], interval=1000.0 / fps, blit=True)
    if path is not None:
        if str(path).endswith(".html"):
            with open(path, "w") as f:
                f.write(anim.to_jshtml())
        else:
            anim.save(path, writer=animation.PillowWriter(fps=fps))
        plt.close(fig)
    return anim


def animation_gif(xs, draw: Callable, dt: float = 0.05, extent: float = 1.2, title: Optional[str] = None,
                  frames: int = 40, dpi: int = 60) -> bytes:
    """A small looping GIF of :func:`animate`, for inline display (``IPython.display.Image(data=...)``).

    The states are subsampled by the smallest stride that divides ``T`` and keeps
    at most about ``frames`` frames (so the last state is shown), and the GIF
    still plays in real time. Drawing dominates the cost (tens of ms a frame),
    so keep ``frames`` small.

    Args:
      xs: ``(T+1, n)`` states; draw, dt, extent, title: as in :func:`animate`.
      frames: approximate number of frames; dpi: resolution (a 4 in square).

    Returns:
      The GIF file's bytes.
    """
    import os
    import tempfile

    from matplotlib import animation

    xs = np.asarray(xs)
    steps = xs.shape[0] - 1
    stride = max(1, -(-steps // max(1, frames)))
    divisors = [s for s in range(stride, 2 * stride + 1) if steps % s == 0]
    stride = divisors[0] if divisors else stride
    anim = animate(xs[::stride], draw, dt * stride, extent=extent, title=title)
    anim._fig.axes[0].set(xlabel="x (m)", ylabel="y (m)")
    anim._fig.tight_layout()
    fd, path = tempfile.mkstemp(suffix=".gif")
    os.close(fd)
    try:
        anim.save(path, writer=animation.PillowWriter(fps=max(1, int(round(1.0 / (dt * stride))))), dpi=dpi)
        with open(path, "rb") as f:
            return f.read()
    finally:
        plt.close(anim._fig)
        os.remove(path)


def save(fig, path: str, dpi: int = 120) -> str:
    """Saves and closes ``fig``; returns ``path``."""
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path
