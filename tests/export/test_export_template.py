"""Templates: compiling field lists, packing records of every accepted shape, and refusing what does not fit."""
from __future__ import annotations

import ipaddress
import struct

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowpipe.export import (
    DEFAULT_TEMPLATE,
    DEFAULT_TEMPLATE_V6,
    FIELDS,
    DefaultRecord,
    IpfixEncoder,
    RecordError,
    Template,
    TemplateError,
)

A = ipaddress.IPv4Address("10.0.0.1").packed
B = ipaddress.IPv4Address("192.0.2.7").packed
# FieldSpec.kind values (how a field's value is checked and packed)
UINT, ADDR4, ADDR6, MAC, STRING = "uint", "addr4", "addr6", "mac", "string"
REC = DefaultRecord(A, B, bytes(4), 3, 4, 10, 1500, 1000, 2000, 40000, 443, 0x1B, 6, 0x28, 64500, 64501, 24, 16)


def reference_pack(template: Template, values: tuple) -> bytes:
    """Encode one record field by field, independently of the template's compiled struct."""
    out = b""
    for f, v in zip(template.fields, values, strict=True):
        if f.spec.kind == UINT:
            out += v.to_bytes(f.length, "big")
        elif f.spec.kind == MAC:
            out += v.to_bytes(6, "big") if isinstance(v, int) else v
        elif f.spec.kind == STRING:
            out += v.encode().ljust(f.length, b"\0")
        else:
            out += v
    return out


def test_default_templates_match_the_default_record() -> None:
    assert [f.id for f in DEFAULT_TEMPLATE.fields] == [8, 12, 15, 10, 14, 2, 1, 22, 21, 7, 11, 6, 4, 5, 16, 17, 9, 13]
    assert DEFAULT_TEMPLATE.names == DefaultRecord._fields
    assert DEFAULT_TEMPLATE.record_length == 45  # 30 records fit one 1500-byte MTU datagram
    assert [f.id for f in DEFAULT_TEMPLATE_V6.fields][:3] == [27, 28, 62]
    assert [f.id for f in DEFAULT_TEMPLATE_V6.fields][-2:] == [29, 30]
    assert DEFAULT_TEMPLATE_V6.template_id != DEFAULT_TEMPLATE.template_id


def test_pack_tuple_matches_field_by_field_encoding() -> None:
    assert DEFAULT_TEMPLATE.pack([REC, REC]) == reference_pack(DEFAULT_TEMPLATE, REC) * 2


def test_every_record_shape_packs_the_same() -> None:
    expected = DEFAULT_TEMPLATE.pack([REC])
    as_text = REC._replace(src_addr="10.0.0.1", dst_addr=ipaddress.ip_address("192.0.2.7"), next_hop=b"")
    by_id = {f.id: v for f, v in zip(DEFAULT_TEMPLATE.fields, REC, strict=True)}
    by_iana = {f.spec.name: v for f, v in zip(DEFAULT_TEMPLATE.fields, REC, strict=True)}
    by_v9 = {f.spec.v9_name: v for f, v in zip(DEFAULT_TEMPLATE.fields, REC, strict=True)}

    @attrs.define
    class Rec:
        src_addr: bytes
        dst_addr: bytes
        next_hop: bytes
        in_if: int
        out_if: int
        packets: int
        bytes: int
        first: int
        last: int
        src_port: int
        dst_port: int
        tcp_flags: int
        protocol: int
        tos: int
        src_as: int
        dst_as: int
        src_mask: int
        dst_mask: int

    for shape in (tuple(REC), list(REC), REC._asdict(), by_id, by_iana, by_v9, Rec(*REC), as_text,
                  int.from_bytes(A, "big")):
        if isinstance(shape, int):
            shape = REC._replace(src_addr=shape)
        assert DEFAULT_TEMPLATE.pack([shape]) == expected, shape


@pytest.mark.parametrize("fields, message", [
    ([(999, 4)], "unknown field type 999"),
    (["noSuchField"], "unknown field type name"),
    ([(8, 16)], "must be 4 bytes"),
    ([(27, 4)], "must be 16 bytes"),
    ([(56, 8)], "must be 6 bytes"),
    ([(1, 9)], "integer length must be 1..8"),
    ([(1, 0xFFFF)], "variable-length"),
    ([], "at least one field"),
    ([(1, 4, 5, 6)], "expected (field type"),
])
def test_bad_templates_are_refused(fields: list, message: str) -> None:
    with pytest.raises(TemplateError, match=message.replace("(", r"\(")):
        Template(fields)


def test_template_id_range() -> None:
    with pytest.raises(TemplateError, match="255"):
        Template([1], template_id=255)
    Template([1], template_id=65535)


def test_names_and_default_lengths() -> None:
    t = Template(["sourceIPv4Address", "IN_BYTES", (11, 4), 56])
    assert [(f.id, f.length) for f in t.fields] == [(8, 4), (1, 4), (11, 4), (56, 6)]
    assert t.index("L4_DST_PORT") == 2 and t.index(12) == -1


@pytest.mark.parametrize("record, message", [
    (REC[:-1], "17 values, but template 256 has 18"),
    (REC._replace(packets=-1), "packetDeltaCount.*-1 does not fit"),
    (REC._replace(src_port=70000), "sourceTransportPort.*70000 does not fit in 2"),
    (REC._replace(dst_port="443"), "destinationTransportPort.*str '443' is not an integer"),
    (REC._replace(protocol=6.0), "protocolIdentifier.*not an integer"),
    (REC._replace(src_addr=b"\x01\x02\x03"), "sourceIPv4Address.*3 bytes, expected 4"),
    (REC._replace(src_addr="10.0.0.300"), "not an IP address"),
    (REC._replace(dst_addr="2001:db8::1"), "is IPv6, expected IPv4"),
    (REC._replace(next_hop=None), "NoneType is not an address"),
    (object(), "object is not a tuple, dict or attrs object"),
])
def test_records_that_do_not_fit_raise_naming_the_problem(record: object, message: str) -> None:
    with pytest.raises(RecordError, match=message) as err:
        DEFAULT_TEMPLATE.pack([REC, record])
    assert err.value.index == 1


def test_dict_records_missing_or_extra_keys() -> None:
    d = REC._asdict()
    del d["tos"]
    with pytest.raises(RecordError, match="missing field ipClassOfService"):
        DEFAULT_TEMPLATE.pack([d])
    with pytest.raises(RecordError, match=r"\['colour'\] match no field"):
        DEFAULT_TEMPLATE.pack([dict(REC._asdict(), colour=1)])


def test_shifted_records_never_pack_silently() -> None:
    # Same total value count as two good records, but misaligned: must not slip through the fast path.
    longer = tuple(REC) + (0,)
    shorter = tuple(REC)[:-1]
    with pytest.raises(RecordError):
        DEFAULT_TEMPLATE.pack([longer, shorter])


def test_ipv6_template_and_mixed_kinds() -> None:
    v6 = ipaddress.IPv6Address("2001:db8::1").packed
    rec = (v6, v6, bytes(16)) + tuple(REC)[3:16] + (64, 48)
    assert DEFAULT_TEMPLATE_V6.pack([rec]) == reference_pack(DEFAULT_TEMPLATE_V6, rec)
    t = Template([(56, 6), (80, 6), (31, 3), (82, 8), (1, 8)])
    row = (0x0200_0000_0001, "02:00:00:00:00:02", 0xABCDE, "eth0", 1 << 40)
    packed = t.pack([row])
    assert packed == (bytes.fromhex("020000000001") + bytes.fromhex("020000000002") + (0xABCDE).to_bytes(3, "big")
                      + b"eth0\0\0\0\0" + (1 << 40).to_bytes(8, "big"))
    with pytest.raises(RecordError, match="do not fit in 8"):
        t.pack([(0, 0, 0, "a-very-long-name", 0)])
    with pytest.raises(RecordError, match="MAC"):
        t.pack([("zz:00:00:00:00:00", 0, 0, "x", 0)])


def test_enterprise_fields() -> None:
    t = Template([(8, 4), (100, 4, 29305), (101, 6, 29305)])
    assert [f.enterprise for f in t.fields] == [0, 29305, 29305]
    assert t.pack([(A, 7, b"abcdef")]) == A + struct.pack(">I", 7) + b"abcdef"
    with pytest.raises(TemplateError, match="enterprise field type"):
        Template([(0x8001, 4, 1)])


def test_templates_compare_by_wire_layout() -> None:
    assert Template([1, 2], 300) == Template([(1, 4), (2, 4)], 300)
    assert Template([1, 2], 300) != Template([1, 2], 301)
    assert len({Template([1], 300), Template([(1, 4)], 300)}) == 1


_KINDS = {UINT: None, ADDR4: None, ADDR6: None, MAC: None}
_SIMPLE = [s for s in FIELDS.values() if s.kind in _KINDS]


@st.composite
def template_and_rows(draw: st.DrawFn) -> tuple[Template, list[tuple]]:
    specs = draw(st.lists(st.sampled_from(_SIMPLE), min_size=1, max_size=12))
    fields = []
    for s in specs:
        length = draw(st.sampled_from([1, 2, 3, 4, 5, 6, 7, 8])) if s.kind == UINT else s.length
        fields.append((s.id, length))
    t = Template(fields, draw(st.integers(256, 65535)))

    def value(f: object) -> st.SearchStrategy:
        kind, length = f.spec.kind, f.length  # type: ignore[attr-defined]
        if kind == UINT:
            return st.integers(0, (1 << (8 * length)) - 1)
        if kind == MAC:
            return st.integers(0, (1 << 48) - 1)
        return st.binary(min_size=length, max_size=length)

    rows = draw(st.lists(st.tuples(*[value(f) for f in t.fields]), min_size=1, max_size=40))
    return t, rows


@given(template_and_rows())
def test_any_template_packs_like_the_field_by_field_reference(case: tuple[Template, list[tuple]]) -> None:
    t, rows = case
    assert t.pack(rows) == b"".join(reference_pack(t, r) for r in rows)
    assert len(t.pack(rows)) == t.record_length * len(rows)


def test_vendor_layouts_zero_length_and_variable_length_fields() -> None:
    t = Template([(8, 4), (0, 0), (236, 0xFFFF), (1, 4)], 300)
    assert t.variable and t.record_length == 4 + 0 + 1 + 4  # the shortest record: an empty name
    packed = t.pack([("10.0.0.1", b"", "vrf-a", 7), ("10.0.0.2", b"", "v" * 300, 8)])
    assert packed[:4] == bytes([10, 0, 0, 1]) and packed[4:10] == b"\x05vrf-a"
    assert packed[10:14] == (7).to_bytes(4, "big")
    assert packed[18:21] == b"\xff\x01\x2c" and packed[21:321] == b"v" * 300  # 255 + 2-byte length form
    with pytest.raises(RecordError, match="VRFname"):
        t.pack([("10.0.0.1", b"", "v" * 0xFFFF, 1)])
    assert Template([(8, 4), (0, 0)]).pack([("10.0.0.1", b"")]) == bytes([10, 0, 0, 1])
    with pytest.raises(TemplateError, match="zero-length field must be octets"):
        Template([(1, 0)])


def test_ipfix_refuses_v9_vendor_types_above_32767() -> None:
    with pytest.raises(TemplateError, match="32767"):
        IpfixEncoder().template_message([Template([8, 40005], 300)], 0)
