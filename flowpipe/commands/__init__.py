"""Sub-commands of the ``flowpipe`` CLI: each module has ``register(subparsers)`` that adds its
parser and sets ``func`` (args -> exit code). :mod:`flowpipe.cli` lists the modules."""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flowpipe.config import Config


def add(sub: argparse._SubParsersAction, name: str, main: Callable[[argparse.Namespace], int], help: str,
        description: str) -> argparse.ArgumentParser:
    """The parser of sub-command ``name``, which runs ``main``; the caller adds its arguments."""
    p = sub.add_parser(name, help=help, description=description)
    p.set_defaults(func=main)
    return p


def load_config(path: str | None) -> Config | None:
    """The config in ``path`` (None: the defaults), or None once each of its errors is printed on stderr."""
    from flowpipe.config import ConfigError, ConfigErrors, load  # noqa: PLC0415 - not every command reads a config

    try:
        return load(path)
    except ConfigError as e:
        for one in e.errors if isinstance(e, ConfigErrors) else [e]:
            print(f"flowpipe: config error: {one}", file=sys.stderr)
        return None
