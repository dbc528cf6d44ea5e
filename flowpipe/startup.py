"""Start-up failures as one clear line: what failed, where, the OS's reason and a fix.

:class:`StartupError` is what a listener, the metrics endpoint or the pre-flight check raises
when ``flowpipe run`` cannot start. ``flowpipe run`` reports it as one log line and one stderr
line and exits with :attr:`StartupError.exit_code`: 2 when the configuration (or the machine's
permissions for it) must change, 1 for a runtime condition such as a port held by another process.

:func:`filesystem_problems` lists what ``run`` would need to write and cannot (spool directory,
template state directory, output file); ``check-config`` reports the same list, so a config that
passes it does not fail at start for these reasons. The TLS files to read are checked when the
config is loaded (:mod:`flowpipe.config`), for both.
"""
from __future__ import annotations

import errno
import os
from collections.abc import Iterator

from flowpipe.config import Config

CONFIG_PROBLEM = 2
RUNTIME_PROBLEM = 1


class StartupError(Exception):
    """``what`` (listener or endpoint) could not start at ``address``: ``reason``; ``hint`` says how to fix it."""

    def __init__(self, what: str, address: str, reason: str, hint: str, exit_code: int) -> None:
        self.what, self.address, self.reason, self.hint, self.exit_code = what, address, reason, hint, exit_code
        super().__init__(self.line())

    def line(self) -> str:
        where = f" on {self.address}" if self.address else ""
        return f"{self.what}{where}: {self.reason} — {self.hint}"


class SettingError(ValueError):
    """A setting a stage found unusable while starting (a TLS file it cannot load, a spool directory
    in use): ``key`` and ``reason``; ``flowpipe run`` reports it as a configuration problem."""

    def __init__(self, key: str, reason: str) -> None:
        self.key, self.reason = key, reason
        super().__init__(f"{key}: {reason}")


def address_text(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host or '0.0.0.0'}:{port}"


def bind_error(what: str, host: str, port: int, exc: OSError, proto: str) -> StartupError:
    """The StartupError for a failed bind of ``what`` (e.g. "listener netflow9") to host:port."""
    addr = address_text(host, port)
    reason = exc.strerror or str(exc)
    ss = "ss -lunp" if proto == "udp" else "ss -ltnp"
    if exc.errno == errno.EADDRINUSE:
        return StartupError(what, addr, reason,
                            f"another process holds {proto.upper()} port {port} (a second flowpipe, nfacctd, "
                            f"the Datadog Agent?): see `{ss} 'sport = :{port}'`, stop it or choose another port",
                            RUNTIME_PROBLEM)
    if exc.errno in (errno.EACCES, errno.EPERM):
        if 0 < port < 1024:
            hint = ("ports below 1024 need root or CAP_NET_BIND_SERVICE: use a port >= 1024, or grant it "
                    "(systemd: AmbientCapabilities=CAP_NET_BIND_SERVICE; "
                    "setcap cap_net_bind_service=+ep on the Python binary)")
        else:
            hint = "the system refused the address to this user: check its permissions or choose another"
        return StartupError(what, addr, reason, hint, CONFIG_PROBLEM)
    if exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT) or isinstance(exc, (UnicodeError,)):
        return StartupError(what, addr, reason,
                            f"{host!r} is not an address of this machine: use one it has, "
                            f"0.0.0.0 (all IPv4) or :: (IPv4 and IPv6)", CONFIG_PROBLEM)
    if exc.errno is None or exc.errno < 0:  # getaddrinfo: a host name that does not resolve
        return StartupError(what, addr, reason, "use an IP address of this machine, 0.0.0.0 or ::",
                            CONFIG_PROBLEM)
    return StartupError(what, addr, reason, "check the address and port in the config", RUNTIME_PROBLEM)


# ---- what run needs from the filesystem -----------------------------------------------------

def _nearest_existing(path: str) -> str:
    p = os.path.abspath(path)
    while not os.path.exists(p):
        parent = os.path.dirname(p)
        if parent == p:
            break
        p = parent
    return p


def _dir_problem(path: str) -> str | None:
    """Why ``path`` cannot be used (created if missing) as a writable directory, or None."""
    if os.path.exists(path):
        if not os.path.isdir(path):
            return f"{path!r} exists and is not a directory"
        if not os.access(path, os.W_OK | os.X_OK):
            return f"{path!r} is not writable by this user (uid {os.getuid()})"
        return None
    base = _nearest_existing(path)
    if not os.path.isdir(base):
        return f"cannot create {path!r}: {base!r} is not a directory"
    if not os.access(base, os.W_OK | os.X_OK):
        return f"cannot create {path!r}: {base!r} is not writable by this user (uid {os.getuid()})"
    return None



def filesystem_problems(cfg: Config) -> Iterator[tuple[str, str, str]]:
    """(key, reason, hint) for each thing ``run`` needs from the filesystem and cannot have."""
    fw = cfg.forwarder
    if fw.spool_dir and fw.url:
        why = _dir_problem(fw.spool_dir)
        if why:
            yield ("forwarder.spool_dir", why,
                   "create it for the user flowpipe runs as (e.g. install -d -o flowpipe /var/lib/flowpipe/spool), "
                   "or set spool_dir to a directory it can write, or \"\" to keep undelivered flows in memory")
    if cfg.decoder.state_file:
        folder = os.path.dirname(os.path.abspath(cfg.decoder.state_file))
        why = _dir_problem(folder)
        if not why and os.path.isdir(cfg.decoder.state_file):
            why = f"{cfg.decoder.state_file!r} is a directory"
        if why:
            yield ("decoder.state_file", why,
                   "point state_file into a directory this user can write, or set it to \"\"")
    if fw.file:
        folder = os.path.dirname(os.path.abspath(fw.file))
        if os.path.exists(fw.file):
            why = (f"{fw.file!r} is a directory" if os.path.isdir(fw.file)
                   else None if os.access(fw.file, os.W_OK) else f"{fw.file!r} is not writable by this user")
        else:
            why = (f"no such directory: {folder}" if not os.path.isdir(folder)
                   else None if os.access(folder, os.W_OK | os.X_OK)
                   else f"cannot create {fw.file!r}: {folder!r} is not writable by this user")
        if why:
            yield "forwarder.file", why, "choose a file in a directory this user can write"
