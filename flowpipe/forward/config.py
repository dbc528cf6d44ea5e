"""The forwarder's sections: ``[forwarder]`` (delivery of payload flows) and ``[metadata]`` (exporter
metadata, sent with the forwarder's headers and TLS settings)."""
from __future__ import annotations

import os

import attrs

from flowpipe.sections import http_url, key, non_negative, one_of, positive

# A header whose name contains one of these (in any case) carries a secret: check-config shows its value
# as ***, and so does the start-up line for URL query values so named (flowpipe/summary.py).
SECRET_HEADER_WORDS = ("key", "token", "auth", "secret", "password", "cookie")


@attrs.define(slots=True, kw_only=True)
class ForwarderConfig:
    """Delivery of payload flows to the HTTP backend."""

    # One sections.key a line: a declaration table, alike in shape to every section's on purpose (not logic).
    url: str = key("", http_url, "backend URL to POST to; \"\" = write payload flows to stdout, one JSON object a line")
    format: str = key("json", one_of("json", "msgpack"), "json | msgpack")
    compression: str = key("gzip", one_of("gzip", "none"), "gzip | none")
    max_batch_flows: int = key(10000, positive, "flows per request")
    additional_fields: str = key("nested", one_of("nested", "top_level"),
        "where mapped/extra fields go: nested (an additional_fields object) | top_level (current Datadog"
        " Agents; a name a payload field already uses stays nested)")
    timeout: float = key(10.0, positive, "seconds per request")
    headers: dict[str, str] = key({}, None, "extra request headers, e.g. {\"DD-API-KEY\" = \"...\"}",
        secret=SECRET_HEADER_WORDS)
    stop_timeout: float = key(10.0, non_negative,
        "seconds delivery may take at shutdown; what is left goes to the spool")
    queue_max_flows: int = key(1_000_000, positive,
        "flows held in memory waiting for delivery (without a spool dir, the oldest are dropped past it)")
    spool_dir: str = key("", None, "directory for batches that cannot be delivered yet; \"\" = memory only")
    spool_max_bytes: int = key(1024 * 1024 * 1024, positive,
        "spool size at most; past it the oldest batches are dropped and counted")
    retry_initial: float = key(1.0, positive, "first retry delay in seconds (doubles each time, with jitter)")
    retry_max: float = key(60.0, positive, "longest retry delay in seconds")
    retries: int = key(5, non_negative,
        "attempts after the first before a batch goes to the spool (or back to the memory queue)")
    retry_after_max: float = key(300.0, positive,
        "longest wait in seconds a backend's Retry-After answer is honoured for")
    spool_fsync: bool = key(True, None, "fsync each spool file when written (survives power loss, not only a crash)")
    file: str = key("", None,
        "also write payload flows to this file as JSON lines (with url \"\": instead of stdout); \"\" = off")
    file_max_bytes: int = key(100 * 1024 * 1024, positive, "size at which the file is rotated to file.1, file.2, ...")
    file_backups: int = key(5, non_negative, "rotated files kept")
    tls_verify: bool = key(True, None, "verify the backend's TLS certificate")
    tls_ca_file: str = key("", None, "CA bundle for the backend; \"\" = system CAs")
    tls_client_cert: str = key("", None, "client certificate (PEM) for mutual TLS")
    tls_client_key: str = key("", None, "client key (PEM) for mutual TLS")

    def check_files(self) -> list[tuple[str, str]]:
        """(key, reason) for each TLS file that cannot be used (the loader calls this once the file is read)."""
        problems = []
        for name in ("tls_ca_file", "tls_client_cert", "tls_client_key"):
            p = getattr(self, name)
            if not p:
                continue
            if not os.path.exists(p):
                problems.append((name, f"no such file: {p}"))
            elif not os.path.isfile(p):
                problems.append((name, f"not a regular file: {p}"))
            elif not os.access(p, os.R_OK):
                problems.append((name, f"{p!r} is not readable by this user (uid {os.getuid()})"))
        if bool(self.tls_client_cert) != bool(self.tls_client_key):
            problems.append(("tls_client_key", "tls_client_cert and tls_client_key go together"))
        return problems


@attrs.define(slots=True, kw_only=True)
class MetadataConfig:
    """Exporter metadata POSTed periodically, as the Datadog Agent sends its NetFlow exporters (off without a url)."""

    url: str = key("", http_url,
        "URL to POST exporter metadata to: JSON arrays of NDM metadata payloads ({namespace, integration,"
        " netflow_exporters: [{id, ip_address, flow_type}], collect_timestamp}, at most 100 exporters each);"
        " [forwarder] headers, TLS settings, timeout and compression apply; \"\" = off")
    interval: float = key(60.0, positive,
        "seconds between two rounds; a round sends the exporters seen since the last round that was"
        " delivered")
