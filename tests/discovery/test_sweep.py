"""`discover sweep`: cell expansion, validation, vmapped groups, resume and summaries."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from discovery import envs  # noqa: F401  (sets XLA_FLAGS before JAX starts)
from discovery.config import ConfigError
from discovery.sweep import (
    Cell,
    expand_cells,
    group_cells,
    load_sweep,
    run_sweep,
)
from discovery.train import train_seeds

pytestmark = pytest.mark.timeout(300)

REPO = Path(__file__).resolve().parents[2]

TINY_SET = [
    "env=CartPole-v1",
    "seeds=2",
    "ppo.num_envs=4",
    "ppo.num_steps=32",
    "ppo.total_timesteps=2048",
    "ppo.num_minibatches=2",
    "ppo.update_epochs=1",
    "ppo.hidden_sizes=[16]",
]


def write_sweep(tmp_path: Path, **spec) -> Path:
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({"name": "s", "set": TINY_SET, **spec}, sort_keys=False))
    return path


# --------------------------------------------------------------------------- expansion


def test_grid_expands_to_cartesian_product_times_seeds(tmp_path):
    spec = load_sweep(write_sweep(
        tmp_path, grid={"ppo.lr": [1e-3, 3e-3], "ppo.ent_coef": [0.0, 0.01]}, seeds=[0, 1, 2]
    ))
    cells = expand_cells(spec)
    assert len(cells) == 2 * 2 * 3
    assert [c.index for c in cells] == list(range(12))
    assert cells[0].cell_id == "000_ppo.lr=0.001,ppo.ent_coef=0,seed=0"
    assert cells[1].seed == 1 and cells[3].values == (("ppo.lr", 1e-3), ("ppo.ent_coef", 0.01))
    assert len({c.cell_id for c in cells}) == 12
    combos = {(c.config.ppo.lr, c.config.ppo.ent_coef, c.config.seed) for c in cells}
    assert combos == {(lr, ent, s) for lr in (1e-3, 3e-3) for ent in (0.0, 0.01) for s in (0, 1, 2)}
    assert all(c.config.ppo.total_timesteps == 2048 for c in cells)  # `set` applies to all
    assert cells[5].overrides[-3:] == ("ppo.lr=0.001", "ppo.ent_coef=0.01", "seed=2")
    assert expand_cells(spec) == cells  # stable


def test_random_draws_are_deterministic_and_within_bounds(tmp_path):
    random = {
        "samples": 20,
        "seed": 3,
        "fields": {
            "ppo.vf_coef": {"uniform": [0.25, 0.75]},
            "ppo.lr": {"log_uniform": [1e-4, 1e-2]},
            "ppo.activation": {"choice": ["tanh", "relu"]},
        },
    }
    path = write_sweep(tmp_path, grid={"ppo.ent_coef": [0.0, 0.01]}, random=random)
    cells = expand_cells(load_sweep(path))
    assert len(cells) == 2 * 20
    again = expand_cells(load_sweep(path))
    assert [c.values for c in cells] == [c.values for c in again]
    draws = [dict(c.values) for c in cells]
    assert all(0.25 <= d["ppo.vf_coef"] <= 0.75 for d in draws)
    assert all(1e-4 <= d["ppo.lr"] <= 1e-2 for d in draws)
    assert {d["ppo.activation"] for d in draws} == {"tanh", "relu"}
    lrs = np.log10([d["ppo.lr"] for d in draws[::2]])
    assert lrs.min() < -3.3 and lrs.max() > -2.7  # spread over the log range
    # Each draw is combined with every grid point; configs carry the drawn values.
    assert draws[0]["ppo.lr"] == draws[20]["ppo.lr"]
    assert cells[0].config.ppo.lr == draws[0]["ppo.lr"]
    spec = load_sweep(path)
    other_seed = dataclasses.replace(spec, random=dataclasses.replace(spec.random, seed=4))
    assert [c.values for c in expand_cells(other_seed)] != [c.values for c in cells]


def test_long_cell_ids_are_shortened_with_a_hash_and_stay_unique(tmp_path):
    grid = {f"ppo.{k}": [0.1 + i * 1e-7, 0.2 + i * 1e-7]
            for i, k in enumerate(["gamma", "gae_lambda", "vf_coef", "vf_clip", "ent_coef",
                                   "adam_b1", "max_grad_norm"])}
    cells = expand_cells(load_sweep(write_sweep(tmp_path, grid=grid)))
    ids = [c.cell_id for c in cells]
    assert len(set(ids)) == len(ids) == 2**7
    assert max(len(i) for i in ids) <= 100
    assert all(set(i) <= set("abcdefghijklmnopqrstuvwxyz0123456789_.=,+-~") for i in ids)


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "spec,expected",
    [
        ({"command": "evaluate", "grid": {"ppo.lr": [1e-3]}}, ["command", "evaluate", "train"]),
        ({"grid": {"ppo.num_env": [2, 4]}}, ["grid.ppo.num_env", "num_envs"]),
        ({"grid": {"ppo.lr": ["fast"]}}, ["grid.ppo.lr", "fast", "float"]),
        ({"grid": {"ppo.num_minibatches": [3]}}, ["ppo.num_minibatches", "3"]),
        ({"grid": {"env": ["CartPole-v0"]}}, ["grid.env", "CartPole-v0", "CartPole-v1"]),
        ({"grid": {}}, ["grid", "varies nothing", "random"]),
        ({"grid": {"ppo.lr": []}}, ["grid.ppo.lr", "non-empty list"]),
        ({"grid": {"ppo.lr": 0.001}}, ["grid.ppo.lr", "0.001", "non-empty list"]),
        ({"random": {"samples": 2, "fields": {"ppo.lr": {"normal": [0, 1]}}}},
         ["random.fields.ppo.lr", "normal", "log_uniform"]),
        ({"random": {"samples": 2, "fields": {"ppo.lr": {"log_uniform": [0, 1e-2]}}}},
         ["random.fields.ppo.lr.log_uniform", "0 < low"]),
        ({"random": {"samples": 2, "fields": {"ppo.lr": {"uniform": [0.3, 0.1]}}}},
         ["random.fields.ppo.lr.uniform", "[0.3, 0.1]", "low <= high"]),
        ({"random": {"samples": 0, "fields": {"ppo.lr": {"uniform": [0.1, 0.3]}}}},
         ["random.samples", "0", ">= 1"]),
        ({"random": {"samples": 2, "fields": {"ppo.clip_eps": {"uniform": [0.1, 0.3]}}}},
         ["random.fields.ppo.clip_eps", "unknown field", "PPOConfig"]),
        ({"grid": {"ppo.lr": [1e-3]}, "random": {"samples": 1, "fields": {
            "ppo.lr": {"uniform": [1e-3, 2e-3]}}}}, ["random.fields.ppo.lr", "grid"]),
        ({"grid": {"seed": [0, 1]}}, ["grid.seed", "seeds"]),
        ({"grid": {"ppo.lr": [1e-3]}, "seeds": [0, 0]}, ["seeds", "[0, 0]", "distinct"]),
        ({"grid": {"ppo.lr": [1e-3]}, "metric": "fitness_mean"},
         ["metric", "fitness_mean", "final_return"]),
        ({"grid": {"ppo.lr": [1e-3]}, "seeds_": [0]}, ["seeds_", "unknown sweep key", "seeds"]),
        ({"grid": {"ppo.lr": [1e-3]}, "base": "no/such.yaml"}, ["base", "no/such.yaml"]),
        ({"grid": {"ppo.lr": [1e-3]}, "name": "a/b"}, ["name", "a/b"]),
    ],
)
def test_validation_errors_name_field_value_and_allowed(tmp_path, spec, expected):
    with pytest.raises(ConfigError) as info:
        load_sweep(write_sweep(tmp_path, **spec))
    for fragment in expected:
        assert fragment in str(info.value), f"{fragment!r} not in {info.value}"


def test_meta_train_cells_pick_the_config_class_by_component(tmp_path):
    drift = write_sweep(tmp_path, command="meta-train", set=["generations=2"],
                        grid={"es.sigma_init": [0.01, 0.03]}, seeds=[0, 1])
    spec = load_sweep(drift)
    cells = expand_cells(spec)
    assert type(cells[0].config).__name__ == "MetaTrainConfig" and spec.metric == "fitness_mean"
    assert [c.config.seed for c in cells] == [0, 1, 0, 1]
    assert {c.config.es.sigma_init for c in cells} == {0.01, 0.03}
    assert [len(g) for g in group_cells(cells)] == [1, 1, 1, 1]  # meta cells run one by one

    objective = write_sweep(tmp_path, command="meta-train",
                            set=["component=objective", "generations=2"],
                            grid={"metagrad.lr": [1e-4, 1e-3]})
    spec = load_sweep(objective)
    assert type(expand_cells(spec)[0].config).__name__ == "ObjectiveMetaTrainConfig"
    assert spec.metric == "episode_return"  # meta-gradient runs log no fitness

    with pytest.raises(ConfigError, match="component.*'policy'.*drift, objective"):
        load_sweep(write_sweep(tmp_path, command="meta-train", set=["component=policy"],
                               grid={"es.sigma_init": [0.01]}))
    with pytest.raises(ConfigError, match="grid.task.envs.*Breakout.*Breakout-MinAtar"):
        load_sweep(write_sweep(tmp_path, command="meta-train", set=[],
                               grid={"task.envs": [["Breakout"]]}))
    with pytest.raises(ConfigError, match="metric.*final_return.*fitness_mean"):
        load_sweep(write_sweep(tmp_path, command="meta-train", set=[], metric="final_return",
                               grid={"es.sigma_init": [0.01]}))


def test_base_is_found_next_to_the_sweep_file(tmp_path):
    (tmp_path / "base.yaml").write_text("env: Acrobot-v1\nseeds: 3\n")
    spec = load_sweep(write_sweep(tmp_path, base="base.yaml", set=["ppo.total_timesteps=2048"],
                                  grid={"ppo.lr": [1e-3]}))
    assert spec.base == tmp_path / "base.yaml"
    config = expand_cells(spec)[0].config
    assert (config.env, config.seeds, config.ppo.total_timesteps) == ("Acrobot-v1", 3, 2048)


def test_shipped_sweep_loads():
    spec = load_sweep(REPO / "configs" / "sweep_ppo_cartpole.yaml")
    cells = expand_cells(spec)
    assert spec.command == "train" and len(cells) >= 6
    assert len(group_cells(cells)) == 1  # an lr grid over seeds is one vmapped program


# --------------------------------------------------------------------------- grouping


def _cells(tmp_path: Path, grid: dict, set_: list[str] = ()) -> list[Cell]:
    return expand_cells(load_sweep(write_sweep(tmp_path, set=[*TINY_SET, *set_], grid=grid,
                                               seeds=[0, 1])))


def test_traced_hyperparameters_share_a_group_static_fields_do_not(tmp_path):
    traced = {"ppo.lr": [1e-3, 3e-3], "ppo.gamma": [0.9, 0.99], "ppo.max_grad_norm": [0.5, 1.0]}
    assert [len(g) for g in group_cells(_cells(tmp_path, traced))] == [16]
    assert [len(g) for g in group_cells(_cells(tmp_path, traced), max_group_size=5)] == [
        5, 5, 5, 1]
    static = _cells(tmp_path, {"ppo.lr": [1e-3, 3e-3], "ppo.num_steps": [16, 32]})
    groups = group_cells(static)
    assert [len(g) for g in groups] == [4, 4]
    assert all(len({c.config.ppo.num_steps for c in g}) == 1 for g in groups)
    # The reward normaliser closes over gamma, so then gamma fixes the program.
    normalized = _cells(tmp_path, {"ppo.gamma": [0.9, 0.99]}, ["ppo.normalize_reward=true"])
    assert [len(g) for g in group_cells(normalized)] == [2, 2]
    drifts = _cells(tmp_path, {"drift": ["ppo", "dpo"]})
    assert [len(g) for g in group_cells(drifts)] == [2, 2]


# --------------------------------------------------------------------------- running


class Interrupt(Exception):
    pass


@pytest.fixture(scope="module")
def interrupted_sweep(tmp_path_factory):
    """An lr grid x 2 seeds (4 cells) killed after its first cell, then resumed."""
    tmp_path = tmp_path_factory.mktemp("sweep")
    spec = load_sweep(write_sweep(tmp_path, grid={"ppo.lr": [3e-4, 3e-3]}, seeds=[0, 1]))
    first_calls: list[str] = []

    def stop_after_first(cell: Cell, result: dict) -> None:
        first_calls.append(cell.cell_id)
        raise Interrupt

    with pytest.raises(Interrupt):
        run_sweep(spec, tmp_path / "runs", on_cell=stop_after_first)
    first_cell = expand_cells(spec)[0]
    result_path = tmp_path / "runs" / "s" / "cells" / first_cell.cell_id / "result.json"
    before = (result_path.stat().st_mtime_ns, result_path.read_text())
    groups_started: list[list[str]] = []
    second_calls: list[str] = []
    result = run_sweep(
        spec,
        tmp_path / "runs",
        on_cell=lambda cell, _: second_calls.append(cell.cell_id),
        on_group=lambda cells: groups_started.append([c.cell_id for c in cells]),
    )
    return {
        "spec": spec,
        "result": result,
        "first_calls": first_calls,
        "second_calls": second_calls,
        "groups_started": groups_started,
        "result_path": result_path,
        "before": before,
    }


def test_resume_skips_the_finished_cell_and_runs_the_rest_as_one_group(interrupted_sweep):
    run = interrupted_sweep
    result = run["result"]
    ids = [c.cell_id for c in result.cells]
    assert run["first_calls"] == ids[:1]
    assert result.skipped == ids[:1]
    assert run["second_calls"] == ids[1:]
    assert result.groups == run["groups_started"] == [ids[1:]]  # one vmapped program
    path = run["result_path"]
    assert (path.stat().st_mtime_ns, path.read_text()) == run["before"]
    assert set(result.results) == set(ids)
    # The first call ran all four cells, differing only in lr and seed, as one group.
    assert json.loads(path.read_text())["group"] == ids


def test_cell_results_hold_returns_curves_and_run_files(interrupted_sweep):
    result = interrupted_sweep["result"]
    for cell in result.cells:
        record = result.results[cell.cell_id]
        assert record["metric"] == "final_return"
        assert len(record["final_return_per_seed"]) == 2 == len(record["samples"])
        samples = np.array(record["samples"], dtype=float)  # NaN: no episode ended late
        assert record["mean"] == pytest.approx(np.nanmean(samples))
        assert len(record["learning_curve"]["latest_return"]) == cell.config.ppo.num_updates
        assert record["config"]["ppo"]["lr"] == cell.config.ppo.lr
        cell_dir = result.sweep_dir / "cells" / cell.cell_id
        assert len((cell_dir / "metrics.jsonl").read_text().splitlines()) == 16
        assert (cell_dir / "learning_curve.png").is_file()
        assert (cell_dir / "config.yaml").is_file()


@pytest.mark.cross_program
def test_vmapped_group_matches_training_each_cell_alone(interrupted_sweep):
    result = interrupted_sweep["result"]
    cell = result.cells[1]  # lr 3e-4, seed 1: trained in a group of four, then of three
    alone = train_seeds(cell.config)
    record = result.results[cell.cell_id]
    # Measured on CPU: equal to ~1e-6 (float reassociation under vmap may differ).
    np.testing.assert_allclose(record["final_return_per_seed"], alone.final_returns(),
                               rtol=1e-3, atol=1e-2)
    curve = np.nanmean(alone.metrics["latest_return"], axis=0)
    np.testing.assert_allclose(np.array(record["learning_curve"]["latest_return"], float),
                               curve, rtol=1e-3, atol=1e-2)


def test_summary_has_one_row_per_cell_and_ranks_points(interrupted_sweep):
    result = interrupted_sweep["result"]
    sweep_dir = result.sweep_dir
    summary = json.loads((sweep_dir / "summary.json").read_text())
    assert summary == json.loads(json.dumps(result.summary))
    assert [row["cell_id"] for row in summary["cells"]] == [c.cell_id for c in result.cells]
    assert len(summary["points"]) == 2
    means = [p["mean"] for p in summary["points"]]
    assert means == sorted(means, reverse=True)
    for point in summary["points"]:
        assert len(point["cells"]) == 2 and len(point["samples"]) == 4  # 2 seeds x 2 agents
        samples = np.array([s for c in point["cells"] for s in result.results[c]["samples"]],
                           dtype=float)
        samples = samples[np.isfinite(samples)]
        assert point["n"] == samples.size
        assert point["mean"] == pytest.approx(np.mean(samples))
        assert point["sem"] == pytest.approx(np.std(samples, ddof=1) / np.sqrt(samples.size))
    markdown = (sweep_dir / "summary.md").read_text()
    for cell in result.cells:
        assert markdown.count(f"`{cell.cell_id}`") == 1
    assert "| 1 |" in markdown and "ppo.lr" in markdown
    assert (sweep_dir / "summary.png").stat().st_size > 1000
    assert load_sweep(sweep_dir / "sweep.yaml").grid == interrupted_sweep["spec"].grid


def test_a_changed_sweep_does_not_reuse_cell_folders(interrupted_sweep, tmp_path):
    spec = interrupted_sweep["spec"]
    changed = dataclasses.replace(spec, set=(*spec.set, "ppo.ent_coef=0.0"))
    with pytest.raises(ConfigError, match="different config.*ppo.ent_coef"):
        run_sweep(changed, interrupted_sweep["result"].sweep_dir.parent)


def test_meta_train_cells_run_in_turn_resume_from_checkpoints_and_rank_by_fitness(
    tmp_path, monkeypatch
):
    """The meta-train path with the outer loop faked (a real tiny drift run costs ~45 s
    per cell on two CPU cores): cells run one at a time, a killed cell resumes from its
    checkpoint, and the metric is the mean over the last fifth of generations."""
    import discovery.meta_run
    import discovery.pipeline

    calls: list[tuple[str, bool]] = []

    def fake_meta_train(config, run_dir, resume=False):
        run_dir = Path(run_dir)
        calls.append((run_dir.name, resume))
        if config.es.sigma_init == 0.03 and config.seed == 0 and not resume:
            (run_dir / "checkpoints").mkdir()
            (run_dir / "checkpoints" / "ckpt_00000003.msgpack").write_bytes(b"")
            raise Interrupt
        records = [{"generation": g, "fitness_mean": 100 * config.es.sigma_init + g + config.seed,
                    "wall_time_s": 0.1} for g in range(config.generations)]
        (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
        return run_dir

    monkeypatch.setattr(discovery.pipeline, "meta_train", fake_meta_train)
    monkeypatch.setattr(discovery.meta_run, "write_results",
                        lambda result, config: {"evaluation": {"learned_mean_return": [1.0]}})
    spec = load_sweep(write_sweep(tmp_path, command="meta-train", set=["generations=10"],
                                  grid={"es.sigma_init": [0.01, 0.03]}, seeds=[0, 1]))
    ids = [c.cell_id for c in expand_cells(spec)]
    with pytest.raises(Interrupt):
        run_sweep(spec, tmp_path / "runs")
    assert calls == [(ids[0], False), (ids[1], False), (ids[2], False)]
    result = run_sweep(spec, tmp_path / "runs")
    assert calls[3:] == [(ids[2], True), (ids[3], False)]
    assert result.skipped == ids[:2] and result.groups == [[ids[2]], [ids[3]]]
    record = result.results[ids[2]]  # sigma 0.03, seed 0: fitness 3 + generation
    assert record["samples"] == [3 + 8.5] and record["window"] == 2
    assert record["resumed"] and record["run_summary"]["evaluation"]["learned_mean_return"]
    best = result.summary["best"]
    assert best["values"] == {"es.sigma_init": 0.03} and best["mean"] == pytest.approx(12.0)
    assert best["sem"] == pytest.approx(0.5) and best["n"] == 2
