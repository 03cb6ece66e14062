"""Tests for discovery.checkpoint: bit-exact resume, atomic writes, pruning, clear errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import serialization, struct

from discovery import checkpoint, files
from discovery.checkpoint import (
    CheckpointError,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
)


@struct.dataclass
class ESState:
    mean: dict
    generation: jax.Array
    key: jax.Array
    strategy: str = struct.field(pytree_node=False, default="OpenAI_ES")


def make_state(seed: int) -> dict:
    """An outer-loop state; different seeds give equal structure and different values."""
    key = jax.random.key(seed)
    k_mean, k_es, k_rng = jax.random.split(key, 3)
    return {
        "es": ESState(
            mean={"w": jax.random.normal(k_mean, (3, 2)), "b": jnp.full((2,), -0.0)},
            generation=jnp.asarray(seed),  # Weakly typed, as counters often are.
            key=k_es,
        ),
        "curriculum": {
            "scores": jnp.arange(4, dtype=jnp.int32) * seed,
            "seen": jnp.array([True, False, seed % 2 == 0]),
            "levels": {"gravity": jnp.array([9.8, jnp.nan], jnp.float32) + seed},
        },
        "rng": jax.random.split(k_rng, 3),  # A batch of typed keys.
        "raw_key": jax.random.PRNGKey(seed),  # Legacy uint32 key: stays uint32.
        "best": np.linspace(0, 1, 5, dtype=np.float32) + seed,
        "step": seed,
    }


def assert_bit_exact(got, want):
    got_leaves, got_def = jax.tree_util.tree_flatten(got)
    want_leaves, want_def = jax.tree_util.tree_flatten(want)
    assert got_def == want_def
    for g, w in zip(got_leaves, want_leaves, strict=True):
        assert type(g) is type(w) or (isinstance(g, jax.Array) and isinstance(w, jax.Array))
        if isinstance(w, (jax.Array, np.ndarray)):
            assert g.dtype == w.dtype and g.shape == w.shape
            assert getattr(g, "weak_type", False) == getattr(w, "weak_type", False)
            if jax.dtypes.issubdtype(w.dtype, jax.dtypes.prng_key):
                g, w = jax.random.key_data(g), jax.random.key_data(w)
            assert np.asarray(g).tobytes() == np.asarray(w).tobytes()  # NaN, -0.0 included.
        else:
            assert g == w


def test_round_trip_is_bit_exact_with_typed_keys(tmp_path):
    state = make_state(0)
    metadata = {"config": {"lr": 3e-4}, "best_fitness": np.float32(0.5), "curve": jnp.ones(2)}
    path = save_checkpoint(tmp_path, 7, state, metadata=metadata)
    assert path.name == "ckpt_00000007.msgpack"

    restored, info = load_checkpoint(path, target=make_state(1))
    assert_bit_exact(restored, state)
    assert restored["es"].strategy == "OpenAI_ES"
    assert isinstance(restored["best"], np.ndarray)
    assert restored["rng"].dtype == state["rng"].dtype  # Typed key<fry>, not uint32.
    assert restored["raw_key"].dtype == jnp.uint32
    # The restored keys drive the same random streams.
    np.testing.assert_array_equal(
        jax.random.normal(restored["es"].key, (4,)), jax.random.normal(state["es"].key, (4,))
    )
    assert info["step"] == 7
    assert info["metadata"] == {"config": {"lr": 3e-4}, "best_fitness": 0.5, "curve": [1.0, 1.0]}
    assert info["format_version"] == checkpoint.FORMAT_VERSION
    assert info["framework_version"] == "0.1.0"
    assert info["path"] == path


def test_restored_arrays_are_committed_only_where_the_target_is(tmp_path):
    """An uncommitted leaf restored as a committed one lowers to a program with explicit
    shardings: a new compilation-cache key, so every resumed run compiled again."""
    state = {"free": jnp.ones(3), "placed": jax.device_put(jnp.ones(3), jax.devices()[0])}
    save_checkpoint(tmp_path, 1, state)
    restored, _ = load_checkpoint(tmp_path, target=state)
    assert not restored["free"].committed
    assert restored["placed"].committed and restored["placed"].sharding == state["placed"].sharding

    def f(x):
        return x * 2

    assert jax.jit(f).lower(restored["free"]).as_text() == jax.jit(f).lower(jnp.ones(3)).as_text()


def test_abstract_target_and_directory_path(tmp_path):
    state = make_state(0)
    save_checkpoint(tmp_path, 1, state)
    abstract = jax.tree_util.tree_map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype) if hasattr(x, "dtype") else x,
        make_state(2),
    )
    restored, info = load_checkpoint(tmp_path, target=abstract)  # Directory: latest.
    assert info["step"] == 1
    np.testing.assert_array_equal(restored["best"], state["best"])
    assert restored["rng"].dtype == state["rng"].dtype


def test_crash_during_save_keeps_previous_checkpoint(tmp_path, monkeypatch):
    state = make_state(0)
    save_checkpoint(tmp_path, 1, state)

    def crash(src, dst):
        raise OSError("simulated crash before rename")

    monkeypatch.setattr(files.os, "replace", crash)  # the rename of the one atomic writer
    with pytest.raises(OSError, match="simulated crash"):
        save_checkpoint(tmp_path, 2, make_state(5))
    monkeypatch.undo()

    assert not (tmp_path / "ckpt_00000002.msgpack").exists()
    assert list_checkpoints(tmp_path) == [tmp_path / "ckpt_00000001.msgpack"]
    restored, info = load_checkpoint(latest_checkpoint(tmp_path), make_state(3))
    assert info["step"] == 1
    assert_bit_exact(restored, state)


def test_leftover_temp_files_are_ignored_then_cleaned(tmp_path):
    save_checkpoint(tmp_path, 1, make_state(0))
    # What a process killed mid-write leaves behind: a partial temporary file.
    leftover = tmp_path / ".ckpt_00000002.abc123.tmp"
    leftover.write_bytes(b"\x85partial")
    assert latest_checkpoint(tmp_path) == tmp_path / "ckpt_00000001.msgpack"

    save_checkpoint(tmp_path, 2, make_state(0))
    assert not leftover.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "ckpt_00000001.msgpack",
        "ckpt_00000002.msgpack",
    ]


def test_pruning_keeps_the_newest(tmp_path):
    tree = {"x": jnp.arange(3)}
    for step in [1, 2, 10, 3, 11]:
        save_checkpoint(tmp_path, step, tree, keep=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == [
        "ckpt_00000010.msgpack",
        "ckpt_00000011.msgpack",
    ]
    for step in range(3):
        save_checkpoint(tmp_path / "all", step, tree, keep=None)
    assert len(list_checkpoints(tmp_path / "all")) == 3


def test_missing_and_empty(tmp_path):
    assert latest_checkpoint(tmp_path / "nowhere") is None
    assert latest_checkpoint(tmp_path) is None
    with pytest.raises(CheckpointError, match="not found") as info:
        load_checkpoint(tmp_path / "ckpt_00000001.msgpack", {})
    assert "ckpt_00000001.msgpack" in str(info.value)
    with pytest.raises(CheckpointError, match="no checkpoints"):
        load_checkpoint(tmp_path, {})


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda b: b[: len(b) // 2], id="truncated"),
        pytest.param(lambda b: b[:-200] + bytes([b[-200] ^ 0xFF]) + b[-199:], id="bit-flip"),
        pytest.param(lambda b: b"not a checkpoint", id="garbage"),
        pytest.param(lambda b: b"", id="empty"),
    ],
)
def test_corrupted_file_raises(tmp_path, damage):
    path = save_checkpoint(tmp_path, 1, make_state(0))
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path, make_state(0))
    assert str(path) in str(info.value)


def test_wrong_format_version(tmp_path):
    path = save_checkpoint(tmp_path, 1, {"x": jnp.zeros(2)})
    outer = serialization.msgpack_restore(path.read_bytes())
    outer["header"] = outer["header"].replace('"format_version": 1', '"format_version": 99')
    path.write_bytes(serialization.msgpack_serialize(outer))
    with pytest.raises(CheckpointError, match="format version 99"):
        load_checkpoint(path, {"x": jnp.zeros(2)})


def _without_best(s):
    return {k: v for k, v in s.items() if k != "best"}


MISMATCHES = {
    "missing leaf": (_without_best, "/best: in checkpoint but not in target"),
    "extra leaf": (lambda s: {**s, "new": jnp.zeros(1)}, "/new: in target but missing"),
    "shape": (
        lambda s: {**s, "best": np.zeros(6, np.float32)},
        "/best: target has float32[6], checkpoint has float32[5]",
    ),
    "dtype": (
        lambda s: {**s, "curriculum": {**s["curriculum"], "scores": jnp.zeros(4)}},
        "/curriculum/scores: target has float32[4], checkpoint has int32[4]",
    ),
    "typed key vs raw key": (
        lambda s: {**s, "raw_key": jax.random.key(0)},
        "/raw_key: target has key<fry>[], checkpoint has uint32[2]",
    ),
    "leaf vs subtree": (
        lambda s: {**s, "step": {"a": 1}},
        "/step: target has a subtree",
    ),
}


@pytest.mark.parametrize("change, expected", MISMATCHES.values(), ids=MISMATCHES.keys())
def test_structure_mismatch_names_the_path(tmp_path, change, expected):
    path = save_checkpoint(tmp_path, 1, make_state(0))
    with pytest.raises(CheckpointError, match="does not match the target") as info:
        load_checkpoint(path, change(make_state(0)))
    assert expected in str(info.value)


def test_metadata_must_be_json(tmp_path):
    with pytest.raises(CheckpointError, match="JSON"):
        save_checkpoint(tmp_path, 1, {"x": jnp.zeros(1)}, metadata={"bad": object()})
    assert list(tmp_path.iterdir()) == []
