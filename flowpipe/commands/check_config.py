"""``flowpipe check-config FILE``: validate a config; print the effective config or the error."""
from __future__ import annotations

import argparse
import sys

from flowpipe.config import ConfigError, dump, load


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check-config", help="validate a config file and print the effective config",
                       description="Exit 0 and print the effective config (TOML), or exit 2 naming file, key "
                                   "and reason. Secret header values are masked.")
    p.add_argument("file")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    try:
        cfg = load(args.file)
    except ConfigError as e:
        print(f"flowpipe: config error: {e}", file=sys.stderr)
        return 2
    sys.stdout.write(dump(cfg))
    return 0
