"""Pick the decoder for a datagram by its version field, per listener.

A netflow5/netflow9/ipfix listener decodes all three (the version decides); an sflow5 listener
decodes sFlow v5. Stateful decoders (v9/IPFIX templates) live here, one per listener. The
listener's ``exporter_address``, ``exporters``, ``passthrough_unknown`` and ``reverse_flows`` are
applied here (NetFlow v5 has no in-band identity: its exporter is always the UDP source).
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flowpipe.decode import netflow5, sflow
from flowpipe.decode.base import Decoded, DecodeError, Plain, Source
from flowpipe.decode.config import DecoderConfig, MappingConfig
from flowpipe.decode.template_decoder import TemplateDecoder
from flowpipe.decode.templates import DomainView
from flowpipe.listen_config import ListenerConfig


class DatagramDecoder:
    """Decodes any datagram a listener of ``flow_type`` may receive."""

    def __init__(self, flow_type: str, cfg: DecoderConfig, mapping: list[MappingConfig],
                 listener: ListenerConfig | None = None, sampler_rules: Any = None, columnar: bool = False) -> None:
        """``listener``: the listener's identity and passthrough options (defaults when None);
        ``sampler_rules``: [[sampling]] rules for sampler ids (flowpipe.decode.exporters.SamplerRules);
        ``columnar``: v5 records, v9/IPFIX data sets and sFlow flow samples may come as ``Decoded.chunks``
        (flowpipe.decode.columns)."""
        self.flow_type = flow_type
        self.columnar = columnar
        self.templates: TemplateDecoder | None = None
        self._sflow: Callable[[bytes, Source], Decoded] | None = None
        lc = listener if listener is not None else ListenerConfig(flow_type=flow_type)
        self.namespace = lc.namespace
        self._sflow_plain: Callable[..., Any] | None = None
        if flow_type == "sflow5":
            self._sflow = functools.partial(sflow.decode, udp_identity=lc.exporter_address == "udp",
                                            columnar=columnar)
            if columnar:
                self._sflow_plain = functools.partial(sflow.plain, udp_identity=lc.exporter_address == "udp")
        else:
            self.templates = TemplateDecoder(
                cfg, mapping, in_band=lc.exporter_address == "in-band", exporters=lc.exporter_ids(),
                passthrough=lc.passthrough_unknown, sampler_rules=sampler_rules, reverse=lc.reverse_flows,
                columnar=columnar)

    def decode(self, data: bytes, src: Source) -> Decoded:
        if len(data) < 4:
            raise DecodeError("short", f"{len(data)}-byte datagram")
        if self.flow_type == "sflow5":
            if data[:4] != b"\x00\x00\x00\x05":
                raise DecodeError("bad_version", "not an sFlow v5 datagram")
            assert self._sflow is not None  # made for every sflow5 listener
            return self._sflow(data, src)
        version = (data[0] << 8) | data[1]
        if version == 5:
            return netflow5.decode(data, src, self.columnar)
        if version in (9, 10):
            assert self.templates is not None  # made for every listener but sflow5
            return self.templates.decode(data, src)
        raise DecodeError("bad_version", f"version {version} is not NetFlow v5/v9 or IPFIX")

    def plain(self, data: bytes, src: Source) -> Plain | None:
        """A datagram of the columnar path's common case decoded cheaply, as (chunks, exporter, flow
        type, sequence observation, records) (see :meth:`TemplateDecoder.plain` and
        :func:`flowpipe.decode.sflow.plain`), or None: :meth:`decode` it."""
        if self._sflow_plain is not None:
            return self._sflow_plain(data, src)
        return self.templates.plain(data, src) if self.templates is not None else None

    def plain_batch(self) -> Callable[[bytes, Source], Plain | None] | None:
        """:meth:`plain` for the datagrams of one batch, taken in arrival order (sFlow: an exporter's
        datagrams of one agent and second join one chunk, see :func:`flowpipe.decode.sflow.plain`);
        None when nothing is decoded cheaply (not columnar)."""
        if self._sflow_plain is not None:
            return functools.partial(self._sflow_plain, runs={})
        return self.templates.plain if self.templates is not None and self.columnar else None

    def expire(self, now: float) -> int:
        """Give up on held data past its time; returns how many held datagrams were dropped."""
        return int(self.templates.expire(now)) if self.templates is not None else 0

    def template_domains(self) -> list[tuple[DomainView, list[int]]]:
        """Read-only: this listener's NetFlow v9 / IPFIX template domains, each with the template ids
        its held data waits for (``TemplateDecoder.domains``); none for sFlow. For the exporter inventory."""
        return self.templates.domains() if self.templates is not None else []

    @property
    def held(self) -> int:
        return int(self.templates.held) if self.templates is not None else 0
