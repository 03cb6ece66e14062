"""Tests for discovery.zoo: bit-exact export/load, verification errors, lookup, shipped entry."""

import datetime
import hashlib
import json
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from discovery import (
    envs,  # noqa: F401  (sets XLA_FLAGS before any computation)
    zoo,
)
from discovery.config import save_config, to_dict
from discovery.drift import make_drift
from discovery.drift_training import MetaTrainConfig
from discovery.meta_run import save_params
from discovery.objective import ObjectiveConfig, make_objective
from discovery.objective_training import ObjectiveMetaTrainConfig
from discovery.tasks import DriftTaskConfig
from discovery.zoo import ZooError

pytestmark = pytest.mark.timeout(120)

TINY_DRIFT = {"drift": "lpo", "hidden": 8}
TINY_OBJECTIVE = ObjectiveConfig(
    kind="ta_lpg", prediction_size=4, hidden_size=8, cell="lstm", embedding_size=4
)


@pytest.fixture(autouse=True)
def user_zoo(tmp_path, monkeypatch) -> Path:
    """Every test sees an empty user zoo of its own (never ~/.discovery/zoo)."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DISCOVERY_ZOO", str(tmp_path / "user-zoo"))
    return tmp_path / "user-zoo"


def _noisy(params, seed: int):
    """Params of the same structure with values no init would give."""
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    noisy = [x + jax.random.normal(k, x.shape, x.dtype) for x, k in zip(leaves, keys)]
    return jax.tree.unflatten(treedef, noisy)


def _tiny_drift_params(seed: int = 1):
    return _noisy(make_drift("lpo", hidden=8).init(jax.random.key(0)), seed)


def _assert_bit_exact(loaded, original) -> None:
    got = jax.tree_util.tree_flatten_with_path(loaded)[0]
    want = jax.tree_util.tree_flatten_with_path(original)[0]
    assert [jax.tree_util.keystr(p) for p, _ in got] == [jax.tree_util.keystr(p) for p, _ in want]
    for (path, x), (_, y) in zip(got, want):
        assert x.dtype == y.dtype, jax.tree_util.keystr(path)
        np.testing.assert_array_equal(x, np.asarray(y))


def _export_tiny(zoo_dir: Path, name: str = "tiny-lpo", seed: int = 1, **kwargs) -> Path:
    return zoo.export_params("drift", TINY_DRIFT, _tiny_drift_params(seed), name, zoo_dir,
                             **kwargs)


def _edit_manifest(entry: Path, rehash: bool = False, **changes) -> None:
    """Change manifest fields; ``rehash`` also rewrites the behaviour hash to match (a
    consistent manifest that is wrong in another way)."""
    manifest = json.loads((entry / "manifest.json").read_text())
    manifest.update(changes)
    if rehash:
        data = (entry / "params.msgpack").read_bytes()
        manifest["behaviour_sha256"] = zoo.behaviour_sha256(
            manifest["kind"], manifest["component"], data
        )
    (entry / "manifest.json").write_text(json.dumps(manifest))


def _drift_run(run_dir: Path, drift: str = "ta_lpo") -> tuple[MetaTrainConfig, dict, dict]:
    """A finished drift run folder, as discovery.meta_run writes one (small)."""
    config = MetaTrainConfig(name="tiny-run", seed=7, generations=3,
                             task=DriftTaskConfig(drift=drift))
    save_config(config, run_dir / "config.yaml")
    init = make_drift(drift, clip_eps=0.2).init(jax.random.key(0))
    mean, best = _noisy(init, 1), _noisy(init, 2)
    save_params(mean, run_dir / "mean_params.msgpack")
    save_params(best, run_dir / "best_params.msgpack")
    summary = {"generations": 3, "evaluation": {"learned_mean_return": [123.5]}}
    (run_dir / "summary.json").write_text(json.dumps(summary))
    return config, mean, best


# --------------------------------------------------------------------------- round trips


def test_drift_round_trip_is_bit_exact(tmp_path):
    params = _tiny_drift_params()
    entry = zoo.export_params("drift", TINY_DRIFT, params, "tiny-lpo", tmp_path / "z")
    assert sorted(p.name for p in entry.iterdir()) == ["manifest.json", "params.msgpack"]

    loaded = zoo.load(entry)
    assert (loaded.name, loaded.kind, loaded.path) == ("tiny-lpo", "drift", entry)
    _assert_bit_exact(loaded.params, params)
    manifest = loaded.manifest
    assert manifest["format"] == "discovery-zoo" and manifest["format_version"] == 2
    assert manifest["params_shapes"] == {"w1": [8, 8], "w2": [8, 1]}
    data = (entry / "params.msgpack").read_bytes()
    assert manifest["params_sha256"] == hashlib.sha256(data).hexdigest()
    assert manifest["behaviour_sha256"] == zoo.behaviour_sha256("drift", TINY_DRIFT, data)

    ratio, advantage = jnp.linspace(0.5, 2.0, 9), jnp.linspace(-2.0, 2.0, 9)
    original = make_drift("lpo", hidden=8)
    np.testing.assert_array_equal(
        jax.jit(loaded.drift().apply)(loaded.params, ratio, advantage, 0.3),
        jax.jit(original.apply)(params, ratio, advantage, 0.3),
    )


def test_objective_round_trip_is_bit_exact(tmp_path):
    params = _noisy(make_objective(TINY_OBJECTIVE).init(jax.random.key(0)), 3)
    entry = zoo.export_params("objective", TINY_OBJECTIVE, params, "tiny-lpg", tmp_path)

    loaded = zoo.load(entry)
    assert loaded.kind == "objective"
    assert loaded.manifest["component"] == to_dict(TINY_OBJECTIVE)
    _assert_bit_exact(loaded.params, params)
    assert loaded.objective().config == TINY_OBJECTIVE
    with pytest.raises(ZooError, match="kind 'objective', not 'drift'"):
        loaded.drift()


def test_export_run_and_load_run_folder(tmp_path):
    run = tmp_path / "runs" / "tiny-run"
    config, mean, best = _drift_run(run)

    direct = zoo.load(run)
    assert (direct.kind, direct.name) == ("drift", "tiny-run")
    _assert_bit_exact(direct.params, mean)
    assert direct.manifest["component"]["drift"] == "ta_lpo"

    entry = zoo.export_run(run, "tiny", zoo_dir=tmp_path / "z")
    loaded = zoo.load(entry)
    _assert_bit_exact(loaded.params, mean)
    assert loaded.manifest["component"] == direct.manifest["component"]
    provenance = loaded.manifest["provenance"]
    assert provenance["run_name"] == "tiny-run" and provenance["seed"] == 7
    assert provenance["generations"] == 3 and provenance["meta_optimizer"] == "es/open_es"
    assert provenance["config"] == to_dict(config)
    assert provenance["summary"]["evaluation"]["learned_mean_return"] == [123.5]
    assert provenance["source_run"] == str(run.resolve())
    assert provenance["params_file"] == "mean_params.msgpack"
    exported = datetime.datetime.fromisoformat(provenance["exported_at"])
    assert exported.utcoffset() == datetime.timedelta(0)
    commit = provenance["git_commit"]
    assert commit is None or (len(commit) == 40 and int(commit, 16) >= 0)

    best_entry = zoo.export_run(run, "tiny-best", tmp_path / "z", "best_params.msgpack")
    _assert_bit_exact(zoo.load(best_entry).params, best)


def test_export_run_of_an_objective_run(tmp_path):
    run = tmp_path / "lpg-run"
    config = ObjectiveMetaTrainConfig(name="lpg-run", generations=2, objective=TINY_OBJECTIVE)
    save_config(config, run / "config.yaml")
    params = _noisy(make_objective(TINY_OBJECTIVE).init(jax.random.key(0)), 4)
    save_params(params, run / "objective_params.msgpack")

    loaded = zoo.load(zoo.export_run(run, "tiny-lpg", tmp_path / "z"))
    assert loaded.kind == "objective"
    assert loaded.manifest["component"] == to_dict(TINY_OBJECTIVE)
    assert loaded.manifest["provenance"]["meta_optimizer"] == "metagrad"
    assert loaded.manifest["provenance"]["summary"] is None
    _assert_bit_exact(loaded.params, params)


# --------------------------------------------------------------------------- verification


def test_corrupted_params_fail_the_checksum(tmp_path):
    entry = _export_tiny(tmp_path)
    path = entry / "params.msgpack"
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x01  # A flipped bit inside a weight: the file still parses.
    path.write_bytes(bytes(data))
    with pytest.raises(ZooError, match=r"params\.msgpack: sha256 .* 'params_sha256'"):
        zoo.load(entry)


def test_newer_format_version_is_refused(tmp_path):
    entry = _export_tiny(tmp_path)
    _edit_manifest(entry, format_version=3)
    with pytest.raises(ZooError, match=r"'format_version' is 3.*reads format_version 2"):
        zoo.load(entry)


def test_format_version_1_without_behaviour_hash_is_refused_with_the_fix(tmp_path):
    entry = _export_tiny(tmp_path)
    _edit_manifest(entry, format_version=1)
    with pytest.raises(ZooError, match=r"'format_version' is 1, an older.*--overwrite"):
        zoo.load(entry)


@pytest.mark.parametrize(
    "changes",
    [
        {"component": {**TINY_DRIFT, "clip_eps": 0.5}},  # a recipe edit that still builds
        {"component": {**TINY_DRIFT, "output_scale": 1.0}},
        {"behaviour_sha256": "0" * 64},
    ],
    ids=["clip_eps", "output_scale", "hash"],
)
def test_edited_component_recipe_is_refused(tmp_path, changes):
    entry = _export_tiny(tmp_path)
    zoo.load(entry).drift()  # as exported: loads
    _edit_manifest(entry, **changes)
    with pytest.raises(ZooError) as info:
        zoo.load(entry)
    message = str(info.value)
    assert "manifest.json" in message and "'behaviour_sha256'" in message, message
    assert "changed after export" in message and "--overwrite" in message, message


def test_behaviour_hash_covers_kind_recipe_and_params():
    base = zoo.behaviour_sha256("drift", TINY_DRIFT, b"params")
    assert base == zoo.behaviour_sha256("drift", dict(reversed(TINY_DRIFT.items())), b"params")
    assert base != zoo.behaviour_sha256("objective", TINY_DRIFT, b"params")
    assert base != zoo.behaviour_sha256("drift", {**TINY_DRIFT, "hidden": 9}, b"params")
    assert base != zoo.behaviour_sha256("drift", TINY_DRIFT, b"params!")


def test_export_refuses_non_finite_params(tmp_path):
    params = _tiny_drift_params()
    params = {**params, "w2": params["w2"].at[0, 0].set(jnp.inf)}
    with pytest.raises(ZooError, match=r"NaN or infinite values in w2"):
        zoo.export_params("drift", TINY_DRIFT, params, "inf", tmp_path)
    assert not (tmp_path / "inf").exists()


def test_train_run_folder_is_named_as_such(tmp_path):
    from discovery.train import TrainConfig

    run = tmp_path / "CartPole-v1-ppo-s0"
    save_config(TrainConfig(), run / "config.yaml")
    for call in (lambda: zoo.load(run), lambda: zoo.export_run(run, "x", tmp_path / "z")):
        with pytest.raises(ZooError) as info:
            call()
        message = str(info.value)
        assert "`discover train` run" in message and "meta-train" in message, message
        assert "unknown field" not in message


def test_list_entries_reports_unreadable_entries_and_lists_the_rest(user_zoo):
    good = _export_tiny(user_zoo, "good")
    newer = _export_tiny(user_zoo, "newer")
    _edit_manifest(newer, format_version=99)
    broken = user_zoo / "broken"
    broken.mkdir()
    (broken / "manifest.json").write_text("{not json")
    odd = _export_tiny(user_zoo, "odd")
    _edit_manifest(odd, provenance=["not", "a", "mapping"])
    rows = {row["name"]: row for row in zoo.list_entries()}
    assert rows["good"]["kind"] == "drift" and rows["good"]["unreadable"] is None
    assert rows["lpo-cartpole-demo"]["kind"] == "drift"
    assert "format_version" in rows["newer"]["unreadable"] and rows["newer"]["kind"] is None
    assert "not valid JSON" in rows["broken"]["unreadable"]
    assert "malformed manifest" in rows["odd"]["unreadable"]
    assert zoo.load(good).name == "good"


def test_wrong_format_string_is_refused(tmp_path):
    entry = _export_tiny(tmp_path)
    _edit_manifest(entry, format="discovery-checkpoint")
    with pytest.raises(ZooError, match=r"'format' is 'discovery-checkpoint'; expected"):
        zoo.load(entry)


def test_unknown_kind_is_refused(tmp_path):
    entry = _export_tiny(tmp_path)
    _edit_manifest(entry, kind="curriculum")
    with pytest.raises(ZooError, match=r"'kind' is 'curriculum'; allowed: 'drift', 'objective'"):
        zoo.load(entry)
    with pytest.raises(ZooError, match="kind is 'curriculum'"):
        zoo.export_params("curriculum", TINY_DRIFT, _tiny_drift_params(), "x", tmp_path)


def test_missing_files_are_reported(tmp_path):
    entry = _export_tiny(tmp_path)
    (entry / "params.msgpack").unlink()
    with pytest.raises(ZooError, match=r"params\.msgpack: cannot read"):
        zoo.load(entry)
    with pytest.raises(ZooError, match="no such zoo entry or run folder"):
        zoo.load(tmp_path / "nowhere")
    run = tmp_path / "unfinished"
    save_config(MetaTrainConfig(), run / "config.yaml")
    with pytest.raises(ZooError, match=r"mean_params\.msgpack: not found"):
        zoo.load(run)


def test_params_unlike_the_component_are_refused(tmp_path):
    entry = _export_tiny(tmp_path)
    _edit_manifest(entry, rehash=True, component={"drift": "lpo", "hidden": 16},
                   params_shapes={"w1": [8, 8], "w2": [8, 1]})
    mismatch = r"(?s)do not fit the component.*\n  w1: expected float32\[8, 16\], got"
    with pytest.raises(ZooError, match=mismatch):
        zoo.load(entry)
    _edit_manifest(entry, rehash=True, component=TINY_DRIFT,
                   params_shapes={"w1": [8, 4], "w2": [8, 1]})
    with pytest.raises(ZooError, match="'params_shapes'"):
        zoo.load(entry)
    with pytest.raises(ZooError, match="do not fit the component"):
        zoo.export_params("drift", {"drift": "lpo", "hidden": 4}, _tiny_drift_params(),
                          "wrong", tmp_path)
    assert not (tmp_path / "wrong").exists()


@pytest.mark.parametrize("name", ["Tiny", "-tiny", "a/b", "", "../up", "a b", ".hidden"])
def test_bad_names_are_refused(tmp_path, name):
    with pytest.raises(ZooError, match="is not allowed"):
        _export_tiny(tmp_path, name)
    with pytest.raises(ZooError, match="is not allowed"):
        zoo.export_run(tmp_path, name, tmp_path)
    with pytest.raises(ZooError, match="is not allowed"):
        zoo.load(f"zoo:{name}")


def test_overwrite_protection(tmp_path):
    entry = _export_tiny(tmp_path, seed=1)
    with pytest.raises(ZooError, match="exists already; pass overwrite=True"):
        _export_tiny(tmp_path, seed=2)
    _assert_bit_exact(zoo.load(entry).params, _tiny_drift_params(1))
    _export_tiny(tmp_path, seed=2, overwrite=True)
    _assert_bit_exact(zoo.load(entry).params, _tiny_drift_params(2))
    assert sorted(p.name for p in entry.iterdir()) == ["manifest.json", "params.msgpack"]


def test_unserialisable_provenance_writes_nothing(tmp_path):
    with pytest.raises(ZooError, match="JSON-serialisable"):
        _export_tiny(tmp_path, provenance={"when": object()})
    assert not (tmp_path / "tiny-lpo").exists()


# --------------------------------------------------------------------------- lookup


def test_zoo_lookup_order(tmp_path, monkeypatch):
    first, second = tmp_path / "first", tmp_path / "second"
    monkeypatch.setenv("DISCOVERY_ZOO", f"{first}{os.pathsep}{second}")
    assert zoo.zoo_dirs() == [first, second, zoo.SHIPPED_ZOO]
    _export_tiny(second, "same", seed=2)
    _assert_bit_exact(zoo.load("zoo:same").params, _tiny_drift_params(2))
    _export_tiny(first, "same", seed=1)
    _assert_bit_exact(zoo.load("zoo:same").params, _tiny_drift_params(1))

    shadow = _export_tiny(second, "lpo-cartpole-demo", seed=3)
    assert zoo.load("zoo:lpo-cartpole-demo").path == shadow
    rows = {(r["name"], r["path"]): r for r in zoo.list_entries()}
    assert not rows[("same", first / "same")]["shadowed"]
    assert rows[("same", second / "same")]["shadowed"]
    assert rows[("lpo-cartpole-demo", zoo.SHIPPED_ZOO / "lpo-cartpole-demo")]["shadowed"]


def test_default_user_zoo(tmp_path, monkeypatch, user_zoo):
    entry = zoo.export_params("drift", TINY_DRIFT, _tiny_drift_params(), "mine")
    assert entry == user_zoo / "mine"
    monkeypatch.delenv("DISCOVERY_ZOO")
    assert zoo.zoo_dirs() == [tmp_path / "home" / ".discovery" / "zoo", zoo.SHIPPED_ZOO]


def test_unknown_zoo_name_lists_the_available_ones(user_zoo):
    _export_tiny(user_zoo, "mine")
    with pytest.raises(ZooError, match=r"no zoo entry named 'nope'; available: .*lpo-cartpole"
                                       r"-demo, mine"):
        zoo.load("zoo:nope")


# --------------------------------------------------------------------------- shipped entry


def test_shipped_lpo_drift_loads_and_is_a_mirror_learning_drift():
    entry = zoo.load("zoo:lpo-cartpole-demo")
    assert entry.path == zoo.SHIPPED_ZOO / "lpo-cartpole-demo"
    assert entry.manifest["format_version"] == zoo.ZOO_FORMAT_VERSION  # behaviour-hashed
    assert entry.kind == "drift" and entry.manifest["component"]["drift"] == "lpo"
    assert entry.manifest["provenance"]["run_name"] == "lpo-cartpole-demo"
    assert any(row["name"] == "lpo-cartpole-demo" for row in zoo.list_entries())
    drift = entry.drift()
    apply = jax.jit(drift.apply)
    ratio, advantage = jnp.meshgrid(jnp.linspace(0.05, 3.0, 31), jnp.linspace(-3.0, 3.0, 13))
    values = apply(entry.params, ratio, advantage, jnp.float32(0.5))
    assert bool(jnp.all(jnp.isfinite(values))) and bool(jnp.all(values >= 0.0))
    assert float(jnp.max(values)) > 0.0

    advantages = jnp.linspace(-3.0, 3.0, 13)
    ones = jnp.ones_like(advantages)
    np.testing.assert_array_equal(apply(entry.params, ones, advantages, jnp.float32(0.5)), 0.0)
    grad = jax.vmap(jax.grad(drift.apply, argnums=1), (None, 0, 0, None))
    np.testing.assert_array_equal(jax.jit(grad)(entry.params, ones, advantages, 0.5), 0.0)
    # The discovered drift is not PPO-clip (its output layer was learned).
    ppo = make_drift("ppo").apply({"clip_eps": jnp.float32(0.2)}, ratio, advantage, 0.5)
    assert float(jnp.max(jnp.abs(values - ppo))) > 1e-3
