#!/usr/bin/env python3
"""Generate ``flowpipe/decode/iana.py``: IANA's IPFIX information elements (id -> name, data type).

    python3 tools/gen_iana_elements.py > flowpipe/decode/iana.py

Where the names come from
-------------------------
The build machines reach no web site, only the package registries, so IANA's own registry
files (ipfix-information-elements.csv / ipfix.xml) cannot be downloaded here, and no Debian or
PyPI package ships them verbatim (Debian's libfixbuf source is repacked "+ds" without its copy
of ipfix.xml). What a package does ship is **libfixbuf's built-in information model**: CERT
NetSA's libfixbuf compiles IANA's ipfix.xml into the library at build time (its
``xml2fixbuf.xslt`` step), and the public API enumerates it (``fbInfoModelAlloc``,
``fbInfoModelIterInit``, ``fbInfoModelIterNext``). This script reads that model through ctypes
from Debian's ``libfixbuf9`` package (``apt-get install libfixbuf9``; 2.4.1+ds-2 in Debian 12,
which carries IANA's registry up to element 491).

What is taken: every element of enterprise 0 (IANA), with its name and abstract data type
(libfixbuf's type codes are RFC 5610's). Left out: ids 9997-9999, three Cisco elements
(ciscoNetflowGeneric, NF_F_FW_EVENT, NF_F_FW_EXT_EVENT) libfixbuf adds to enterprise 0 that are
not in IANA's registry. libfixbuf's reverse elements (enterprise 29305, RFC 5103) are not stored:
their names are derived ("reverse" + the forward name, capitalised) in the generated module.

Checked against tshark's own table (``tshark -G values``, field cflow.template_ipfix_field_type)
when it was generated: the names agree wherever tshark uses IANA's names, except 213-215, where
IANA (and libfixbuf) say exportInterface/exportProtocolVersion/exportTransportProtocol.

Options: ``--library PATH`` (a libfixbuf shared object; default: found through ldconfig).
"""
from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import json
import subprocess
import sys

# RFC 5610 informationElementDataType codes (libfixbuf's fbInfoElementDataType_t has the same order).
DATA_TYPES = (
    "octetArray", "unsigned8", "unsigned16", "unsigned32", "unsigned64", "signed8", "signed16", "signed32",
    "signed64", "float32", "float64", "boolean", "macAddress", "string", "dateTimeSeconds",
    "dateTimeMilliseconds", "dateTimeMicroseconds", "dateTimeNanoseconds", "ipv4Address", "ipv6Address",
    "basicList", "subTemplateList", "subTemplateMultiList",
)
NOT_IANA = {9997, 9998, 9999}  # libfixbuf's Cisco additions to enterprise 0


class _InfoElement(ctypes.Structure):
    """libfixbuf's fbInfoElement_t (fixbuf/public.h, 2.x), as held in an information model."""

    _fields_ = [
        ("name", ctypes.c_char_p),
        ("midx", ctypes.c_uint32),
        ("ent", ctypes.c_uint32),
        ("num", ctypes.c_uint16),
        ("len", ctypes.c_uint16),
        ("flags", ctypes.c_uint32),
        ("min", ctypes.c_uint64),
        ("max", ctypes.c_uint64),
        ("type", ctypes.c_uint8),
        ("description", ctypes.c_char_p),
    ]


def _library(path: str | None) -> tuple[ctypes.CDLL, str]:
    # Debian's libfixbuf9 does not link GLib itself (its users do): load GLib first, globally.
    glib = ctypes.util.find_library("glib-2.0") or "libglib-2.0.so.0"
    ctypes.CDLL(glib, mode=ctypes.RTLD_GLOBAL)
    name = path or ctypes.util.find_library("fixbuf")
    if not name:
        sys.exit("libfixbuf not found: apt-get install libfixbuf9 (or pass --library PATH)")
    return ctypes.CDLL(name), name


def read_model(path: str | None = None) -> tuple[dict[int, tuple[str, str]], str]:
    """(IANA elements of libfixbuf's model: id -> (name, data type), the library used)."""
    lib, name = _library(path)
    lib.fbInfoModelAlloc.restype = ctypes.c_void_p
    lib.fbInfoModelIterInit.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    lib.fbInfoModelIterInit.restype = None
    lib.fbInfoModelIterNext.argtypes = [ctypes.c_void_p]
    lib.fbInfoModelIterNext.restype = ctypes.POINTER(_InfoElement)
    lib.fbInfoModelFree.argtypes = [ctypes.c_void_p]
    lib.fbInfoModelFree.restype = None
    model = lib.fbInfoModelAlloc()
    it = ctypes.create_string_buffer(256)  # a GHashTableIter (48 bytes on 64-bit) with room to spare
    lib.fbInfoModelIterInit(it, model)
    out: dict[int, tuple[str, str]] = {}
    while True:
        p = lib.fbInfoModelIterNext(it)
        if not p:
            break
        ie = p.contents
        if ie.ent != 0 or ie.num in NOT_IANA or not ie.name:
            continue
        dtype = DATA_TYPES[ie.type] if ie.type < len(DATA_TYPES) else "octetArray"
        out[ie.num] = (ie.name.decode("ascii"), dtype)
    lib.fbInfoModelFree(model)
    return out, name


HELPERS = '''

REVERSE_PEN = 29305  # RFC 5103 reverse elements: same ids, names "reverse" + the forward name
_BY_NAME: dict[str, int] = {name: eid for eid, (name, _) in ELEMENTS.items()}
_BY_LOWER: dict[str, int] = {name.lower(): eid for name, eid in _BY_NAME.items()}


def name_of(pen: int, eid: int) -> str | None:
    """The element's IANA name (RFC 5103 reverse names for enterprise 29305), None when unknown."""
    e = ELEMENTS.get(eid)
    if e is None or pen not in (0, REVERSE_PEN):
        return None
    return e[0] if pen == 0 else "reverse" + e[0][0].upper() + e[0][1:]


def is_known(pen: int, eid: int) -> bool:
    """True for an IANA element (or its RFC 5103 reverse) this table names."""
    return (pen == 0 or pen == REVERSE_PEN) and eid in ELEMENTS


def element_id(name: str) -> tuple[int, int] | None:
    """``"postNATSourceIPv4Address"`` -> (0, 225); ``"reverseOctetDeltaCount"`` -> (29305, 1).

    Exact names first, then a case-insensitive match; None when the name is unknown.
    """
    eid = _BY_NAME.get(name)
    if eid is None:
        eid = _BY_LOWER.get(name.lower())
    if eid is not None:
        return 0, eid
    if name[:7].lower() == "reverse" and len(name) > 7:
        rest = name[7:]
        fwd = _BY_NAME.get(rest[0].lower() + rest[1:]) or _BY_LOWER.get(rest.lower())
        if fwd is not None:
            return REVERSE_PEN, fwd
    return None


def nearest(name: str, n: int = 3) -> list[str]:
    """Known names closest to ``name`` (for error messages)."""
    import difflib

    lower = {k.lower(): k for k in _BY_NAME}
    return [lower[k] for k in difflib.get_close_matches(name.lower(), list(lower), n=n, cutoff=0.6)]
'''


def render(elements: dict[int, tuple[str, str]], library: str) -> str:
    lines = [
        '"""IANA IPFIX information elements (enterprise 0): id -> (name, abstract data type).',
        "",
        "Generated by ``tools/gen_iana_elements.py`` from libfixbuf's built-in information model (compiled",
        "by libfixbuf from IANA's ipfix.xml; Debian package libfixbuf9), read through its public API; do not",
        "edit by hand. The script's docstring says why this source and what was left out.",
        '"""',
        "from __future__ import annotations",
        "",
        f"SOURCE = {json.dumps('libfixbuf information model (' + library + ')')}",
        "",
        "ELEMENTS: dict[int, tuple[str, str]] = {",
    ]
    for eid, (name, dtype) in sorted(elements.items()):
        lines.append(f"    {eid}: ({json.dumps(name)}, {json.dumps(dtype)}),")
    lines.append("}")
    return "\n".join(lines) + "\n" + HELPERS


def _package_version() -> str:
    try:
        r = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "libfixbuf9"], capture_output=True, text=True,
                           check=False)
    except OSError:
        return ""
    return r.stdout.strip() if r.returncode == 0 else ""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--library", help="path of a libfixbuf shared object (default: found through ldconfig)")
    args = ap.parse_args()
    elements, library = read_model(args.library)
    version = _package_version()
    if version and not args.library:
        library = f"{library}, Debian libfixbuf9 {version}"
    if len(elements) < 400:
        sys.exit(f"only {len(elements)} IANA elements in {library}: not the model this script expects")
    sys.stdout.write(render(elements, library))


if __name__ == "__main__":
    main()
