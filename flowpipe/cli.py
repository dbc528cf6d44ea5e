"""The ``flowpipe`` command: a thin entry that hands each sub-command to its module."""
from __future__ import annotations

import argparse
import importlib
import sys

from flowpipe import __version__

# One line per sub-command module (each has register(subparsers)).
COMMANDS = [
    "flowpipe.commands.run",
    "flowpipe.commands.check_config",
    "flowpipe.commands.generate",
    "flowpipe.commands.decode",
    "flowpipe.commands.convert_config",
]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="flowpipe", description="NetFlow/IPFIX/sFlow collector and aggregator")
    p.add_argument("--version", action="version", version=f"flowpipe {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(name).register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
