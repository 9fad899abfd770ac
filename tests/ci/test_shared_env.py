"""The nox sessions' shared environment: reused while its inputs hold, rebuilt when they change."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("shared_env", ROOT / ".ci" / "shared_env.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


shared_env: Any = _load()
PYPROJECTS = ["pyproject.toml", "backends/a/pyproject.toml"]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "backends" / "a").mkdir(parents=True)
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "core"\ndependencies = []\n')
    (tmp_path / "backends/a/pyproject.toml").write_text('[project]\nname = "a"\n')
    return tmp_path


def _installed(tmp_path: Path, stamp: str) -> Any:
    env = shared_env.SharedEnv(tmp_path / "env")
    env.bin.mkdir(parents=True)
    Path(env.executable("python")).write_text("")
    env.mark_installed(stamp)
    return env


def test_an_environment_installed_for_the_same_inputs_is_reused(tree: Path) -> None:
    stamp = shared_env.fingerprint(tree, PYPROJECTS, ["-e", "."])
    env = _installed(tree, stamp)
    assert env.stale_because(stamp) is None
    assert shared_env.fingerprint(tree, PYPROJECTS, ["-e", "."]) == stamp


def test_a_changed_pyproject_makes_the_next_session_rebuild(tree: Path) -> None:
    stamp = shared_env.fingerprint(tree, PYPROJECTS, ["-e", "."])
    env = _installed(tree, stamp)
    # A dependency removed from a backend's pyproject: a reused venv would still hold it.
    (tree / "backends/a/pyproject.toml").write_text('[project]\nname = "a"\ndependencies = []\n')
    changed = shared_env.fingerprint(tree, PYPROJECTS, ["-e", "."])
    assert changed != stamp
    assert "pyproject.toml" in env.stale_because(changed)


def test_a_changed_requirement_list_makes_the_next_session_rebuild(tree: Path) -> None:
    before = shared_env.fingerprint(tree, PYPROJECTS, ["-e", ".", "mypy~=2.4"])
    assert before != shared_env.fingerprint(tree, PYPROJECTS, ["-e", ".", "mypy~=2.5"])


def test_a_missing_or_unfinished_install_is_not_reused(tree: Path) -> None:
    env = shared_env.SharedEnv(tree / "env")
    assert env.stale_because("abc") == "not installed yet"
    env.bin.mkdir(parents=True)  # the venv exists but pip never finished: no stamp
    Path(env.executable("python")).write_text("")
    assert env.stale_because("abc") == "not installed yet"


def test_an_environment_extended_by_sdk_tests_is_rebuilt_for_other_sessions(tree: Path) -> None:
    stamp = shared_env.fingerprint(tree, PYPROJECTS, [])
    env = _installed(tree, stamp)
    env.mark_extended()
    assert env.stale_because(stamp, accept_extended=True) is None
    assert "sdk_tests" in env.stale_because(stamp)


def test_the_noxfile_fingerprints_every_distribution_it_installs() -> None:
    """A pyproject left out of the stamp would let its changes go unnoticed."""
    text = (ROOT / "noxfile.py").read_text()
    for installed in ("backends/openai", "backends/durable", "conformance"):
        assert f'"{installed}/pyproject.toml"' in text
    assert '"pyproject.toml"' in text
