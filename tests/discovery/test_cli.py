"""The ``discover`` CLI: a real (tiny) training run, and clear errors for bad input."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from discovery import envs  # noqa: F401
from discovery.cli import main
from discovery.config import load_config
from discovery.files import loads_strict
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
    records = [loads_strict(line) for line in lines]  # no bare NaN where no episode ended
    record = records[-1]
    assert record["env_steps"] == 1024
    assert len(record["episode_return_per_seed"]) == 2
    assert all(r["latest_return"] is not None and r["latest_return_seeds"] == 2 for r in records)
    assert (run / "learning_curve.png").stat().st_size > 1000
    summary = loads_strict((run / "summary.json").read_text())
    assert len(summary["final_return_per_seed"]) == 2
    assert summary["seeds"] + summary["diverged_seeds"] == 2



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


# --------------------------------------------------------------------------- bad input


def _one_error_line(capsys, command: str) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"discover {command}: error: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize(
    "argv, expected",
    [
        # item 5: tracebacks before
        (["train", "--total-steps", "nan"], ["--total-steps", "nan", "whole number", "1e10"]),
        (["train", "--total-steps", "inf"], ["--total-steps", "inf", "whole number"]),
        (["train", "--total-steps", "1e30"],
         ["ppo.total_timesteps", "<= 10000000000", "--total-steps 1e+30"]),
        (["train", "--seed", "99999999999999999999"],
         ["seed", "99999999999999999999", "<= 2147483647", "--seed"]),
        # item 6: accepted before (or hung)
        (["train", "--seeds", "100000000000"], ["seeds", "100000000000", "<= 65536"]),
        (["train", "--seeds", "60000", "--set", "ppo.num_envs=1024"],
         ["memory", "GiB", "seeds 60000", "lower seeds"]),
        (["train", "--set", "ppo.lr=-1"], ["ppo.lr", "-1", "> 0"]),
        (["train", "--set", "ppo.lr=.nan"], ["ppo.lr", "nan", "finite"]),
        (["train", "--set", "ppo.lr=1e30"], ["ppo.lr", "1e+30", "<= 1"]),
        (["train", "--set", "ppo.max_grad_norm=0"], ["ppo.max_grad_norm", "> 0"]),
        (["meta-train", "--set", "es.population_size=1000000000"],
         ["es.population_size", "1000000000", "<= 65536"]),
        (["meta-train", "--set", "es.population_size=65536", "--set", "task.seeds=100"],
         ["memory", "GiB", "es.population_size 65536 x task.seeds 100"]),
        (["meta-train", "--set", "es.sigma_init=.inf"], ["es.sigma_init", "inf", "finite"]),
        (["meta-train", "--set", "es.lr_init=1e30"], ["es.lr_init", "1e+30", "<= 10"]),
        (["meta-train", "--set", "task.ppo.lr=-1"], ["task.ppo.lr", "-1", "> 0"]),
        # item 8: run names stay inside --runs-dir
        (["train", "--name", "../escaped"], ["--name", "'../escaped'", "one folder"]),
        (["train", "--name", "/abs"], ["--name", "'/abs'", "letters, digits"]),
        (["meta-train", "--name", "../escaped"], ["--name", "'../escaped'", "one folder"]),
        (["meta-train", "--set", "name=a/b"], ["name", "'a/b'", "one folder"]),
    ],
)
def test_bad_numbers_and_names_exit_2_with_one_line(argv, expected, tmp_path, capsys):
    runs = tmp_path / "runs"
    code = main([*argv, "--runs-dir", str(runs)])
    assert code == 2
    line = _one_error_line(capsys, argv[0])
    for fragment in expected:
        assert fragment in line, f"{fragment!r} not in {line!r}"
    assert not runs.exists() and sorted(tmp_path.iterdir()) == [], "nothing may be written"


@pytest.mark.parametrize("command", ["train", "meta-train"])
def test_non_utf8_config_file_exits_2(command, tmp_path, capsys):
    config = tmp_path / "latin1.yaml"
    config.write_bytes("name: caf\u00e9\n".encode("latin-1"))
    assert main([command, str(config), "--runs-dir", str(tmp_path / "runs")]) == 2
    line = _one_error_line(capsys, command)
    assert str(config) in line and "not UTF-8" in line and "0xe9" in line
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("command", ["train", "meta-train"])
@pytest.mark.parametrize("where", ["file", "below-a-file"])
def test_runs_dir_that_is_not_a_folder_exits_2(command, where, tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("")
    runs = afile if where == "file" else afile / "sub"
    assert main([command, "--runs-dir", str(runs)]) == 2
    line = _one_error_line(capsys, command)
    assert "--runs-dir" in line and "is a file, not a folder" in line and str(afile) in line


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
@pytest.mark.parametrize("command", ["train", "meta-train"])
def test_unwritable_runs_dir_exits_2(command, tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        assert main([command, "--runs-dir", str(locked / "runs")]) == 2
    finally:
        locked.chmod(0o700)
    line = _one_error_line(capsys, command)
    assert "--runs-dir" in line and "not writable" in line


def test_no_warp_noise_on_stdout():
    """brax imports mujoco.mjx.warp, which prints "Failed to import warp" on stdout when
    the optional warp backend is missing; `discover envs` (which asks brax for its env
    names) prints environment names only."""
    code = "import sys; from discovery.cli import main; sys.exit(main(['envs']))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "Failed to import" not in done.stdout and "Failed to import" not in done.stderr
    assert lines[0] == "CartPole-v1" and "brax/ant" in lines
