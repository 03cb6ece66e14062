"""Figures are drawn with matplotlib's Figure API: writing a run's plots from a notebook
must not switch the notebook's backend (inline) to Agg, after which its own figures
would no longer show."""

from __future__ import annotations

import subprocess
import sys

import pytest

# A fresh process, as a notebook kernel: a non-Agg backend chosen first, then every
# figure writer of discovery/plots.py and the pyplot stand-in the other modules use.
SCRIPT = """
import sys
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("svg")
from discovery import plots

out = Path(sys.argv[1])
history = [{"generation": g, "fitness_mean": 0.5, "fitness_min": 0.1, "fitness_max": 0.9,
            "loss": float(g)} for g in range(12)]
paths = [
    plots.plot_learning_curve(np.arange(4), np.ones((2, 4)), out / "curve.png", title="t"),
    plots.plot_fitness(history, out / "fitness.png"),
    plots.plot_metric_history(history, "loss", out / "loss.png"),
    plots.plot_drifts({"|r - 1| |A|": lambda r, a, t: np.abs((r - 1) * a)}, out / "drift.png"),
]
plt = plots.pyplot()
fig, axes = plt.subplots(1, 2, figsize=(4, 2), squeeze=False, constrained_layout=True)
axes[0][1].plot([0, 1])
fig.savefig(out / "grid.png")
plt.close(fig)
paths.append(out / "grid.png")
assert all(path.stat().st_size > 1000 for path in paths), paths
assert matplotlib.get_backend() == "svg", matplotlib.get_backend()
assert "matplotlib.pyplot" not in sys.modules
print("backend kept")
"""


@pytest.mark.timeout(120)
def test_plots_leave_pyplot_and_the_backend_alone(tmp_path):
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True,
                          text=True, timeout=100)
    assert done.returncode == 0 and "backend kept" in done.stdout, done.stderr[-3000:]
