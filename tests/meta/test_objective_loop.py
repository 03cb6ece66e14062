"""Objective meta-training through the shared outer loop: meta-gradients and ES, resume,
and the `discover meta-train` command on objective configs."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from discovery.config import load_config
from discovery.meta.alp_gmm import ALPGMMConfig
from discovery.meta.curricula import CurriculumConfig
from discovery.meta.plr import PLRConfig
from discovery.objective import ObjectiveConfig
from discovery.objective_training import ObjectiveMetaTrainConfig
from discovery.pipeline import meta_train
from tests.resume import killed_and_resumed, logged_records
from tests.toys import TINY_OBJECTIVE

TINY = TINY_OBJECTIVE


CURRICULA = {
    "dr": CurriculumConfig(),
    "plr": CurriculumConfig(kind="plr", plr=PLRConfig(buffer_size=8)),
    "alp_gmm": CurriculumConfig(
        kind="alp_gmm",
        score="return",
        alp_gmm=ALPGMMConfig(
            fit_every=2, fit_window=4, history_size=32, min_components=1, max_components=2
        ),
    ),
}


# Every combination runs two generations and resumes in tests/contracts.py; here
# meta-gradient runs long enough (8 generations, killed after a checkpoint 1 behind) for
# lifetimes to end, levels to be scored and replayed, and the curriculum's state to come
# back from the checkpoint, not from scratch.
@pytest.mark.parametrize("curriculum", ["plr", "alp_gmm"])
def test_a_killed_curriculum_run_resumes_exactly(tmp_path, curriculum):
    config = replace(TINY, optimizer="metagrad", curriculum=CURRICULA[curriculum],
                     generations=8, checkpoint_every=3)
    killed_and_resumed(config, tmp_path, stop_after=config.generations - 1)
    records = logged_records(tmp_path / "straight")
    assert len(records) == config.generations
    assert sum(r["levels_finished"] for r in records) > 0
    if curriculum == "plr":
        assert records[-1]["curriculum_fill"] > 0
        assert np.isfinite(records[-1]["curriculum_score_mean"])
    else:
        assert records[-1]["curriculum_tasks"] > 0


def test_critic_scores_need_metagrad():
    curriculum = replace(CURRICULA["plr"], score="positive_value_loss")
    with pytest.raises(ValueError, match="'positive_value_loss' needs optimizer='metagrad'"):
        replace(TINY, optimizer="es", curriculum=curriculum)


def test_es_scores_every_member_on_shared_levels(tmp_path):
    # Lifetimes of 3..6 updates of 4 x 5 steps on random levels: an agent's final
    # window often holds no episode end, yet every agent must be scored.
    config = replace(TINY, optimizer="es", generations=1, objective=ObjectiveConfig(
        kind="ta_lpg", prediction_size=4, hidden_size=8))
    result = meta_train(config, tmp_path / "es")
    record = result.history[0]
    assert record["num_nonfinite"] == 0  # every member's fitness is finite...
    assert record["nonfinite_returns"] == 0  # ...from finite scores of all its agents
    assert np.isfinite(record["fitness_min"]) and np.isfinite(record["fitness_max"])
    per_level = np.asarray(record["returns_mean"], dtype=float)
    assert per_level.shape == (config.es_task.agents,) and np.all(np.isfinite(per_level))
    # Fitness is each member's mean over the same levels, so the population's mean
    # fitness is the mean over levels of the population's mean score per level.
    np.testing.assert_allclose(record["fitness_mean"], per_level.mean(), rtol=1e-5)
    assert record["env_steps"] == 4 * 2 * 6 * 20


@pytest.mark.parametrize(
    "path",
    [
        "configs/lpg_gridworld.yaml",
        "configs/ta_lpg_gridworld_es.yaml",
        "configs/groove_gridworld.yaml",
    ],
)
def test_shipped_objective_configs_load(path):
    config = load_config(ObjectiveMetaTrainConfig, path)
    assert config.component == "objective"
    assert config.levels.train == ("gridworld/random",)
    if "groove" in path:  # GROOVE = LPG + PLR over 4000 levels scored by algorithmic regret
        assert config.curriculum == CurriculumConfig(kind="plr", score="algorithmic_regret")
        lpg = load_config(ObjectiveMetaTrainConfig, "configs/lpg_gridworld.yaml")
        assert replace(config, curriculum=lpg.curriculum, name=lpg.name) == lpg


def test_discover_meta_train_runs_an_objective_config(tmp_path):
    from discovery.cli import main
    from discovery.config import save_config

    # The metagrad-plr resume test's config (its programs are in the compilation cache by
    # now), written as a file and run by the command, with overrides.
    config = replace(TINY, optimizer="metagrad", curriculum=CURRICULA["plr"],
                     generations=8, checkpoint_every=3)
    path = save_config(config, tmp_path / "config.yaml")
    argv = ["meta-train", str(path), "--runs-dir", str(tmp_path), "--name", "cli",
            "--set", "generations=2", "--set", "checkpoint_every=1"]
    assert main(argv) == 0
    run_dir = tmp_path / "cli"
    summary = json.loads((run_dir / "summary.json").read_text())
    evaluation = summary["evaluation"]
    assert evaluation["layouts"] == ["sparse"]
    for name in ("learned", "initial_objective", "a2c"):
        assert len(evaluation[name]["per_seed"][0]) == 2
    for name in ("objective_params.msgpack", "meta_training.png", "config.yaml"):
        assert (run_dir / name).exists()
    assert len(logged_records(run_dir)) == 2


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
