"""The requirement ids in the conformance suite's markers, its registry and its docs stay equal.

A failure report names ids; an id missing from docs/conformance.md leaves a backend author with a
failure nobody explains, and a documented id no test uses is a promise nobody checks.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import runplane_conformance
from runplane_conformance.requirements import MARKER, REQUIREMENTS

DOCS = Path(__file__).resolve().parents[2] / "docs" / "conformance.md"
ROW = re.compile(r"^\|\s*([A-Z]+-\d+)\s*\|", re.MULTILINE)


def documented_ids() -> list[str]:
    return ROW.findall(DOCS.read_text(encoding="utf-8"))


def suite_tests() -> dict[str, tuple[str, ...]]:
    """Every test function of the suite -> the requirement ids on its marker."""
    found: dict[str, tuple[str, ...]] = {}
    for info in pkgutil.iter_modules(runplane_conformance.__path__):
        if not info.name.startswith("test_"):
            continue
        module = importlib.import_module(f"runplane_conformance.{info.name}")
        for name, obj in vars(module).items():
            if name.startswith("test_") and callable(obj):
                marks = [m for m in getattr(obj, "pytestmark", []) if m.name == MARKER]
                found[f"{info.name}.{name}"] = tuple(i for m in marks for i in m.args)
    return found


def test_suite_has_tests() -> None:
    assert len(suite_tests()) >= len(REQUIREMENTS)


def test_every_suite_test_names_a_requirement() -> None:
    unmarked = [name for name, ids in suite_tests().items() if not ids]
    assert not unmarked


def test_ids_used_by_the_suite_are_documented() -> None:
    used = {i for ids in suite_tests().values() for i in ids}
    assert used - set(documented_ids()) == set()


def test_documented_ids_are_used_by_the_suite() -> None:
    used = {i for ids in suite_tests().values() for i in ids}
    assert set(documented_ids()) - used == set()


def test_registry_matches_the_docs() -> None:
    documented = documented_ids()
    assert len(documented) == len(set(documented)), "an id has more than one row"
    assert documented == list(REQUIREMENTS), "docs table and requirements.py differ (or order)"


def test_documented_options_exist() -> None:
    plugin = Path(runplane_conformance.__file__).with_name("plugin.py").read_text(encoding="utf-8")
    declared = set(re.findall(r'"(--runplane-[a-z-]+)"', plugin))
    documented = set(re.findall(r"`(--runplane-[a-z-]+)", DOCS.read_text(encoding="utf-8")))
    assert documented == declared
