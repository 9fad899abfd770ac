"""The scripted programs whose journals are kept as golden files (tests/durable/engine/golden/).

`golden_record.py` runs them to write the files; `tests/durable/engine/test_golden_journals.py` runs
them again over each file and checks that today's code replays what an earlier version recorded.
Both must build the very same agents: a model request's fingerprint covers an agent's name,
instructions, tools (name, description, parameter schema), output type and handoffs, so editing a
program here makes its golden file diverge. Change a program only together with re-recording its
file (and say why in the commit): the point of a golden file is that it is not re-recorded when
the code under test changes.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import pydantic
import pydantic_core
from agents import Agent, function_tool
from agents.models.interface import Model
from agents.testing import ModelStep, assistant_message, function_call
from agents.tool import FunctionTool
from agents.usage import Usage

__all__ = [
    "CRASH_EXIT",
    "PROGRAMS",
    "Invoice",
    "Ledger",
    "LineItem",
    "Program",
    "Stop",
    "ToolCalledOnReplay",
    "describe_event",
    "summary",
]

CRASH_EXIT = 137  # what the recording process of a crashed program exits with, as kill -9 would
Models = Callable[[str], Model]  # agent name -> the model that agent runs on


class Stop(BaseException):
    """A tool's process stopping mid-run: escapes the SDK (no failure text), fails the attempt."""


class ToolCalledOnReplay(BaseException):
    """A replay ran a tool it should have taken from the journal (a BaseException: the SDK would
    otherwise hand an Exception back to the model as the tool's failure text)."""


@dataclass
class Ledger:
    """Every real tool execution of one process, and what the tools may do there."""

    allowed: frozenset[str] | None = None  # None: every tool may run (recording)
    stop_at: str | None = None  # this tool raises Stop, once
    crash_at: str | None = None  # this tool ends the process at once (os._exit), like kill -9
    calls: list[str] = field(default_factory=list)

    def call(self, tool: str, detail: str) -> None:
        if self.crash_at == tool:
            os._exit(CRASH_EXIT)  # no finally, no lease given back: the run is left unfinished
        if self.allowed is not None and tool not in self.allowed:
            raise ToolCalledOnReplay(f"tool {tool}({detail}) ran during a replay")
        self.calls.append(f"{tool}:{detail}")
        if self.stop_at == tool:
            self.stop_at = None
            raise Stop(tool)


class LineItem(pydantic.BaseModel):
    sku: str
    cents: int


class Invoice(pydantic.BaseModel):
    customer: str
    items: list[LineItem]
    total_cents: int


@dataclass(frozen=True)
class Program:
    """One recorded run: its agents, the model steps each agent is scripted with, how it ran."""

    name: str
    description: str
    prompt: str
    agents: Callable[[Models, Ledger], dict[str, Agent[Any]]]  # the starting agent first
    script: Callable[[], dict[str, list[Any]]]  # agent name -> its model steps, in order
    mode: Literal["run", "run_streamed"] = "run"
    stop_at: str | None = None  # recorded as a failed attempt, then resumed to the end
    crash_at: str | None = None  # recorded unfinished: the process died in this tool
    # Summary keys today's replay gets wrong (a known bug, named where the program is defined):
    # the replay test compares the rest, and a strict xfail test all of it.
    known_differences: tuple[str, ...] = ()
    # The schema versions whose files show them: those recorded before the fix, which lack
    # what the fixed replay reads (files recorded after it must replay without a difference).
    known_in_versions: tuple[int, ...] = (1,)

    def differences_in(self, schema_version: int) -> tuple[str, ...]:
        return self.known_differences if schema_version in self.known_in_versions else ()

    @property
    def run_id(self) -> str:
        return f"golden-{self.name}"


def _usage(n: int) -> Usage:
    return Usage(requests=1, input_tokens=10 * n, output_tokens=n, total_tokens=11 * n)


def _step(n: int, *output: Any) -> ModelStep:
    return ModelStep(output=list(output), usage=_usage(n), response_id=f"resp-{n}")


def _lookup_tool(ledger: Ledger) -> FunctionTool:
    @function_tool
    def lookup(key: str) -> str:
        """Look a key up in the catalogue."""
        ledger.call("lookup", key)
        return f"value-of-{key}"

    return lookup


# -- function tools, two of them called in parallel ------------------------------------------------


def _tools_agents(models: Models, ledger: Ledger) -> dict[str, Agent[Any]]:
    @function_tool
    def stock(sku: str, warehouse: int = 1) -> dict[str, Any]:
        """How many of a SKU a warehouse holds."""
        ledger.call("stock", f"{sku}@{warehouse}")
        return {"sku": sku, "warehouse": warehouse, "count": len(sku) * warehouse}

    clerk = Agent(
        name="clerk",
        instructions="Look things up, then answer.",
        model=models("clerk"),
        tools=[_lookup_tool(ledger), stock],
    )
    return {"clerk": clerk}


def _tools_script() -> dict[str, list[Any]]:
    return {
        "clerk": [
            _step(
                1,
                function_call("lookup", {"key": "a"}, call_id="call-a"),
                function_call("stock", {"sku": "ab-1", "warehouse": 2}, call_id="call-s"),
            ),
            _step(2, function_call("lookup", {"key": "b"}, call_id="call-b")),
            _step(3, assistant_message("a and b looked up; 8 of ab-1 in stock")),
        ]
    }


# -- a handoff ---------------------------------------------------------------------------------


def _handoff_agents(models: Models, ledger: Ledger) -> dict[str, Agent[Any]]:
    @function_tool
    def refund(order: str) -> str:
        """Refund an order."""
        ledger.call("refund", order)
        return f"refunded {order}"

    billing = Agent(
        name="billing",
        instructions="Handle refunds.",
        handoff_description="Refunds and invoices.",
        model=models("billing"),
        tools=[refund],
    )
    triage = Agent(
        name="triage",
        instructions="Send billing questions to billing.",
        model=models("triage"),
        handoffs=[billing],
    )
    return {"triage": triage, "billing": billing}


def _handoff_script() -> dict[str, list[Any]]:
    return {
        "triage": [_step(1, function_call("transfer_to_billing", {}, call_id="call-h"))],
        "billing": [
            _step(2, function_call("refund", {"order": "o-7"}, call_id="call-r")),
            _step(3, assistant_message("Order o-7 is refunded.")),
        ],
    }


# -- structured output; tools returning a pydantic model and a tuple --------------------------


def _structured_agents(models: Models, ledger: Ledger) -> dict[str, Agent[Any]]:
    @function_tool
    def price(sku: str) -> LineItem:
        """The price of a SKU."""
        ledger.call("price", sku)
        return LineItem(sku=sku, cents=250 * len(sku))

    @function_tool
    def dimensions(sku: str) -> tuple[int, int]:
        """Width and height of a SKU, in millimetres."""
        ledger.call("dimensions", sku)
        return (len(sku) * 10, 40)

    invoicer = Agent(
        name="invoicer",
        instructions="Price the items and write the invoice.",
        model=models("invoicer"),
        tools=[price, dimensions],
        output_type=Invoice,
    )
    return {"invoicer": invoicer}


_INVOICE = Invoice(
    customer="ACME",
    items=[LineItem(sku="bolt", cents=1000), LineItem(sku="nut", cents=750)],
    total_cents=1750,
)


def _structured_script() -> dict[str, list[Any]]:
    return {
        "invoicer": [
            _step(
                1,
                function_call("price", {"sku": "bolt"}, call_id="call-p1"),
                function_call("price", {"sku": "nut"}, call_id="call-p2"),
                function_call("dimensions", {"sku": "bolt"}, call_id="call-d"),
            ),
            _step(2, assistant_message(_INVOICE.model_dump_json())),
        ]
    }


# -- a streamed run ---------------------------------------------------------------------------


def _streamed_agents(models: Models, ledger: Ledger) -> dict[str, Agent[Any]]:
    narrator = Agent(
        name="narrator",
        instructions="Look it up, then tell the story.",
        model=models("narrator"),
        tools=[_lookup_tool(ledger)],
    )
    return {"narrator": narrator}


def _streamed_script() -> dict[str, list[Any]]:
    return {
        "narrator": [
            _step(1, function_call("lookup", {"key": "dragon"}, call_id="call-l")),
            _step(2, assistant_message("Once upon a time, value-of-dragon.")),
        ]
    }


# -- a crash: the process died inside a tool, the run is left unfinished ----------------------


def _crashed_agents(models: Models, ledger: Ledger) -> dict[str, Agent[Any]]:
    @function_tool
    def charge(card: str, cents: int) -> str:
        """Charge a card."""
        ledger.call("charge", f"{card}:{cents}")
        return f"charged {cents} to {card}"

    cashier = Agent(
        name="cashier",
        instructions="Look the price up, charge it, confirm.",
        model=models("cashier"),
        tools=[_lookup_tool(ledger), charge],
    )
    return {"cashier": cashier}


def _crashed_script() -> dict[str, list[Any]]:
    return {
        "cashier": [
            _step(1, function_call("lookup", {"key": "price"}, call_id="call-l")),
            _step(2, function_call("charge", {"card": "4242", "cents": 990}, call_id="call-c")),
            _step(3, assistant_message("Charged 990 to card 4242.")),
        ]
    }


# -- a nested run: Agent.as_tool, a run of its own under an id derived from the call ----------


def _nested_agents(models: Models, ledger: Ledger) -> dict[str, Agent[Any]]:
    researcher = Agent(
        name="researcher",
        instructions="Research the question.",
        model=models("researcher"),
        tools=[_lookup_tool(ledger)],
    )
    editor = Agent(
        name="editor",
        instructions="Ask the researcher, then write it up.",
        model=models("editor"),
        tools=[researcher.as_tool(tool_name="research", tool_description="Ask the researcher.")],
    )
    return {"editor": editor, "researcher": researcher}


def _nested_script() -> dict[str, list[Any]]:
    return {
        "editor": [
            _step(1, function_call("research", {"input": "what is x?"}, call_id="call-n")),
            _step(4, assistant_message("Write-up: x is value-of-x.")),
        ],
        "researcher": [
            _step(2, function_call("lookup", {"key": "x"}, call_id="call-x")),
            _step(3, assistant_message("x is value-of-x")),
        ],
    }


# -- a tool that raised: the model was shown the SDK's failure text -------------------------


def _tool_error_agents(models: Models, ledger: Ledger) -> dict[str, Agent[Any]]:
    @function_tool
    def pay(card: str) -> str:
        """Pay with a card."""
        ledger.call("pay", card)
        raise ValueError(f"card {card} declined")

    payer = Agent(
        name="payer",
        instructions="Pay, and say what happened.",
        model=models("payer"),
        tools=[pay],
    )
    return {"payer": payer}


def _tool_error_script() -> dict[str, list[Any]]:
    return {
        "payer": [
            _step(1, function_call("pay", {"card": "0000"}, call_id="call-p")),
            _step(2, assistant_message("The card 0000 was declined.")),
        ]
    }


# -- attempts: the first one failed inside a tool, the second resumed and finished ------------


def _attempts_agents(models: Models, ledger: Ledger) -> dict[str, Agent[Any]]:
    @function_tool
    def ship(parcel: str) -> str:
        """Ship a parcel."""
        ledger.call("ship", parcel)
        return f"shipped {parcel}"

    shipper = Agent(
        name="shipper",
        instructions="Look the address up, ship, confirm.",
        model=models("shipper"),
        tools=[_lookup_tool(ledger), ship],
    )
    return {"shipper": shipper}


def _attempts_script() -> dict[str, list[Any]]:
    return {
        "shipper": [
            _step(1, function_call("lookup", {"key": "address"}, call_id="call-l")),
            _step(2, function_call("ship", {"parcel": "p-1"}, call_id="call-s")),
            _step(3, assistant_message("Parcel p-1 shipped to value-of-address.")),
        ]
    }


PROGRAMS: dict[str, Program] = {
    p.name: p
    for p in [
        Program(
            "tools",
            "function tools, two of them called in parallel in one model response",
            "Look a and b up, and check the stock of ab-1.",
            _tools_agents,
            _tools_script,
        ),
        Program(
            "handoff",
            "a handoff from triage to billing, which then calls a tool",
            "I want a refund for order o-7.",
            _handoff_agents,
            _handoff_script,
        ),
        Program(
            "structured",
            "output_type a pydantic model; tools returning a pydantic model and a tuple",
            "Invoice ACME for a bolt and a nut.",
            _structured_agents,
            _structured_script,
        ),
        Program(
            "streamed",
            "a run through run_streamed, with a tool call",
            "Tell me about the dragon.",
            _streamed_agents,
            _streamed_script,
            mode="run_streamed",
        ),
        Program(
            "crashed",
            "the process died (os._exit) inside a tool: unfinished, its lease still held",
            "Charge the price to card 4242.",
            _crashed_agents,
            _crashed_script,
            crash_at="charge",
        ),
        Program(
            "nested",
            "a tool that is an agent (Agent.as_tool): a nested run of its own",
            "Write up what x is.",
            _nested_agents,
            _nested_script,
            # The SDK adds the nested run's usage to the outer run's (they share one Usage); a
            # replay takes the tool's output from the journal, never runs the nested run, and
            # so returns the outer run's usage without the nested one's (2 requests, not 4).
            known_differences=("usage",),
        ),
        Program(
            "tool_error",
            "a tool that raised: the model saw the SDK's failure text",
            "Pay with card 0000.",
            _tool_error_agents,
            _tool_error_script,
        ),
        Program(
            "attempts",
            "two attempts: the first failed inside a tool (Stop), the second resumed and finished",
            "Ship parcel p-1.",
            _attempts_agents,
            _attempts_script,
            stop_at="ship",
        ),
    ]
}


def _jsonable(value: Any) -> Any:
    # Without the fields left None: a newer SDK adding an optional field to an item or to usage
    # is not a replay that changed, and must not fail every golden file.
    return pydantic_core.to_jsonable_python(value, serialize_unknown=True, exclude_none=True)


def summary(result: Any, stream: list[str] | None = None) -> dict[str, Any]:
    """What a run returned, as JSON: its final output, its new items, its usage and (streamed)
    the events its stream gave. A replay must give exactly this."""
    out: dict[str, Any] = {
        "final_output": _jsonable(result.final_output),
        "final_output_type": type(result.final_output).__qualname__,
        "last_agent": result.last_agent.name,
        "new_items": [
            {"type": type(i).__name__, "agent": i.agent.name, "raw_item": _jsonable(i.raw_item)}
            for i in result.new_items
        ],
        "usage": _jsonable(dataclasses.asdict(result.context_wrapper.usage)),
    }
    if stream is not None:
        out["stream"] = stream
    return out


def describe_event(event: Any) -> str:
    """One streamed event, as the summary keeps it."""
    if event.type == "raw_response_event":
        return f"raw {event.data.type}"
    if event.type == "run_item_stream_event":
        return f"item {event.name}"
    return f"agent {event.new_agent.name}"
