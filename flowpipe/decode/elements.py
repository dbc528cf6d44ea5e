"""Information elements -> flow fields, and the record decoder built once per template.

:func:`compile_records` turns a data template (its ``(enterprise, id, length)`` fields) into a
:class:`RecordDecoder`: for fixed-length templates one ``struct.Struct`` (unused fields are pad
bytes) and one generated comprehension that lays every record out as a flow tuple, so the hot
path has no per-field branching; templates with variable-length fields (RFC 7011 §7) split each
record first, then use the same kind of generated builder.

Field choices (made once per template, "first present wins" where tshark does the same):

- bytes: IE 1, else 85, 23, 231; packets: IE 2, else 86, 24, 298;
- ports: 7/11, else 182/183 (TCP), 180/181 (UDP); ICMP type/code never fill ports;
- addresses: IPv4 (8/12) unless it is all-zero while IPv6 (27/28) is not; a template with none of
  them but a wireless station (Cisco WLC: 366 staIPv4Address, 365 staMacAddress) puts the station
  on the source side, or on the destination side when flowDirection (61) is 1 (egress, toward the
  client); next hop: the first
  non-zero of 15, 62, then BGP 18, 63; masks 9/29 and 13/30; MACs 56 else 81, 80 else 57;
- ether_type: from the chosen address family, else ipVersion (60), else ethernetType (256);
- start/end (Unix seconds): 150/151 s, 152/153 ms, 154-157 NTP, 158/159 delta µs, 22/21
  (v9: relative to the header's sysUptime; IPFIX: to systemInitTimeMilliseconds 160), 322-325
  observation time; else the export time;
- sampling rate: a rate in the record (309/310, 305/306, 34, 50), else the rate of the sampler
  the record names (48, 302), else the exporter/domain default.

``[[listeners.mapping]]`` entries are compiled in: a built-in destination replaces that field's
expression, others fill the flow's ``extras`` dict. Two listener options are compiled in too, and
cost nothing when off:

- in-band exporter identity: a template with exporterIPv4Address (130, 4 bytes) or
  exporterIPv6Address (131, 16 bytes) fills the flow's ``exporter`` from the record (when it is
  not all-zero; else the identity the decoder passes in as ``E``); ``RecordDecoder.identity`` says
  the template does;
- passthrough of unknown elements: every element with no IANA name (:mod:`flowpipe.decode.iana`,
  RFC 5103 reverse names included), no built-in use and no mapping goes into ``extras`` as
  ``"<id>"`` (enterprise 0) or ``"<enterprise>.<id>"``, its value as hex, the first
  ``PASSTHROUGH_MAX`` bytes of it. The first occurrence of an element in a template counts, and
  the first ``PASSTHROUGH_FIELDS`` such elements of a template.
"""
from __future__ import annotations

import ipaddress
import itertools
import logging
import re
import struct
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from flowpipe.cache import bounded_put
from flowpipe.decode import columns, iana
from flowpipe.decode.columns import RecordOverrun, VectorPlan
from flowpipe.decode.config import MappingConfig
from flowpipe.flow import (
    BYTES,
    DIRECTION,
    DST_IP,
    DST_MAC,
    DST_MASK,
    DST_PORT,
    END,
    ETHER_TYPE,
    EXPORTER,
    EXTRAS,
    IN_IF,
    IP_PROTOCOL,
    NAMESPACE,
    NEXT_HOP,
    OUT_IF,
    PACKETS,
    SAMPLING_RATE,
    SCHEMA,
    SRC_IP,
    SRC_MAC,
    SRC_MASK,
    SRC_PORT,
    START,
    TCP_FLAGS,
    TOS,
    TYPE,
)

log = logging.getLogger(__name__)

VARLEN = 65535
REVERSE_PEN = 29305
NTP_EPOCH = columns.NTP_EPOCH

Field = tuple[int, int, int]  # (enterprise number, element id, length); length VARLEN = variable

# Element ids (IANA / NetFlow v9) with a meaning here.
BYTES_IES = (1, 85, 23, 231)
PACKETS_IES = (2, 86, 24, 298)
SRC_PORT_IES = (7, 182, 180)
DST_PORT_IES = (11, 183, 181)
SRC_MAC_IES = (56, 81)
DST_MAC_IES = (80, 57)
SAMPLER_ID_IES = (48, 302)
SYSTEM_INIT_MS = 160
EXPORTER_V4, EXPORTER_V6 = 130, 131  # exporterIPv4Address / exporterIPv6Address
STA_MAC, STA_IPV4 = 365, 366  # staMacAddress / staIPv4Address (Cisco WLC: the wireless client)
PASSTHROUGH_MAX = 256  # bytes of an unknown element's value kept (as hex) by passthrough_unknown
PASSTHROUGH_FIELDS = 64  # unknown elements of one template passed through at most
# start / end candidates: (element id, how the value becomes Unix seconds)
START_IES = ((150, "s"), (152, "ms"), (154, "ntp"), (156, "ntp"), (158, "delta"), (22, "up"),
             (322, "s"), (323, "ms"), (324, "ntp"), (325, "ntp"))
END_IES = ((151, "s"), (153, "ms"), (155, "ntp"), (157, "ntp"), (159, "delta"), (21, "up"),
           (322, "s"), (323, "ms"), (324, "ntp"), (325, "ntp"))

# Built-in payload destinations a mapping may override: name -> (flow slot, kind).
BUILTIN: dict[str, tuple[int, str]] = {
    "direction": (DIRECTION, "u32"), "start": (START, "u64"), "end": (END, "u64"), "bytes": (BYTES, "u64"),
    "packets": (PACKETS, "u64"), "ether_type": (ETHER_TYPE, "u32"), "ip_protocol": (IP_PROTOCOL, "u32"),
    "source.port": (SRC_PORT, "u32"), "destination.port": (DST_PORT, "u32"), "source.mac": (SRC_MAC, "u64"),
    "destination.mac": (DST_MAC, "u64"), "source.mask": (SRC_MASK, "u32"), "destination.mask": (DST_MASK, "u32"),
    "ingress.interface": (IN_IF, "u32"), "egress.interface": (OUT_IF, "u32"), "tcp_flags": (TCP_FLAGS, "u32"),
    "tos": (TOS, "u32"), "exporter.ip": (EXPORTER, "iptext"), "source.ip": (SRC_IP, "raw"),
    "destination.ip": (DST_IP, "raw"), "next_hop.ip": (NEXT_HOP, "raw"),
}
N_SLOTS = len(SCHEMA)
if EXTRAS != N_SLOTS - 1:  # (a record decoder's tuple ends with its additional fields: see compile_records)
    raise ImportError("flowpipe.decode.elements: flowpipe.flow.SCHEMA's additional fields are not its last field")
_INT_CODES = {1: "B", 2: "H", 4: "I", 8: "Q"}


# ---- value helpers (used by generated code and by options records) ---------------------------

def _int(b: bytes) -> int:
    return int.from_bytes(b[-8:], "big")


def _intle(b: bytes) -> int:
    return int.from_bytes(b[:8], "little")


def _intm(b: bytes) -> int | None:
    """A mapped integer: 1..8 bytes, else None (dropped)."""
    return int.from_bytes(b, "big") if 0 < len(b) <= 8 else None


def _intmle(b: bytes) -> int | None:
    return int.from_bytes(b, "little") if 0 < len(b) <= 8 else None


def _up(t: int, uptime: int, v: int) -> int:
    """v9 switched time (ms of sysUptime) -> Unix seconds, given export time and sysUptime."""
    if uptime >= v:
        return t - (uptime - v) // 1000
    d = (uptime - v) & 0xFFFFFFFF
    if d >= 0x80000000:  # the record is (slightly) after the header: uptime wrapped or clock skew
        d -= 0x100000000
    return t - int(d / 1000)


def _init(init: int | None, v: int, t: int) -> int:
    """IPFIX sysUpTime-relative time (ms) -> Unix seconds, given systemInitTimeMilliseconds."""
    return t if init is None else (init + v) // 1000


def _ntp(v: int) -> int:
    return (v >> 32) - NTP_EPOCH if v else 0


def _nz(*vals: bytes) -> bytes:
    for x in vals:
        if any(x):
            return x
    return vals[0]


def _ev(v: int) -> int:
    return 0x0800 if v == 4 else 0x86DD if v == 6 else 0


def _ratio_is(interval: int, space: int) -> int:
    return (interval + space) // interval if interval else 0


def _ratio_ps(size: int, population: int) -> int:
    return population // size if size else 0


def _str(b: bytes) -> str:
    return b.strip(b"\x00").decode("utf-8", "replace")


def _ip(b: bytes) -> str:
    return str(ipaddress.ip_address(b)) if len(b) in (4, 16) else b.hex()


def _iptext(b: bytes) -> str:
    return _ip(b)


def _mac(b: bytes) -> str:
    return ":".join(f"{x:02x}" for x in b)


def _hex_kept(b: bytes) -> str:
    """An unknown element's value as passthrough keeps it: its first PASSTHROUGH_MAX bytes, as hex."""
    return b[:PASSTHROUGH_MAX].hex()


# A mapping's type -> how the bytes of its field become its value (the generated code calls it by
# name; any other type: hex).
_CONVERT: dict[str, Callable[[bytes], Any]] = {"string": _str, "ip": _ip, "mac": _mac}

_EXPORTERS: dict[bytes, str] = {}  # bounded: MAX_EXPORTER_TEXTS
MAX_EXPORTER_TEXTS = 4096


def exporter_text(b: bytes) -> str:
    """An in-band exporter address (4 or 16 bytes) as text, cached (bounded)."""
    text = _EXPORTERS.get(b)
    if text is None:
        text = bounded_put(_EXPORTERS, MAX_EXPORTER_TEXTS, b, str(ipaddress.ip_address(b)))
    return text


def _exp(b: bytes, default: str) -> str:
    """The record's exporter address as text, ``default`` when it is all-zero."""
    return exporter_text(b) if any(b) else default


def _extras(pairs: tuple[tuple[str, Any], ...]) -> dict[str, Any] | None:
    d = {k: v for k, v in pairs if v is not None}
    return d or None


def _pick(mapped: Any, native: Any) -> Any:
    return native if mapped is None else mapped


def split_varlen(buf: bytes, lens: Sequence[int], min_len: int, err: list[bool]) -> Iterator[list[bytes]]:
    """Split ``buf`` into records of raw field values (RFC 7011 §7 lengths); sets ``err`` on overrun."""
    o, n = 0, len(buf)
    while n - o >= min_len:
        vals = []
        for ln in lens:
            if ln == VARLEN:
                if o >= n:
                    err.append(True)
                    return
                ln = buf[o]
                o += 1
                if ln == 255:
                    if o + 2 > n:
                        err.append(True)
                        return
                    ln = (buf[o] << 8) | buf[o + 1]
                    o += 2
            e = o + ln
            if e > n:
                err.append(True)
                return
            vals.append(buf[o:e])
            o = e
        yield vals


_HELPERS: dict[str, Any] = {
    "_int": _int, "_intle": _intle, "_intm": _intm, "_intmle": _intmle, "_up": _up, "_init": _init,
    "_ntp": _ntp, "_nz": _nz, "_ev": _ev, "_ratio_is": _ratio_is, "_ratio_ps": _ratio_ps, "_str": _str,
    "_ip": _ip, "_iptext": _iptext, "_mac": _mac, "_extras": _extras, "_pick": _pick,
    "_split": split_varlen, "RecordOverrun": RecordOverrun, "_exp": _exp, "_hex_kept": _hex_kept,
}


# ---- mapping ---------------------------------------------------------------------------------

class Mapping:
    """The listener's ``[[listeners.mapping]]`` entries, indexed by element."""

    def __init__(self, entries: Sequence[MappingConfig] = ()) -> None:
        self.entries = list(entries)
        self.by_element: dict[tuple[int, int], list[MappingConfig]] = {}
        for m in self.entries:
            self.by_element.setdefault(m.element, []).append(m)
            builtin = BUILTIN.get(m.destination)
            if builtin and (m.type != "integer" if builtin[1].startswith("u") else m.type not in ("hex", "ip")):
                want = "integer" if builtin[1].startswith("u") else "ip bytes"
                log.warning("mapping of field %s to %s: type %s ignored, it is decoded as %s",
                            m.field, m.destination, m.type, want)


# ---- compilation -----------------------------------------------------------------------------

class RecordDecoder:
    """Decodes a data set of one template into flow tuples.

    ``decode(buf, E, N, R, RS, T, U, I)``: set body, exporter, namespace, default sampling rate,
    sampler id -> rate, export time (s), v9 sysUptime (ms), IPFIX system init time (ms or None).
    """

    __slots__ = ("decode", "size", "min_size", "source", "identity", "plan", "vendor", "lens", "picks")

    def __init__(self, decode: Callable[..., list[tuple]], size: int, min_size: int, source: str,
                 identity: bool = False, plan: VectorPlan | None = None) -> None:
        self.decode = decode
        self.plan = plan          # columnar decoding of its sets (flowpipe.decode.columns), or None
        self.size = size          # fixed record length, 0 for variable-length templates
        self.min_size = min_size  # shortest possible record
        self.source = source      # generated code, for debugging
        self.identity = identity  # the flows' exporter comes from the records (in-band 130/131)
        # vendor rules deriving the flows of its records (flowpipe.decode.nsel / reverse), or None
        self.vendor: Any = None
        self.lens: tuple[int, ...] = ()  # the template's field lengths (VARLEN: variable)
        self.picks: Any = None  # addresses of either family record by record: the plans per family (columns.Picks)


class _Gen:
    """Builds the expressions of one template's record decoder."""

    def __init__(self, fields: Sequence[Field], fixed: bool) -> None:
        self.fields = fields
        self.fixed = fixed
        self.first: dict[tuple[int, int], int] = {}
        for i, (pen, eid, _) in enumerate(fields):
            self.first.setdefault((pen, eid), i)
        self.raw: set[int] = set()    # fields some consumer needs as bytes
        self.used: set[int] = set()
        self.pos: dict[int, int] = {}  # field index -> index in the unpacked tuple (fixed path)
        # slot -> (expression, field index, how): slots filled straight from one field, for the
        # columnar plan (see :func:`_vector_plan`)
        self.simple: dict[int, tuple[str, int, str]] = {}
        # the sampling rate's expression and its fields (in the record, sampler id; None: absent) when a
        # plan can read it (not a ratio of two fields)
        self.rate: tuple[str, int | None, int | None] | None = None
        # address slots filled from an IPv4 or an IPv6 field, record by record (the IPv4 one unless it
        # is all zero and the IPv6 one is not): slot -> ((v4 expression, field), (v6 expression, field))
        self.dual: dict[int, tuple[tuple[str, int], tuple[str, int]]] = {}
        # the additional fields, in the order of the extras made: (name, field index, how, converter)
        # (how: "int" / "intle" integers, "bytes" converted by the converter), for the columnar plan
        self.extra_fields: list[tuple[str, int, str, Callable[[bytes], Any] | None]] = []

    def find(self, eid: int, lengths: tuple[int, ...] = ()) -> int | None:
        i = self.first.get((0, eid))
        if i is None:
            return None
        ln = self.fields[i][2]
        if ln == 0 or (lengths and ln not in lengths):
            return None
        return i

    def need(self, i: int, kind: str) -> int:
        self.used.add(i)
        ln = self.fields[i][2]
        if kind != "int" or ln not in _INT_CODES:
            self.raw.add(i)
        return i

    def layout(self) -> str:
        """The struct format of the fixed path (after every ``need``)."""
        fmt, p = ["!"], 0
        for i, (_, _, ln) in enumerate(self.fields):
            if i in self.used:
                fmt.append(f"{ln}s" if i in self.raw else _INT_CODES[ln])
                self.pos[i] = p
                p += 1
            else:
                fmt.append(f"{ln}x")
        return "".join(fmt)

    def val(self, i: int, kind: str) -> str:
        """Placeholder for field ``i`` as ``kind`` (int, intle, raw, intm, intmle); see :meth:`resolve`."""
        return f"\x00{i}:{kind}\x00"

    def resolve(self, text: str) -> str:
        """Replace placeholders once every consumer is known (and the fixed layout is made)."""
        def one(m: re.Match[str]) -> str:
            i, kind = int(m.group(1)), m.group(2)
            ref = f"v[{self.pos[i]}]" if self.fixed else f"v[{i}]"
            if kind == "raw":
                return ref
            if kind == "int":
                return ref if (self.fixed and i not in self.raw) else f"_int({ref})"
            return f"_{kind}({ref})"
        return _PLACEHOLDER.sub(one, text)


_PLACEHOLDER = re.compile("\x00(\\d+):(\\w+)\x00")


def _native(g: _Gen, version: int) -> tuple[dict[int, str], list[str]]:
    """Slot -> expression for the built-in fields, and pre-assignments (name, expr) as 'for' clauses."""
    ex: dict[int, str] = {}
    pre: list[str] = []

    def intf(ies: Sequence[int], slot: int = -1) -> str | None:
        for eid in ies:
            i = g.find(eid)
            if i is not None:
                e = g.val(g.need(i, "int"), "int")
                g.simple[slot] = (e, i, "int")
                return e
        return None

    def addr(v4: int, v6: int, name: str) -> tuple[str | None, int]:
        a, b = g.find(v4, (4,)), g.find(v6, (16,))
        if a is not None and b is not None:
            ea, eb = g.val(g.need(a, "raw"), "raw"), g.val(g.need(b, "raw"), "raw")
            pre.append(f"for {name} in [({ea} if {ea} != Z4 or {eb} == Z16 else {eb})]")
            g.dual[slot_of[name]] = ((ea, a), (eb, b))
            return name, 0
        if a is not None:
            e = g.val(g.need(a, "raw"), "raw")
            g.simple[slot_of[name]] = (e, a, "raw")
            return e, 4
        if b is not None:
            e = g.val(g.need(b, "raw"), "raw")
            g.simple[slot_of[name]] = (e, b, "raw")
            return e, 16
        return None, -1

    slot_of = {"s_": SRC_IP, "d_": DST_IP}

    for slot, ies in ((BYTES, BYTES_IES), (PACKETS, PACKETS_IES), (SRC_PORT, SRC_PORT_IES),
                      (DST_PORT, DST_PORT_IES), (SRC_MAC, SRC_MAC_IES), (DST_MAC, DST_MAC_IES), (IP_PROTOCOL, (4,)),
                      (TOS, (5,)), (TCP_FLAGS, (6,)), (IN_IF, (10,)), (OUT_IF, (14,)), (DIRECTION, (61,))):
        e = intf(ies, slot)
        if e is not None:
            ex[slot] = e
    for slot, pair in ((SRC_MASK, (9, 29)), (DST_MASK, (13, 30))):
        at = [i for i in (g.find(x) for x in pair) if i is not None]
        found = [g.val(g.need(i, "int"), "int") for i in at]
        if len(found) == 1:
            ex[slot] = found[0]
            g.simple[slot] = (found[0], at[0], "int")
        elif found:
            ex[slot] = f"({found[0]} or {found[1]})"
    src, sfam = addr(8, 27, "s_")
    dst, dfam = addr(12, 28, "d_")
    if src:
        ex[SRC_IP] = src
    if dst:
        ex[DST_IP] = dst
    if not src and not dst and _station(g, ex):
        sfam = 4
        src = ex.get(SRC_IP) or ex.get(DST_IP)
    fam, famexpr = (sfam, src) if src else (dfam, dst)
    if fam == 4:
        ex[ETHER_TYPE] = "2048"
    elif fam == 16:
        ex[ETHER_TYPE] = "34525"
    elif fam == 0:
        ex[ETHER_TYPE] = f"(2048 if len({famexpr}) == 4 else 34525)"
    else:
        i = g.find(60)
        if i is not None:
            ex[ETHER_TYPE] = f"_ev({g.val(g.need(i, 'int'), 'int')})"
        else:
            e = intf((256,))
            if e is not None:
                ex[ETHER_TYPE] = e
    at = [i for i in (g.find(x, (ln,)) for x, ln in ((15, 4), (62, 16), (18, 4), (63, 16))) if i is not None]
    hops = [g.val(g.need(i, "raw"), "raw") for i in at]
    if len(hops) == 1:
        ex[NEXT_HOP] = hops[0]
        g.simple[NEXT_HOP] = (hops[0], at[0], "raw")
    elif hops:
        ex[NEXT_HOP] = f"_nz({', '.join(hops)})"
    for slot, cands in ((START, START_IES), (END, END_IES)):
        e = _time(g, cands, version, slot)
        if e is not None:
            ex[slot] = e
    ex[SAMPLING_RATE] = _rate(g)
    return ex, pre


def _station(g: _Gen, ex: dict[int, str]) -> bool:
    """Cisco WLC templates carry no address fields: the wireless client is staIPv4Address (366) /
    staMacAddress (365). Its address and MAC go to the source when flowDirection (61) is 0 or absent
    (ingress: traffic the station sent, upstream) and to the destination when it is 1 (egress:
    traffic toward the station); the other side stays empty. True when the template has a station."""
    ip, mac = g.find(STA_IPV4, (4,)), g.find(STA_MAC, (6,))
    if ip is None and mac is None:
        return False
    d = g.find(61)
    egress = f"{g.val(g.need(d, 'int'), 'int')} == 1" if d is not None else "False"

    def sides(value: str, src_slot: int, dst_slot: int, empty: str) -> None:
        ex[src_slot] = f"({empty} if {egress} else {value})"
        ex[dst_slot] = f"({value} if {egress} else {empty})"

    if ip is not None:
        sides(g.val(g.need(ip, "raw"), "raw"), SRC_IP, DST_IP, "b''")
    if mac is not None and SRC_MAC not in ex and DST_MAC not in ex:
        sides(g.val(g.need(mac, "int"), "int"), SRC_MAC, DST_MAC, "0")
    return ip is not None


def _time(g: _Gen, cands: Sequence[tuple[int, str]], version: int, slot: int) -> str | None:
    for eid, how in cands:
        i = g.find(eid, (8,) if how == "ntp" else ())
        if i is None:
            continue
        v = g.val(g.need(i, "int"), "int")
        if how == "s":
            g.simple[slot] = (v, i, "s")
            return v
        if how == "ms":
            g.simple[slot] = (f"({v} // 1000)", i, "ms")
            return f"({v} // 1000)"
        if how == "ntp":
            g.simple[slot] = (f"_ntp({v})", i, "ntp")
            return f"_ntp({v})"
        if how == "delta":
            g.simple[slot] = (f"(T - {v} // 1000000)", i, "delta")
            return f"(T - {v} // 1000000)"
        if version == 9:  # the common case inline, wrap and skew in _up()
            e = f"(T - (U - {v}) // 1000 if U >= {v} else _up(T, U, {v}))"
            g.simple[slot] = (e, i, "up")
            return e
        k = g.find(SYSTEM_INIT_MS)
        if k is not None:
            return f"(({g.val(g.need(k, 'int'), 'int')} + {v}) // 1000)"
        e = f"(T if I is None else (I + {v}) // 1000)"  # _init() inlined
        g.simple[slot] = (e, i, "init")
        return e
    return None


def _rate(g: _Gen) -> str:
    def find(eid: int) -> int | None:
        i = g.find(eid)
        if i is not None:
            g.need(i, "int")
        return i

    def iv(i: int | None) -> str | None:
        return None if i is None else g.val(i, "int")

    in_record: str | None = None
    size, pop, interval, space = iv(find(309)), iv(find(310)), iv(find(305)), iv(find(306))
    plain = True  # the rate is one field of the record, a sampler's, or the domain's: a plan can read it
    rec: int | None = None
    if size and pop:
        in_record, plain = f"_ratio_ps({size}, {pop})", False
    elif interval and space:
        in_record, plain = f"_ratio_is({interval}, {space})", False
    else:
        rec = find(34)
        if rec is None:
            rec = find(50)
        in_record = iv(rec)
    sid = next((i for i in (find(x) for x in SAMPLER_ID_IES) if i is not None), None)
    base = f"RS.get({iv(sid)}, R)" if sid is not None else "R"
    e = f"({in_record} or {base})" if in_record else base
    if plain:
        g.rate = (e, rec, sid)
    return e


def _mapped(g: _Gen, mapping: Mapping, ex: dict[int, str], ns: dict[str, Any]) -> list[tuple[str, str]]:
    """Apply mapping entries: override slots in ``ex``; return (key-constant, expr) extras."""
    extras: list[tuple[str, str]] = []
    for (pen, eid), entries in mapping.by_element.items():
        i = g.first.get((pen, eid))
        if i is None:
            continue
        ln = g.fields[i][2]
        for m in entries:
            builtin = BUILTIN.get(m.destination)
            if builtin is not None:
                slot, kind = builtin
                if kind in ("raw", "iptext"):
                    e = g.val(g.need(i, "raw"), "raw")
                    ex[slot] = f"_iptext({e})" if kind == "iptext" else e
                    continue
                little = m.endianness == "little"
                if ln == VARLEN:
                    e = g.val(g.need(i, "raw"), "intmle" if little else "intm")
                    e = f"_pick({e}, {ex.get(slot, '0')})"
                elif not 0 < ln <= 8:
                    continue  # more than 8 bytes: not an integer, dropped (native value kept)
                else:
                    e = g.val(g.need(i, "raw" if little else "int"), "intle" if little else "int")
                ex[slot] = f"({e} & 0xFFFFFFFF)" if kind == "u32" else e
                continue
            key = f"K{len(ns)}"
            ns[key] = m.destination
            if m.type == "integer":
                little = m.endianness == "little"
                if ln == VARLEN:
                    e = g.val(g.need(i, "raw"), "intmle" if little else "intm")
                elif not 0 < ln <= 8:
                    continue
                else:
                    e = g.val(g.need(i, "raw" if little else "int"), "intle" if little else "int")
                g.extra_fields.append((m.destination, i, "intle" if little else "int", None))
            else:
                raw = g.val(g.need(i, "raw"), "raw")
                convert = _CONVERT.get(m.type)
                e = f"{convert.__name__}({raw})" if convert is not None else f"{raw}.hex()"
                g.extra_fields.append((m.destination, i, "bytes", convert or bytes.hex))
            extras.append((key, e))
    return extras


def _identity(g: _Gen) -> str | None:
    """The flow's exporter from in-band 130/131 (the first non-zero of them), else ``E``."""
    a, b = g.find(EXPORTER_V4, (4,)), g.find(EXPORTER_V6, (16,))
    if a is not None and b is not None:
        ea, eb = g.val(g.need(a, "raw"), "raw"), g.val(g.need(b, "raw"), "raw")
        return f"({ea} != Z4 and _exp({ea}, E) or _exp({eb}, E))"
    one = a if a is not None else b
    return None if one is None else f"_exp({g.val(g.need(one, 'raw'), 'raw')}, E)"


def _passthrough(g: _Gen, mapping: Mapping | None, ns: dict[str, Any]) -> list[tuple[str, str]]:
    """(key-constant, expr) extras for the elements with no name, no built-in use and no mapping."""
    mapped = mapping.by_element if mapping is not None else {}
    extras: list[tuple[str, str]] = []
    for (pen, eid), i in g.first.items():
        if i in g.used or (pen, eid) in mapped or iana.is_known(pen, eid) or g.fields[i][2] == 0:
            continue  # (a zero-length field carries nothing)
        if len(extras) >= PASSTHROUGH_FIELDS:
            break
        key = f"K{len(ns)}"
        ns[key] = f"{pen}.{eid}" if pen else str(eid)
        raw = g.val(g.need(i, "raw"), "raw")
        ln = g.fields[i][2]
        short = ln <= PASSTHROUGH_MAX
        extras.append((key, f"{raw}.hex()" if short else f"_hex_kept({raw})"))
        g.extra_fields.append((ns[key], i, "bytes", bytes.hex if short else _hex_kept))
    return extras


def compile_records(fields: Sequence[Field], version: int, mapping: Mapping | None = None, *,
                    in_band: bool = False, passthrough: bool = False,
                    vendor_extras: Sequence[tuple[str, int, str, Callable[[Any], Any] | None]] = ()) -> RecordDecoder:
    """The record decoder of a data template (validated: lengths 0..65534 or VARLEN; a zero-length
    field is skipped).

    ``in_band``: 130/131 in the record name the flow's exporter; ``passthrough``: unknown
    elements go into ``extras`` as hex (see the module doc); ``vendor_extras``: additional fields
    the template's vendor rules give each flow (a name the record has already is its own), for its
    plan to read too (the record decoder leaves them to the rules).
    """
    fixed = all(ln != VARLEN for _, _, ln in fields)
    g = _Gen(fields, fixed)
    ns: dict[str, Any] = dict(_HELPERS)
    ns.update(Z4=b"\x00" * 4, Z16=b"\x00" * 16, TY="netflow9" if version == 9 else "ipfix")
    ex, pre = _native(g, version)
    identity = _identity(g) if in_band else None
    if identity is not None:
        ex[EXPORTER] = identity
    extras = _mapped(g, mapping, ex, ns) if mapping and mapping.entries else []
    if identity is not None and ex[EXPORTER] != identity:
        identity = None  # a mapping to exporter.ip fills the slot instead
    if passthrough:
        extras += _passthrough(g, mapping, ns)
    defaults = {TYPE: "TY", EXPORTER: "E", NAMESPACE: "N", START: "T", END: "T", SRC_IP: "b''", DST_IP: "b''",
                NEXT_HOP: "b''"}
    slots = [ex.get(i, defaults.get(i, "0")) for i in range(N_SLOTS) if i != EXTRAS]  # (extras: appended below)
    if not extras:
        slots.append("None")
    elif fixed and not any("_intm" in e for _, e in extras):
        slots.append("{" + ", ".join(f"{k}: {e}" for k, e in extras) + "}")
    else:
        slots.append("_extras((" + "".join(f"({k}, {e}), " for k, e in extras) + "))")
    rate = g.rate if g.rate is not None and ex.get(SAMPLING_RATE) == g.rate[0] else None  # (a mapping may replace it)
    literal = fixed and not any("_intm" in e for _, e in extras)  # (every record has every additional field)
    # variable-length records are read by the plan from their fixed-length fields packed end to end
    # (walk.compact): a value from a variable-length field (length 0 there) has no plan
    packed = [(pen, eid, 0 if ln == VARLEN else ln) for pen, eid, ln in fields]
    rated = rate[1:] if rate is not None else None  # (the rate's fields, when a plan can read it)
    plannable = ((literal or not fixed and not extras and len(fields) <= columns.MAX_PACKED_FIELDS)
                 and identity is None and rated is not None and EXPORTER not in ex and NAMESPACE not in ex)
    own = {name for name, _, _, _ in g.extra_fields}
    planned = g.extra_fields + [x for x in vendor_extras if x[0] not in own]
    vector = columns.plan(packed, ex, g.simple, ns["TY"], rated, planned) if plannable and rated else None
    row = "(" + ", ".join(slots) + ")"
    clauses = " ".join(pre)
    size = sum(ln for _, _, ln in fields if ln != VARLEN)
    min_size = size + sum(1 for _, _, ln in fields if ln == VARLEN)
    if fixed:
        st = struct.Struct(g.layout())
        ns["_iter"] = st.iter_unpack
    row, clauses = g.resolve(row), g.resolve(clauses)
    if fixed:
        src = (f"def decode(buf, E, N, R, RS, T, U, I):\n"
               f"    n = len(buf) % {size}\n"
               f"    if n:\n"
               f"        buf = buf[:len(buf) - n]\n"
               f"    return [{row} for v in _iter(buf) {clauses}]\n")
    else:
        ns["LENS"] = tuple(ln for _, _, ln in fields)
        src = (f"def decode(buf, E, N, R, RS, T, U, I):\n"
               f"    err = []\n"
               f"    rows = [{row} for v in _split(buf, LENS, {min_size}, err) {clauses}]\n"
               f"    if err:\n"
               f"        raise RecordOverrun(rows)\n"
               f"    return rows\n")
    exec(compile(src, f"<template {version}:{len(fields)} fields>", "exec"), ns)  # noqa: S102
    dec = RecordDecoder(ns["decode"], size if fixed else 0, max(min_size, 1), src, identity is not None, vector)
    dec.lens = tuple(ln for _, _, ln in fields)
    if g.dual and plannable and rated:
        dec.picks = _picks(g, packed, ex, ns["TY"], rated, dec)
    return dec


def _picks(g: _Gen, fields: Sequence[Field], ex: dict[int, str], kind: str,
           rate: tuple[int | None, int | None], dec: RecordDecoder) -> columns.Picks | None:
    """A template whose addresses come from an IPv4 or an IPv6 field record by record: a record
    decoder with a plan for each pair of address lengths, its records split by them
    (:class:`flowpipe.decode.columns.Picks`); None when some pair has no plan. ``fields``: with
    variable-length ones of length 0 (their records are packed first)."""
    offsets, off = [], 0
    for _, _, ln in fields:
        offsets.append(off)
        off += ln
    slots = sorted(g.dual)
    first = slots.index(SRC_IP if SRC_IP in g.dual else slots[0])  # (the ether type follows it: see _native)
    variants: dict[tuple[int, ...], RecordDecoder] = {}
    for lens in itertools.product((4, 16), repeat=len(slots)):
        exv, simple = dict(ex), dict(g.simple)
        for slot, ln in zip(slots, lens, strict=True):
            e, i = g.dual[slot][0 if ln == 4 else 1]
            exv[slot], simple[slot] = e, (e, i, "raw")
        if exv.get(ETHER_TYPE, "").startswith("(2048 if len("):
            exv[ETHER_TYPE] = "2048" if lens[first] == 4 else "34525"
        p = columns.plan(fields, exv, simple, kind, rate, g.extra_fields)
        if p is None:
            return None
        variants[lens] = RecordDecoder(dec.decode, dec.size, dec.min_size, dec.source, dec.identity, p)
    where = tuple((offsets[g.dual[s][0][1]], offsets[g.dual[s][1][1]]) for s in slots)
    return columns.Picks(off, where, variants)


# ---- options records -------------------------------------------------------------------------

OPTION_IES = frozenset((34, 48, 50, 302, 305, 306, 309, 310, SYSTEM_INIT_MS, EXPORTER_V4, EXPORTER_V6))
_ADDRESS_LEN = {EXPORTER_V4: 4, EXPORTER_V6: 16}


def option_values(fields: Sequence[Field], scope: int, body: bytes, version: int) -> tuple[list[dict[int, int]], bool]:
    """Options data records -> per record {element id: int} for the sampling/time elements and the
    exporter's address (130/131, as an int; IPFIX: a scope field too, e.g. exporter-scoped options).

    v9 scope fields have their own type space and are skipped. Returns (records, overran).
    """
    lens = [ln for _, _, ln in fields]
    want = [(j, eid) for j, (pen, eid, ln) in enumerate(fields)
            if pen == 0 and eid in OPTION_IES and not (version == 9 and j < scope) and 0 < ln]
    min_len = sum(ln if ln != VARLEN else 1 for ln in lens)
    err: list[bool] = []
    out: list[dict[int, int]] = []
    if min_len == 0:
        return out, False
    for vals in split_varlen(body, lens, min_len, err):
        rec: dict[int, int] = {}
        for j, eid in want:
            if eid in rec:
                continue
            n = len(vals[j])
            if (n == _ADDRESS_LEN[eid]) if eid in _ADDRESS_LEN else (0 < n <= 8):
                rec[eid] = int.from_bytes(vals[j], "big")
        out.append(rec)
    return out, bool(err)


def option_exporter(rec: dict[int, int]) -> str | None:
    """The exporter address an options record states (130, else 131), as text; None when none."""
    v4, v6 = rec.get(EXPORTER_V4), rec.get(EXPORTER_V6)
    if v4:
        return exporter_text(v4.to_bytes(4, "big"))
    if v6:
        return exporter_text(v6.to_bytes(16, "big"))
    return None


def option_rate(rec: dict[int, int]) -> int:
    """The sampling rate an options record states (0 when it states none)."""
    if rec.get(309) and 310 in rec:
        return rec[310] // rec[309]
    if rec.get(305) and 306 in rec:
        return (rec[305] + rec[306]) // rec[305]
    return rec.get(34) or rec.get(50) or 0
