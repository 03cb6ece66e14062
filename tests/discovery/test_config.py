"""Tests for discovery.config: YAML + overrides -> validated nested frozen dataclasses."""

# String annotations on purpose: config modules may use postponed evaluation.
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest
import yaml

from discovery.config import (
    ConfigError,
    apply_overrides,
    from_dict,
    load_config,
    save_config,
    to_dict,
)


@dataclass(frozen=True)
class PPOConfig:
    env: str = "CartPole-v1"
    num_envs: int = field(default=4, metadata={"min": 1, "help": "parallel environments"})
    total_timesteps: int = 100_000
    lr: float = field(default=2.5e-4, metadata={"min": 0.0, "max": 1.0})
    activation: Literal["tanh", "relu"] = "tanh"
    hidden: tuple[int, ...] = field(default=(64, 64), metadata={"min": 1})
    anneal_lr: bool = True


@dataclass(frozen=True)
class ESConfig:
    strategy: str = field(default="OpenAI_ES", metadata={"choices": ("OpenAI_ES", "SNES")})
    population_size: int = 8
    sigma: float | None = None

    def __post_init__(self):
        if self.population_size % 2:
            raise ValueError(
                f"population_size must be even for antithetic sampling, got {self.population_size}"
            )


@dataclass(frozen=True)
class MetaTrainConfig:
    ppo: PPOConfig = field(default_factory=PPOConfig)
    es: ESConfig = field(default_factory=ESConfig)
    envs: tuple[str, ...] = ("CartPole-v1",)
    weights: dict[str, float] = field(default_factory=dict)
    out_dir: Path | None = None
    seed: int = 0


@dataclass(frozen=True)
class Window:
    lo: int = 0
    hi: int = 1

    def __post_init__(self):
        if self.lo > self.hi:
            raise ValueError(f"lo must be <= hi, got lo={self.lo}, hi={self.hi}")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_load_nested_yaml_coerces_types_and_keeps_defaults(tmp_path):
    path = write(
        tmp_path,
        """
ppo:
  lr: 3e-4            # YAML 1.1 would read this as a string
  total_timesteps: 5e5
  hidden: [32, 16]
  activation: relu
es:
  population_size: 16
envs: [CartPole-v1, Acrobot-v1]
weights: {CartPole-v1: 1, Acrobot-v1: 0.5}
""",
    )
    config = load_config(MetaTrainConfig, path)
    assert config.ppo.lr == 3e-4 and type(config.ppo.lr) is float
    assert config.ppo.total_timesteps == 500_000 and type(config.ppo.total_timesteps) is int
    assert config.ppo.hidden == (32, 16)
    assert config.ppo.activation == "relu"
    assert config.ppo.num_envs == 4 and config.ppo.env == "CartPole-v1"  # Defaults.
    assert config.es == ESConfig(population_size=16)
    assert config.envs == ("CartPole-v1", "Acrobot-v1")
    assert config.weights == {"CartPole-v1": 1.0, "Acrobot-v1": 0.5}
    assert type(config.weights["CartPole-v1"]) is float


def test_defaults_without_a_file_and_empty_file(tmp_path):
    assert load_config(MetaTrainConfig) == MetaTrainConfig()
    assert load_config(MetaTrainConfig, write(tmp_path, "")) == MetaTrainConfig()


def test_int_fields_accept_integral_floats_only():
    assert from_dict(PPOConfig, {"total_timesteps": 5e5}).total_timesteps == 500_000
    assert from_dict(PPOConfig, {"num_envs": 8.0}).num_envs == 8
    with pytest.raises(ConfigError, match=r"num_envs: expected int, got 2\.5"):
        from_dict(PPOConfig, {"num_envs": 2.5})
    with pytest.raises(ConfigError, match=r"num_envs: expected int, got True"):
        from_dict(PPOConfig, {"num_envs": True})


def test_overrides_are_dotted_yaml_values_and_leave_the_original_alone():
    base = MetaTrainConfig()
    config = apply_overrides(
        base,
        [
            "ppo.lr=3e-4",
            "es.population_size=16",
            "envs=[CartPole-v1,Acrobot-v1]",
            "ppo.hidden=[128]",
            "weights.MinAtar-Breakout=0.25",
            "es={sigma: 0.1}",  # Updates only the named field of the section.
            "out_dir=runs/x",
            "ppo.total_timesteps=1e6",
        ],
    )
    assert config.ppo.lr == 3e-4
    assert config.es == ESConfig(population_size=16, sigma=0.1)
    assert config.envs == ("CartPole-v1", "Acrobot-v1")
    assert config.ppo.hidden == (128,)
    assert config.weights == {"MinAtar-Breakout": 0.25}
    assert config.out_dir == Path("runs/x")
    assert config.ppo.total_timesteps == 1_000_000
    assert base == MetaTrainConfig()
    assert apply_overrides(config, ["es.sigma=null"]).es.sigma is None


def test_post_init_runs_once_after_all_overrides():
    assert apply_overrides(Window(), ["lo=5", "hi=10"]) == Window(5, 10)
    with pytest.raises(ConfigError, match=r"lo must be <= hi.*overrides 'hi=3', 'lo=5'"):
        apply_overrides(Window(), ["hi=3", "lo=5"])


def test_overrides_after_file(tmp_path):
    path = write(tmp_path, "ppo: {lr: 0.1}\nseed: 3\n")
    config = load_config(MetaTrainConfig, path, ["ppo.lr=0.2"])
    assert (config.ppo.lr, config.seed) == (0.2, 3)


# Each case: how the bad value is given, and substrings the message must contain
# (field path, offending value, what is allowed, where it came from).
FILE = "FILE"
ERROR_CASES = {
    "unknown field with suggestion": (
        {"ppo": {"num_env": 8}},
        [
            "ppo.num_env",
            "unknown field of PPOConfig",
            "8",
            "Did you mean 'num_envs'?",
            "Valid fields: env, num_envs",
            FILE,
        ],
    ),
    "unknown top-level field": (
        {"sed": 1},
        ["sed", "Did you mean 'seed'?", FILE],
    ),
    "wrong type": (
        {"ppo": {"lr": "fast"}},
        ["ppo.lr", "expected float", "'fast'", FILE],
    ),
    "bool is strict": (
        {"ppo": {"anneal_lr": "yes please"}},
        ["ppo.anneal_lr", "expected bool", "'yes please'", FILE],
    ),
    "tuple item type": (
        {"ppo": {"hidden": [64, "wide"]}},
        ["ppo.hidden[1]", "expected int", "'wide'", FILE],
    ),
    "literal choice": (
        {"ppo": {"activation": "gelu"}},
        ["ppo.activation", "'gelu'", "one of 'tanh', 'relu'", FILE],
    ),
    "min range": (
        {"ppo": {"lr": -0.1}},
        ["ppo.lr", "-0.1", ">= 0.0", "'min'", FILE],
    ),
    "max range": (
        {"ppo": {"lr": 2.0}},
        ["ppo.lr", "2.0", "<= 1.0", "'max'", FILE],
    ),
    "range on tuple items, with help": (
        {"ppo": {"hidden": [64, 0]}},
        ["ppo.hidden", "got 0", ">= 1", FILE],
    ),
    "help text": (
        {"ppo": {"num_envs": 0}},
        ["ppo.num_envs (parallel environments)", ">= 1", FILE],
    ),
    "metadata choices": (
        {"es": {"strategy": "PSO"}},
        ["es.strategy", "'PSO'", "'OpenAI_ES', 'SNES'", "'choices'", FILE],
    ),
    "__post_init__ check": (
        {"es": {"population_size": 7}},
        ["es", "invalid ESConfig", "must be even", "got 7", FILE],
    ),
    "section is not a mapping": (
        {"ppo": 3},
        ["ppo", "mapping of PPOConfig fields", "3", FILE],
    ),
    "optional keeps inner error": (
        {"out_dir": 5},
        ["out_dir", "Path | None", "5", FILE],
    ),
}


@pytest.mark.parametrize("data, expected", ERROR_CASES.values(), ids=ERROR_CASES.keys())
def test_errors_from_file_name_field_value_allowed_and_source(tmp_path, data, expected):
    path = write(tmp_path, yaml.safe_dump(data))
    with pytest.raises(ConfigError) as info:
        load_config(MetaTrainConfig, path)
    message = str(info.value)
    for part in expected:
        assert (str(path) if part is FILE else part) in message, message


OVERRIDE_CASES = {
    "wrong type": ("ppo.lr=abc", ["ppo.lr", "expected float", "'abc'"]),
    "unknown path": ("ppo.lrr=1", ["ppo.lrr", "Did you mean 'lr'?"]),
    "unknown section": ("ppp.lr=1", ["ppp", "Did you mean 'ppo'?"]),
    "literal": ("ppo.activation=gelu", ["ppo.activation", "'gelu'", "'tanh', 'relu'"]),
    "range": ("ppo.lr=-1", ["ppo.lr", "-1", ">= 0.0"]),
    "post_init": ("es.population_size=7", ["es", "must be even"]),
    "into a leaf": ("ppo.lr.x=1", ["ppo.lr", "not a config section", "'x'"]),
    "bad yaml": ("envs=[a, b", ["envs", "cannot parse", "line 1"]),
}


@pytest.mark.parametrize("override, expected", OVERRIDE_CASES.values(), ids=OVERRIDE_CASES.keys())
def test_override_errors_name_the_override(override, expected):
    with pytest.raises(ConfigError) as info:
        apply_overrides(MetaTrainConfig(), [override])
    message = str(info.value)
    for part in [*expected, f"override {override!r}"]:
        assert part in message, message


@pytest.mark.parametrize("override", ["ppo.lr", "=3", "ppo..lr=3"])
def test_malformed_override(override):
    with pytest.raises(ConfigError, match="malformed override") as info:
        apply_overrides(MetaTrainConfig(), [override])
    assert repr(override) in str(info.value)


def test_file_errors(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match="not found") as info:
        load_config(MetaTrainConfig, missing)
    assert str(missing) in str(info.value)

    bad = write(tmp_path, "ppo:\n  lr: 0.1\n   hidden: [1\n")
    with pytest.raises(ConfigError, match=r"invalid YAML.*line \d+, column \d+") as info:
        load_config(MetaTrainConfig, bad)
    assert str(bad) in str(info.value)

    listing = write(tmp_path, "- 1\n- 2\n")
    with pytest.raises(ConfigError, match="top level must be a mapping of MetaTrainConfig"):
        load_config(MetaTrainConfig, listing)


def test_to_dict_is_plain_and_save_load_round_trips(tmp_path):
    config = apply_overrides(
        MetaTrainConfig(),
        [
            "ppo.hidden=[32,32,16]",
            "ppo.lr=1e-5",
            "ppo.env='1e3'",  # A string that looks like a float must stay a string.
            "envs=[CartPole-v1,Acrobot-v1]",
            "weights={CartPole-v1: 2.0}",
            "out_dir=runs/a",
            "es.sigma=0.03",
        ],
    )
    plain = to_dict(config)
    assert plain["ppo"]["hidden"] == [32, 32, 16]
    assert plain["out_dir"] == "runs/a"
    json.dumps(plain)  # JSON-safe.

    path = save_config(config, tmp_path / "sub" / "saved.yaml")
    assert yaml.safe_load(path.read_text())["envs"] == ["CartPole-v1", "Acrobot-v1"]
    loaded = load_config(MetaTrainConfig, path)
    assert loaded == config
    assert loaded.ppo.env == "1e3"


# --------------------------------------------------------------------------- numeric rules


@dataclass(frozen=True)
class Bounded:
    rate: float = field(default=0.5, metadata={"gt": 0, "lt": 1})
    steps: int = field(default=10, metadata={"min": 1, "max": 10**10})
    count: int = 1
    scales: tuple[float, ...] = (1.0,)
    maybe: float | None = None


@pytest.mark.parametrize(
    "override, expected",
    [
        ("rate=.nan", ["rate", "finite float", "nan"]),
        ("rate=.inf", ["rate", "finite float", "inf"]),
        ("rate=-.inf", ["rate", "finite float", "-inf"]),
        ("maybe=.nan", ["maybe", "nan"]),
        ("scales=[1.0, .inf]", ["scales[1]", "finite float", "inf"]),
        ("weights={a: .nan}", ["weights['a']", "finite float"]),
        ("rate=0", ["rate", "must be > 0", "'gt'"]),
        ("rate=1", ["rate", "must be < 1", "'lt'"]),
        ("rate=" + "9" * 400, ["rate", "finite float"]),  # an int too large for a float
        ("count=2147483648", ["count", "must be <= 2147483647", "32-bit", "2147483648"]),
        ("count=-2147483649", ["count", "must be >= -2147483648", "32-bit"]),
        ("count=99999999999999999999", ["count", "must be <= 2147483647", "32-bit"]),
        ("count=1e30", ["count", "must be <= 2147483647"]),
        ("steps=1e30", ["steps", "must be <= 10000000000", "'max'"]),
        ("steps=99999999999999999999", ["steps", "must be <= 10000000000"]),
    ],
)
def test_non_finite_floats_and_out_of_range_ints_are_refused(override, expected):
    @dataclass(frozen=True)
    class Holder:
        bounded: Bounded = field(default_factory=Bounded)
        weights: dict[str, float] = field(default_factory=dict)

    prefix = "" if override.startswith("weights") else "bounded."
    with pytest.raises(ConfigError) as info:
        apply_overrides(Holder(), [prefix + override])
    message = str(info.value)
    for part in [*expected, "(from override"]:
        assert part in message, message


def test_int_fields_may_raise_their_own_max():
    config = apply_overrides(Bounded(), ["steps=5e9", "count=2147483647"])
    assert config.steps == 5_000_000_000 and config.count == 2**31 - 1


def test_unreadable_and_non_utf8_config_files_are_config_errors(tmp_path):
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("ppo:\n  env: caf\u00e9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"not UTF-8 text \(byte 0xe9 at line 2.*UTF-8 YAML"):
        load_config(MetaTrainConfig, latin)
    from discovery.config import config_component

    with pytest.raises(ConfigError, match="not UTF-8 text"):
        config_component(latin)
    folder = tmp_path / "dir.yaml"
    folder.mkdir()
    with pytest.raises(ConfigError, match="not a file"):
        load_config(MetaTrainConfig, folder)
