"""Enrichment stages between the accumulator's flush and the forwarder.

The stage is imported on first use (``from flowpipe.enrich import ReverseDnsEnricher``), so loading
the config (:mod:`flowpipe.enrich.config`) does not import the resolver.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flowpipe.enrich.rdns import ReverseDnsEnricher, qualifies

__all__ = ["ReverseDnsEnricher", "qualifies"]


def label_values() -> dict[str, tuple[str, ...]]:
    """For the metrics reference: the values of this stage's metric labels that its notes list."""
    from flowpipe.enrich.rdns import RESULTS  # noqa: PLC0415

    return {"rdns_results": RESULTS}


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("flowpipe.enrich.rdns"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
