"""Configuration: loaded from TOML, validated strictly, dumped back (check-config).

Every key has a default but those that say what an array entry is (a listener's ``flow_type``, a
mapping's ``field`` and ``destination``). A bad file raises :class:`ConfigError` naming the file,
the key and the reason; unknown keys are errors that suggest the nearest known key.

The sections themselves are declared by the stages they configure (``flowpipe/decode/config.py``,
``flowpipe/forward/config.py``, ...) and gathered by :class:`flowpipe.schema.Config`; this module
finds them there (:func:`sections`) and works from their fields alone: types, defaults, validators
and metadata (``dump`` masks what a field's ``secret`` metadata declares secret). It names no
section and no key. The section classes are re-exported here for the old import paths; the stages
import their own section modules.
"""
from __future__ import annotations

import difflib
import tomllib
import types
import typing
from typing import Any

import attrs

from flowpipe import secrets
from flowpipe.aggregate.config import AggregatorConfig
from flowpipe.decode.config import DecoderConfig, MappingConfig, SamplingRule, parse_field_id
from flowpipe.enrich.config import ReverseDnsConfig
from flowpipe.forward.config import SECRET_HEADER_WORDS, ForwarderConfig, MetadataConfig
from flowpipe.httpd_config import MetricsConfig
from flowpipe.listen_config import DEFAULT_PORTS, FLOW_TYPES, ListenerConfig
from flowpipe.schema import Config
from flowpipe.sections import split_host_port

__all__ = ["DEFAULT_PORTS", "FLOW_TYPES", "SECRET_HEADER_WORDS", "AggregatorConfig", "Config", "ConfigError",
           "ConfigErrors", "DecoderConfig", "ForwarderConfig", "ListenerConfig", "MappingConfig", "MetadataConfig",
           "MetricsConfig", "ReverseDnsConfig", "SamplingRule", "dump", "load", "parse_field_id", "sections",
           "split_host_port"]


class ConfigError(Exception):
    """A config problem: ``file``, ``key`` (dotted path) and ``reason``."""

    def __init__(self, file: str, key: str, reason: str) -> None:
        self.file, self.key, self.reason = file, key, reason
        super().__init__(f"{file}: {key}: {reason}" if key else f"{file}: {reason}")


class ConfigErrors(ConfigError):
    """Several config problems, each once (``errors``); reads as the first of them."""

    def __init__(self, errors: list[ConfigError]) -> None:
        self.errors = errors
        super().__init__(errors[0].file, errors[0].key, errors[0].reason)


def _collect(errors: list[ConfigError], e: ConfigError) -> None:
    for one in (e.errors if isinstance(e, ConfigErrors) else [e]):
        if all((one.key, one.reason) != (seen.key, seen.reason) for seen in errors):
            errors.append(one)


# ---- loading -------------------------------------------------------------------------------

def _resolved(cls: type) -> tuple[attrs.Attribute, ...]:
    attrs.resolve_types(cls)
    return attrs.fields(cls)


def _convert(value: Any, tp: Any, file: str, key: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _convert(value, a, file, key)
            except ConfigError as e:
                errors.append(e.reason)
        raise ConfigError(file, key, " or ".join(errors))
    if attrs.has(tp):
        if not isinstance(value, dict):
            raise ConfigError(file, key, f"must be a table, not {type(value).__name__}")
        return _build(tp, value, file, key)
    if origin is list:
        (item,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise ConfigError(file, key, f"must be an array, not {type(value).__name__}")
        return _convert_each([(f"{key}[{i}]", v) for i, v in enumerate(value)], item, file)
    if origin is dict:
        _, vt = typing.get_args(tp)
        if not isinstance(value, dict):
            raise ConfigError(file, key, f"must be a table, not {type(value).__name__}")
        return dict(zip(map(str, value), _convert_each([(f"{key}.{k}", v) for k, v in value.items()], vt, file),
                        strict=True))
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(file, key, f"must be true or false, not {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(file, key, f"must be an integer, not {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(file, key, f"must be a number of seconds, not {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(file, key, f"must be a string, not {value!r}")
        try:
            return secrets.resolve(value)  # "${env:NAME}" / "${file:/path}"
        except ValueError as e:
            raise ConfigError(file, key, str(e)) from None
    raise ConfigError(file, key, f"unsupported type {tp!r}")  # pragma: no cover


def _convert_each(items: list[tuple[str, Any]], tp: Any, file: str) -> list[Any]:
    """:func:`_convert` of each (key, value) to ``tp``; every error among them reported, each once."""
    out: list[Any] = []
    errors: list[ConfigError] = []
    for key, v in items:
        try:
            out.append(_convert(v, tp, file, key))
        except ConfigError as e:
            _collect(errors, e)
    if errors:
        raise ConfigErrors(errors)
    return out


def _build(cls: type, table: dict[str, Any], file: str, prefix: str) -> Any:
    fields = {f.name: f for f in _resolved(cls)}
    kwargs: dict[str, Any] = {}
    errors: list[ConfigError] = []  # every problem of the file is reported, each once
    for k, v in table.items():
        key = f"{prefix}.{k}" if prefix else k
        if k not in fields:
            near = difflib.get_close_matches(k, list(fields), n=1, cutoff=0.5)
            hint = f"; did you mean {near[0]!r}?" if near else f"; known keys: {', '.join(fields)}"
            _collect(errors, ConfigError(file, key, "unknown key" + hint))
            continue
        try:
            kwargs[k] = _convert(v, fields[k].type, file, key)
        except ConfigError as e:
            _collect(errors, e)
    for n, f in fields.items():
        if f.default is attrs.NOTHING and n not in kwargs and n not in table:
            _collect(errors, ConfigError(file, f"{prefix}.{n}" if prefix else n, "is required"))
    if errors:
        raise ConfigErrors(errors)
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as e:
        bad = _failing_key(cls, kwargs, str(e))
        key = f"{prefix}.{bad}" if prefix and bad else (bad or prefix)
        message = str(e)
        if bad and message.startswith(f"{bad}: "):  # the key once, not "allowed_exporters: allowed_exporters: ..."
            message = message[len(bad) + 2:]
        raise ConfigError(file, key, message) from None


def _failing_key(cls: type, kwargs: dict[str, Any], message: str) -> str:
    """Best guess at which key an attrs validator or post-init complaint is about."""
    for f in attrs.fields(cls):
        if f"'{f.name}'" in message or message.startswith(f.name) or f" {f.name} " in f" {message} ":
            return f.name
    if len(kwargs) == 1:
        return next(iter(kwargs))
    for name, f in ((f.name, f) for f in attrs.fields(cls)):
        if name in kwargs and f.validator is not None:
            try:
                f.validator(None, f, kwargs[name])
            except (ValueError, TypeError):
                return name
    return ""


# ---- the sections, found in the schema ------------------------------------------------------

def _item_class(tp: Any) -> type | None:
    """The section class of a ``[[array]]`` field (``list[SomeSection]``), else None."""
    if typing.get_origin(tp) is list:
        (item,) = typing.get_args(tp)
        if attrs.has(item):
            return typing.cast(type, item)
    return None


def _arrays(cls: type) -> list[tuple[str, type]]:
    """(name, item class) of ``cls``'s ``[[array]]`` sections, in field order."""
    return [(f.name, item) for f in _resolved(cls) if (item := _item_class(f.type)) is not None]


def _tables(cls: type) -> list[tuple[str, type]]:
    """(name, class) of ``cls``'s ``[table]`` sections, in field order."""
    return [(f.name, f.type) for f in _resolved(cls) if f.type is not None and attrs.has(f.type)]


def sections() -> dict[str, type]:
    """Section name -> attrs class, for the docs generator and its test: the top level (""), the
    ``[[array]]`` sections (with theirs nested: "listeners.mapping"), then the ``[table]`` ones."""
    out: dict[str, type] = {"": Config}

    def arrays(prefix: str, cls: type) -> None:
        for name, item in _arrays(cls):
            out[prefix + name] = item
            arrays(prefix + name + ".", item)

    arrays("", Config)
    out.update(_tables(Config))
    return out


def is_array(name: str) -> bool:
    """Whether section ``name`` (a key of :func:`sections`) is written as ``[[name]]`` tables."""
    parent, _, leaf = name.rpartition(".")
    cls = sections().get(parent)
    return cls is not None and any(n == leaf for n, _ in _arrays(cls))


def load(path: str | None) -> Config:
    """The config in ``path`` (TOML), or the defaults when ``path`` is None or empty."""
    if not path:
        return Config()
    try:
        with open(path, "rb") as f:
            table = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(path, "", "no such file") from None
    except OSError as e:
        raise ConfigError(path, "", f"cannot read: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(path, "", f"not valid TOML: {e}") from None
    cfg: Config = _build(Config, table, path, "")
    _check_files(cfg, path)
    return cfg


def _check_files(cfg: Config, file: str) -> None:
    """The files sections name, checked once the config is read: a section declares ``check_files()``
    returning (key, reason) for each one it cannot use."""
    errors = [ConfigError(file, f"{name}.{key}", reason) for name, _ in _tables(Config)
              for key, reason in getattr(getattr(cfg, name), "check_files", lambda: [])()]
    if errors:
        raise ConfigErrors(errors)


# ---- writing (check-config) ----------------------------------------------------------------

def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_toml_value(str(k))} = {_toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(type(v))


def _shown(f: attrs.Attribute, value: Any) -> Any:
    """``value`` as check-config may show it: what field ``f``'s ``secret`` metadata declares secret
    (:func:`flowpipe.sections.key`) replaced by ``***``."""
    secret = f.metadata.get("secret")
    if not secret or value is None:
        return value
    if secret is True:
        return "***"
    return {k: ("***" if any(w in k.lower() for w in secret) else v) for k, v in value.items()}


def dump(cfg: Config) -> str:
    """The effective config as TOML, with the values its sections declare secret masked."""
    out: list[str] = []

    def scalars(obj: Any) -> list[str]:
        lines = []
        for f in _resolved(type(obj)):
            v = getattr(obj, f.name)
            if (f.type is not None and attrs.has(f.type)) or _item_class(f.type) is not None:
                continue
            v = _shown(f, v)
            if v is None:
                continue
            lines.append(f"{f.name} = {_toml_value(v)}")
        return lines

    def arrays(obj: Any, prefix: str, indent: str) -> None:
        nonlocal out
        for name, _ in _arrays(type(obj)):
            for item in getattr(obj, name):
                out += ["", f"{indent}[[{prefix}{name}]]"] + [indent + x for x in scalars(item)]
                arrays(item, f"{prefix}{name}.", indent + "  ")

    out += scalars(cfg)
    arrays(cfg, "", "")
    for name, _ in _tables(Config):
        out += ["", f"[{name}]"] + scalars(getattr(cfg, name))
    return "\n".join(out) + "\n"
