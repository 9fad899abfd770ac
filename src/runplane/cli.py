"""The `runplane` command. Backends add their own subcommands through the `runplane_cli` hook."""

from __future__ import annotations

import json
import sys
import warnings
from typing import Annotated, TextIO

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .errors import BrokenPluginWarning, RunplaneError
from .registry import BrokenPlugin, Registry, default_registry

__all__ = ["build_app", "main"]

err_console = Console(stderr=True)


def build_app(registry: Registry | None = None) -> typer.Typer:
    """The CLI with the core commands plus every plugin's; plugin load errors propagate."""
    reg = registry or default_registry()
    app = typer.Typer(
        name="runplane",
        help="Run OpenAI Agents SDK programs on any execution backend.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )

    @app.command("backends")
    def backends_command(
        as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    ) -> None:
        """List installed backends (name, distribution, version) and plugins that failed to load."""
        entries = sorted(reg.backends().values(), key=lambda e: e.name)
        broken = sorted(reg.broken(), key=lambda b: b.name)
        if as_json:
            rows = [
                {
                    "name": e.name,
                    "distribution": e.distribution,
                    "version": e.version,
                    "plugin": e.plugin,
                    "status": "ok",
                    "error": None,
                }
                for e in entries
            ]
            rows += [
                {
                    "name": b.name,
                    "distribution": b.distribution,
                    "version": b.version,
                    "plugin": b.name,
                    "status": "broken",
                    "error": _cause(b),
                }
                for b in broken
            ]
            typer.echo(json.dumps(rows, indent=2))
            return
        table = Table(title="runplane backends")
        for column in ("name", "distribution", "version", "status"):
            table.add_column(column, overflow="fold")
        for e in entries:
            table.add_row(e.name, e.distribution, e.version or "-", "ok")
        for b in broken:
            table.add_row(
                escape(b.name),
                escape(b.distribution),
                b.version or "-",
                escape(f"broken: {_cause(b)}"),
            )
        Console().print(table)
        if not entries and not broken:
            err_console.print("No backends installed: `pip install runplane-openai`.")
        for b in broken:
            err_console.print(
                f"[bold red]broken plugin:[/] {escape(str(b.error))}", highlight=False
            )

    @app.command("chat")
    def chat_command(
        backend: Annotated[
            str | None,
            typer.Option(help="Backend name (default: RUNPLANE_BACKEND, else openai)."),
        ] = None,
        model: Annotated[
            str | None, typer.Option(help="Model name (default: gpt-4.1-mini).")
        ] = None,
        base_url: Annotated[
            str | None,
            typer.Option(
                "--base-url", help="An OpenAI-compatible endpoint, e.g. http://127.0.0.1:8080/v1."
            ),
        ] = None,
        api: Annotated[
            str | None,
            typer.Option(help="responses or chat_completions (with --base-url: chat_completions)."),
        ] = None,
        system: Annotated[
            str, typer.Option(help="The system prompt.")
        ] = "You are a helpful assistant.",
        policy: Annotated[
            str | None,
            typer.Option(help="An approval policy TOML file: its calls are asked inline (y/n)."),
        ] = None,
        tools: Annotated[
            list[str] | None,
            typer.Option("--tools", help="MODULE:ATTR: a tool or a list of tools (repeatable)."),
        ] = None,
        conversation: Annotated[
            str | None,
            typer.Option(
                help="A conversation id (a backend that stores conversations resumes it)."
            ),
        ] = None,
        max_turns: Annotated[int, typer.Option(help="Model calls per prompt at most.")] = 10,
    ) -> None:
        """Chat with an agent in the terminal: streamed text, tools, usage, approvals inline."""
        if api is not None and api not in ("responses", "chat_completions"):
            raise typer.BadParameter(
                f"{api!r} is neither 'responses' nor 'chat_completions'", param_hint="--api"
            )
        from .host.chat import ChatConfig, main  # imports the SDK: only when chatting

        main(
            ChatConfig(
                backend=backend,
                model=model,
                base_url=base_url,
                api=api,
                system=system,
                policy=policy,
                tools=tuple(tools or ()),
                conversation=conversation,
                max_turns=max_turns,
            )
        )

    reg.hook.runplane_cli(app=app)
    return app


def _cause(plugin: BrokenPlugin) -> str:
    cause = plugin.error.cause
    return f"{type(cause).__name__}: {cause}"


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    """A broken plugin as one readable line on stderr, not Python's source-line format."""
    if issubclass(category, BrokenPluginWarning):
        err_console.print(
            f"[bold yellow]warning:[/] {escape(str(message))}", highlight=False, soft_wrap=True
        )
    else:
        _python_show_warning(message, category, filename, lineno, file, line)


_python_show_warning = warnings.showwarning


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: runplane's own errors become a message and exit code 2."""
    warnings.showwarning = _show_warning
    try:
        app = build_app()
        app(args=argv, prog_name="runplane", standalone_mode=True)
    except RunplaneError as exc:
        err_console.print(
            f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True
        )
        sys.exit(2)
