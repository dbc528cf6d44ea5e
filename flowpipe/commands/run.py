"""``flowpipe run [--config FILE]``: run the service until SIGTERM/SIGINT, then flush and exit 0."""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys

import trio

from flowpipe import logs, summary
from flowpipe.commands import add, load_config
from flowpipe.config import Config
from flowpipe.startup import CONFIG_PROBLEM, RUNTIME_PROBLEM, SettingError, StartupError, filesystem_problems

DESCRIPTION = "Run the collector until SIGTERM/SIGINT, then flush what it holds and exit 0."


def register(sub: argparse._SubParsersAction) -> None:
    p = add(sub, "run", main, "run the collector in the foreground", DESCRIPTION)
    p.add_argument("--config", help="TOML config file (default: $FLOWPIPE_CONFIG, else built-in defaults)")
    p.add_argument("--log-level", default=os.environ.get("FLOWPIPE_LOG_LEVEL", "INFO"),
                   choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    p.add_argument("--worker", help=argparse.SUPPRESS)   # "I/N": run as worker I of N (flowpipe.supervisor)
    p.add_argument("--run-dir", help=argparse.SUPPRESS)  # where a worker reports its metrics port


async def serve(cfg: Config, worker: int | None = None, run_dir: str | None = None) -> None:
    from flowpipe.service import Service  # noqa: PLC0415

    svc = Service(cfg, worker_process=worker is not None)
    async with trio.open_nursery() as nursery:
        async def on_signals() -> None:
            with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for sig in signals:
                    logs.event(logging.INFO, "signal", signal=signal.Signals(sig).name)
                    svc.stop()
        nursery.start_soon(on_signals)
        async with trio.open_nursery() as inner:
            await inner.start(svc.run)
            if worker is None:
                summary.started(cfg, svc.metrics_server.port if svc.metrics_server is not None else None)
            if run_dir is not None and svc.metrics_server is not None:
                tmp = os.path.join(run_dir, f".worker-{worker}.port")
                with open(tmp, "w") as f:
                    f.write(str(svc.metrics_server.port))
                os.replace(tmp, os.path.join(run_dir, f"worker-{worker}.port"))
        nursery.cancel_scope.cancel()


def main(args: argparse.Namespace) -> int:
    logs.setup(args.log_level)
    path = args.config or os.environ.get("FLOWPIPE_CONFIG") or None
    cfg = load_config(path)
    if cfg is None:
        return 2
    problems = list(filesystem_problems(cfg))
    for key, reason, hint in problems:
        _report(StartupError(key, "", reason, hint, CONFIG_PROBLEM))
    if problems:
        return CONFIG_PROBLEM
    from flowpipe import supervisor  # noqa: PLC0415

    worker = None
    try:
        if args.worker:
            worker = int(args.worker.split("/")[0])
            cfg = supervisor.worker_config(cfg, worker)
        elif supervisor.worker_count(cfg) > 1:
            return trio.run(supervisor.Supervisor(cfg, path).run)
        trio.run(serve, cfg, worker, args.run_dir)
    except (Exception, BaseExceptionGroup) as e:  # noqa: BLE001 - every start-up failure becomes one line
        err = _startup_error(e)
        if err is None:
            raise
        return _report(err)
    return 0


def _report(err: StartupError) -> int:
    """One log line and one stderr line for a start-up failure; the exit code."""
    logs.event(logging.ERROR, "cannot_start", what=err.what, address=err.address or "-", reason=err.reason,
               fix=err.hint)
    print(f"flowpipe: cannot start: {err.line()}", file=sys.stderr)
    return err.exit_code


def _startup_error(exc: BaseException) -> StartupError | None:
    """The start-up failure inside ``exc`` (trio wraps task failures in exception groups), or None."""
    if isinstance(exc, StartupError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for sub in exc.exceptions:
            found = _startup_error(sub)
            if found is not None:
                return found
        return None
    if isinstance(exc, SettingError):  # a stage's own check of its settings
        return StartupError(exc.key, "", exc.reason, f"fix {exc.key} in the config", CONFIG_PROBLEM)
    if isinstance(exc, OSError):
        where = f" ({exc.filename})" if exc.filename else ""
        return StartupError("flowpipe", "", f"{exc.strerror or exc}{where}",
                            "see the log lines above for the stage that failed", RUNTIME_PROBLEM)
    return None
