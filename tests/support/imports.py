"""What a Python source imports, read with ``ast``: for the tests that hold import rules (the stage
rule, the exporter's private modules, test modules imported elsewhere)."""
from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path


def package_of(path: Path, root: Path) -> tuple[str, ...]:
    """The dotted package a source file under ``root`` lives in (a package's ``__init__.py``: that package)."""
    return path.relative_to(root).parent.parts


def imported_names(text: str, package: tuple[str, ...] = (),
                   strings: tuple[str, ...] = ("flowpipe",)) -> Iterator[tuple[int, str]]:
    """(line, dotted name) of every module and name a source imports, at any depth (inside functions
    and under ``TYPE_CHECKING`` too).

    ``import a.b`` gives ``a.b``; ``from a import b`` gives ``a`` and ``a.b`` (``b`` may be a module or
    a name in ``a``); relative imports are resolved against ``package``, the dotted package the source
    lives in (:func:`package_of`). A string constant that is a dotted name under one of the ``strings``
    packages (``importlib.import_module("flowpipe.x.y")``, a table of module names) counts as an import.
    """
    named = re.compile(rf"(?:{'|'.join(map(re.escape, strings))})(?:\._*[A-Za-z]\w*)+") if strings else None
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else ()
            module = ".".join([*base, *([node.module] if node.module else [])])
            yield node.lineno, module
            for alias in node.names:
                yield node.lineno, f"{module}.{alias.name}"
        elif named is not None and isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and named.fullmatch(node.value):
            yield node.lineno, node.value
