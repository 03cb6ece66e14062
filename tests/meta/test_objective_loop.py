"""Objective meta-training through the shared outer loop: meta-gradients and ES, resume,
and the `discover meta-train` command on objective configs."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from discovery.agents.lpg_agent import LPGAgentConfig
from discovery.config import load_config
from discovery.lpg_task import LevelsConfig, ObjectiveTaskConfig
from discovery.meta.alp_gmm import ALPGMMConfig
from discovery.meta.curricula import CurriculumConfig
from discovery.meta.es import ESConfig
from discovery.meta.metagrad import MetaGradConfig
from discovery.meta.plr import PLRConfig
from discovery.objective import ObjectiveConfig
from discovery.objective_training import ObjectiveMetaTrainConfig
from discovery.pipeline import meta_train
from tests.resume import killed_and_resumed, logged_records

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


# Meta-gradients with DR run the same loop as with PLR (minus the curriculum state that
# metagrad-plr checks too), so that pair is left out to keep the suite's time down; ES
# with DR takes a branch of its own (no curriculum) and stays.
@pytest.mark.parametrize(
    "optimizer, curriculum",
    [("es", "dr"), ("metagrad", "plr"), ("metagrad", "alp_gmm"), ("es", "plr")],
)
def test_a_killed_run_resumes_exactly(tmp_path, optimizer, curriculum):
    config = replace(TINY, optimizer=optimizer, curriculum=CURRICULA[curriculum])
    if curriculum != "dr" and optimizer == "metagrad":
        # Long enough for levels to finish, be scored, and be replayed.
        config = replace(config, generations=8, checkpoint_every=3)
    # The kill leaves a checkpoint behind the last logged generation; the log is cut back.
    # The curriculum's state comes back from the checkpoint, not from scratch.
    killed_and_resumed(config, tmp_path, stop_after=config.generations - 1)
    assert len(logged_records(tmp_path / "straight")) == config.generations
    if curriculum != "dr":
        last = logged_records(tmp_path / "straight")[-1]
        assert sum(r["levels_finished"] for r in logged_records(tmp_path / "straight")) > 0
        if curriculum == "plr":
            assert last["curriculum_fill"] > 0
            assert np.isfinite(last["curriculum_score_mean"])
        else:
            assert last["curriculum_tasks"] > 0


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
