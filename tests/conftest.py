"""Fixtures shared across the test folders (the helpers they build on are in tests/support)."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import captures
from tests.support.dns_server import DnsTestServer


@pytest.fixture
def shared_captures() -> Path:
    """The folder of real vendor captures (../shared/captures or $FLOWPIPE_CAPTURES); the test skips,
    saying so, when it is absent. A fixture rather than a call in the test, so the skip keeps its reason
    in async tests too."""
    return captures.require()


@pytest.fixture
def dns_srv() -> Iterator[DnsTestServer]:
    """A DNS server on 127.0.0.1 answering the PTR records the test adds; stopped afterwards."""
    with DnsTestServer() as srv:
        yield srv
