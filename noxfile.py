"""Every task of the project. `python3 -m nox` runs what CI runs; `nox -l` lists the rest."""

from __future__ import annotations

import os
import shutil

import nox

nox.options.default_venv_backend = "venv"
nox.options.sessions = ["lint", "types", "tests", "conformance", "sdk_tests", "realmodel"]
nox.options.error_on_missing_interpreters = True

# Our two backends and the suite, each installed as its own distribution, exactly as users get
# them: backends are found only through their entry points.
PROJECT = [
    "-e",
    ".[test]",
    "-e",
    "backends/openai",
    "-e",
    "backends/durable[postgres]",
    "-e",
    "conformance",
]
TEST_ENV = {"OPENAI_AGENTS_DISABLE_TRACING": "1", "PYTHONDONTWRITEBYTECODE": "1"}
TYPED_SOURCES = ["src", "backends/openai/src", "backends/durable/src", "conformance/src"]


def _install(session: nox.Session) -> None:
    session.install(*PROJECT)


def _ensure_build_tools(session: nox.Session) -> None:
    """The local model server is compiled from source once per machine: it needs a C++ toolchain."""
    missing = [tool for tool in ("cmake", "c++", "make") if shutil.which(tool) is None]
    if not missing:
        return
    if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        session.run("apt-get", "update", "-q", external=True)
        session.run("apt-get", "install", "-y", "-q", "build-essential", "cmake", external=True)
    else:
        session.error(f"missing {', '.join(missing)}: install build-essential and cmake")


@nox.session
def tests(session: nox.Session) -> None:
    """The project's own tests (core, backends, conformance meta-tests, third-party example)."""
    _install(session)
    session.run("pytest", "-m", "not realmodel", *session.posargs, env=TEST_ENV)


@nox.session
def realmodel(session: nox.Session) -> None:
    """End-to-end tests against a real model served locally (built and fetched once, cached)."""
    _ensure_build_tools(session)
    _install(session)
    session.run("runplane", "model", "fetch", env=TEST_ENV)
    session.run("pytest", "-m", "realmodel", "tests/e2e", *session.posargs, env=TEST_ENV)


@nox.session
def conformance(session: nox.Session) -> None:
    """The conformance suite against every backend this repository publishes."""
    _install(session)
    for backend in os.environ.get("RUNPLANE_CONFORMANCE_BACKENDS", "openai,durable").split(","):
        session.run(
            "pytest",
            "--pyargs",
            "runplane_conformance",
            "--runplane-backend",
            backend,
            "-p",
            "no:cacheprovider",
            *session.posargs,
            env=TEST_ENV,
        )


@nox.session
def sdk_tests(session: nox.Session) -> None:
    """The SDK's own runner tests, unswapped and with agents.Runner swapped for runplane's."""
    _install(session)
    for backend in os.environ.get("RUNPLANE_SDK_SWAP_BACKENDS", "openai,durable").split(","):
        session.run(
            "python", "tests/sdk_swap/run.py", "--backend", backend, *session.posargs, env=TEST_ENV
        )


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff~=0.17.0")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def types(session: nox.Session) -> None:
    _install(session)
    session.install("mypy~=2.4")
    session.run("mypy", *TYPED_SOURCES)


@nox.session
def demo(session: nox.Session) -> None:
    """The main job: a durable run streamed live, killed with SIGKILL, resumed from its journal.

    It uses OpenAI with OPENAI_API_KEY, else a real model served locally (built and fetched the
    first time); `nox -s demo -- --scripted` plays the model from a script instead.
    """
    if "--scripted" not in session.posargs and not os.environ.get("OPENAI_API_KEY"):
        _ensure_build_tools(session)
    _install(session)
    session.run("runplane", "demo", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks as ratios against the SDK's own runner (not in the default list).

    `nox -s bench` runs bench/durable.py: the durable backend on SQLite and PostgreSQL (time and
    CPU per step, opening a run, memory at 1,000 runs); `nox -s bench -- --quick` passes options
    to it. `nox -s bench -- runner_overhead --turns 10,100` (or `instructions`, or `startup`:
    how long `runplane` commands take to start) runs that bench instead. RUNPLANE_BENCH_PG names
    the PostgreSQL database (default: a fresh one on 127.0.0.1:5432, dropped after).
    """
    _install(session)
    args = list(session.posargs)
    script = "durable"
    if args and args[0] in ("durable", "runner_overhead", "instructions", "startup"):
        script = args.pop(0)
    session.run("python", f"bench/{script}.py", *args, env=TEST_ENV)
