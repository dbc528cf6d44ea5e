"""The test tree's own rules (issue #20): its folders mirror the package's, helpers live in the support
package (tests/support) or in conftest.py fixtures, and no module imports a test module."""
from __future__ import annotations

from pathlib import Path

from tests.support import ROOT
from tests.support.imports import imported_names, package_of

TESTS = ROOT / "tests"
PACKAGE = ROOT / "flowpipe"
SUPPORT = "support"    # helpers shared by the tests: an ordinary package, not tests
DATA = "fixtures"      # captures and the scripts that make them (tests/fixtures/README.md)


def python_files() -> list[Path]:
    return sorted(p for p in TESTS.rglob("*.py") if "__pycache__" not in p.parts and p.parts[len(TESTS.parts)] != DATA)


def is_test_module(dotted: str) -> bool:
    return any(part.startswith("test_") for part in dotted.split("."))


def test_no_module_imports_a_test_module() -> None:
    found = [f"{p.relative_to(ROOT)}:{line}: {m}" for p in python_files()
             for line, m in imported_names(p.read_text(), package_of(p, ROOT), strings=("tests",)) if is_test_module(m)]
    assert not found, "a test module imported elsewhere: move what it shares to tests/support or a fixture"


def test_every_folder_mirrors_a_package_folder_or_is_the_support_package() -> None:
    folders = [d for d in TESTS.rglob("*") if d.is_dir() and "__pycache__" not in d.parts
               and d.relative_to(TESTS).parts[0] != DATA]
    assert folders, "no test folders found"
    stray = [str(d.relative_to(ROOT)) for d in folders if d.relative_to(TESTS).parts[0] != SUPPORT
             and not (PACKAGE / d.relative_to(TESTS) / "__init__.py").exists()]
    assert not stray, "test folders with no flowpipe package folder of the same path"
    # packages, so that two folders may hold modules of the same name
    assert all((d / "__init__.py").exists() for d in folders), "a test folder without __init__.py"


def test_only_tests_and_conftest_outside_the_support_package() -> None:
    helpers = [str(p.relative_to(ROOT)) for p in python_files()
               if p.parts[len(TESTS.parts)] != SUPPORT and p.name != "__init__.py" and p.name != "conftest.py"
               and not p.name.startswith("test_")]
    assert not helpers, "helper modules belong in tests/support"
