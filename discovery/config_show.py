"""`discover config show`: a resolved config as YAML, each field with its help and its
allowed range as a comment, so that a researcher sees every knob a run has and what it
does without reading the source.

A field's help is its ``metadata["help"]`` if set, else its line in the class
docstring's ``Attributes:`` section (where every config documents its fields).
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from typing import Any

import yaml

from discovery.config import METADATA_BOUNDS, to_dict

#: ``  name: text`` or ``  first, second: text`` (one description for several fields).
_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_ATTRIBUTE = re.compile(rf"^(\s+)({_NAME}(?:, {_NAME})*):\s*(.*)$")
_LITERAL = re.compile(r"``([^`]+)``")


def docstring_attributes(cls: type) -> dict[str, str]:
    """``{field: description}`` from the ``Attributes:`` section of ``cls``'s docstring
    (continuation lines joined, double backquotes shown as single ones)."""
    doc = inspect.getdoc(cls) or ""
    lines = doc.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == "Attributes:")
    except StopIteration:
        return {}
    found: dict[str, str] = {}
    names: list[str] = []
    indent = None
    for line in lines[start + 1:]:
        if not line.strip():
            continue
        if not line.startswith(" "):
            break  # the next section
        match = _ATTRIBUTE.match(line)
        if match and (indent is None or len(match.group(1)) == indent):
            indent = len(match.group(1))
            names = match.group(2).split(", ")
            for name in names:
                found[name] = match.group(3).strip()
        else:
            for name in names:
                found[name] = f"{found[name]} {line.strip()}"
    return {name: _LITERAL.sub(r"`\1`", text) for name, text in found.items()}


def field_help(cls: type) -> dict[str, str]:
    """``{field: help}`` for every init field of the dataclass ``cls``: the metadata's
    "help", else the docstring's (a subclass's first, then its bases' for the fields it
    inherits), with the metadata's range and choices appended."""
    described: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        described.update(docstring_attributes(klass))
    helps = {}
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        text = f.metadata.get("help") or described.get(f.name, "")
        bounds = [f"{sign} {f.metadata[key]}" for key, sign, _ in METADATA_BOUNDS
                  if key in f.metadata]
        if "choices" in f.metadata:
            bounds.append("one of " + ", ".join(repr(c) for c in f.metadata["choices"]))
        if bounds:
            text = f"{text} [{'; '.join(bounds)}]" if text else f"[{'; '.join(bounds)}]"
        helps[f.name] = text
    return helps


def _scalar(value: Any) -> str:
    """``value`` as one line of YAML flow style."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6).strip()
    return text.removesuffix("\n...").removesuffix("...").strip()


def _lines(config: Any, plain: dict[str, Any], indent: str, width: int) -> list[str]:
    helps = field_help(type(config))
    out = []
    for name, value in plain.items():
        help_text = helps.get(name, "")
        child = getattr(config, name, None)
        if dataclasses.is_dataclass(child) and isinstance(value, dict):
            head = f"{indent}{name}:"
            out.append(f"{head:<{width}}  # {help_text}" if help_text else head)
            out += _lines(child, value, indent + "  ", width)
            continue
        line = f"{indent}{name}: {_scalar(value)}"
        out.append(f"{line:<{width}}  # {help_text}" if help_text else line)
    return out


def show_config(config: Any, width: int = 40) -> str:
    """The resolved ``config`` as YAML that ``load_config`` reads back, every field
    commented with its help (comments start at column ``width`` where the value fits)."""
    return "\n".join(_lines(config, to_dict(config), "", width)) + "\n"
