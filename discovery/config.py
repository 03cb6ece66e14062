"""Typed, validated experiment configs: frozen dataclasses <-> YAML, with dotted overrides.

Config classes are plain (frozen) dataclasses written next to the code they configure; this
module turns YAML files and ``key=value`` overrides into instances of them, checking every
value against the field's type annotation and its ``metadata`` ("min", "max", "gt", "lt",
"choices", "help"), so that a typo fails at start-up with a message naming the field, the
value, what is allowed and where the value came from, instead of hours into a run.

Two rules hold for every field, whatever its metadata: a ``float`` must be finite (NaN
and infinities are refused), and an ``int`` must fit in 32 bits (``INT_MIN``..``INT_MAX``,
JAX's default integer) unless the field's metadata sets its own "min" / "max" (an int in
a nested container, e.g. a dict value, must fit in 64 bits).

    @dataclass(frozen=True)
    class PPOConfig:
        lr: float = field(default=2.5e-4, metadata={"min": 0, "help": "Adam step size"})
        activation: Literal["tanh", "relu"] = "tanh"

    config = load_config(MetaTrainConfig, "configs/lpo.yaml", ["ppo.lr=3e-4"])

One module (~670 lines): YAML <-> dataclass conversion and the field checks are one
recursive walk over a config's type annotations.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import numbers
import re
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePath
from typing import Any, Literal, TypeVar, Union

import yaml

__all__ = [
    "INT_MAX",
    "INT_MIN",
    "MAX_CONFIG_BYTES",
    "ConfigError",
    "apply_overrides",
    "from_dict",
    "load_config",
    "read_config_text",
    "save_config",
    "to_dict",
]

T = TypeVar("T")

#: The range every int field must lie in unless its metadata sets "min" / "max": JAX
#: computes in 32-bit ints by default (seeds, counts and shapes beyond it overflow).
INT_MIN, INT_MAX = -(2**31), 2**31 - 1
#: The largest config (or sweep) file read: the shipped configs are 1-3 kB, and PyYAML
#: takes minutes over tens of MB.
MAX_CONFIG_BYTES = 2**20
#: Ints anywhere else (e.g. dict values) must fit in 64 bits.
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1

_NoneType = type(None)

# PyYAML follows YAML 1.1, where a float needs a dot: "5e5" and "3e-4" load as strings.
# Users write them as numbers, so both our loader and our dumper resolve them as floats
# (the dumper then quotes strings such as "1e3" so that they survive a round trip).
_EXPONENT_FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$")


class _Loader(yaml.SafeLoader):
    """Safe YAML loader that also reads exponent floats without a dot (``5e5``)."""


class _Dumper(yaml.SafeDumper):
    """Safe YAML dumper that quotes strings ``_Loader`` would read back as floats."""


for _cls in (_Loader, _Dumper):
    _cls.add_implicit_resolver("tag:yaml.org,2002:float", _EXPONENT_FLOAT, list("-+.0123456789"))


class ConfigError(ValueError):
    """An invalid config value; the message names the field, value, what is allowed and source.

    ``field`` is the dotted field path ("" for the whole config, None when not about a field)
    and ``source`` is where the value came from (a YAML path or an override).
    """

    def __init__(self, message: str, *, field: str | None = None, source: str | None = None):
        super().__init__(message)
        self.field = field
        self.source = source
        self._mismatch = False  # True for a plain "expected <type>, got <value>" error.


# --------------------------------------------------------------------------- building


def from_dict(cls: type[T], data: Mapping[str, Any], source: str = "<dict>") -> T:
    """Build the dataclass ``cls`` (nested ones too) from a mapping, validating every value.

    Missing fields take their defaults; unknown keys, wrongly typed values and values outside
    the field's metadata range raise ``ConfigError`` naming ``source``.
    """
    _require_dataclass(cls)
    return _build(cls, data, "", source)


def apply_overrides(config: T, overrides: Sequence[str]) -> T:
    """Return ``config`` with dotted ``key=value`` overrides applied, e.g. ``"ppo.lr=3e-4"``.

    Values are parsed as YAML (``envs=[CartPole-v1,Acrobot-v1]``, ``es.sigma=null``). A mapping
    given for a config section updates only the fields it names; a dotted key into a
    ``dict`` field sets that one entry. Each value is checked as it is applied; the
    dataclasses' own ``__post_init__`` checks run once, after all overrides, so that
    overrides of related fields may be given in any order.
    """
    if isinstance(overrides, (str, bytes)):
        raise TypeError("overrides must be a sequence of 'key=value' strings, not one string")
    if not _is_dataclass_instance(config):
        raise TypeError(f"apply_overrides expects a dataclass instance, got {type(config)!r}")
    if not overrides:
        return config
    cls = type(config)
    raw = _raw(config)
    for override in overrides:
        source = f"override {override!r}"
        key, sep, text = str(override).partition("=")
        key = key.strip()
        parts = [p.strip() for p in key.split(".")]
        if not sep or not all(parts):
            raise ConfigError(
                f"malformed override {override!r}: expected KEY=VALUE with a dotted key, "
                "e.g. 'ppo.lr=3e-4'",
                source=source,
            )
        try:
            value = yaml.load(text, Loader=_Loader)
        except yaml.YAMLError as e:
            raise ConfigError(
                f"{key}: cannot parse value {text!r} as YAML ({_yaml_problem(e)}) (from {source})",
                field=key,
                source=source,
            ) from None
        _patch(cls, raw, parts, value, "", source)
    sources = ", ".join(repr(str(o)) for o in overrides)
    source = f"override {sources}" if len(overrides) == 1 else f"overrides {sources}"
    return _build(cls, raw, "", source)


def load_config(
    cls: type[T], path: str | Path | None = None, overrides: Sequence[str] = (),
    *, allow_empty: bool = True,
) -> T:
    """Load ``cls`` from a YAML file (or its defaults when ``path`` is None), then overrides.

    An empty file (nothing but blanks and comments) means all defaults, unless
    ``allow_empty`` is false: the CLI refuses one, since a config file given on the
    command line that says nothing is more likely a mistake (a file truncated or not yet
    written) than a request for the full default run.
    """
    _require_dataclass(cls)
    if path is None:
        config = _build(cls, {}, "", "defaults")
    else:
        path = Path(path)
        if not path.exists():
            raise ConfigError(f"config file not found: {path}", source=str(path))
        if not path.is_file():
            raise ConfigError(f"config path is not a file: {path}", source=str(path))
        try:
            data = yaml.load(read_config_text(path), Loader=_Loader)
        except yaml.YAMLError as e:
            raise ConfigError(
                f"{path}: invalid YAML: {_yaml_problem(e)}", source=str(path)
            ) from None
        if data is None and not allow_empty:
            raise ConfigError(
                f"{path}: the config file is empty; allowed: a YAML mapping of "
                f"{cls.__name__} fields (for the defaults, give no config file)",
                field="", source=str(path),
            )
        if data is None:  # An empty file means "all defaults".
            data = {}
        if not isinstance(data, Mapping):
            raise ConfigError(
                f"{path}: the top level must be a mapping of {cls.__name__} fields, "
                f"got {_show(data)} (from {path})",
                field="",
                source=str(path),
            )
        config = _build(cls, data, "", str(path))
    return apply_overrides(config, overrides)




def config_component(config_path: str | Path | None, overrides: Sequence[str] = ()) -> str:
    """Which meta-training a config describes: its top-level ``component`` (default
    ``drift``), overridden by a ``component=...`` override (``--set``)."""
    component = "drift"
    source = "default"
    if config_path is not None and Path(config_path).is_file():
        try:
            data = yaml.safe_load(read_config_text(config_path))
        except yaml.YAMLError:
            data = None  # load_config reports the YAML error with its position.
        if isinstance(data, Mapping) and "component" in data:
            component, source = data["component"], str(config_path)
    for override in overrides:
        if override.partition("=")[0].strip() == "component":
            component, source = override.partition("=")[2].strip(), "--set"
    from discovery.components import COMPONENTS

    if component not in COMPONENTS:
        raise ConfigError(
            f"component: got {component!r} (from {source}); allowed: {', '.join(COMPONENTS)}",
            field="component",
            source=source,
        )
    return component


def read_json_object(path: Path, field: str, allowed: str) -> dict[str, Any]:
    """A strict-JSON object file this package wrote (a piece record, a sweep cell's
    result); ``ConfigError`` naming the file, ``field`` and what is ``allowed`` when it is
    unreadable, not strict JSON (a bare ``NaN``) or not an object."""
    from discovery.files import loads_strict

    try:
        value = loads_strict(path.read_text(encoding="utf-8"))
        problem = f"a JSON {type(value).__name__}, not an object"
    except (OSError, UnicodeDecodeError, ValueError) as error:
        value, problem = None, f"unreadable ({error})"
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: {problem}; allowed: {allowed}", field=field,
                          source=str(path))
    return value


def read_config_text(path: str | Path) -> str:
    """The text of a config file; ``ConfigError`` (not a traceback) when it cannot be read,
    is larger than :data:`MAX_CONFIG_BYTES` (checked before reading: a huge file would
    take minutes to parse) or is not UTF-8."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise ConfigError(
                f"{path}: the config file is {size / 2**20:,.1f} MiB; allowed: at most "
                f"{MAX_CONFIG_BYTES // 2**20} MiB (a config is a few kB of YAML)",
                source=str(path),
            )
        with path.open("rb") as f:
            data = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as e:
        raise ConfigError(
            f"{path}: cannot read the config file ({e.strerror or e}); allowed: a readable "
            "UTF-8 YAML file",
            source=str(path),
        ) from None
    if len(data) > MAX_CONFIG_BYTES:  # it grew after the size check
        raise ConfigError(f"{path}: the config file is over {MAX_CONFIG_BYTES // 2**20} MiB; "
                          "allowed: at most that", source=str(path))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise ConfigError(
            f"{path}: not UTF-8 text (byte 0x{data[e.start]:02x} at line {line}, offset "
            f"{e.start}); allowed: a UTF-8 YAML file",
            source=str(path),
        ) from None


def to_dict(config: Any) -> dict[str, Any]:
    """Plain YAML/JSON-safe form of a config: nested dicts, lists for tuples, str for paths."""
    if not _is_dataclass_instance(config):
        raise TypeError(f"to_dict expects a dataclass instance, got {type(config)!r}")
    return _plain(config)


def save_config(config: Any, path: str | Path) -> Path:
    """Write ``config`` as YAML that ``load_config(type(config), path)`` reads back equal."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.dump(to_dict(config), Dumper=_Dumper, sort_keys=False, default_flow_style=False)
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- internals


def _build(cls: type, data: Any, prefix: str, source: str) -> Any:
    if not isinstance(data, Mapping):
        raise _error(prefix, data, f"a mapping of {cls.__name__} fields", source)
    fields = _init_fields(cls)
    hints = _hints(cls)
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        path = _join(prefix, str(key))
        if key not in fields:
            raise _unknown_field(cls, str(key), value, path, source)
        kwargs[key] = _convert_field(fields[key], hints[key], value, path, source)
    for name, f in fields.items():
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if required and name not in kwargs:
            path = _join(prefix, name)
            raise ConfigError(
                f"{path}: required field of {cls.__name__} is missing; expected "
                f"{_describe(hints[name])} (from {source})",
                field=path,
                source=source,
            )
    return _instantiate(cls, kwargs, prefix, source)


def _raw(config: Any) -> dict[str, Any]:
    """The init fields of ``config`` as a fresh dict, config sections as nested dicts."""
    hints = _hints(type(config))
    raw = {}
    for name in _init_fields(type(config)):
        value = getattr(config, name)
        if _is_dataclass_instance(value) and _dataclass_in(hints[name]) is type(value):
            value = _raw(value)
        raw[name] = value
    return raw


def _patch(cls: type, raw: dict, parts: list[str], value: Any, prefix: str, source: str) -> None:
    """Set the field at ``parts`` of the raw tree of a ``cls`` to ``value``, validated."""
    fields = _init_fields(cls)
    name, rest = parts[0], parts[1:]
    path = _join(prefix, name)
    if name not in fields:
        raise _unknown_field(cls, name, value, path, source)
    hint = _hints(cls)[name]
    section = _dataclass_in(hint)
    current = raw[name]
    if rest:
        if section is not None and current is None:
            current = raw[name] = {}  # Setting a field of an unset optional section.
        if section is not None and isinstance(current, dict):
            _patch(section, current, rest, value, path, source)
        elif _is_mapping_hint(hint) and isinstance(current, Mapping):
            # Keys may contain dots (env names), so everything after the field is the key.
            merged = {**current, ".".join(rest): value}
            raw[name] = _convert_field(fields[name], hint, merged, path, source)
        else:
            raise ConfigError(
                f"{path}: is a {_describe(hint)} field, not a config section, so "
                f"'{'.'.join(rest)}' cannot be set inside it (from {source})",
                field=path,
                source=source,
            )
    elif section is not None and isinstance(value, Mapping) and isinstance(current, dict):
        for key, item in value.items():
            _patch(section, current, [str(key)], item, path, source)
    else:
        new = _convert_field(fields[name], hint, value, path, source)
        raw[name] = _raw(new) if section is not None and _is_dataclass_instance(new) else new


def _instantiate(cls: type, kwargs: dict[str, Any], prefix: str, source: str) -> Any:
    """Run the constructor, reporting ``__post_init__`` failures as ``ConfigError``."""
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (ValueError, TypeError) as e:
        where = prefix or "<top level>"
        raise ConfigError(
            f"{where}: invalid {cls.__name__}: {e} (from {source})", field=prefix, source=source
        ) from e


def _convert_field(f: dataclasses.Field, hint: Any, value: Any, path: str, source: str) -> Any:
    try:
        value = _convert(hint, value, path, source)
    except ConfigError as error:
        number = getattr(error, "_number", None)
        if number is not None and (error.field == path or error.field.startswith(path + "[")):
            _check_metadata(f.metadata, number, path, source)  # "must be <= ..." first.
        raise
    _check_metadata(f.metadata, value, path, source)
    return value


def _convert(hint: Any, value: Any, path: str, source: str) -> Any:
    """Check ``value`` against the annotation ``hint``, coercing where lossless."""
    if hint is Any or hint is object:
        return value
    if hint is _NoneType:
        if value is None:
            return None
        raise _error(path, value, "null", source)
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)

    if origin is Literal:
        for choice in args:
            if choice == value and _same_kind(choice, value):
                return choice
        raise _error(path, value, _describe(hint), source)

    if origin is Union or origin is types.UnionType:
        if value is None and _NoneType in args:
            return None
        options = [a for a in args if a is not _NoneType]
        # Try the option of exactly the value's type first, so `int | float` keeps 2.0 a float.
        options.sort(key=lambda a: a is not type(value))
        specific = None
        for option in options:
            try:
                return _convert(option, value, path, source)
            except ConfigError as e:
                # Keep an error from inside the value (a nested field, a __post_init__ check):
                # it says more than "expected A | B".
                if specific is None and not (e._mismatch and e.field == path):
                    specific = e
        if specific is not None:
            raise specific
        raise _error(path, value, _describe(hint), source)

    if origin is tuple or hint is tuple:
        if not isinstance(value, (list, tuple)):
            raise _error(path, value, _describe(hint), source)
        if not args or (len(args) == 2 and args[1] is Ellipsis):
            item = args[0] if args else Any
            return tuple(_convert(item, v, f"{path}[{i}]", source) for i, v in enumerate(value))
        if args == ((),):  # tuple[()]
            args = ()
        if len(value) != len(args):
            raise _error(path, value, f"{_describe(hint)} ({len(args)} items)", source)
        pairs = enumerate(zip(args, value, strict=True))
        return tuple(_convert(a, v, f"{path}[{i}]", source) for i, (a, v) in pairs)

    if origin is list or hint is list:
        if not isinstance(value, (list, tuple)):
            raise _error(path, value, _describe(hint), source)
        item = args[0] if args else Any
        return [_convert(item, v, f"{path}[{i}]", source) for i, v in enumerate(value)]

    if _is_mapping_hint(hint):
        if not isinstance(value, Mapping):
            raise _error(path, value, _describe(hint), source)
        key_hint, value_hint = args if len(args) == 2 else (Any, Any)
        out = {}
        for k, v in value.items():
            item_path = f"{path}[{k!r}]"
            out[_convert(key_hint, k, item_path, source)] = _convert(
                value_hint, v, item_path, source
            )
        return out

    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        if isinstance(value, hint):
            return value
        return _build(hint, value, path, source)

    if hint is bool:
        if isinstance(value, bool):
            return value
        raise _error(path, value, "bool (true or false)", source)

    if hint is int:
        number = None
        if isinstance(value, numbers.Integral) and not isinstance(value, bool):
            number = int(value)
        elif (
            isinstance(value, numbers.Real)
            and not isinstance(value, bool)
            and math.isfinite(value)
            and float(value).is_integer()
        ):
            number = int(value)  # 5e5 written for an int field.
        if number is None:
            raise _error(path, value, "int", source)
        if not _INT64_MIN <= number <= _INT64_MAX:
            error = _error(path, value, "int (64-bit)", source)
            error._number = number  # _convert_field reports a field's own range instead.
            raise error
        return number

    if hint is float:
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            try:
                number = float(value)
            except OverflowError:  # An int too large for a float.
                number = math.inf
            if math.isfinite(number):
                return number
            raise _error(path, value, "a finite float (not NaN or infinite)", source)
        raise _error(path, value, "float", source)

    if hint is str:
        if isinstance(value, str):
            return value
        raise _error(path, value, "str", source)

    if isinstance(hint, type) and issubclass(hint, PurePath):
        if isinstance(value, (str, PurePath)):
            return hint(value)
        raise _error(path, value, "a path (str)", source)

    check = origin if isinstance(origin, type) else hint
    if isinstance(check, type):
        if isinstance(value, check):
            return value
        raise _error(path, value, _describe(hint), source)
    return value  # An annotation we cannot check (a TypeVar, a Callable, ...).


#: The bound keys a field's metadata may set: (key, sign, whether a value meets it).
METADATA_BOUNDS = (
    ("min", ">=", lambda x, b: x >= b),
    ("gt", ">", lambda x, b: x > b),
    ("max", "<=", lambda x, b: x <= b),
    ("lt", "<", lambda x, b: x < b),
)


def _check_metadata(metadata: Mapping[str, Any], value: Any, path: str, source: str) -> None:
    """Apply "min" / "max" / "gt" / "lt" / "choices" to a scalar, or to each item of a tuple
    or list; ints without "min" / "max" must lie in ``INT_MIN``..``INT_MAX``."""
    items = value if isinstance(value, (list, tuple)) else [value]
    what = f" ({metadata['help']})" if "help" in metadata else ""
    for item in items:
        if item is None:
            continue
        if "choices" in metadata and item not in metadata["choices"]:
            allowed = ", ".join(repr(c) for c in metadata["choices"])
            raise ConfigError(
                f"{path}{what}: must be one of {allowed} (metadata 'choices'), "
                f"got {_show(item)} (from {source})",
                field=path,
                source=source,
            )
        if not isinstance(item, numbers.Real) or isinstance(item, bool):
            continue
        for key, sign, holds in METADATA_BOUNDS:
            if key in metadata and not holds(item, metadata[key]):
                raise ConfigError(
                    f"{path}{what}: must be {sign} {metadata[key]} (metadata '{key}'), "
                    f"got {_show(item)} (from {source})",
                    field=path,
                    source=source,
                )
        if isinstance(item, numbers.Integral):
            for key, sign, bound in (("min", ">=", INT_MIN), ("max", "<=", INT_MAX)):
                if key not in metadata and not (item >= bound if key == "min" else item <= bound):
                    raise ConfigError(
                        f"{path}{what}: must be {sign} {bound} (an int field is 32-bit unless "
                        f"its metadata sets '{key}'), got {_show(item)} (from {source})",
                        field=path,
                        source=source,
                    )


def _plain(value: Any) -> Any:
    if _is_dataclass_instance(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value) if f.init}
    if isinstance(value, Mapping):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, PurePath):
        return str(value)
    if hasattr(value, "item") and getattr(value, "shape", None) == ():
        return value.item()  # NumPy / JAX scalars.
    return value


def _unknown_field(cls: type, key: str, value: Any, path: str, source: str) -> ConfigError:
    names = list(_init_fields(cls))
    close = difflib.get_close_matches(key, names, n=1)
    suggestion = f" Did you mean '{close[0]}'?" if close else ""
    return ConfigError(
        f"{path}: unknown field of {cls.__name__} (given value {_show(value)}).{suggestion} "
        f"Valid fields: {', '.join(names)} (from {source})",
        field=path,
        source=source,
    )


def _error(path: str, value: Any, allowed: str, source: str) -> ConfigError:
    where = path or "<top level>"
    error = ConfigError(
        f"{where}: expected {allowed}, got {_show(value)} (from {source})",
        field=path,
        source=source,
    )
    error._mismatch = True
    return error


def _show(value: Any) -> str:
    text = repr(value)
    if len(text) > 80:
        text = text[:77] + "..."
    return f"{text} ({type(value).__name__})"


def _describe(hint: Any) -> str:
    """Readable form of an annotation for error messages."""
    if hint is _NoneType:
        return "None"
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin is Union or origin is types.UnionType:
        return " | ".join(_describe(a) for a in args)
    if origin is not None:
        name = getattr(origin, "__name__", str(origin))
        inner = ", ".join("..." if a is Ellipsis else _describe(a) for a in args)
        return f"{name}[{inner}]" if args else name
    return getattr(hint, "__name__", str(hint))


def _same_kind(choice: Any, value: Any) -> bool:
    """Literal matching without True == 1 or 1 == 1.0 surprises (ints may fill float choices)."""
    if isinstance(choice, bool) or isinstance(value, bool):
        return type(choice) is type(value)
    if isinstance(choice, float) and isinstance(value, int):
        return True
    return type(choice) is type(value)


def _dataclass_in(hint: Any) -> type | None:
    """The dataclass a field holds: ``C`` for ``C`` or ``C | None``, else None."""
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return hint
    if typing.get_origin(hint) in (Union, types.UnionType):
        found = [a for a in typing.get_args(hint) if _dataclass_in(a) is not None]
        if len(found) == 1:
            return found[0]
    return None


def _is_mapping_hint(hint: Any) -> bool:
    origin = typing.get_origin(hint) or hint
    return isinstance(origin, type) and issubclass(origin, Mapping)


def _is_dataclass_instance(obj: Any) -> bool:
    return dataclasses.is_dataclass(obj) and not isinstance(obj, type)


def _require_dataclass(cls: Any) -> None:
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise TypeError(f"expected a dataclass type, got {cls!r}")


@functools.cache
def _init_fields(cls: type) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls) if f.init}


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    """Resolved annotations, so ``from __future__ import annotations`` strings work."""
    try:
        return typing.get_type_hints(cls)
    except Exception as e:
        raise TypeError(
            f"cannot resolve the type annotations of {cls.__qualname__}: {e}; config classes "
            "must be defined at module level with importable annotation names"
        ) from e


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _yaml_problem(e: yaml.YAMLError) -> str:
    mark = getattr(e, "problem_mark", None)
    problem = getattr(e, "problem", None) or str(e)
    if mark is not None:
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    return problem
