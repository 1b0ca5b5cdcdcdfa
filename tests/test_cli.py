"""The command line: README's first command, and the batch command."""

import os

from ilqg_jax import cli


def test_solve_pendulum_logs_iterations_and_writes_a_plot(tmp_path, capsys):
    out = tmp_path / "pendulum.png"
    history = tmp_path / "history.png"
    assert cli.main(["solve", "pendulum", "--output", str(out), "--history", str(history)]) == 0
    text = capsys.readouterr().out
    assert "iter    1" in text and "CONVERGED" in text and "goal reached" in text
    assert out.stat().st_size > 10_000 and history.stat().st_size > 10_000


def test_batch_prints_throughput_and_writes_a_basin_map(tmp_path, capsys):
    out = tmp_path / "basin.png"
    assert cli.main(["batch", "pendulum", "--n", "16", "--output", str(out)]) == 0
    text = capsys.readouterr().out
    assert "solves/s" in text and "reached upright" in text
    assert os.path.getsize(out) > 10_000


def test_batch_uses_one_cpu_device_per_core_unless_told(tmp_path):
    """A fresh process: ``--cpu-devices 2`` splits the batch over two CPU devices before JAX starts."""
    import subprocess
    import sys

    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)
    out = subprocess.run([sys.executable, "-m", "ilqg_jax.cli", "batch", "pendulum", "--n", "4", "--max-iter", "3",
                          "--cpu-devices", "2", "--output", str(tmp_path / "b.png")],
                         capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr
    assert "on 2 cpu device(s)" in out.stdout


def test_mpc_runs_episodes_and_writes_a_gif(tmp_path, capsys):
    import pytest

    pytest.importorskip("gymnasium")
    from PIL import Image

    out = tmp_path / "mpc.gif"
    assert cli.main(["mpc", "pendulum-gym", "--seeds", "10000", "10001", "--stride", "10",
                     "--animate", str(out)]) == 0
    text = capsys.readouterr().out
    returns = [float(line.split("return")[1]) for line in text.splitlines() if line.startswith("seed")]
    assert len(returns) == 2 and all(-500.0 < r <= 0.0 for r in returns), text
    with Image.open(out) as gif:  # two episodes of 200 steps, every 10th state: 2 * 201 // 10 + 1 frames
        assert gif.format == "GIF" and gif.n_frames == 41
