"""The renderer stage: flushed flow batches in, payload batches of at most ``max_batch_flows`` out."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import trio

from flowpipe.flow import FlushBatch
from flowpipe.forward import pack, pack_json, pack_msgpack
from flowpipe.forward.config import ForwarderConfig
from flowpipe.metrics import Metrics
from flowpipe.render.jsontext import render_json_batch, render_json_joined
from flowpipe.render.layout import render_top_level, render_top_level_json
from flowpipe.render.msgpacktext import COMPILED, render_msgpack_joined
from flowpipe.render.payload import render_batch

STEP = 2000  # flows rendered at most between two checkpoints (a big flush never holds up the listeners long)

Renderer = Callable[[FlushBatch, str, dict[str, str] | None], list[Any]]


def renderer_for(fwd: ForwarderConfig) -> Renderer:
    """What the forwarder's output takes: JSON text for every output but msgpack bodies, else payload
    objects; with ``additional_fields = "top_level"``, the same with the fields at the top level."""
    json = fwd.format == "json" or not fwd.url
    if fwd.additional_fields == "top_level":
        return render_top_level_json if json else render_top_level
    return render_json_batch if json else render_batch


class RenderStage:
    def __init__(self, cfg: ForwarderConfig, metrics: Metrics, *, host: str, tags: dict[str, str]) -> None:
        """``cfg``: the forwarder's section (batch size, body format, URL, where additional fields go);
        ``host`` and ``tags``: the payload's ``host`` and the top-level ``[tags]``. The renderer has
        no series of its own (the service sets its ``flowpipe_stage_up``)."""
        self.metrics = metrics
        self.host, self.tags = host, tags
        self.size = cfg.max_batch_flows
        self.render = renderer_for(cfg)
        # gzip'd HTTP: each batch leaves as its request body (what waits for delivery is ~15x smaller);
        # for JSON bodies the flows' texts are made joined, a few parts a batch (no object per flow), and
        # so are msgpack bodies' flows where the compiled loop is built
        self.fmt = cfg.format if cfg.url and cfg.compression == "gzip" else None
        self._joined: tuple[Callable[..., bytes], Callable[[list[bytes], int], Any]] | None = None
        if self.fmt == "json" and self.render is render_json_batch:
            self._joined = (render_json_joined, pack_json)
        elif self.fmt == "msgpack" and self.render is render_batch and COMPILED:
            self._joined = (render_msgpack_joined, pack_msgpack)

    async def run(self, receive: trio.MemoryReceiveChannel[FlushBatch],
                  send: trio.MemorySendChannel[list[Any]]) -> None:
        """Render every flushed batch, in payload batches of at most ``max_batch_flows`` (a batch's
        remainder goes on its own), with a checkpoint every :data:`STEP` flows; closes ``send`` at the end."""
        host, tags, size, render = self.host, self.tags, self.size, self.render
        step = min(size, STEP)
        async with receive, send:
            async for batch in receive:
                if self._joined is not None:
                    await self._run_joined(batch, send)
                    continue
                flows = batch.columns
                out: list[Any] = []
                for i in range(0, len(flows), step):
                    out += render(FlushBatch(batch.flush_time, flows[i:i + step], batch.hostnames), host, tags)
                    if len(out) >= size:
                        await self._send(send, out[:size])
                        out = out[size:]
                    await trio.lowlevel.checkpoint()
                if out:
                    await self._send(send, out)

    async def _run_joined(self, batch: FlushBatch, send: trio.MemorySendChannel[Any]) -> None:
        """:meth:`run`'s work on one batch for gzip'd JSON (or msgpack) bodies: each step rendered as
        one joined text sized to what the request has room for, the parts of a request packed together.
        A step with a value the format cannot hold goes as payload objects, on its own (the forwarder
        counts it)."""
        assert self._joined is not None
        render_joined, pack_joined = self._joined
        flows, size = batch.columns, self.size
        parts: list[bytes] = []
        count = i = 0
        while i < len(flows):
            k = min(STEP, size - count, len(flows) - i)
            chunk = FlushBatch(batch.flush_time, flows[i:i + k], batch.hostnames)
            i += k
            try:
                parts.append(render_joined(chunk, self.host, self.tags))
                count += k
            except (TypeError, ValueError, OverflowError):
                parts, count = await _send_packed(send, pack_joined, parts, count)
                await send.send(render_batch(chunk, self.host, self.tags))
            if count == size:
                parts, count = await _send_packed(send, pack_joined, parts, count)
            await trio.lowlevel.checkpoint()
        await _send_packed(send, pack_joined, parts, count)

    async def _send(self, send: trio.MemorySendChannel[Any], flows: list[Any]) -> None:
        """``flows`` on their way, packed in a worker thread when the output takes gzip bodies (a batch
        a format cannot hold goes as it is, for the forwarder to count as unencodable)."""
        if self.fmt is not None:
            try:
                await send.send(await trio.to_thread.run_sync(pack, flows, self.fmt))
                return
            except (TypeError, ValueError, OverflowError):
                pass
        await send.send(flows)


async def _send_packed(send: trio.MemorySendChannel[Any], pack_joined: Callable[[list[bytes], int], Any],
                       parts: list[bytes], count: int) -> tuple[list[bytes], int]:
    """The ``count`` flows of joined ``parts`` on their way as one gzip body (``pack_joined``, in a
    worker thread), if there are any; returns the empty parts and count to go on with."""
    if parts:
        await send.send(await trio.to_thread.run_sync(pack_joined, parts, count))
    return [], 0
