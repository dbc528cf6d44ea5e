"""The forwarder's sections: ``[forwarder]`` (delivery of payload flows) and ``[metadata]`` (exporter
metadata, sent with the forwarder's headers and TLS settings)."""
from __future__ import annotations

import os

import attrs

from flowpipe.sections import doc, non_negative, one_of, positive


@attrs.define(slots=True, kw_only=True)
class ForwarderConfig:
    """Delivery of payload flows to the HTTP backend."""

    url: str = attrs.field(default="", metadata=doc(
        "backend URL to POST to; \"\" = write payload flows to stdout, one JSON object a line"))
    format: str = attrs.field(default="json", validator=one_of("json", "msgpack"), metadata=doc(
        "json | msgpack"))
    compression: str = attrs.field(default="gzip", validator=one_of("gzip", "none"), metadata=doc(
        "gzip | none"))
    max_batch_flows: int = attrs.field(default=10000, validator=positive, metadata=doc("flows per request"))
    additional_fields: str = attrs.field(default="nested", validator=one_of("nested", "top_level"), metadata=doc(
        "where mapped/extra fields go: nested (an additional_fields object) | top_level (current Datadog"
        " Agents; a name a payload field already uses stays nested)"))
    timeout: float = attrs.field(default=10.0, validator=positive, metadata=doc("seconds per request"))
    headers: dict[str, str] = attrs.field(factory=dict, metadata=doc(
        "extra request headers, e.g. {\"DD-API-KEY\" = \"...\"}"))
    stop_timeout: float = attrs.field(default=10.0, validator=non_negative, metadata=doc(
        "seconds delivery may take at shutdown; what is left goes to the spool"))
    queue_max_flows: int = attrs.field(default=1_000_000, validator=positive, metadata=doc(
        "flows held in memory waiting for delivery (without a spool dir, the oldest are dropped past it)"))
    spool_dir: str = attrs.field(default="", metadata=doc(
        "directory for batches that cannot be delivered yet; \"\" = memory only"))
    spool_max_bytes: int = attrs.field(default=1024 * 1024 * 1024, validator=positive, metadata=doc(
        "spool size at most; past it the oldest batches are dropped and counted"))
    retry_initial: float = attrs.field(default=1.0, validator=positive, metadata=doc(
        "first retry delay in seconds (doubles each time, with jitter)"))
    retry_max: float = attrs.field(default=60.0, validator=positive, metadata=doc(
        "longest retry delay in seconds"))
    retries: int = attrs.field(default=5, validator=non_negative, metadata=doc(
        "attempts after the first before a batch goes to the spool (or back to the memory queue)"))
    retry_after_max: float = attrs.field(default=300.0, validator=positive, metadata=doc(
        "longest wait in seconds a backend's Retry-After answer is honoured for"))
    spool_fsync: bool = attrs.field(default=True, metadata=doc(
        "fsync each spool file when written (survives power loss, not only a crash)"))
    file: str = attrs.field(default="", metadata=doc(
        "also write payload flows to this file as JSON lines (with url \"\": instead of stdout); \"\" = off"))
    file_max_bytes: int = attrs.field(default=100 * 1024 * 1024, validator=positive, metadata=doc(
        "size at which the file is rotated to file.1, file.2, ..."))
    file_backups: int = attrs.field(default=5, validator=non_negative, metadata=doc(
        "rotated files kept"))
    tls_verify: bool = attrs.field(default=True, metadata=doc("verify the backend's TLS certificate"))
    tls_ca_file: str = attrs.field(default="", metadata=doc("CA bundle for the backend; \"\" = system CAs"))
    tls_client_cert: str = attrs.field(default="", metadata=doc("client certificate (PEM) for mutual TLS"))
    tls_client_key: str = attrs.field(default="", metadata=doc("client key (PEM) for mutual TLS"))

    def __attrs_post_init__(self) -> None:
        if self.url and not self.url.startswith(("http://", "https://")):
            raise ValueError(f"url {self.url!r} must start with http:// or https://")

    def check_files(self) -> list[tuple[str, str]]:
        """(key, reason) for each TLS file that cannot be used (the loader calls this once the file is read)."""
        problems = []
        for key in ("tls_ca_file", "tls_client_cert", "tls_client_key"):
            p = getattr(self, key)
            if not p:
                continue
            if not os.path.exists(p):
                problems.append((key, f"no such file: {p}"))
            elif not os.path.isfile(p):
                problems.append((key, f"not a regular file: {p}"))
            elif not os.access(p, os.R_OK):
                problems.append((key, f"{p!r} is not readable by this user (uid {os.getuid()})"))
        if bool(self.tls_client_cert) != bool(self.tls_client_key):
            problems.append(("tls_client_key", "tls_client_cert and tls_client_key go together"))
        return problems


@attrs.define(slots=True, kw_only=True)
class MetadataConfig:
    """Exporter metadata POSTed periodically, as the Datadog Agent sends its NetFlow exporters (off without a url)."""

    url: str = attrs.field(default="", metadata=doc(
        "URL to POST exporter metadata to: JSON arrays of NDM metadata payloads ({namespace, integration,"
        " netflow_exporters: [{id, ip_address, flow_type}], collect_timestamp}, at most 100 exporters each);"
        " [forwarder] headers, TLS settings, timeout and compression apply; \"\" = off"))
    interval: float = attrs.field(default=60.0, validator=positive, metadata=doc(
        "seconds between two rounds; a round sends the exporters seen since the last round that was"
        " delivered"))

    def __attrs_post_init__(self) -> None:
        if self.url and not self.url.startswith(("http://", "https://")):
            raise ValueError(f"url {self.url!r} must start with http:// or https://")
