"""The demo's local model is an optional distribution: missing, the demo names what to install."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest
import runplane_localmodel
from rich.console import Console
from runplane_durable.demo import run_demo
from runplane_durable.demo.local_model import install_command, local_model_server
from runplane_durable.errors import DurableError

ROOT = Path(__file__).resolve().parents[3]


def _without_local_model(monkeypatch: pytest.MonkeyPatch, cwd: Path) -> None:
    """As if runplane-localmodel were not installed, with no OpenAI key, in a fresh directory."""
    monkeypatch.setitem(sys.modules, "runplane_localmodel", None)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("RUNPLANE_DATABASE_URL", raising=False)
    monkeypatch.chdir(cwd)


def test_without_the_local_model_the_demo_says_exactly_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _without_local_model(monkeypatch, tmp_path)
    with pytest.raises(DurableError) as raised:
        run_demo(scripted=False, run_id="no-model")
    message = str(raised.value)
    assert "OPENAI_API_KEY is not set" in message
    assert "runplane-localmodel" in message
    assert "--scripted" in message
    command = next(line.strip() for line in message.splitlines() if " pip install " in line)
    # This backend is installed from this clone, so the command installs the clone's localmodel/
    # into this very environment; from tmp_path, both paths are absolute.
    words = shlex.split(command)
    assert words[:5] == [sys.executable, "-m", "pip", "install", "-e"]
    source = Path(words[5])
    assert source == ROOT / "localmodel"
    assert 'name = "runplane-localmodel"' in (source / "pyproject.toml").read_text()


def test_installed_the_demo_serves_it() -> None:
    assert local_model_server() is runplane_localmodel.LocalModelServer


def test_the_scripted_demo_and_openai_do_not_need_the_local_model(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _without_local_model(monkeypatch, tmp_path)
    from runplane_durable.demo import parent

    for scripted, key in ((True, ""), (False, "sk-test")):
        monkeypatch.setenv("OPENAI_API_KEY", key)
        with parent._model_source(Console(), scripted) as source:
            assert source.kind == ("scripted" if scripted else "openai")


def test_from_the_clone_root_the_command_is_the_readmes(tmp_path: Path) -> None:
    module = tmp_path / "backends/durable/src/runplane_durable/demo/local_model.py"
    module.parent.mkdir(parents=True)
    module.touch()
    (tmp_path / "localmodel").mkdir()
    (tmp_path / "localmodel" / "pyproject.toml").touch()
    assert install_command(cwd=tmp_path, module=module).endswith(" -m pip install -e ./localmodel")


def test_outside_a_clone_the_command_names_the_distribution(tmp_path: Path) -> None:
    module = tmp_path / "site-packages/runplane_durable/demo/local_model.py"
    module.parent.mkdir(parents=True)
    module.touch()
    assert install_command(cwd=tmp_path, module=module).endswith(
        " -m pip install runplane-localmodel"
    )
    # A clone whose localmodel/ is gone is no clone to install from.
    clone_module = tmp_path / "clone/backends/durable/src/runplane_durable/demo/local_model.py"
    clone_module.parent.mkdir(parents=True)
    assert install_command(cwd=tmp_path, module=clone_module).endswith(
        " -m pip install runplane-localmodel"
    )


def test_a_broken_local_model_install_is_not_reported_as_missing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Its own ModuleNotFoundError names the module it lacks: more use than 'install it'."""
    package = tmp_path / "runplane_localmodel"
    package.mkdir()
    (package / "__init__.py").write_text("import runplane_localmodel_lost_dependency\n")
    for name in [m for m in sys.modules if m.split(".")[0] == "runplane_localmodel"]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError) as raised:
        local_model_server()
    assert raised.value.name == "runplane_localmodel_lost_dependency"
