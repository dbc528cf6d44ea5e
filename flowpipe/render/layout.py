"""``forwarder.additional_fields = "top_level"``: the additional fields of each payload flow at the
object's top level (current Datadog Agents' layout) instead of the nested ``additional_fields`` object.

A mapped name that collides with a payload field (``"bytes"``, ``"source"``, ``"type"``, ...) does not
replace it: the payload field wins and the colliding entries stay in a nested ``additional_fields``
object, so no value is lost and the payload fields keep their documented meaning. This runs on the
rendered objects (``flowpipe.render.payload.render_batch``), outside the renderer's compiled fast path.
"""
from __future__ import annotations

from typing import Any

import orjson

from flowpipe.flow import FlushBatch
from flowpipe.render.payload import render_batch


def hoist(obj: dict[str, Any]) -> dict[str, Any]:
    """Move ``obj``'s additional fields to its top level, except names the payload already uses."""
    extra = obj.pop("additional_fields", None)
    if extra:
        kept = {k: v for k, v in extra.items() if k in obj or k == "additional_fields"}
        obj.update((k, v) for k, v in extra.items() if k not in kept)
        if kept:
            obj["additional_fields"] = kept
    return obj


def render_top_level(batch: FlushBatch, host: str, tags: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """:func:`flowpipe.render.payload.render_batch` with the additional fields at the top level."""
    return [hoist(o) for o in render_batch(batch, host, tags)]


def render_top_level_json(batch: FlushBatch, host: str, tags: dict[str, str] | None = None) -> list[bytes]:
    """The same as JSON text (what :func:`flowpipe.render.jsontext.render_json_batch` gives for the nested layout)."""
    return [orjson.dumps(o) for o in render_top_level(batch, host, tags)]
