"""The CLI around discovered components: export, zoo, evaluate (and their errors)."""

from __future__ import annotations

import json

import pytest

from discovery.cli import main

TINY = ["--set", "ppo.total_timesteps=256", "--set", "ppo.num_steps=16",
        "--set", "ppo.num_minibatches=2", "--set", "ppo.update_epochs=1"]


@pytest.fixture(autouse=True)
def _private_zoo(tmp_path, monkeypatch):
    monkeypatch.setenv("DISCOVERY_ZOO", str(tmp_path / "zoo"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def test_evaluate_a_shipped_zoo_entry(tmp_path, capsys):
    argv = ["evaluate", "zoo:lpo-cartpole-demo", "--seeds", "2", "--runs-dir", str(tmp_path),
            "--name", "ev", *TINY]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "| CartPole-v1 |" in out and "IQM" in out
    results = json.loads((tmp_path / "ev" / "results.json").read_text())
    assert results["component"] == "lpo-cartpole-demo"
    assert set(results["horizons"][0]["envs"]["CartPole-v1"]) == {"learned", "ppo_clip", "dpo"}
    assert (tmp_path / "ev" / "curves.png").stat().st_size > 0


def test_export_then_list_then_load_by_name(tmp_path, capsys):
    import shutil

    import numpy as np

    from discovery.config import from_dict, save_config
    from discovery.zoo import SHIPPED_ZOO, load
    from meta.loop import MetaTrainConfig

    # A finished drift run folder, rebuilt from the shipped entry's provenance.
    shipped = load("zoo:lpo-cartpole-demo")
    run = tmp_path / "run"
    run.mkdir()
    save_config(from_dict(MetaTrainConfig, shipped.manifest["provenance"]["config"]),
                run / "config.yaml")
    shutil.copy(SHIPPED_ZOO / "lpo-cartpole-demo" / "params.msgpack", run / "mean_params.msgpack")

    assert main(["export", str(run), "--name", "my-copy"]) == 0  # into $DISCOVERY_ZOO
    assert main(["zoo"]) == 0
    listing = capsys.readouterr().out
    assert "my-copy" in listing and "lpo-cartpole-demo" in listing
    copy = load("zoo:my-copy")
    for name in ("w1", "w2"):
        np.testing.assert_array_equal(copy.params[name], shipped.params[name])
    assert main(["export", str(run), "--name", "my-copy"]) == 2  # no silent overwrite
    assert "my-copy" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["evaluate", "zoo:no-such-entry"], "no-such-entry"),
        (["evaluate", "zoo:lpo-cartpole-demo", "--horizons", "1,x"], "--horizons"),
        (["evaluate", "zoo:lpo-cartpole-demo", "--seeds", "1"], "seeds"),
        (["meta-train", "--set", "component=objective", "--set",
          "levels.train=[Nope-v0/random]"], "Nope-v0"),
    ],
)
def test_bad_component_input_is_named(argv, message, tmp_path, capsys):
    assert main([*argv, "--runs-dir", str(tmp_path)] if argv[0] != "export" else argv) == 2
    assert message in capsys.readouterr().err


def test_train_logs_to_tensorboard_when_asked(tmp_path):
    argv = ["train", "--env", "CartPole-v1", "--seeds", "2", "--total-steps", "256",
            "--set", "ppo.num_steps=16", "--runs-dir", str(tmp_path), "--name", "tb",
            "--track", "tensorboard"]
    assert main(argv) == 0
    events = list((tmp_path / "tb" / "tensorboard").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0
    assert (tmp_path / "tb" / "metrics.jsonl").exists()  # JSONL is always written


def test_unknown_tracker_is_named(tmp_path, capsys):
    argv = ["train", "--total-steps", "256", "--runs-dir", str(tmp_path), "--track", "tensorbord"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "tensorbord" in err and "tensorboard" in err


def test_interpret_a_zoo_drift(tmp_path, capsys):
    assert main(["interpret", "zoo:lpo-cartpole-demo", "--runs-dir", str(tmp_path),
                 "--name", "int"]) == 0
    out = capsys.readouterr().out
    assert "closed form:" in out and "A>=0" in out
    fit = json.loads((tmp_path / "int" / "closed_form.json").read_text())["all"]
    assert fit["terms"] and 0.9 < fit["r2"] <= 1.0
    assert (tmp_path / "int" / "drift_surface.png").stat().st_size > 0


def test_sweep_runs_then_skips_finished_cells(tmp_path, capsys):
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(
        "name: tiny\ncommand: train\n"
        "set: [env=CartPole-v1, seeds=2, ppo.total_timesteps=256, ppo.num_steps=16,"
        " ppo.num_minibatches=2, ppo.update_epochs=1]\n"
        "grid:\n  ppo.lr: [0.001, 0.01]\nseeds: [0]\n"
    )
    argv = ["sweep", str(sweep), "--runs-dir", str(tmp_path / "runs")]
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert "running 2 cell(s) in one program" in first and "ppo.lr" in first
    assert main(argv) == 0
    assert "2 finished cell(s) skipped" in capsys.readouterr().out
