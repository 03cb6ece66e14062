"""The ``discover`` CLI: a real (tiny) training run, and clear errors for bad input."""

import json

import pytest
import yaml

import envs  # noqa: F401
from discovery.cli import main
from discovery.config import load_config
from discovery.train import TrainConfig

TINY = ["--set", "ppo.num_envs=4", "--set", "ppo.num_steps=32", "--set", "ppo.num_minibatches=2",
        "--set", "ppo.update_epochs=1"]


def test_train_writes_config_metrics_plot_and_summary(tmp_path):
    code = main(["train", "--env", "CartPole-v1", "--drift", "dpo", "--seeds", "2",
                 "--total-steps", "1024", "--runs-dir", str(tmp_path), "--name", "run", *TINY])
    assert code == 0
    run = tmp_path / "run"
    config = load_config(TrainConfig, run / "config.yaml")
    assert config.drift == "dpo" and config.seeds == 2 and config.ppo.total_timesteps == 1024
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == config.ppo.num_updates == 8
    record = json.loads(lines[-1])
    assert record["env_steps"] == 1024
    assert len(record["episode_return_per_seed"]) == 2
    assert (run / "learning_curve.png").stat().st_size > 1000
    summary = json.loads((run / "summary.json").read_text())
    assert len(summary["final_return_per_seed"]) == 2


def test_train_from_yaml_with_override(tmp_path):
    config_path = tmp_path / "c.yaml"
    config_path.write_text(yaml.safe_dump({"env": "CartPole-v1", "seeds": 1,
                                           "ppo": {"total_timesteps": 512}}))
    code = main(["train", str(config_path), "--runs-dir", str(tmp_path), "--name", "y", *TINY])
    assert code == 0
    assert load_config(TrainConfig, tmp_path / "y" / "config.yaml").ppo.num_envs == 4


@pytest.mark.parametrize(
    "argv,expected",
    [
        (["train", "--set", "ppo.lr=abc"], ["ppo.lr", "abc", "float"]),
        (["train", "--drift", "trpo"], ["drift", "trpo", "dpo"]),
        (["train", "--set", "ppo.num_env=3"], ["ppo.num_env", "num_envs"]),
        (["train", "--set", "ppo.activation=gelu"], ["ppo.activation", "gelu", "relu"]),
        (["train", "--env", "CartPole-v0"], ["CartPole-v0", "CartPole-v1"]),
        (["train", "--set", "seeds=0"], ["seeds", "0", ">= 1"]),
        (["train", "--set", "ppo.num_minibatches=3"], ["num_minibatches", "3"]),
        (["meta-train", "no/such/config.yaml"], ["no/such/config.yaml"]),
        (["meta-train", "--set", "es.population_size=7"], ["population_size", "7"]),
        (["meta-train", "--set", "task.envs=[Breakout]"], ["Breakout", "Breakout-MinAtar"]),
        (["meta-train", "--set", "generations"], ["generations", "="]),
    ],
)
def test_bad_input_exits_2_naming_field_value_and_allowed(argv, expected, tmp_path, capsys):
    code = main([*argv, "--runs-dir", str(tmp_path)])
    assert code == 2
    err = capsys.readouterr().err
    for fragment in expected:
        assert fragment in err, f"{fragment!r} not in {err!r}"
    assert not any(tmp_path.iterdir()), "a rejected config must not create a run folder"
