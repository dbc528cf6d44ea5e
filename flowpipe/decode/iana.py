"""IANA IPFIX element names: lookups by id and by name over the generated table (iana_table.py)."""
from __future__ import annotations

from flowpipe.decode.iana_table import ELEMENTS, SOURCE

__all__ = ["ELEMENTS", "REVERSE_PEN", "SOURCE", "element_id", "is_known", "name_of", "nearest"]


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
