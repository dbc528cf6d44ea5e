"""The one flow record every decoder produces and every later stage consumes.

A flow is a plain ``tuple`` laid out as :class:`Flow` (hot paths build plain tuples in this
order; tests and tools may use ``Flow(...)`` or ``Flow._make(t)`` for names). Conventions:

- addresses (``src_ip``, ``dst_ip``, ``next_hop``) are raw bytes, 4 (IPv4) or 16 (IPv6) long,
  or ``b""`` when the exporter did not send one;
- ``exporter`` is the exporter's address as text (UDP source, or the sFlow agent address);
- ports are ints; ``ROLLED_UP`` (-1) marks a port collapsed by port rollup (payload ``"*"``);
- MACs are 48-bit ints (0 when unknown), masks are prefix lengths;
- ``direction`` is 0 (ingress) or 1 (egress); ``ether_type``/``ip_protocol`` are numbers;
- ``start``/``end`` are Unix seconds (int); ``bytes``/``packets`` as the exporter counted them;
- ``extras`` is ``None`` or a dict of additional fields (str -> int | str).
"""
from __future__ import annotations

import builtins
import operator
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple, overload

ROLLED_UP = -1


class FieldSpec(NamedTuple):
    """One field of the flow record: what aggregation does with it, and where the payload has it.

    ``role``: ``"key"`` (in the context key, at position ``key``), ``"kept"`` (a window keeps its
    first flow's), ``"sum"``, ``"min"``, ``"max"``, ``"or"`` (how a window merges later flows'),
    ``"join"`` (additional fields: a name the window lacks is added, one it has is kept);
    ``width``: bytes an integer key field takes in the compact key (:mod:`flowpipe.aggregate.keys`:
    wider values key the flow by its plain values instead); ``payload``: the dotted path of its
    value in a payload flow (docs/payload.md; "" when it is not sent; how each is written:
    :mod:`flowpipe.render.fields`); ``type``: ``"int"``, ``"text"`` (str), ``"address"`` (raw
    bytes) or ``"extras"`` (dict or None)."""

    name: str
    role: str
    key: int = -1
    width: int = 0
    payload: str = ""
    type: str = "int"


# The flow record, field by field: the one table the record layout (:class:`Flow`, the positions
# below), the context key (:data:`KEY`, the compact key's layout and widths), the kept fields, the
# merge rules and the payload paths are read from (tests/test_schema.py holds the renderer to it).
SCHEMA: tuple[FieldSpec, ...] = (
    FieldSpec("type", "kept", payload="type", type="text"),
    FieldSpec("exporter", "key", 1, payload="exporter.ip", type="text"),
    FieldSpec("namespace", "key", 0, payload="device.namespace", type="text"),
    FieldSpec("sampling_rate", "kept", payload="sampling_rate"),
    FieldSpec("direction", "kept", payload="direction"),
    FieldSpec("start", "min", payload="start"),
    FieldSpec("end", "max", payload="end"),
    FieldSpec("bytes", "sum", payload="bytes"),
    FieldSpec("packets", "sum", payload="packets"),
    FieldSpec("ether_type", "kept", payload="ether_type"),
    FieldSpec("ip_protocol", "key", 6, 1, payload="ip_protocol"),
    FieldSpec("src_ip", "key", 2, payload="source.ip", type="address"),
    FieldSpec("dst_ip", "key", 3, payload="destination.ip", type="address"),
    FieldSpec("src_port", "key", 4, 2, payload="source.port"),
    FieldSpec("dst_port", "key", 5, 2, payload="destination.port"),
    FieldSpec("src_mac", "kept", payload="source.mac"),
    FieldSpec("dst_mac", "kept", payload="destination.mac"),
    FieldSpec("src_mask", "kept", payload="source.mask"),
    FieldSpec("dst_mask", "kept", payload="destination.mask"),
    FieldSpec("in_if", "key", 8, 4, payload="ingress.interface.index"),
    FieldSpec("out_if", "kept", payload="egress.interface.index"),
    FieldSpec("tcp_flags", "or", payload="tcp_flags"),
    FieldSpec("next_hop", "kept", payload="next_hop.ip", type="address"),
    FieldSpec("tos", "key", 7, 1),
    FieldSpec("extras", "join", payload="additional_fields", type="extras"),
)


class Flow(NamedTuple):
    """A flow tuple with names (:data:`SCHEMA`'s fields, in its order)."""

    type: str
    exporter: str
    namespace: str
    sampling_rate: int
    direction: int
    start: int
    end: int
    bytes: int
    packets: int
    ether_type: int
    ip_protocol: int
    src_ip: builtins.bytes
    dst_ip: builtins.bytes
    src_port: int
    dst_port: int
    src_mac: int
    dst_mac: int
    src_mask: int
    dst_mask: int
    in_if: int
    out_if: int
    tcp_flags: int
    next_hop: builtins.bytes
    tos: int
    extras: dict[str, Any] | None


if Flow._fields != tuple(f.name for f in SCHEMA):  # (typed by hand for mypy: held to the table here)
    raise ImportError("flowpipe.flow: Flow's fields are not SCHEMA's")

FIELD_INDEX: dict[str, int] = {f.name: i for i, f in enumerate(SCHEMA)}
# Field positions, for code that indexes plain tuples on the hot path.
(TYPE, EXPORTER, NAMESPACE, SAMPLING_RATE, DIRECTION, START, END, BYTES, PACKETS, ETHER_TYPE,
 IP_PROTOCOL, SRC_IP, DST_IP, SRC_PORT, DST_PORT, SRC_MAC, DST_MAC, SRC_MASK, DST_MASK, IN_IF,
 OUT_IF, TCP_FLAGS, NEXT_HOP, TOS, EXTRAS) = (FIELD_INDEX[f.name] for f in SCHEMA)

# The fields a flow seen the other way exchanges: source and destination, input and output interface.
MIRRORED = ((SRC_IP, DST_IP), (SRC_PORT, DST_PORT), (SRC_MAC, DST_MAC), (SRC_MASK, DST_MASK), (IN_IF, OUT_IF))


def swapped(f: Sequence[Any], nbytes: int, npackets: int, flags: int = 0) -> tuple:
    """The flow ``f`` seen the other way: its :data:`MIRRORED` fields exchanged, these counters and
    TCP flags."""
    lf = list(f)
    for a, b in MIRRORED:
        lf[a], lf[b] = f[b], f[a]
    lf[BYTES], lf[PACKETS], lf[TCP_FLAGS] = nbytes, npackets, flags
    return tuple(lf)


# What aggregation keeps from the first flow of a window: the fields neither in the context key
# nor merged (as a tuple in this order).
KEPT = tuple(i for i, f in enumerate(SCHEMA) if f.role == "kept")
kept_fields = operator.itemgetter(*KEPT)
# The context key's fields, in the key's order (see flowpipe.aggregate.keys).
KEY = tuple(sorted((i for i, f in enumerate(SCHEMA) if f.role == "key"), key=lambda i: SCHEMA[i].key))
key_fields = operator.itemgetter(*KEY)
# The key's integer fields, in the key's order, and the bytes each takes in the compact key.
KEY_WIDTH = {i: SCHEMA[i].width for i in KEY if SCHEMA[i].width}
# How a window merges a later flow: rule -> the fields merged so.
MERGED = {rule: tuple(i for i, f in enumerate(SCHEMA) if f.role == rule) for rule in ("sum", "min", "max", "or")}
_KEY_AT = {field: k for k, field in enumerate(KEY)}
_KEPT_AT = {field: k for k, field in enumerate(KEPT)}

ETHER_IPV4 = 0x0800
ETHER_IPV6 = 0x86DD


def make_flow(**fields: Any) -> tuple:
    """A flow tuple from keyword fields, every field not given being zero/empty (tests, tools)."""
    base: dict[str, Any] = {
        "type": "netflow5", "exporter": "", "namespace": "default", "sampling_rate": 0,
        "direction": 0, "start": 0, "end": 0, "bytes": 0, "packets": 0, "ether_type": ETHER_IPV4,
        "ip_protocol": 0, "src_ip": b"", "dst_ip": b"", "src_port": 0, "dst_port": 0,
        "src_mac": 0, "dst_mac": 0, "src_mask": 0, "dst_mask": 0, "in_if": 0, "out_if": 0,
        "tcp_flags": 0, "next_hop": b"", "tos": 0, "extras": None,
    }
    unknown = set(fields) - set(base)
    if unknown:
        raise TypeError(f"unknown flow fields: {sorted(unknown)}")
    base.update(fields)
    return tuple(Flow(**base))


def builder(*params: str, **constants: Any) -> Callable[..., tuple]:
    """A function making flow tuples, for decoders that build one per record: it takes the fields
    ``params`` (names, in that order) positionally; the fields in ``constants`` are those values, the
    others :func:`make_flow`'s zero/empty ones. Generated from :data:`SCHEMA`, so a decoder names the
    fields it fills and never writes a position."""
    defaults = make_flow()
    unknown = (set(params) | set(constants)) - set(FIELD_INDEX)
    if unknown or set(params) & set(constants) or len(set(params)) != len(params):
        raise TypeError(f"flow builder: unknown or repeated fields {sorted(unknown) or list(params)}")
    env = {f"c_{f.name}": constants.get(f.name, defaults[i]) for i, f in enumerate(SCHEMA) if f.name not in params}
    items = ", ".join(f.name if f.name in params else f"c_{f.name}" for f in SCHEMA)
    src = f"def build({', '.join(params)}):\n    return ({items})\n"
    exec(compile(src, f"<flow builder {params}>", "exec"), env)  # noqa: S102 - made from SCHEMA's names only
    return env["build"]  # type: ignore[no-any-return]


# The fields of FlowColumns' own columns (besides the key's and the kept tuples), in its order.
OWN_COLUMNS = (START, END, BYTES, PACKETS, TCP_FLAGS, EXTRAS)


def _rows_of_columns() -> Any:
    """``rows(key, kept, own)``: the flows of FlowColumns' columns (key columns, kept tuples, its own
    columns; lists) as lists laid out as :class:`Flow`, one comprehension generated from the table."""
    def names(fields: Sequence[int]) -> str:
        return "".join(f"v{i}, " for i in fields)

    src = (f"def rows(key, kept, own):\n"
           f"    return [[{names(range(len(SCHEMA)))}] for {names(KEY)}({names(KEPT)}), {names(OWN_COLUMNS)}"
           f"in zip(*key, kept, *own, strict=True)]\n")
    ns: dict[str, Any] = {}
    exec(compile(src, "<flowpipe.flow rows>", "exec"), ns)  # noqa: S102 - ours, from SCHEMA
    return ns["rows"]


_rows = _rows_of_columns()


class FlowColumns(Sequence[list[Any]]):
    """Flows as columns: what a flush emits, laid out as the accumulator holds them.

    ``key``: nine columns, the :data:`KEY` fields; ``kept``: per flow, the tuple of its :data:`KEPT`
    fields (equal ones are one shared tuple); ``start``, ``end``, ``bytes``, ``packets``,
    ``flags``: ints; ``extras``: dict or None. A column is a list, or a numpy array where the
    accumulator has one: addresses as ``V4``/``V16`` values, the key's integers and the counters as
    int64 (``kept``, ``extras``, namespaces and exporters are always lists). The renderer and the
    enrichment read the columns; read as a sequence, each flow is a list laid out as :class:`Flow`
    of plain Python values (made on demand, for tools, tests and the flush filters).
    """

    __slots__ = ("key", "kept", "start", "end", "bytes", "packets", "flags", "extras")

    def __init__(self, key: list[Any], kept: list[tuple], start: Any, end: Any, nbytes: Any, packets: Any, flags: Any,
                 extras: list[dict[str, Any] | None]) -> None:
        self.key, self.kept, self.extras = key, kept, extras
        self.start, self.end, self.bytes, self.packets, self.flags = start, end, nbytes, packets, flags

    @classmethod
    def empty(cls) -> FlowColumns:
        return cls([[] for _ in KEY], [], [], [], [], [], [], [])

    @classmethod
    def of_rows(cls, flows: Sequence[Sequence[Any]]) -> FlowColumns:
        """The columns of flows laid out as :class:`Flow`."""
        if isinstance(flows, FlowColumns):
            return flows
        if not flows:
            return cls.empty()
        key = [list(c) for c in zip(*map(key_fields, flows), strict=True)]
        return cls(key, list(map(kept_fields, flows)), *([f[i] for f in flows] for i in OWN_COLUMNS))

    @classmethod
    def join(cls, parts: Sequence[FlowColumns]) -> FlowColumns:
        """One batch of several (none: empty), in order."""
        if len(parts) == 1:
            return parts[0]
        if not parts:
            return cls.empty()
        key = [_joined([p.key[k] for p in parts]) for k in range(len(KEY))]
        return cls(key, *(_joined(list(cols)) for cols in zip(*(p._lists() for p in parts), strict=True)))

    def _lists(self) -> tuple[Any, ...]:
        """The columns besides the key, in the constructor's order."""
        return self.kept, self.start, self.end, self.bytes, self.packets, self.flags, self.extras

    def rows(self) -> list[list[Any]]:
        """Every flow as a list laid out as :class:`Flow`."""
        return _rows(list(map(as_list, self.key)), self.kept, list(map(as_list, self._lists()[1:])))

    def column(self, field: int) -> list[Any]:
        """The values of one :class:`Flow` field (a position such as :data:`SRC_IP`) as a list of plain
        values (for a key field given as a list: the key's own column, do not mutate)."""
        if field in _KEY_AT:
            return as_list(self.key[_KEY_AT[field]])
        if field in _KEPT_AT:
            return list(map(operator.itemgetter(_KEPT_AT[field]), self.kept))
        return list(as_list(self._lists()[1 + OWN_COLUMNS.index(field)]))

    def __len__(self) -> int:
        return len(self.start)

    @overload
    def __getitem__(self, i: int) -> list[Any]: ...

    @overload
    def __getitem__(self, i: slice) -> FlowColumns: ...

    def __getitem__(self, i: int | slice) -> list[Any] | FlowColumns:
        if isinstance(i, slice):
            return FlowColumns([c[i] for c in self.key], *(c[i] for c in self._lists()))
        j = range(len(self))[i]  # IndexError out of range; negative from the end
        return self[j:j + 1].rows()[0]

    def __iter__(self) -> Iterator[list[Any]]:
        return iter(self.rows())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FlowColumns | list):
            return self.rows() == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]


def as_list(col: Any) -> list[Any]:
    """A :class:`FlowColumns` column as a list of plain values (an array's ``tolist``: ints, address
    bytes; a list as it is)."""
    return col if isinstance(col, list) else col.tolist()  # type: ignore[no-any-return]


def _joined(cols: list[Any]) -> Any:
    """Columns end to end: one array when all are numpy arrays of one dtype, else a list."""
    if not any(isinstance(c, list) for c in cols) and len({c.dtype for c in cols}) == 1:
        import numpy as np  # noqa: PLC0415 - arrays come only from the accumulator, which has loaded it
        return np.concatenate(cols)
    out: list[Any] = []
    for c in cols:
        out += as_list(c)
    return out


class FlushBatch:
    """What one flush tick emits: aggregated flows and, once enriched, their endpoints' names.

    ``columns``: the flows (:class:`FlowColumns`; flows laid out as :class:`Flow` are taken too);
    ``flows``: the same as lists laid out as :class:`Flow`, made on demand; ``hostnames`` maps raw
    address bytes to a reverse-DNS name (filled by the enrichment stage; empty when it is off).
    """

    __slots__ = ("flush_time", "columns", "hostnames")

    def __init__(self, flush_time: float, flows: Sequence[Sequence[Any]],
                 hostnames: dict[bytes, str] | None = None):
        self.flush_time = flush_time
        self.columns = FlowColumns.of_rows(flows)
        self.hostnames = hostnames if hostnames is not None else {}

    @property
    def flows(self) -> list[list[Any]]:
        return self.columns.rows()

    def __len__(self) -> int:
        return len(self.columns)
