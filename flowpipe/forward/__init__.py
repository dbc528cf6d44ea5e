"""Delivery of payload flows: HTTP backend with retries and a disk spool, stdout, or a JSON-lines file.

The stage is imported on first use (``from flowpipe.forward import Forwarder``), so loading the
config (:mod:`flowpipe.forward.config`) does not import the HTTP client.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flowpipe.forward.forwarder import Forwarder

__all__ = ["Forwarder"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("flowpipe.forward.forwarder"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
