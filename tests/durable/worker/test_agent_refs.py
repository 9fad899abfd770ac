"""Agent references: which module-level agents a run stores one for, how a worker knows its
agents, and the errors `runplane worker` gives for modules and attributes that name none."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from agents import Agent
from runplane_durable.errors import AgentRefError
from runplane_durable.records import RunRecord
from runplane_durable.runtime.agent_refs import load_agents, ref_of, refs_of, resolve
from runplane_durable.runtime.remote_tools import remote_tools
from runplane_durable.worker.known import KnownAgents
from typer.testing import CliRunner

from runplane.cli import build_app


@pytest.fixture
def app_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A package `refapp_<n>` of the program's own code: agents defined in `refapp_<n>.agents`
    and re-exported by the package, a module importing one, and a module of no agents."""
    name = f"refapp_{abs(hash(tmp_path)) % 10**8}"
    root = tmp_path / name
    root.mkdir()
    files = {
        "__init__.py": "from .agents import triage\n",
        "agents.py": """
            from agents import Agent

            triage = Agent(name="triage")
            billing = Agent(name="billing")
            alias = billing
            not_an_agent = 42

            def build():
                return Agent(name="built")
        """,
        "main.py": "from .agents import triage\n",
        "empty.py": "x = 1\n",
        "tools.py": """
            from agents import function_tool
            from runplane_durable import remote

            @remote(queue="gpu")
            @function_tool
            def render(prompt: str) -> str:
                return prompt
        """,
        "broken.py": "raise RuntimeError('config missing')\n",
        "twins.py": """
            from agents import Agent

            one = Agent(name="twin")
            two = Agent(name="twin")
        """,
    }
    for file, text in files.items():
        (root / file).write_text(textwrap.dedent(text))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    for module in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
        del sys.modules[module]


def test_a_module_level_agent_is_stored_under_its_defining_module(app_package: str) -> None:
    module = __import__(f"{app_package}.main", fromlist=["triage"])
    agents_module = sys.modules[f"{app_package}.agents"]
    triage = agents_module.triage
    # Held by the package (re-export), its defining module and an importer: the longest name
    # first, then by attribute: the defining submodule, as a worker importing it knows it.
    assert refs_of(triage) == [
        f"{app_package}.agents:triage",
        f"{app_package}.main:triage",
        f"{app_package}:triage",
    ]
    assert ref_of(triage) == f"{app_package}.agents:triage"
    assert ref_of(agents_module.billing) == f"{app_package}.agents:alias"  # alias < billing
    assert ref_of(agents_module.build()) is None  # built in a function: known by name alone
    assert ref_of(Agent(name="local")) is None
    assert module.triage is triage


def test_a_policy_guarded_clone_is_stored_under_its_original_agent(app_package: str) -> None:
    """`runplane.policy.install` makes the facade run a clone, which no module holds: its runs
    are named by the module's agent, which a worker rebuilds and guards with its own policy."""
    import runplane.policy
    from runplane.policy import ApprovalPolicy

    triage = __import__(f"{app_package}.agents", fromlist=["triage"]).triage
    policy = ApprovalPolicy.from_toml('[[rules]]\nname = "all"\ntools = ["*"]\n')
    clone = runplane.policy.apply(triage, policy)
    assert clone is not triage
    assert ref_of(clone) == ref_of(triage) == f"{app_package}.agents:triage"


def test_load_agents_takes_a_module_or_one_attribute(app_package: str) -> None:
    every = load_agents(f"{app_package}.agents")
    assert sorted(every) == [
        f"{app_package}.agents:alias",
        f"{app_package}.agents:billing",
        f"{app_package}.agents:triage",
    ]
    assert resolve(f"{app_package}.agents:triage") is every[f"{app_package}.agents:triage"]


@pytest.mark.parametrize(
    ("ref", "problem"),
    [
        ("no_such_module_here", "no module named 'no_such_module_here' (looked in"),
        ("{pkg}.broken", "module '{pkg}.broken' does not import: RuntimeError: config missing"),
        ("{pkg}.agents:nobody", "module '{pkg}.agents' has no attribute 'nobody'"),
        ("{pkg}.agents:not_an_agent", "'not_an_agent' is a int, not an agents.Agent"),
        ("{pkg}.empty", "module '{pkg}.empty' defines no Agent at its top level"),
        ("{pkg}.agents:", "not an import reference"),
        ("a b", "not an import reference"),
    ],
)
def test_a_reference_that_names_no_agent_says_why(app_package: str, ref: str, problem: str) -> None:
    ref = ref.format(pkg=app_package)
    with pytest.raises(AgentRefError) as info:
        load_agents(ref)
    assert info.value.ref == ref
    assert problem.format(pkg=app_package) in info.value.problem


def _run(name: str, ref: str | None) -> RunRecord:
    return RunRecord(
        "r",
        name,
        "queued",
        {},
        {},
        0.0,
        0.0,
        None,
        None,
        None,
        0,
        0,
        0,
        0,
        0,
        0,
        None,
        None,
        None,
        agent_ref=ref,
    )


def test_a_worker_knows_its_agents_by_every_reference_and_by_name(app_package: str) -> None:
    known = KnownAgents.load([f"{app_package}.agents:triage", f"{app_package}.main"])
    triage = sys.modules[f"{app_package}.agents"].triage
    assert known.by_name == {"triage": triage}
    assert {f"{app_package}:triage", f"{app_package}.agents:triage"} <= set(known.by_ref)
    assert known.agent_for(_run("triage", f"{app_package}:triage")) is triage  # a re-export
    assert known.agent_for(_run("triage", None)) is triage  # no reference: by its name
    assert known.agent_for(_run("triage", "elsewhere:triage")) is None  # another program's
    assert known.agent_for(_run("billing", None)) is None
    # A reference to another agent under the name the run was stored with is not the run's.
    assert known.agent_for(_run("other", f"{app_package}.agents:triage")) is None


def test_two_agents_sharing_a_name_are_refused(app_package: str) -> None:
    with pytest.raises(AgentRefError, match=r"as the different agent .*twins:one"):
        KnownAgents.load([f"{app_package}.twins"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["no_such_module_here"], "no module named 'no_such_module_here'"),
        (["{pkg}.agents:not_an_agent"], "'not_an_agent' is a int, not an agents.Agent"),
        (["{pkg}.agents:nobody"], "has no attribute 'nobody'"),
        (["{pkg}.empty"], "defines no Agent at its top level and no remote tool"),
    ],
)
def test_runplane_worker_refuses_what_names_no_agent(
    app_package: str, args: list[str], message: str, tmp_path: Path
) -> None:
    argv = ["worker", *(a.format(pkg=app_package) for a in args), "--db", str(tmp_path / "x.db")]
    result = CliRunner().invoke(build_app(), argv)
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.replace("│", " ").split())
    assert "Invalid value for MODULE[:ATTR]" in text
    assert message.format(pkg=app_package) in text
    assert not (tmp_path / "x.db").exists()  # refused before any database is opened


def test_runplane_worker_needs_a_module(tmp_path: Path) -> None:
    result = CliRunner().invoke(build_app(), ["worker"])
    assert result.exit_code == 2
    assert "Missing argument 'MODULE[:ATTR]'" in " ".join(result.output.replace("│", " ").split())


def test_a_module_of_remote_tools_alone_is_a_worker_module(app_package: str) -> None:
    """`runplane worker tools --queue gpu`: a worker that only serves remote tool tasks."""
    known = KnownAgents.load([f"{app_package}.tools"])
    assert (known.by_name, known.by_ref) == ({}, {})
    assert [m.__name__ for m in known.modules] == [f"{app_package}.tools"]
    assert "render" in remote_tools("gpu")
    with pytest.raises(AgentRefError, match="defines no Agent at its top level and no remote"):
        KnownAgents.load([f"{app_package}.empty"])
