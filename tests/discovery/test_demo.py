"""The README's main command: the default meta-training run learns and writes its results."""

import os
import subprocess

import numpy as np
import pytest

from discovery import envs  # noqa: F401
from discovery.files import loads_strict


@pytest.mark.slow
def test_default_meta_training_runs_and_writes_strict_results(tmp_path, discover_script):
    """The README's main command, shortened to 2 generations (the same code path).

    Whether the discovered drift beats PPO-clip hinges on one noisy ES run whose
    numbers differ between hosts, so it is recorded in BENCHMARKS.md rather than
    asserted; what must hold on any host is that every member and every fresh seed is
    scored (no NaN unless training diverged, and then counted) and the files are strict.
    """
    # Its own process, at the run speed of the suite's former flags (level 1): the demo
    # runs as long as it compiles, which level 0 would slow (tests/conftest.py).
    flags = os.environ["XLA_FLAGS"].replace("optimization_level=0", "optimization_level=1")
    done = subprocess.run(
        [discover_script, "demo", "--runs-dir", str(tmp_path), "--set", "generations=2"],
        env=dict(os.environ, XLA_FLAGS=flags), capture_output=True, text=True, timeout=500,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    # Piped to a log, progress is plain lines (a live bar would show only its last frame):
    # the first generation and the last, then the held-out evaluation's start and end.
    lines = done.stdout.splitlines()
    first = next(i for i, line in enumerate(lines) if "generation: 1/2 (50%) fitness" in line)
    last = next(i for i, line in enumerate(lines) if "generation: 2/2 (100%)" in line)
    evaluated = next(i for i, line in enumerate(lines) if "held-out evaluation done" in line)
    assert first < last < evaluated, done.stdout
    run = next(tmp_path.iterdir())
    for name in ("config.yaml", "metrics.jsonl", "mean_params.msgpack", "best_params.msgpack",
                 "fitness.png", "drift.png", "summary.json"):
        assert (run / name).exists(), name
    assert list((run / "checkpoints").iterdir())
    history = [loads_strict(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(history) == 2
    for record in history:
        # Divergence is counted; on the demo's setting no member diverges.
        assert record["num_nonfinite"] == 0 and record["nonfinite_returns"] == 0, record
        assert np.isfinite(record["fitness_mean"]) and np.isfinite(record["returns_mean"][0])
    summary = loads_strict((run / "summary.json").read_text())
    evaluation = summary["evaluation"]
    for method in ("learned", "ppo"):
        seeds = evaluation[f"{method}_seeds"][0] + evaluation[f"{method}_diverged_seeds"][0]
        assert seeds == evaluation["seeds"] == 16
        assert evaluation[f"{method}_mean_return"][0] is not None
        # A whole CartPole episode returns between ~8 and 500.
        assert 8 <= evaluation[f"{method}_mean_return"][0] <= 500


def test_shipped_configs_load():
    from pathlib import Path

    from discovery.components import COMPONENTS
    from discovery.config import config_component, load_config
    from discovery.drift_training import MetaTrainConfig
    from discovery.sweep import load_sweep
    from discovery.train import TrainConfig

    configs = Path(__file__).resolve().parents[2] / "configs"
    loaded = 0
    for path in sorted(configs.glob("*.yaml")):
        if path.name.startswith("sweep_"):
            load_sweep(path)
        elif path.name.startswith("ppo_"):
            load_config(TrainConfig, path)
        else:
            load_config(COMPONENTS[config_component(str(path), [])].config_class, path)
        loaded += 1
    assert loaded >= 8
    demo = load_config(MetaTrainConfig, configs / "lpo_cartpole.yaml")
    assert demo == MetaTrainConfig(), "configs/lpo_cartpole.yaml must spell out the demo"
