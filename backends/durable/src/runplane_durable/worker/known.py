"""The agents a worker knows: imported from the modules it was given, by reference and by name."""

from __future__ import annotations

import sys
import types
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from agents import Agent

from ..errors import AgentRefError
from ..records import RunRecord
from ..runtime.agent_refs import load_agents, parse_ref, refs_of
from ..runtime.remote_tools import remote_spec

__all__ = ["KnownAgents"]


@dataclass
class KnownAgents:
    """A worker's agents. A run is the worker's when its `agent_ref` is one of `by_ref` (every
    `module:attr` of this process that holds one of the agents, so a re-export counts), or,
    for a run stored without a reference (its agent was defined in `__main__`), when its agent
    name is one of `by_name`."""

    by_ref: dict[str, Agent[Any]] = field(default_factory=dict)
    by_name: dict[str, Agent[Any]] = field(default_factory=dict)
    modules: list[types.ModuleType] = field(default_factory=list)

    @classmethod
    def load(cls, specs: Sequence[str]) -> KnownAgents:
        """Import each "module" (all its top-level agents) or "module:attr" (one agent);
        AgentRefError for one that names no agent, or for two agents sharing a name."""
        known = cls()
        given: dict[str, Agent[Any]] = {}
        for spec in specs:
            module_name, attr = parse_ref(spec)
            try:
                given.update(load_agents(spec))
            except AgentRefError as exc:
                module = sys.modules.get(module_name)
                if attr is not None or module is None:
                    raise
                if not _defines_remote_tools(module):  # a module of remote tools alone is fine
                    raise AgentRefError(
                        ref=spec,
                        problem=f"module {module_name!r} defines no Agent at its top level and "
                        "no remote tool (runplane_durable.remote); name an agent with "
                        f"'{module_name}:ATTR', or give the module that defines the agents or "
                        "the remote tools",
                    ) from exc
            known.modules.append(sys.modules[module_name])
        for ref, agent in given.items():
            other = known.by_name.setdefault(agent.name, agent)
            if other is not agent:
                first = next(r for r, a in given.items() if a is other)
                raise AgentRefError(
                    ref=ref,
                    problem=f"its agent is named {agent.name!r}, as the different agent {first} "
                    "is; a worker knows a run stored without a reference by its agent's name, "
                    "so two of its agents cannot share one. Rename one, or give the worker "
                    "one of them (MODULE:ATTR)",
                )
        for agent in known.by_name.values():
            for ref in refs_of(agent, program_only=False):
                known.by_ref.setdefault(ref, agent)
        known.by_ref.update(given)
        return known

    def agent_for(self, run: RunRecord) -> Agent[Any] | None:
        """The agent that executes `run`, or None if it is not one of this worker's."""
        if run.agent_ref is not None:
            agent = self.by_ref.get(run.agent_ref)
            return agent if agent is not None and agent.name == run.agent_name else None
        return self.by_name.get(run.agent_name)


def _defines_remote_tools(module: types.ModuleType) -> bool:
    return any(remote_spec(value) is not None for value in vars(module).values())
