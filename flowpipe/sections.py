"""What a config section is declared with: doc metadata, validators and value parsers.

Each stage declares its own section (an attrs class with slots, keyword-only, every key with a
default and a ``doc``) next to its code, using these helpers; :mod:`flowpipe.schema` gathers the
sections into the whole file and :mod:`flowpipe.config` loads, validates and dumps them. Nothing
here imports a stage.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from flowpipe.cidr import Network, network

Check = Callable[[Any, attrs.Attribute, Any], None]


def doc(text: str, **kw: Any) -> dict[str, Any]:
    """Field metadata: ``text`` is the key's meaning in docs/configuration.md."""
    return {"doc": text, **kw}


def key(default: Any, check: Check | None, text: str, *, secret: bool | tuple[str, ...] = False) -> Any:
    """One optional key of a section: its default (a list or dict default is copied for each
    instance), the validator its value must pass (None: any value of its type), and ``text``, its
    meaning in docs/configuration.md.

    ``secret``: what ``flowpipe check-config`` must not show (field metadata ``"secret"``, which
    :func:`flowpipe.config.dump` reads): True, the value; a tuple of words, for a table, the values of
    the entries whose name contains one of the words (in any case)."""
    meta = doc(text, secret=secret) if secret else doc(text)
    if isinstance(default, (list, dict)):
        kind, items = type(default), default
        return attrs.field(factory=lambda: kind(items), validator=check, metadata=meta)
    return attrs.field(default=default, validator=check, metadata=meta)


def positive(inst: Any, att: attrs.Attribute, value: Any) -> None:
    if value is not None and value <= 0:
        raise ValueError("must be greater than 0")


def non_negative(inst: Any, att: attrs.Attribute, value: Any) -> None:
    if value is not None and value < 0:
        raise ValueError("must be 0 or more")


def one_of(*choices: str) -> Any:
    def check(inst: Any, att: attrs.Attribute, value: Any) -> None:
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(repr(c) for c in choices)}, not {value!r}")
    return check


def http_url(inst: Any, att: attrs.Attribute, value: Any) -> None:
    if value and not value.startswith(("http://", "https://")):
        raise ValueError(f"{att.name} {value!r} must start with http:// or https://")


def port(inst: Any, att: attrs.Attribute, value: Any) -> None:
    if value is not None and not 0 <= value <= 65535:
        raise ValueError("must be a port number 0..65535")


def networks(key: str, cidrs: list[str]) -> list[Network]:
    """``cidrs`` parsed (:func:`flowpipe.cidr.network`); ValueError naming ``key`` and the bad entry."""
    out = []
    for c in cidrs:
        try:
            out.append(network(c))
        except ValueError:
            raise ValueError(f"{key}: {c!r} is not an address or CIDR") from None
    return out


def split_host_port(text: str, default_port: int | None) -> tuple[str, int]:
    """"h:p", "[v6]:p" or (with a default port) "h" -> (host, port). ValueError when malformed."""
    t = text.strip()
    if t.startswith("["):
        host, _, rest = t[1:].partition("]")
        port_s = rest[1:] if rest.startswith(":") else ""
    elif t.count(":") == 1:
        host, _, port_s = t.partition(":")
    else:
        host, port_s = t, ""
    if not port_s:
        if default_port is None:
            raise ValueError(f"{text!r} must be host:port")
        return host, default_port
    if not port_s.isdigit() or not 0 <= int(port_s) < 65536:
        raise ValueError(f"{text!r}: port must be 0..65535 (0: any free port)")
    return host, int(port_s)
