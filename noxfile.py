"""Every task of the project. `nox` runs what CI runs (see .ci/run); `nox -l` lists the rest."""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import nox

sys.path.insert(0, str(Path(__file__).parent / ".ci"))
from shared_env import SharedEnv, fingerprint  # the .ci directory, just above

nox.options.default_venv_backend = "venv"
# sdk_tests and server_mode last: they add the SDK's test dependencies to the shared environment
# (see below). CI runs every one of these: .ci/run is `nox` with no arguments.
nox.options.sessions = [
    "lint",
    "types",
    "tests",
    "conformance",
    "realmodel",
    "ui",
    "sdk_tests",
    "server_mode",
]
nox.options.error_on_missing_interpreters = True

ROOT = Path(__file__).parent
# Our two backends, the local model and the suite, each installed as its own distribution, exactly
# as users get them: plugins are found only through their entry points. `[demo]` is the durable
# extra that asks for the local model; `-e localmodel` makes pip take it from this clone.
PROJECT = [
    "-e",
    ".[test]",
    "-e",
    "backends/openai",
    "-e",
    "backends/durable[postgres,demo,test]",
    "-e",
    "localmodel",
    "-e",
    "conformance",
]
TOOLS = ["mypy~=2.4"]
PYPROJECTS = [
    "pyproject.toml",
    "backends/openai/pyproject.toml",
    "backends/durable/pyproject.toml",
    "localmodel/pyproject.toml",
    "conformance/pyproject.toml",
]
TEST_ENV = {"OPENAI_AGENTS_DISABLE_TRACING": "1", "PYTHONDONTWRITEBYTECODE": "1"}
# The tests mostly wait (subprocesses, servers, PostgreSQL), so one process leaves a core idle; two
# workers on this 2-core machine kind keep the load near the cores (more made timing-bound tests
# fail under load). RUNPLANE_TEST_WORKERS overrides (`auto`, `0` for one process, ...).
TEST_WORKERS = os.environ.get("RUNPLANE_TEST_WORKERS", "2")
# Backends the conformance session also checks against the durability profile.
DURABLE_BACKENDS = {"durable"}
TYPED_SOURCES = [
    "src",
    "backends/openai/src",
    "backends/durable/src",
    "localmodel/src",
    "conformance/src",
]
# Every session but lint runs in this one environment (venv_backend="none" below): the project is
# installed once per change of a pyproject.toml, not once per session.
SHARED = SharedEnv(ROOT / ".nox" / "_project")


def _project(session: nox.Session, *, extends: bool = False) -> SharedEnv:
    """The shared environment, (re)built from nothing when its stamp does not match."""
    stamp = fingerprint(ROOT, PYPROJECTS, [*PROJECT, *TOOLS])
    where = SHARED.location.relative_to(ROOT)
    why = SHARED.stale_because(stamp, accept_extended=extends)
    if why is None:
        session.log(f"reusing {where}: the project is installed for these pyproject.toml files")
    else:
        session.log(
            f"installing runplane's five distributions (editable) into {where} ({why}): "
            "about 1 to 2 minutes, then later sessions reuse it"
        )
        started = time.monotonic()
        shutil.rmtree(SHARED.location, ignore_errors=True)
        session.run(sys.executable, "-m", "venv", str(SHARED.location), external=True)
        pip = [SHARED.executable("python"), "-m", "pip", "install", "-q"]
        session.run(*pip, *PROJECT, *TOOLS, external=True)
        SHARED.mark_installed(stamp)
        session.log(f"installed in {time.monotonic() - started:.0f} s")
    if extends:
        SHARED.mark_extended()
    return SHARED


def _run(
    session: nox.Session, env: SharedEnv, program: str, *args: str, activate: bool = True
) -> None:
    """Run one of the shared environment's commands, by default as if it were activated."""
    extra = env.activation() if activate else {}
    session.run(env.executable(program), *args, env={**TEST_ENV, **extra}, external=True)


@nox.session(venv_backend="none")
def tests(session: nox.Session) -> None:
    """The project's own tests (core, backends, conformance meta-tests, third-party example)."""
    env = _project(session)
    # The web UI's browser tests run in `ui`, which installs Chromium first. The slowest tests
    # are listed at the end, so CI's log says where its time goes. TEST_WORKERS pytest-xdist
    # workers, each taking whole files (their module fixtures and caches stay one per file);
    # `nox -s tests -- -n 0` runs them in one process (docs/development.md, Tests).
    marks = "not realmodel and not browser"
    workers = ["-n", TEST_WORKERS, "--dist", "loadfile"]
    _run(session, env, "pytest", "-m", marks, *workers, "--durations=25", *session.posargs)


@nox.session(venv_backend="none")
def realmodel(session: nox.Session) -> None:
    """End-to-end tests against a real model served locally (built and fetched once, cached)."""
    env = _project(session)
    # As root on Debian, `runplane model fetch` installs build-essential and cmake itself.
    _run(session, env, "runplane", "model", "fetch")
    _run(session, env, "pytest", "-m", "realmodel", "tests/e2e", *session.posargs)


@nox.session(venv_backend="none")
def conformance(session: nox.Session) -> None:
    """The conformance suite against every backend this repository publishes; the durable one
    also against the durability profile (`--runplane-durable`)."""
    env = _project(session)
    for backend in os.environ.get("RUNPLANE_CONFORMANCE_BACKENDS", "openai,durable").split(","):
        profile = ["--runplane-durable"] if backend in DURABLE_BACKENDS else []
        _run(
            session,
            env,
            "pytest",
            "--pyargs",
            "runplane_conformance",
            "--runplane-backend",
            backend,
            *profile,
            "-p",
            "no:cacheprovider",
            *session.posargs,
        )


@nox.session(venv_backend="none")
def sdk_tests(session: nox.Session) -> None:
    """The SDK's own runner tests, unswapped and with agents.Runner swapped for runplane's.

    run.py pip-installs the SDK's test dependencies, so the shared environment is marked
    extended: the next session that needs the project alone rebuilds it first.
    """
    env = _project(session, extends=True)
    for backend in os.environ.get("RUNPLANE_SDK_SWAP_BACKENDS", "openai,durable").split(","):
        _run(
            session, env, "python", "tests/sdk_swap/run.py", "--backend", backend, *session.posargs
        )


@nox.session(venv_backend="none")
def server_mode(session: nox.Session) -> None:
    """The durable backend in server mode: the conformance suite (with its durability profile,
    `--runplane-durable`) and the SDK's own runner tests with RUNPLANE_SERVER_URL pointing at a
    `runplane server` on a fresh SQLite database. The kill -9 tests
    run in both modes in `tests`. Like sdk_tests, it installs the SDK's test dependencies, so
    it marks the shared environment extended. `nox -s server_mode -- ARGS` passes ARGS to
    tests/sdk_swap/run.py.
    """
    env = _project(session, extends=True)
    serve = ["tests/support/with_server.py", "--"]
    conformance = ["pytest", "--pyargs", "runplane_conformance", "--runplane-backend", "durable"]
    # With the durability profile: runs killed -9 at every step boundary behind the server.
    _run(
        session, env, "python", *serve, *conformance, "--runplane-durable", "-p", "no:cacheprovider"
    )
    swap = ["python", "tests/sdk_swap/run.py", "--backend", "durable", *session.posargs]
    _run(session, env, "python", *serve, *swap)


# What the web UI's browser tests drive (tests/durable/ui): Debian's packages.
CHROMIUM = ("/usr/bin/chromium", "/usr/bin/chromedriver")
CHROMIUM_PACKAGES = ["chromium", "chromium-driver"]


def _install_chromium(session: nox.Session) -> None:
    """Debian's chromium and chromium-driver, when either is missing (as root, with apt)."""
    missing = [path for path in CHROMIUM if not Path(path).exists()]
    if not missing:
        session.log(f"found {' and '.join(CHROMIUM)}")
        return
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        session.error(
            f"{', '.join(missing)} missing, and they cannot be installed here "
            f"({'apt-get is not available' if apt is None else 'not running as root'}): "
            f"install Debian's {' and '.join(CHROMIUM_PACKAGES)} "
            "(apt-get install -y chromium chromium-driver), then run `nox -s ui` again"
        )
    session.log(
        f"{', '.join(missing)} missing: installing {' '.join(CHROMIUM_PACKAGES)} with apt-get "
        "(about 1 to 3 minutes, once per machine)"
    )
    started = time.monotonic()
    quiet = {"DEBIAN_FRONTEND": "noninteractive"}
    session.run(apt, "update", "-q", external=True, env=quiet)
    session.run(apt, "install", "-y", "-q", *CHROMIUM_PACKAGES, external=True, env=quiet)
    session.log(f"installed in {time.monotonic() - started:.0f} s")


@nox.session(venv_backend="none")
def ui(session: nox.Session) -> None:
    """The web UI in a real headless Chromium (the `browser` tests of tests/durable/ui; its
    other tests run in `tests`): Debian's chromium and chromium-driver are installed first when
    missing. Screenshots land in .ci/artifacts/ui/ (CI keeps them)."""
    _install_chromium(session)
    env = _project(session)
    artifacts = ROOT / ".ci" / "artifacts" / "ui"
    shutil.rmtree(artifacts, ignore_errors=True)
    session.run(
        env.executable("pytest"),
        "-m",
        "browser",
        "tests/durable/ui",
        *session.posargs,
        env={
            **TEST_ENV,
            **env.activation(),
            "RUNPLANE_UI_REQUIRE_BROWSER": "1",  # a missing browser fails, never skips
            "RUNPLANE_UI_ARTIFACTS": str(artifacts),
        },
        external=True,
    )
    session.log(f"screenshots in {artifacts.relative_to(ROOT)}/")


@nox.session(reuse_venv=True)
def lint(session: nox.Session) -> None:
    """ruff alone, in its own small venv: it needs nothing of the project installed."""
    session.install("ruff~=0.17.0")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(venv_backend="none")
def types(session: nox.Session) -> None:
    env = _project(session)
    _run(session, env, "mypy", *TYPED_SOURCES)


@nox.session(venv_backend="none")
def demo(session: nox.Session) -> None:
    """The main job: a durable run streamed live, killed with SIGKILL, resumed from its journal.

    It uses OpenAI with OPENAI_API_KEY, else a real model served locally (built and fetched the
    first time); `nox -s demo -- --scripted` plays the model from a script instead.
    """
    env = _project(session)
    # Not activated: the user's shell is not, so the demo must print the commands it ends with
    # as .nox/_project/bin/runplane, which works pasted there, not as a bare `runplane`.
    _run(session, env, "runplane", "demo", *session.posargs, activate=False)


@nox.session(venv_backend="none")
def bench(session: nox.Session) -> None:
    """Benchmarks as ratios against the SDK's own runner (not in the default list).

    `nox -s bench` runs bench/durable.py: the durable backend on SQLite and PostgreSQL (time and
    CPU per step, opening a run, memory at 1,000 runs); `nox -s bench -- --quick` passes options
    to it. `nox -s bench -- runner_overhead --turns 10,100` (or `instructions`, or `startup`:
    how long `runplane` commands take to start; or `server`: the durable backend through a
    `runplane server`, one run at a time; or `server_load`: concurrent runs through one and two
    servers) runs that bench instead. RUNPLANE_BENCH_PG names
    the PostgreSQL database (default: a fresh one on 127.0.0.1:5432, dropped after).
    """
    env = _project(session)
    args = list(session.posargs)
    script = "durable"
    benches = ("durable", "runner_overhead", "instructions", "startup", "server", "server_load")
    if args and args[0] in benches:
        script = args.pop(0)
    _run(session, env, "python", f"bench/{script}.py", *args)
