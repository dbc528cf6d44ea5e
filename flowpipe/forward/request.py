"""One HTTP POST the way both of flowpipe's HTTP clients make it (the forwarder, exporter metadata):
httpx's blocking client in a worker thread, bounded by a trio deadline, with the client TLS context
built from the forwarder's settings."""
from __future__ import annotations

import ssl
from functools import partial

import httpx
import trio

from flowpipe.forward.config import ForwarderConfig
from flowpipe.startup import SettingError


async def post(client: httpx.Client, url: str, body: bytes, headers: dict[str, str],
               timeout: float) -> tuple[str, httpx.Response | None, BaseException | None]:
    """POST ``body`` to ``url``; (status, response, error): status is the HTTP status as text, or
    "timeout", "connect_error" or "error" (then no response, and the exception). A request cut short
    by the deadline ends in its thread, unawaited."""
    # The body goes as a one-item iterator, with its Content-Length (the same request on the wire):
    # httpx's response and its stream refer to each other, a cycle the garbage collector frees late,
    # and a body the request held stayed in memory until then (~400 bodies, 90 MiB, after a flush of
    # 1M flows); the iterator lets go of it once sent. It cannot be sent twice: the clients must not
    # follow redirects (httpx's default; a 307/308 comes back as its status, a refusal).
    headers = {**headers, "Content-Length": str(len(body))}
    try:
        with trio.fail_after(timeout):
            resp = await trio.to_thread.run_sync(partial(client.post, url, content=iter((body,)), headers=headers),
                                                 abandon_on_cancel=True)
    except (trio.TooSlowError, httpx.TimeoutException) as e:
        return "timeout", None, e
    except httpx.ConnectError as e:
        return "connect_error", None, e
    except (httpx.HTTPError, OSError) as e:
        return "error", None, e
    return str(resp.status_code), resp, None


def tls_context(cfg: ForwarderConfig) -> ssl.SSLContext:
    """The client TLS context; ValueError naming the key for an unusable file."""
    ctx = ssl.create_default_context()
    if cfg.tls_ca_file:
        try:
            ctx.load_verify_locations(cafile=cfg.tls_ca_file)
        except (OSError, ssl.SSLError) as e:
            raise SettingError("forwarder.tls_ca_file", f"cannot load {cfg.tls_ca_file!r}: {e}") from None
    if not cfg.tls_verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if bool(cfg.tls_client_cert) != bool(cfg.tls_client_key):
        raise SettingError("forwarder.tls_client_key", "tls_client_cert and tls_client_key go together")
    if cfg.tls_client_cert:
        try:
            ctx.load_cert_chain(cfg.tls_client_cert, cfg.tls_client_key)
        except FileNotFoundError as e:
            key = "tls_client_cert" if e.filename in (None, cfg.tls_client_cert) else "tls_client_key"
            raise SettingError(f"forwarder.{key}", f"no such file: {e.filename or cfg.tls_client_cert!r}") from None
        except (OSError, ssl.SSLError) as e:
            raise SettingError("forwarder.tls_client_cert", f"cannot load {cfg.tls_client_cert!r} with key "
                             f"{cfg.tls_client_key!r}: {e}") from None
    return ctx
