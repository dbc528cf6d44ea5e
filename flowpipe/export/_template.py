"""A :class:`Template`: ``(field type, length)`` pairs compiled to a :class:`struct.Struct`, shared by v9 and IPFIX.

A template compiles once into a :class:`struct.Struct` per batch size, so a batch of records is
packed by a single ``pack`` call. Vendor layouts are expressible too: zero-length fields (length 0,
e.g. type 0 as some exporters end their templates with; the value is ``b""``), variable-length
fields (length 65535, RFC 7011 §7: each value gets its 1-byte or 255 + 2-byte length prefix; also
in NetFlow v9, as H3C sends) and the vendor elements of Cisco ASA NSEL and WLC in
:data:`~flowpipe.export.FIELDS`; such templates pack record by record. Records are tuples/lists
(values in template order), dicts or attrs objects (looked up by name, see :meth:`Template.rows`).
Values are checked: a record that does not fit raises :class:`RecordError` naming the record and
the field; nothing is silently truncated or padded.
"""
from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping, Sequence
from itertools import chain
from operator import itemgetter
from typing import Any

import attrs

from flowpipe.export._errors import RecordError, TemplateError
from flowpipe.export._fields import (
    ADDR4,
    ADDR6,
    FIELDS,
    MAC,
    OCTETS,
    STRING,
    UINT,
    UINT_CODES,
    VARLEN,
    Field,
    FieldSpec,
    field_id,
)
from flowpipe.export._values import convert

_KIND_LENGTHS = {ADDR4: (4,), ADDR6: (16,), MAC: (6,)}


def _compile_field(item: Any) -> Field:
    if isinstance(item, (int, str)):
        item = (item,)
    if not isinstance(item, (tuple, list)) or not 1 <= len(item) <= 3:
        raise TemplateError(f"template field {item!r}: expected (field type, length[, enterprise number])")
    fid = field_id(item[0])
    enterprise = int(item[2]) if len(item) == 3 else 0
    if enterprise:
        if not 0 < fid < 0x8000:
            raise TemplateError(f"enterprise field type {fid} out of range 1..32767")
        length = int(item[1])
        kind = UINT if length in UINT_CODES else OCTETS
        spec = FieldSpec(fid, f"{enterprise}:{fid}", f"{enterprise}:{fid}", kind, length)
    else:
        if fid not in FIELDS:
            raise TemplateError(f"unknown field type {fid} (flowpipe.export knows {len(FIELDS)} IANA fields; "
                                "give an enterprise number for vendor fields)")
        spec = FIELDS[fid]
        length = int(item[1]) if len(item) >= 2 else spec.length
    if length in (0, VARLEN):
        if spec.kind not in (OCTETS, STRING):
            what = "zero-length" if length == 0 else "variable-length"
            raise TemplateError(f"field {spec.name} ({fid}): a {what} field must be octets or a string, "
                                f"not {spec.kind}")
        return Field(fid, length, enterprise, spec)
    allowed = _KIND_LENGTHS.get(spec.kind)
    if allowed and length not in allowed:
        raise TemplateError(f"field {spec.name} ({fid}) must be {allowed[0]} bytes long, not {length}")
    if spec.kind == UINT and not 1 <= length <= 8:
        raise TemplateError(f"field {spec.name} ({fid}): integer length must be 1..8, not {length}")
    if not 1 <= length < 0xFFFF:
        raise TemplateError(f"field {spec.name} ({fid}): bad length {length}")
    return Field(fid, length, enterprise, spec)


def _struct_code(f: Field) -> str:
    if f.length == VARLEN:
        raise TemplateError(f"field {f.name} ({f.id}) is variable-length: it has no struct code")
    if f.spec.kind == UINT and f.length in UINT_CODES:
        return UINT_CODES[f.length]
    return f"{f.length}s"


class Template:
    """An ordered list of ``(field type, length)`` pairs with a template id (256..65535).

    Fields may be given as ids or IANA/NetFlow v9 names, with the length left out for the usual
    one, and as ``(type, length, enterprise number)`` for vendor fields (IPFIX only). ``names``
    optionally names the record attributes/keys for each field (see :meth:`rows`).
    """

    def __init__(self, fields: Iterable[Any], template_id: int = 256, names: Sequence[str] | None = None) -> None:
        if not 256 <= template_id <= 0xFFFF:
            raise TemplateError(f"template id {template_id} out of range 256..65535")
        self.template_id = template_id
        self.fields: tuple[Field, ...] = tuple(_compile_field(f) for f in fields)
        if not self.fields:
            raise TemplateError("a template needs at least one field")
        if names is not None and len(names) != len(self.fields):
            raise TemplateError(f"{len(names)} names for {len(self.fields)} fields")
        self.names: tuple[str, ...] | None = tuple(names) if names is not None else None
        #: True when some field is variable-length: records are then packed one by one, and
        #: ``record_length`` is the shortest record (every variable-length value empty).
        self.variable = any(f.length == VARLEN for f in self.fields)
        self.record_length = sum(1 if f.length == VARLEN else f.length for f in self.fields)
        self._body = "" if self.variable else "".join(_struct_code(f) for f in self.fields)
        self.record_struct = struct.Struct(">" + self._body)
        # Fast path: canonical tuples need no conversion when every field is a native struct code.
        self._fast = not self.variable and all(
            (f.spec.kind == UINT and f.length in UINT_CODES) or f.spec.kind in (ADDR4, ADDR6) for f in self.fields)
        self._byte_checks = [(itemgetter(i), f.length) for i, f in enumerate(self.fields) if f.spec.kind != UINT]
        self._batch: dict[int, struct.Struct] = {}

    @property
    def key(self) -> tuple:
        """What identifies the template on the wire: id and (type, length, enterprise) per field."""
        return (self.template_id, tuple((f.id, f.length, f.enterprise) for f in self.fields))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Template) and self.key == other.key

    def __hash__(self) -> int:
        return hash(self.key)

    def __repr__(self) -> str:
        return f"Template({[(f.id, f.length) for f in self.fields]}, template_id={self.template_id})"

    def index(self, fid: int | str) -> int:
        """Position of the first field of type ``fid`` (id or name); -1 when absent."""
        fid = field_id(fid)
        for i, f in enumerate(self.fields):
            if f.id == fid and not f.enterprise:
                return i
        return -1

    def batch_struct(self, n: int) -> struct.Struct:
        """The precompiled struct that packs ``n`` records in one call (fixed-length templates)."""
        if self.variable:
            raise TemplateError(f"template {self.template_id} has variable-length fields: no batch struct")
        s = self._batch.get(n)
        if s is None:
            s = self._batch[n] = struct.Struct(">" + self._body * n)
        return s

    def pack(self, records: Sequence[Any]) -> bytes:
        """The records encoded back to back (no set header, no padding).

        Tuples of canonical values (ints; addresses as 4/16 bytes) take a single ``struct`` call;
        anything else goes through :meth:`rows`, which converts and checks each value.
        """
        if self.variable:
            return b"".join(b"".join(v if isinstance(v, bytes) else v.to_bytes(f.length, "big")
                                     for f, v in zip(self.fields, row, strict=True))
                            for row in self.rows(records))
        st = self.batch_struct(len(records))
        if self._fast and self.canonical(records):
            try:
                return st.pack(*chain.from_iterable(records))
            except struct.error:
                pass  # rows() below names the record and field at fault
        return st.pack(*chain.from_iterable(self.rows(records)))

    def canonical(self, records: Sequence[Any]) -> bool:
        """True when every record is a tuple of the right length whose address fields are bytes of the
        right length (the cheap pre-check of the one-call packing path)."""
        if not all(issubclass(t, tuple) for t in set(map(type, records))):
            return False
        if set(map(len, records)) != {len(self.fields)}:
            return False
        for get, length in self._byte_checks:
            try:
                if set(map(len, map(get, records))) != {length}:
                    return False
            except TypeError:
                return False
        return True

    def rows(self, records: Iterable[Any]) -> list[tuple]:
        """Each record as a tuple of checked wire values, in template order.

        A tuple/list holds the values in template order. A dict or attrs object is read by name:
        for each field the template's ``names`` entry, then the field id (dicts only), the IANA
        name and the NetFlow v9 name. Missing or unknown names, wrong counts, values out of range
        raise :class:`RecordError`.
        """
        return [self.row(r, i) for i, r in enumerate(records)]

    def row(self, record: Any, index: int = 0) -> tuple:
        """One record as a tuple of checked wire values (see :meth:`rows`)."""
        values = self._values(record, index)
        out = []
        for f, v in zip(self.fields, values, strict=True):
            try:
                out.append(convert(f, v))
            except ValueError as e:
                raise RecordError(f"field {f.name} ({f.id}): {e}", index, f.name) from None
        return tuple(out)

    def _values(self, record: Any, index: int) -> Sequence[Any]:
        if isinstance(record, (tuple, list)):
            if len(record) != len(self.fields):
                raise RecordError(f"{len(record)} values, but template {self.template_id} "
                                  f"has {len(self.fields)} fields", index)
            return record
        if isinstance(record, Mapping):
            return self._by_name(record, index, from_dict=True)
        if attrs.has(type(record)):
            return self._by_name(attrs.asdict(record, recurse=False), index, from_dict=False)
        raise RecordError(f"a {type(record).__name__} is not a tuple, dict or attrs object", index)

    def _by_name(self, record: Mapping[Any, Any], index: int, from_dict: bool) -> list[Any]:
        values, used = [], set()
        for i, f in enumerate(self.fields):
            keys: list[Any] = [self.names[i]] if self.names else []
            keys += [f.id] if from_dict else []
            keys += [f.spec.name, f.spec.v9_name]
            for k in keys:
                if k in record:
                    values.append(record[k])
                    used.add(k)
                    break
            else:
                raise RecordError(f"missing field {f.name} ({f.id}); looked for {keys}", index, f.name)
        extra = [k for k in record if k not in used]
        if extra:
            raise RecordError(f"{extra} match no field of template {self.template_id}", index)
        return values

