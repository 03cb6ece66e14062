"""Property tests of config validation: any value for a typed numeric config field either
loads (finite, within the field's declared bounds) or is refused with a ``ConfigError``
naming the field -- never another exception; through the CLI, never a traceback.

Only configs are validated here (``from_dict``, ``apply_overrides``, ``discover`` up to
its output-folder check): nothing trains, so the examples are cheap.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import math
import numbers
import typing

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from discovery.agents.ppo import PPOConfig  # noqa: E402
from discovery.config import INT_MAX, INT_MIN, ConfigError, apply_overrides, from_dict  # noqa: E402
from discovery.drift_training import MetaTrainConfig  # noqa: E402
from discovery.meta.es import ESConfig  # noqa: E402
from discovery.tasks import DriftTaskConfig  # noqa: E402
from discovery.train import TrainConfig  # noqa: E402

pytestmark = pytest.mark.timeout(300)

_NUMERIC = (int, float)


def _numeric_kind(hint: typing.Any) -> type | None:
    """``int`` / ``float`` for a numeric field (also ``X | None`` and ``tuple[X, ...]``)."""
    if hint in _NUMERIC:
        return hint
    args = [a for a in typing.get_args(hint) if a is not type(None) and a is not Ellipsis]
    if typing.get_origin(hint) in (tuple, typing.Union) or type(hint).__name__ == "UnionType":
        kinds = {_numeric_kind(a) for a in args}
        if len(kinds) == 1 and None not in kinds:
            return kinds.pop()
    return None


def _numeric_fields(cls: type, prefix: str = "") -> dict[str, tuple[type, dataclasses.Field]]:
    """Dotted path -> (int or float, field) for every numeric field of ``cls``, nested."""
    hints = typing.get_type_hints(cls)
    found = {}
    for f in dataclasses.fields(cls):
        path = f"{prefix}{f.name}"
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint):
            found.update(_numeric_fields(hint, path + "."))
        elif (kind := _numeric_kind(hint)) is not None:
            found[path] = (kind, f)
    return found


META_FIELDS = _numeric_fields(MetaTrainConfig)
TRAIN_FIELDS = _numeric_fields(TrainConfig)
assert {"task.ppo.lr", "task.ppo.total_timesteps", "es.sigma_init", "es.population_size",
        "task.seeds", "task.env_lr", "seed"} <= META_FIELDS.keys()
assert set(_numeric_fields(PPOConfig)) <= {p.removeprefix("task.ppo.") for p in META_FIELDS}
assert set(_numeric_fields(ESConfig)) <= {p.removeprefix("es.") for p in META_FIELDS}
assert set(_numeric_fields(DriftTaskConfig)) <= {p.removeprefix("task.") for p in META_FIELDS}

# Python values: numbers of every size and kind (NaN, infinities, beyond 64 bits), and
# things that are not numbers at all.
NUMBERS = st.one_of(
    st.integers(-10, 1000),
    st.integers(-(2**80), 2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(-2.0, 2.0),
    st.sampled_from([0, 1, 2, 2**31 - 1, 2**31, -(2**31) - 1, 10**10, 10**10 + 1, 1e30,
                     -1e-300, 5e-324, 0.5, 1.0]),
)
VALUES = st.one_of(
    NUMBERS,
    st.lists(NUMBERS, max_size=3),
    st.booleans(),
    st.none(),
    st.text(max_size=6),
)
# Override text: what a user types after `--set FIELD=`, parsed as YAML.
TEXTS = st.one_of(
    st.sampled_from([".nan", ".inf", "-.inf", "nan", "inf", "1e30", "1e400", "-1", "0", "1",
                     "0.5", "5e5", "99999999999999999999", "2147483648", "[1, 2]", "[1e30]",
                     "[.nan]", "[]", "{a: 1}", "~", "true", "abc", "[", "'3'", ""]),
    st.from_regex(r"-?[0-9]{1,25}(\.[0-9]{0,6})?([eE][-+]?[0-9]{1,3})?", fullmatch=True),
)


def _check_loaded(config: typing.Any, path: str, kind: type, f: dataclasses.Field) -> None:
    """A value that loaded is of the field's kind, finite and inside its bounds."""
    value = config
    for part in path.split("."):
        value = getattr(value, part)
    items = value if isinstance(value, tuple) else [value]
    meta = f.metadata
    for item in items:
        if item is None:
            continue
        assert isinstance(item, kind) and not isinstance(item, bool), (path, item)
        if kind is float:
            assert math.isfinite(item), (path, item)
        else:
            assert meta.get("min", INT_MIN) <= item <= meta.get("max", INT_MAX), (path, item)
        assert item >= meta.get("min", -math.inf) and item <= meta.get("max", math.inf)
        assert item > meta.get("gt", -math.inf) and item < meta.get("lt", math.inf)


def _check_refused(error: ConfigError, path: str) -> None:
    """A refusal names the field: its dotted path, or (a check across fields, e.g.
    ``num_minibatches`` must divide ``num_envs * num_steps``) its section and its name."""
    message = str(error)
    assert "\n" not in message, message
    leaf = path.rsplit(".", 1)[-1]
    assert error.field is not None, message
    if error.field.startswith(path):  # the field, or one of its items ("hidden_sizes[1]")
        assert error.field in message, message
    else:
        assert path.startswith(error.field), (path, error.field, message)
        assert error.field in message and leaf in message, (path, message)


def _nested(path: str, value: typing.Any) -> dict:
    data: typing.Any = value
    for part in reversed(path.split(".")):
        data = {part: data}
    return data


@settings(max_examples=300, deadline=None, database=None)
@given(path=st.sampled_from(sorted(META_FIELDS)), value=VALUES)
def test_any_value_from_a_file_loads_in_bounds_or_names_the_field(path, value):
    kind, f = META_FIELDS[path]
    try:
        config = from_dict(MetaTrainConfig, _nested(path, value), source="fuzz.yaml")
    except ConfigError as error:
        _check_refused(error, path)
        assert "fuzz.yaml" in str(error)
    else:
        _check_loaded(config, path, kind, f)


@settings(max_examples=300, deadline=None, database=None)
@given(path=st.sampled_from(sorted(META_FIELDS)), text=TEXTS)
def test_any_override_loads_in_bounds_or_names_the_field(path, text):
    kind, f = META_FIELDS[path]
    try:
        config = apply_overrides(MetaTrainConfig(), [f"{path}={text}"])
    except ConfigError as error:
        _check_refused(error, path)
    else:
        _check_loaded(config, path, kind, f)


@pytest.fixture(scope="module")
def not_a_folder(tmp_path_factory):
    """A --runs-dir that is a file: a valid config stops there (exit 2) before training."""
    path = tmp_path_factory.mktemp("fuzz") / "a-file"
    path.write_text("")
    return path


@pytest.mark.parametrize("command, fields", [("meta-train", META_FIELDS),
                                             ("train", TRAIN_FIELDS)])
def test_cli_exits_2_with_one_line_naming_the_field_never_a_traceback(
    command, fields, not_a_folder
):
    from discovery.cli import main

    @settings(max_examples=60, deadline=None, database=None)
    @given(path=st.sampled_from(sorted(fields)), text=TEXTS)
    def check(path, text):
        err, out = io.StringIO(), io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            code = main([command, "--set", f"{path}={text}", "--runs-dir", str(not_a_folder)])
        lines = err.getvalue().strip().splitlines()
        assert code == 2 and len(lines) == 1, (code, err.getvalue())
        line = lines[0]
        assert line.startswith(f"discover {command}: error: "), line
        leaf = path.rsplit(".", 1)[-1]
        # Refused for the value (naming the field), or valid and stopped at the folder.
        assert leaf in line or "--runs-dir" in line or "memory" in line, line

    check()


def test_fields_are_numbers_of_known_kinds():
    """The fuzzed fields are the ones the strategies cover (guards the walk above)."""
    for path, (kind, _) in {**META_FIELDS, **TRAIN_FIELDS}.items():
        assert kind in _NUMERIC, path
    assert isinstance(PPOConfig().lr, numbers.Real)
