"""The ``flowpipe`` command: a thin entry that hands each sub-command to its module."""
from __future__ import annotations

import argparse
import importlib
import sys

from flowpipe import __version__

# Sub-command -> its module (each has register(subparsers)). Only the module of the command being
# run is imported, so ``flowpipe generate`` loads what the exporter needs and not the collector.
COMMANDS = {
    "run": "flowpipe.commands.run",
    "check-config": "flowpipe.commands.check_config",
    "generate": "flowpipe.commands.generate",
    "decode": "flowpipe.commands.decode",
    "convert-config": "flowpipe.commands.convert_config",
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser of every sub-command, or of ``only`` (a name in :data:`COMMANDS`)."""
    p = argparse.ArgumentParser(prog="flowpipe", description="NetFlow/IPFIX/sFlow collector and aggregator")
    p.add_argument("--version", action="version", version=f"flowpipe {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in COMMANDS.items():
        if only is None or name == only:
            importlib.import_module(module).register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args_in = sys.argv[1:] if argv is None else argv
    first = next((a for a in args_in if not a.startswith("-")), None)
    parser = build_parser(first if first in COMMANDS else None)
    args = parser.parse_args(args_in)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
