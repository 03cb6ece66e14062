"""The CLI around discovered components: export, zoo, evaluate (and their errors)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from discovery.cli import main


@pytest.fixture(autouse=True)
def _private_zoo(tmp_path, monkeypatch):
    monkeypatch.setenv("DISCOVERY_ZOO", str(tmp_path / "zoo"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def test_evaluate_a_shipped_zoo_entry(tmp_path, capsys):
    # A quarter of the entry's horizon, 2 seeds: the programs notebook 05's test builds,
    # so whichever of the two runs second loads them from the compilation cache.
    argv = ["evaluate", "zoo:lpo-cartpole-demo", "--seeds", "2", "--horizons", "0.25",
            "--runs-dir", str(tmp_path), "--name", "ev"]
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
    from discovery.drift_training import MetaTrainConfig
    from discovery.zoo import SHIPPED_ZOO, load

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
    assert main([*argv, "--track", "jsonl"]) == 0
    first = capsys.readouterr().out
    assert "running 2 cell(s) in one program" in first and "ppo.lr" in first
    # --track logs each finished cell, in the sweep's folder, as the sweep goes.
    tracked = [json.loads(line) for line in
               (tmp_path / "runs" / "tiny" / "tracking.jsonl").read_text().splitlines()]
    assert [record["step"] for record in tracked] == [0, 1]
    assert all(record["cell"] in first and np.isfinite(record["mean"]) for record in tracked)
    assert main(argv) == 0
    assert "2 finished cell(s) skipped" in capsys.readouterr().out


# --------------------------------------------------------------------------- bad input


def _one_error_line(capsys, command: str) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"discover {command}: error: ") and "Traceback" not in err, err
    return lines[0]


@pytest.fixture
def no_training(monkeypatch):
    """Fail the test if evaluate gets as far as training anything."""
    import discovery.evaluate

    def trained(*args, **kwargs):
        raise AssertionError("evaluate started computing before its inputs were checked")

    monkeypatch.setattr(discovery.evaluate, "evaluate_component", trained)


@pytest.mark.parametrize(
    "extra, expected",
    [
        (["--envs", "CartPol-v1"], ["--envs", "'CartPol-v1'", "Did you mean 'CartPole-v1'",
                                    "discover envs"]),
        (["--envs", "CartPole-v1,Acrobt-v1"], ["--envs", "'Acrobt-v1'", "'Acrobot-v1'"]),
        (["--seeds", "60000", "--set", "ppo.num_envs=1024", "--set", "ppo.total_timesteps=1e6"],
         ["memory", "GiB", "--seeds 60000"]),
        (["--seeds", "100000000000"], ["seeds", "<= 65536"]),
        (["--name", "../escaped"], ["--name", "'../escaped'", "one folder"]),
        (["--set", "ppo.lr=.nan"], ["lr", "nan", "finite"]),
    ],
)
def test_evaluate_checks_inputs_before_any_compute(extra, expected, tmp_path, capsys,
                                                   no_training):
    runs = tmp_path / "runs"
    assert main(["evaluate", "zoo:lpo-cartpole-demo", "--runs-dir", str(runs), *extra]) == 2
    line = _one_error_line(capsys, "evaluate")
    for fragment in expected:
        assert fragment in line, f"{fragment!r} not in {line!r}"
    assert not runs.exists()


def test_evaluate_runs_dir_that_is_a_file_exits_2_before_compute(tmp_path, capsys, no_training):
    afile = tmp_path / "afile"
    afile.write_text("")
    assert main(["evaluate", "zoo:lpo-cartpole-demo", "--runs-dir", str(afile)]) == 2
    line = _one_error_line(capsys, "evaluate")
    assert "--runs-dir" in line and "is a file, not a folder" in line


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_evaluate_unwritable_runs_dir_exits_2_before_compute(tmp_path, capsys, no_training):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        assert main(["evaluate", "zoo:lpo-cartpole-demo", "--runs-dir", str(locked)]) == 2
    finally:
        locked.chmod(0o700)
    assert "not writable" in _one_error_line(capsys, "evaluate")


@pytest.fixture
def train_run(tmp_path):
    """A `discover train` run folder (its config only: nothing needs to have trained)."""
    from discovery.config import save_config
    from discovery.train import TrainConfig

    run = tmp_path / "runs" / "CartPole-v1-ppo-s0"
    save_config(TrainConfig(), run / "config.yaml")
    return run


@pytest.mark.parametrize("command", ["evaluate", "export", "interpret"])
def test_a_train_run_folder_is_named_as_such(command, train_run, tmp_path, capsys):
    argv = [command, str(train_run)]
    argv += ["--name", "x"] if command == "export" else ["--runs-dir", str(tmp_path / "out")]
    assert main(argv) == 2
    line = _one_error_line(capsys, command)
    assert "is a `discover train` run" in line and "discover meta-train" in line, line
    assert "zoo:NAME" in line and "unknown field" not in line


def test_zoo_lists_unreadable_entries_with_the_reason_and_the_rest(tmp_path, capsys):
    import shutil

    from discovery.zoo import SHIPPED_ZOO

    user = tmp_path / "zoo"
    shutil.copytree(SHIPPED_ZOO / "lpo-cartpole-demo", user / "a-good-copy")
    newer = user / "b-newer"
    shutil.copytree(SHIPPED_ZOO / "lpo-cartpole-demo", newer)
    manifest = json.loads((newer / "manifest.json").read_text())
    (newer / "manifest.json").write_text(json.dumps({**manifest, "format_version": 99}))
    (user / "c-bad-json").mkdir()
    (user / "c-bad-json" / "manifest.json").write_text("{oops")

    assert main(["zoo"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert set(rows) == {"a-good-copy", "b-newer", "c-bad-json", "lpo-cartpole-demo"}
    assert rows["a-good-copy"].split()[1] == "drift"
    assert rows["lpo-cartpole-demo"].split()[1] == "drift"
    assert rows["b-newer"].split()[1] == "unreadable" and "'format_version' is 99" in rows[
        "b-newer"]
    assert rows["c-bad-json"].split()[1] == "unreadable" and "not valid JSON" in rows[
        "c-bad-json"]


def test_export_over_an_existing_entry_names_the_flag(tmp_path, capsys):
    from discovery.config import from_dict, save_config
    from discovery.drift_training import MetaTrainConfig
    from discovery.zoo import SHIPPED_ZOO, load

    shipped = load("zoo:lpo-cartpole-demo")
    run = tmp_path / "run"
    save_config(from_dict(MetaTrainConfig, shipped.manifest["provenance"]["config"]),
                run / "config.yaml")
    (run / "mean_params.msgpack").write_bytes(
        (SHIPPED_ZOO / "lpo-cartpole-demo" / "params.msgpack").read_bytes())
    assert main(["export", str(run), "--name", "mine"]) == 0
    capsys.readouterr()
    assert main(["export", str(run), "--name", "mine"]) == 2
    line = _one_error_line(capsys, "export")
    assert "exists already" in line and "--overwrite" in line and "overwrite=True" not in line
    assert main(["export", str(run), "--name", "mine", "--overwrite"]) == 0
    # The export writes the behaviour hash, so the entry loads; an edited recipe does not.
    entry = tmp_path / "zoo" / "mine"
    assert load("zoo:mine").manifest["behaviour_sha256"]
    manifest = json.loads((entry / "manifest.json").read_text())
    manifest["component"]["clip_eps"] = 0.3
    (entry / "manifest.json").write_text(json.dumps(manifest))
    assert main(["evaluate", "zoo:mine", "--runs-dir", str(tmp_path / "runs")]) == 2
    line = _one_error_line(capsys, "evaluate")
    assert "behaviour_sha256" in line and "changed after export" in line
