"""The README's main command: the default meta-training run learns and writes its results."""

import json

import numpy as np
import pytest

import envs  # noqa: F401
from discovery.cli import main


@pytest.mark.slow
def test_default_meta_training_raises_fitness(tmp_path):
    assert main(["demo", "--runs-dir", str(tmp_path)]) == 0
    run = next(tmp_path.iterdir())
    for name in ("config.yaml", "metrics.jsonl", "mean_params.msgpack", "best_params.msgpack",
                 "fitness.png", "drift.png", "summary.json"):
        assert (run / name).exists(), name
    assert list((run / "checkpoints").iterdir())
    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    fitness = np.array([record["fitness_mean"] for record in history])
    assert np.all(np.isfinite(fitness))
    # Population mean fitness (PPO-clip = 1) rises from the first generations to the last.
    assert fitness[-10:].mean() > fitness[:5].mean() + 0.1, fitness
    # Fresh agents on new seeds do better with the discovered drift than with PPO-clip.
    evaluation = json.loads((run / "summary.json").read_text())["evaluation"]
    assert evaluation["learned_mean_return"][0] > evaluation["ppo_mean_return"][0], evaluation


def test_shipped_configs_load():
    from pathlib import Path

    from discovery.config import config_component, load_config
    from discovery.sweep import load_sweep
    from discovery.train import TrainConfig
    from meta.loop import MetaTrainConfig
    from meta.objective_loop import ObjectiveMetaTrainConfig

    configs = Path(__file__).resolve().parents[2] / "configs"
    meta_configs = {"drift": MetaTrainConfig, "objective": ObjectiveMetaTrainConfig}
    loaded = 0
    for path in sorted(configs.glob("*.yaml")):
        if path.name.startswith("sweep_"):
            load_sweep(path)
        elif path.name.startswith("ppo_"):
            load_config(TrainConfig, path)
        else:
            load_config(meta_configs[config_component(str(path), [])], path)
        loaded += 1
    assert loaded >= 8
    demo = load_config(MetaTrainConfig, configs / "lpo_cartpole.yaml")
    assert demo == MetaTrainConfig(), "configs/lpo_cartpole.yaml must spell out the demo"
