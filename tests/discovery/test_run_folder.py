"""Run folders: no mixing of runs, resume checks its config, corrupted checkpoints skipped."""

import json

import numpy as np
import pytest

from discovery.checkpoint import CheckpointError, save_checkpoint
from discovery.config import save_config, to_dict
from discovery.drift_training import MetaTrainConfig
from discovery.meta_run import run_meta_training
from discovery.run_folder import config_fingerprint, prepare_run_folder, record_resume

CONFIG = to_dict(MetaTrainConfig())


def _with(**changes):
    config = json.loads(json.dumps(CONFIG))
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        node = config
        for key in parents:
            node = node[key]
        node[leaf] = value
    return config


def _run_folder(tmp_path, generations=(5, 10), config=CONFIG):
    run = tmp_path / "run"
    for done in generations:
        save_checkpoint(run / "checkpoints", done, {"w": np.full(3, done, np.float32)},
                        metadata={"generation": done, "config": config})
    (run / "metrics.jsonl").write_text("")
    return run


def test_a_fresh_run_refuses_a_folder_that_holds_a_run(tmp_path):
    run = _run_folder(tmp_path)
    with pytest.raises(CheckpointError, match=r"holds a run already \(2 checkpoints, the "
                                              r"newest ckpt_00000010.*--resume.*--overwrite"):
        prepare_run_folder(run, CONFIG, resume=False)
    assert prepare_run_folder(run, CONFIG, resume=False, overwrite=True).checkpoint is None
    assert list(run.iterdir()) == []
    assert prepare_run_folder(tmp_path / "new", CONFIG, resume=False).checkpoint is None


@pytest.mark.parametrize("change, shown", [
    ({"seed": 1}, "seed: 0 -> 1"),
    ({"es__lr_init": 0.1}, "es.lr_init: 0.03 -> 0.1"),
    ({"es__population_size": 8}, "es.population_size: 16 -> 8"),
    ({"task__ppo__lr": 0.02}, "task.ppo.lr: 0.01 -> 0.02"),
])
def test_resume_refuses_a_different_config_naming_the_fields(tmp_path, change, shown):
    run = _run_folder(tmp_path)
    with pytest.raises(CheckpointError, match="only generations may change") as info:
        prepare_run_folder(run, _with(**change), resume=True)
    assert shown in str(info.value)


def test_a_field_added_since_the_checkpoint_counts_as_its_default(tmp_path):
    # A run checkpointed by an older version, whose configs had no `validation` section
    # and no `task.ppo.reward_scale`: resuming it with those at their defaults is the
    # same run; setting one is a different run, refused by name.
    older = json.loads(json.dumps(CONFIG))
    del older["validation"], older["task"]["ppo"]["reward_scale"]
    run = _run_folder(tmp_path, config=older)
    with pytest.raises(CheckpointError, match="validation"):
        prepare_run_folder(run, CONFIG, resume=True)  # without the defaults: a change
    plan = prepare_run_folder(run, CONFIG, resume=True, defaults=CONFIG)
    assert plan.checkpoint is not None
    with pytest.raises(CheckpointError, match=r"task.ppo.reward_scale: 1.0 -> 2.0"):
        prepare_run_folder(run, _with(task__ppo__reward_scale=2.0), resume=True,
                           defaults=CONFIG)


def test_resume_may_extend_generations_and_records_it(tmp_path):
    run = _run_folder(tmp_path)
    plan = prepare_run_folder(run, _with(generations=80), resume=True)
    assert plan.checkpoint.name == "ckpt_00000010.msgpack" and plan.generation == 10
    assert plan.resumed_generations == (40, 80)
    record_resume(run, plan)
    record = json.loads((run / "resumes.jsonl").read_text())
    assert (record["at_generation"], record["generations_before"],
            record["generations_after"]) == (10, 40, 80)
    assert config_fingerprint(_with(generations=80)) == config_fingerprint(CONFIG)
    assert config_fingerprint(_with(seed=1)) != config_fingerprint(CONFIG)


def test_resume_falls_back_past_a_corrupted_latest_checkpoint(tmp_path):
    run = _run_folder(tmp_path)
    latest = run / "checkpoints" / "ckpt_00000010.msgpack"
    latest.write_bytes(latest.read_bytes()[:-7])
    plan = prepare_run_folder(run, CONFIG, resume=True)
    assert plan.checkpoint.name == "ckpt_00000005.msgpack"
    assert "skipped ckpt_00000010.msgpack" in plan.notes[0]
    assert "newest readable" in plan.notes[1]
    first = run / "checkpoints" / "ckpt_00000005.msgpack"
    first.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="no checkpoint is readable"):
        prepare_run_folder(run, CONFIG, resume=True)


def test_a_refused_resume_writes_nothing(tmp_path):
    run = _run_folder(tmp_path)
    save_config(MetaTrainConfig(), run / "config.yaml")
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    config = MetaTrainConfig(seed=1)
    with pytest.raises(CheckpointError, match="seed: 0 -> 1"):
        run_meta_training(config, run, resume=True)
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before


def test_cli_refuses_to_mix_runs_before_any_compute(tmp_path, capsys):
    from discovery.cli import main

    runs = tmp_path / "runs"
    runs.mkdir()
    _run_folder(tmp_path, config=_with(name="x")).rename(runs / "x")
    assert main(["meta-train", "--name", "x", "--runs-dir", str(runs), "--set", "seed=1"]) == 2
    assert "holds a run already" in capsys.readouterr().err
    argv = ["meta-train", "--name", "x", "--runs-dir", str(runs), "--resume", "--set", "seed=1"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "seed: 0 -> 1" in err and "only generations may change" in err
    assert not (runs / "x" / "config.yaml").exists()  # nothing written before the checks
