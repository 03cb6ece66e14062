"""Objective meta-training through the shared outer loop: meta-gradients and ES, resume,
and the `discover meta-train` command on objective configs."""

from __future__ import annotations

import json
from dataclasses import replace

import jax
import numpy as np
import pytest

from agents.lpg_agent import LPGAgentConfig
from discovery.config import load_config
from discovery.lpg_task import LevelsConfig, ObjectiveTaskConfig
from discovery.objective import ObjectiveConfig
from meta.es import ESConfig
from meta.metagrad import MetaGradConfig
from meta.objective_loop import ObjectiveMetaTrainConfig, meta_train_objective

TINY = ObjectiveMetaTrainConfig(
    name="tiny",
    generations=4,
    checkpoint_every=2,
    objective=ObjectiveConfig(prediction_size=4, hidden_size=8),
    agent=LPGAgentConfig(num_envs=4, rollout_len=5),
    levels=LevelsConfig(max_size=4, max_objects=1, held_out=("sparse",)),
    metagrad=MetaGradConfig(
        num_agents=4, num_minibatches=2, unroll=2, lifetime_min=6, lifetime_max=6, lr=1e-3
    ),
    es=ESConfig(population_size=4, sigma_init=0.1),
    es_task=ObjectiveTaskConfig(agents=2, lifetime_min=3, lifetime_max=6),
    eval_seeds=2,
    eval_lifetime=5,
)


def _lines(run_dir):
    records = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    for record in records:
        record.pop("wall_time_s")
    return records


@pytest.mark.parametrize("optimizer", ["metagrad", "es"])
def test_a_killed_run_resumes_exactly(tmp_path, optimizer):
    config = replace(TINY, optimizer=optimizer)
    straight = meta_train_objective(config, tmp_path / "straight")
    meta_train_objective(config, tmp_path / "killed", stop_after=3)
    # A kill after generation 3 leaves a checkpoint at 2 and a log line for 3 (cut back).
    resumed = meta_train_objective(config, tmp_path / "killed", resume=True)
    jax.tree.map(np.testing.assert_array_equal, straight.params, resumed.params)
    assert _lines(tmp_path / "straight") == _lines(tmp_path / "killed")
    assert len(_lines(tmp_path / "straight")) == config.generations


def test_es_scores_every_member_on_shared_levels(tmp_path):
    config = replace(TINY, optimizer="es", generations=1, objective=ObjectiveConfig(
        kind="ta_lpg", prediction_size=4, hidden_size=8))
    result = meta_train_objective(config, tmp_path / "es")
    record = result.history[0]
    assert len(record["returns_mean"]) == config.es_task.agents
    assert np.isfinite(record["fitness_mean"]) or np.isnan(record["fitness_mean"])
    assert record["env_steps"] == 4 * 2 * 6 * 20


@pytest.mark.parametrize("path", ["configs/lpg_gridworld.yaml", "configs/ta_lpg_gridworld_es.yaml"])
def test_shipped_objective_configs_load(path):
    config = load_config(ObjectiveMetaTrainConfig, path)
    assert config.component == "objective"
    assert config.levels.train == ("gridworld/random",)


def test_discover_meta_train_runs_an_objective_config(tmp_path):
    from discovery.cli import main

    overrides = [
        "generations=2", "checkpoint_every=1", "eval_seeds=2", "eval_lifetime=4",
        "objective.hidden_size=8", "agent.num_envs=4", "agent.rollout_len=5",
        "levels.max_size=4", "levels.max_objects=1", "levels.held_out=[sparse]",
        "metagrad.num_agents=2", "metagrad.num_minibatches=1", "metagrad.unroll=1",
        "metagrad.lifetime_min=4", "metagrad.lifetime_max=4",
    ]
    argv = ["meta-train", "configs/lpg_gridworld.yaml", "--runs-dir", str(tmp_path),
            "--name", "cli"]
    for override in overrides:
        argv += ["--set", override]
    assert main(argv) == 0
    run_dir = tmp_path / "cli"
    summary = json.loads((run_dir / "summary.json").read_text())
    evaluation = summary["evaluation"]
    assert evaluation["layouts"] == ["sparse"]
    for name in ("learned", "initial_objective", "a2c"):
        assert len(evaluation[name]["per_seed"][0]) == 2
    for name in ("objective_params.msgpack", "meta_training.png", "config.yaml"):
        assert (run_dir / name).exists()


def test_bad_component_and_objective_fields_are_named(tmp_path, capsys):
    from discovery.cli import main

    assert main(["meta-train", "--set", "component=objektive"]) == 2
    assert "component" in capsys.readouterr().err
    argv = ["meta-train", "configs/lpg_gridworld.yaml", "--set", "metagrad.estimator=two_step"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "metagrad.estimator" in err and "k_step" in err
    argv = ["meta-train", "configs/lpg_gridworld.yaml", "--set", "levels.train=[gridworld/nope]"]
    assert main(argv) == 2
    assert "levels.train" in capsys.readouterr().err
