"""Delivery of payload flows: HTTP backend with retries and a disk spool, stdout, or a JSON-lines file.

The stage is imported on first use (``from flowpipe.forward import Forwarder``), so loading the
config (:mod:`flowpipe.forward.config`) does not import the HTTP client. ``pack``/``Packed``: a
batch as its request body, which the renderer hands on when the output is gzip'd HTTP (``pack_json``,
``pack_msgpack``: from its flows already encoded and joined).
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flowpipe.forward.forwarder import Forwarder
    from flowpipe.forward.packed import Packed, pack, pack_json, pack_msgpack

__all__ = ["Forwarder", "Packed", "pack", "pack_json", "pack_msgpack"]
_HOME = {"Forwarder": "flowpipe.forward.forwarder", "Packed": "flowpipe.forward.packed",
         "pack": "flowpipe.forward.packed", "pack_json": "flowpipe.forward.packed",
         "pack_msgpack": "flowpipe.forward.packed"}


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(importlib.import_module(_HOME[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
