"""What the tests share that is not a test: a real HTTP backend (backend.py), a DNS server (dns_server.py),
the service run in-process (service_helpers.py), the captures (captures.py), datagram builders and
parsers, the import scan of the import-rule tests (imports.py), and the repository's root. Test
modules import from here, never from each other; fixtures built on these are in tests/conftest.py."""
from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
