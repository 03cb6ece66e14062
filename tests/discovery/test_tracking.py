"""Tests for discovery.tracking: strict JSONL, TensorBoard read-back, offline W&B, errors."""

import json
import math
import struct
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import numpy as np
import pytest

from discovery import tracking
from discovery.files import loads_strict
from discovery.tracking import (
    TRACKERS,
    FanOutTracker,
    Tracker,
    TrackingError,
    make_tracker,
    parse_backends,
)

pytestmark = pytest.mark.timeout(120)



def _read_events(logdir: Path) -> list[Any]:
    """Every Event in the tfevents files under ``logdir`` (TFRecord framing, no TF)."""
    from tensorboardX.proto import event_pb2

    events = []
    files = sorted(logdir.glob("events.out.tfevents.*"))
    assert files, f"no event file in {logdir}"
    for path in files:
        data = path.read_bytes()
        offset = 0
        while offset < len(data):
            (length,) = struct.unpack("<Q", data[offset : offset + 8])
            # Framing: u64 length, u32 masked crc(length), payload, u32 masked crc(payload).
            payload = data[offset + 12 : offset + 12 + length]
            offset += 12 + length + 4
            event = event_pb2.Event()
            event.ParseFromString(payload)
            events.append(event)
    return events


def _summary_values(logdir: Path) -> list[tuple[int, Any]]:
    return [(e.step, v) for e in _read_events(logdir) for v in e.summary.value]


class _FakeRun:
    def __init__(self, calls: list) -> None:
        self.calls = calls

    def log(self, data: dict, step: int | None = None) -> None:
        self.calls.append(("log", dict(data), step))

    def finish(self) -> None:
        self.calls.append(("finish",))


@pytest.fixture
def fake_wandb(monkeypatch: pytest.MonkeyPatch) -> list:
    """A stand-in ``wandb`` module; returns the list of calls made on it."""
    calls: list = []
    module = types.ModuleType("wandb")

    def init(**kwargs: Any) -> _FakeRun:
        calls.append(("init", kwargs))
        return _FakeRun(calls)

    module.init = init  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "wandb", module)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    return calls


class _Recorder:
    def __init__(self, name: str, events: list, fail_close: bool = False) -> None:
        self.name, self.events, self.fail_close = name, events, fail_close

    def log(self, step: int, record: dict) -> None:
        self.events.append((self.name, "log", step, dict(record)))

    def close(self) -> None:
        self.events.append((self.name, "close"))
        if self.fail_close:
            raise RuntimeError(f"{self.name} failed to close")


# --- names ------------------------------------------------------------------------------


def test_parse_backends_splits_dedups_and_keeps_order():
    assert parse_backends("tensorboard,wandb") == ("tensorboard", "wandb")
    assert parse_backends(" wandb , JSONL,wandb,,") == ("wandb", "jsonl")
    assert parse_backends(["jsonl", "tensorboard", "jsonl"]) == ("jsonl", "tensorboard")
    assert parse_backends("") == ()


def test_unknown_backend_names_the_value_and_every_tracker(tmp_path):
    with pytest.raises(TrackingError) as info:
        parse_backends("jsonl,tensorbord")
    message = str(info.value)
    assert "'tensorbord'" in message
    assert all(name in message for name in TRACKERS)
    assert isinstance(info.value, ValueError)

    with pytest.raises(TrackingError, match="wandb"):
        make_tracker(["jsonl", "mlflow"], tmp_path / "run", "r")
    assert not (tmp_path / "run").exists(), "nothing is made before the names are valid"


def test_importing_tracking_needs_neither_optional_package():
    code = (
        "import sys; sys.modules['tensorboardX'] = None; sys.modules['wandb'] = None\n"
        "import discovery.tracking as t\n"
        "assert t.TRACKERS == ('jsonl', 'tensorboard', 'wandb')\n"
    )
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


# --- jsonl ------------------------------------------------------------------------------


def test_jsonl_writes_strict_json_and_appends(tmp_path):
    record = {
        "generation": 0,
        "fitness_mean": float("nan"),
        "fitness_max": np.float32(2.5),
        "best": float("inf"),
        "per_seed": [1.0, None, float("-inf")],
        "population_fitness": jnp.array([0.5, jnp.nan]),
        "strategy": "OpenAI_ES",
        "extra": {"regret": np.nan, "levels": np.arange(2)},
    }
    with make_tracker("jsonl", tmp_path, "r") as tracker:
        tracker.log(0, record)
        tracker.log(1, {"fitness_mean": 1.0})
    with make_tracker(["jsonl"], tmp_path, "r") as tracker:  # A resumed run appends.
        tracker.log(2, {"fitness_mean": 3.0})

    lines = (tmp_path / "tracking.jsonl").read_text().splitlines()
    assert len(lines) == 3
    first = loads_strict(lines[0])
    assert first == {
        "step": 0,
        "generation": 0,
        "fitness_mean": None,
        "fitness_max": 2.5,
        "best": None,
        "per_seed": [1.0, None, None],
        "population_fitness": [0.5, None],
        "strategy": "OpenAI_ES",
        "extra": {"regret": None, "levels": [0, 1]},
    }
    assert [loads_strict(line)["step"] for line in lines] == [0, 1, 2]
    assert loads_strict(lines[2])["fitness_mean"] == 3.0


# --- tensorboard ------------------------------------------------------------------------


def test_tensorboard_scalars_histograms_and_config_read_back(tmp_path):
    pytest.importorskip("tensorboardX")
    config = {"es": {"population": 8, "lr": 0.01}, "env": "CartPole-v1"}
    with make_tracker("tensorboard", tmp_path, "r", config=config) as tracker:
        for step in range(3):
            tracker.log(
                step,
                {
                    "fitness_mean": 0.5 * step,
                    "env_steps": np.int64(100 * (step + 1)),
                    "nan_metric": float("nan"),
                    "strategy": "OpenAI_ES",
                    "per_seed": [1.0, None, 3.0 + step],
                    "extra": {"regret": jnp.float32(step + 0.25)},
                },
            )

    logdir = tmp_path / "tensorboard"
    values = _summary_values(logdir)
    scalars: dict[str, list[tuple[int, float]]] = {}
    histograms: dict[str, list[tuple[int, Any]]] = {}
    texts = []
    for step, v in values:
        kind = v.WhichOneof("value")
        if kind == "simple_value":
            scalars.setdefault(v.tag, []).append((step, v.simple_value))
        elif kind == "histo":
            histograms.setdefault(v.tag, []).append((step, v.histo))
        else:
            texts.append(v)

    assert set(scalars) == {"fitness_mean", "env_steps", "extra/regret"}
    assert scalars["fitness_mean"] == [(0, 0.0), (1, 0.5), (2, 1.0)]
    assert scalars["env_steps"] == [(0, 100.0), (1, 200.0), (2, 300.0)]
    assert scalars["extra/regret"] == [(0, 0.25), (1, 1.25), (2, 2.25)]

    assert set(histograms) == {"per_seed"}
    for step, histo in histograms["per_seed"]:
        assert histo.num == 2, "the missing seed is left out"
        assert histo.min == 1.0 and histo.max == 3.0 + step
        assert math.isclose(histo.sum, 4.0 + step)

    assert len(texts) == 1 and texts[0].tag.startswith("config")
    text = texts[0].tensor.string_val[0].decode()
    assert json.loads(text) == config


def test_tensorboard_missing_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)
    with pytest.raises(TrackingError, match="pip install") as info:
        make_tracker("tensorboard", tmp_path, "r")
    assert "tensorboardX" in str(info.value)


# --- wandb ------------------------------------------------------------------------------


def test_wandb_is_offline_by_default_and_logs_scalars_at_step(tmp_path, fake_wandb):
    config = {"es": {"population": 8}, "path": tmp_path}
    tracker = make_tracker("wandb", tmp_path / "run", "lpo-test", config=config)
    tracker.log(3, {"fitness_mean": np.float32(1.5), "strategy": "x", "per_seed": [1.0, 2.0]})
    tracker.log(4, {"fitness_mean": float("nan"), "extra": {"regret": 2}})
    tracker.log(5, {"strategy": "only text"})
    tracker.close()
    tracker.close()  # Idempotent: finish is called once.

    run_id = (tmp_path / "run" / "wandb-run-id").read_text().strip()
    assert fake_wandb[0] == (
        "init",
        {
            "project": "discovery",
            "group": None,
            "tags": None,
            "name": "lpo-test",
            "dir": str(tmp_path / "run"),
            "config": {"es": {"population": 8}, "path": str(tmp_path)},
            "mode": "offline",
            "id": run_id,
            "resume": "allow",
        },
    )
    assert (tmp_path / "run").is_dir()
    assert fake_wandb[1:] == [
        ("log", {"fitness_mean": 1.5}, 3),
        ("log", {"extra/regret": 2.0}, 4),
        ("finish",),
    ]


def test_wandb_resumes_the_run_folders_run_and_takes_project_group_tags(
        tmp_path, fake_wandb, monkeypatch):
    monkeypatch.setenv("WANDB_PROJECT", "from-env")
    make_tracker("wandb", tmp_path, "r").close()
    make_tracker("wandb", tmp_path, "r", wandb_project="lpo", wandb_group="sweep-1",
                 wandb_tags=("minatar", "es")).close()
    first, second = (call[1] for call in fake_wandb if call[0] == "init")
    # A restarted run (a resume after a kill) logs to the same W&B run.
    assert first["id"] == second["id"] and first["resume"] == second["resume"] == "allow"
    assert first["project"] == "from-env" and first["group"] is None
    assert (second["project"], second["group"], second["tags"]) == (
        "lpo", "sweep-1", ["minatar", "es"])
    other = tmp_path / "other"
    make_tracker("wandb", other, "r").close()
    assert fake_wandb[-2][1]["id"] != first["id"]


def test_a_damaged_wandb_id_file_is_refused_by_name(tmp_path, fake_wandb):
    (tmp_path / "wandb-run-id").write_text("../../not an id\n")
    with pytest.raises(TrackingError, match="wandb-run-id: got '../../not an id'; allowed"):
        make_tracker("wandb", tmp_path, "r")


def test_wandb_mode_argument_beats_environment(tmp_path, fake_wandb, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    make_tracker("wandb", tmp_path, "r").close()
    make_tracker("wandb", tmp_path, "r", wandb_mode="online").close()
    modes = [call[1]["mode"] for call in fake_wandb if call[0] == "init"]
    assert modes == ["disabled", "online"]


def test_wandb_missing_says_what_to_install_and_closes_the_others(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)
    closed = []

    class SpyJsonl(tracking.JsonlTracker):
        def close(self) -> None:
            closed.append(self.path)
            super().close()

    monkeypatch.setattr(tracking, "JsonlTracker", SpyJsonl)
    with pytest.raises(TrackingError, match="pip install") as info:
        make_tracker("jsonl,wandb", tmp_path, "r")
    assert "wandb" in str(info.value)
    assert closed == [tmp_path / "tracking.jsonl"]


def test_real_wandb_offline_run_writes_under_run_dir(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "elsewhere"))  # dir= must win.
    with make_tracker("wandb", tmp_path, "offline-test", config={"lr": 0.1}) as tracker:
        tracker.log(0, {"fitness_mean": 1.0})
        tracker.log(1, {"fitness_mean": 2.0})
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, list(tmp_path.rglob("*"))
    assert any(p.suffix == ".wandb" for p in runs[0].iterdir())


# --- fan-out ----------------------------------------------------------------------------


def test_fan_out_calls_every_backend(tmp_path, fake_wandb):
    pytest.importorskip("tensorboardX")
    with make_tracker(
        ["jsonl", "tensorboard", "wandb", "jsonl"], tmp_path, "r", config={"a": 1}
    ) as tracker:
        assert isinstance(tracker, Tracker)
        assert [type(t).__name__ for t in tracker.trackers] == [
            "JsonlTracker",
            "TensorBoardTracker",
            "WandbTracker",
        ]
        tracker.log(7, {"fitness_mean": 0.75})

    assert loads_strict((tmp_path / "tracking.jsonl").read_text()) == {
        "step": 7,
        "fitness_mean": 0.75,
    }
    scalars = [
        (step, v.tag, v.simple_value)
        for step, v in _summary_values(tmp_path / "tensorboard")
        if v.WhichOneof("value") == "simple_value"
    ]
    assert scalars == [(7, "fitness_mean", 0.75)]
    assert fake_wandb[1:] == [("log", {"fitness_mean": 0.75}, 7), ("finish",)]


def test_fan_out_closes_all_even_if_one_fails():
    events: list = []
    tracker = FanOutTracker([_Recorder("a", events, fail_close=True), _Recorder("b", events)])
    tracker.log(1, {"x": 1.0})
    with pytest.raises(RuntimeError, match="a failed"):
        tracker.close()
    assert events == [
        ("a", "log", 1, {"x": 1.0}),
        ("b", "log", 1, {"x": 1.0}),
        ("a", "close"),
        ("b", "close"),
    ]


def test_empty_backends_track_nothing(tmp_path):
    with make_tracker((), tmp_path / "run", "r") as tracker:
        tracker.log(0, {"x": 1.0})
    assert tracker.trackers == ()
    assert not (tmp_path / "run").exists()
