"""Field values as they go on the wire: checked, converted to ints or bytes of the field's length."""
from __future__ import annotations

import ipaddress
from typing import Any

from flowpipe.export._fields import ADDR4, ADDR6, MAC, STRING, UINT, UINT_CODES, VARLEN, Field


def to_address(value: Any, length: int) -> bytes:
    """An address of ``length`` (4 or 16) bytes from bytes, text, ipaddress object or int.

    ``b""`` (flowpipe's "no address") encodes as the all-zero address.
    """
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        if raw == b"":
            return bytes(length)
        if len(raw) != length:
            raise ValueError(f"address is {len(raw)} bytes, expected {length}")
        return raw
    if isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value < 1 << (8 * length):
            raise ValueError(f"address {value} out of range")
        return value.to_bytes(length, "big")
    if isinstance(value, str):
        try:
            value = ipaddress.ip_address(value)
        except ValueError:
            raise ValueError(f"{value!r} is not an IP address") from None
    if isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        if len(value.packed) != length:
            raise ValueError(f"{value} is IPv{value.version}, expected IPv{4 if length == 4 else 6}")
        return value.packed
    raise ValueError(f"{type(value).__name__} is not an address")


def to_mac(value: Any) -> bytes:
    """Six MAC bytes from an int (flowpipe's form), bytes or ``aa:bb:cc:dd:ee:ff`` text."""
    if isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value < 1 << 48:
            raise ValueError(f"MAC {value} out of range")
        return value.to_bytes(6, "big")
    if isinstance(value, (bytes, bytearray)):
        if len(value) != 6:
            raise ValueError(f"MAC is {len(value)} bytes, expected 6")
        return bytes(value)
    if isinstance(value, str):
        parts = value.replace("-", ":").split(":")
        if len(parts) == 6 and all(len(p) <= 2 for p in parts):
            try:
                return bytes(int(p, 16) for p in parts)
            except ValueError:
                pass
        raise ValueError(f"{value!r} is not a MAC address")
    raise ValueError(f"{type(value).__name__} is not a MAC address")


def _to_uint(value: Any, length: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{type(value).__name__} {value!r} is not an integer")
    if not 0 <= value < 1 << (8 * length):
        raise ValueError(f"{value} does not fit in {length} byte(s)")
    return value


def _to_octets(value: Any, length: int, text: bool) -> bytes:
    if text and isinstance(value, str):
        value = value.encode()
    if not isinstance(value, (bytes, bytearray)):
        raise ValueError(f"{type(value).__name__} is not bytes")
    if length == VARLEN:
        if len(value) >= VARLEN:
            raise ValueError(f"{len(value)} bytes do not fit a variable-length field (at most 65534)")
        return varlen_prefix(len(value)) + bytes(value)
    if text:
        if len(value) > length:
            raise ValueError(f"{len(value)} bytes do not fit in {length}")
        return bytes(value).ljust(length, b"\0")
    if len(value) != length:
        raise ValueError(f"{len(value)} bytes, expected exactly {length}")
    return bytes(value)


def varlen_prefix(n: int) -> bytes:
    """The RFC 7011 §7 length prefix of an ``n``-byte variable-length value."""
    return bytes([n]) if n < 255 else b"\xff" + n.to_bytes(2, "big")


def convert(f: Field, value: Any) -> Any:
    """``value`` as packed for field ``f`` (int or bytes); ValueError saying why it does not fit."""
    kind = f.spec.kind
    if kind == UINT:
        v = _to_uint(value, f.length)
        return v if f.length in UINT_CODES else v.to_bytes(f.length, "big")
    if kind in (ADDR4, ADDR6):
        return to_address(value, f.length)
    if kind == MAC:
        return to_mac(value)
    return _to_octets(value, f.length, kind == STRING)

