"""``flowpipe run [--config FILE]``: run the service until SIGTERM/SIGINT, then flush and exit 0."""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys

import trio

from flowpipe import logs
from flowpipe.config import Config, ConfigError, load


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run the collector in the foreground",
                       description="Run the collector until SIGTERM/SIGINT, then flush what it holds and exit 0.")
    p.add_argument("--config", help="TOML config file (default: $FLOWPIPE_CONFIG, else built-in defaults)")
    p.add_argument("--log-level", default=os.environ.get("FLOWPIPE_LOG_LEVEL", "INFO"),
                   choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    p.set_defaults(func=main)


async def serve(cfg: Config) -> None:
    from flowpipe.service import Service  # noqa: PLC0415

    svc = Service(cfg)
    async with trio.open_nursery() as nursery:
        async def on_signals() -> None:
            with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for sig in signals:
                    logs.event(logging.INFO, "signal", signal=signal.Signals(sig).name)
                    svc.stop()
        nursery.start_soon(on_signals)
        await svc.run()
        nursery.cancel_scope.cancel()


def main(args: argparse.Namespace) -> int:
    logs.setup(args.log_level)
    path = args.config or os.environ.get("FLOWPIPE_CONFIG") or None
    try:
        cfg = load(path)
    except ConfigError as e:
        print(f"flowpipe: config error: {e}", file=sys.stderr)
        return 2
    try:
        trio.run(serve, cfg)
    except OSError as e:
        print(f"flowpipe: cannot start: {e}", file=sys.stderr)
        return 1
    return 0
