"""Generate ``docs/configuration.md`` from the config classes (``python -m flowpipe.docgen``).

The reference is never written by hand: every key, its type, default and meaning come from
:mod:`flowpipe.config`, and a test fails when the committed file is out of date.
"""
from __future__ import annotations

import sys
import typing
from typing import Any

import attrs

from flowpipe import config

HEADER = """# Configuration reference

Generated from `flowpipe/config.py` by `python -m flowpipe.docgen > docs/configuration.md`; do not edit.
Every key is optional unless marked required. Durations are seconds (integer or float). Unknown keys
are errors that name the nearest known key. `flowpipe check-config FILE` prints the effective config.
"""


def _type_name(tp: typing.Any) -> str:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is list:
        return f"array of {_type_name(args[0])}"
    if origin is dict:
        return "table of strings"
    if args:  # unions
        return " or ".join(_type_name(a) for a in args if a is not type(None))
    if attrs.has(tp):
        return "table"
    return {int: "integer", float: "seconds" , str: "string", bool: "boolean"}.get(tp, str(tp))


def _default(f: attrs.Attribute) -> str:
    default: Any = f.default
    if default is attrs.NOTHING:
        return "required"
    if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
        value = default.factory()
        if attrs.has(type(value)) or (isinstance(value, list) and value and attrs.has(type(value[0]))):
            return "see below"
        return f"`{config._toml_value(value)}`"
    if f.default is None:
        return "(derived, see meaning)"
    return f"`{config._toml_value(f.default)}`"


def render() -> str:
    out = [HEADER]
    subsections = set(config.sections())
    for section, cls in config.sections().items():
        title = "Top level" if not section else f"[[{section}]]" if config.is_array(section) else f"[{section}]"
        out += [f"## {title}", "", (cls.__doc__ or "").strip(), "", "| key | type | default | meaning |",
                "|---|---|---|---|"]
        attrs.resolve_types(cls)
        for f in attrs.fields(cls):
            if section == "" and f.name in subsections:  # each has a heading of its own
                continue
            doc = f.metadata.get("doc", "").replace("|", "\\|")
            out.append(f"| `{f.name}` | {_type_name(f.type)} | {_default(f)} | {doc} |")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    sys.stdout.write(render())
