"""The renderer: aggregated flows -> Datadog NetFlow payload objects, or straight to their JSON text.

This module is the package's public API (the service, the commands, benchmarks, fuzzing and tests
use these names); the stage that runs it in the service is :class:`flowpipe.render.stage.RenderStage`.

- ``payload``: the payload objects (the reference, and the fallback of the JSON text);
- ``jsontext``: the JSON text, from the compiled loop (``_jsonflows.c``) when it was built;
- ``layout``: ``forwarder.additional_fields = "top_level"``.
"""
from __future__ import annotations

from flowpipe.render import jsontext, payload
from flowpipe.render.jsontext import COMPILED, render_json_batch
from flowpipe.render.layout import hoist, render_top_level, render_top_level_json
from flowpipe.render.payload import (
    ETHER_TYPES,
    PROTOCOLS,
    TCP_FLAG_NAMES,
    U64_MAX,
    ip_text,
    mac_text,
    mask_text,
    render,
    render_batch,
    tcp_flag_names,
)

__all__ = ["COMPILED", "ETHER_TYPES", "PROTOCOLS", "TCP_FLAG_NAMES", "U64_MAX", "clear_caches", "hoist", "ip_text",
           "mac_text", "mask_text", "render", "render_batch", "render_json_batch", "render_top_level",
           "render_top_level_json", "tcp_flag_names"]


def clear_caches() -> None:
    """Empty every rendering cache, the objects' and the JSON text's (benchmarks, tests)."""
    payload.clear_caches()
    jsontext.clear_caches()
