"""The payload's layout, read from the flow record's table: what both renderers are made from.

A payload flow is an object of :data:`MEMBERS`, in that order; each member is written in a format
(how its value is spelled: a counter saturated at 2**64 - 1, a direction word, an endpoint
object...), and the flow fields it shows are the ones :data:`flowpipe.flow.SCHEMA` gives a payload
path under that member (``source.ip`` is ``src_ip``'s). :data:`PAYLOAD` is that join, checked when
this module loads: every payload path of the table is shown exactly once, by a member whose format
writes that path. :mod:`flowpipe.render.payload` generates its loop from it and the compiled loop
(``_jsonflows.c``) is configured with it, so a field moved in the table moves in both.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from flowpipe.flow import SCHEMA, FieldSpec

# The payload's members in order, with their format (the flush time and the host are the flush's
# and the service's: no flow field; the additional fields, present only when a flow has some, last).
MEMBERS: tuple[tuple[str, str], ...] = (
    ("flush_timestamp", "flush"), ("type", "text"), ("sampling_rate", "int"), ("direction", "direction"),
    ("start", "int"), ("end", "int"), ("bytes", "counter"), ("packets", "counter"), ("ether_type", "ether"),
    ("ip_protocol", "protocol"), ("device", "device"), ("exporter", "exporter"), ("source", "endpoint"),
    ("destination", "endpoint"), ("ingress", "interface"), ("egress", "interface"), ("host", "host"),
    ("tcp_flags", "flags"), ("next_hop", "next_hop"), ("additional_fields", "extras"))

# The paths under its member each format writes a field at, in the order it takes the fields.
FORMATS: dict[str, tuple[str, ...]] = {
    "flush": (), "host": (), "text": ("",), "int": ("",), "direction": ("",), "counter": ("",), "ether": ("",),
    "protocol": ("",), "flags": ("",), "extras": ("",), "device": ("namespace",), "exporter": ("ip",),
    "endpoint": ("ip", "mask", "mac", "port"), "interface": ("interface.index",), "next_hop": ("ip",),
}
# The type (flowpipe.flow.FieldSpec.type) of each field a format takes: anything else is "int".
_TYPES: dict[str, tuple[str, ...]] = {
    "text": ("text",), "device": ("text",), "exporter": ("text",), "extras": ("extras",), "next_hop": ("address",),
    "endpoint": ("address", "int", "int", "int"),
}


class Member(NamedTuple):
    """One member of the payload object: its ``name``, ``format`` and the flow fields (positions in
    :class:`flowpipe.flow.Flow`) it shows, in the order the format takes them."""

    name: str
    format: str
    fields: tuple[int, ...]


def layout_of(schema: Sequence[FieldSpec]) -> tuple[Member, ...]:
    """The payload's members with the fields ``schema`` puts under each (ImportError when some path
    has no field, some field's path no member, or a field is not of the type its format writes)."""
    at = {f.payload: i for i, f in enumerate(schema) if f.payload}
    out, used = [], set()
    for name, fmt in MEMBERS:
        paths = [f"{name}.{sub}" if sub else name for sub in FORMATS[fmt]]
        missing = [p for p in paths if p not in at]
        if missing:
            raise ImportError(f"flowpipe.render.fields: no field of flowpipe.flow.SCHEMA has payload path {missing[0]}")
        fields = tuple(at[p] for p in paths)
        types = _TYPES.get(fmt, ("int",) * len(fields))
        for p, i, want in zip(paths, fields, types, strict=True):
            if schema[i].type != want:
                raise ImportError(f"flowpipe.render.fields: payload path {p} is written as {want}, "
                                  f"but field {schema[i].name} is {schema[i].type}")
        out.append(Member(name, fmt, fields))
        used.update(paths)
    if set(at) - used:
        raise ImportError(f"flowpipe.render.fields: payload paths no member shows: {sorted(set(at) - used)}")
    return tuple(out)


if [fmt for _, fmt in MEMBERS].index("extras") != len(MEMBERS) - 1:
    raise ImportError("flowpipe.render.fields: the additional fields must be the payload's last member")
PAYLOAD = layout_of(SCHEMA)
