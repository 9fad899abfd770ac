"""The pytest plugin: `pytest --pyargs runplane_conformance --runplane-backend NAME`.

pytest loads this module in every run of every project that has runplane-conformance installed
(the `pytest11` entry point), so it stays inert until the suite's own tests are collected: it only
adds options and a marker, imports neither runplane nor the SDK, and registers its failure summary
only when there is something to summarise.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Generator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import pytest

from .requirements import MARKER, REQUIREMENTS

if TYPE_CHECKING:
    from runplane import BackendRunner

__all__ = ["ConformanceSettings"]

SUITE_DIR = Path(__file__).resolve().parent
DURABILITY_MODULE = "test_durability.py"  # the durability profile: run with --runplane-durable
BACKEND_FIXTURE = "runplane_backend"
DOCS = "docs/conformance.md in the runplane repository"

# Helpers whose asserts should explain themselves like the tests' own.
pytest.register_assert_rewrite("runplane_conformance._support", "runplane_conformance._scripts")


@dataclasses.dataclass(frozen=True)
class ConformanceSettings:
    """The suite's knobs, read from the command line."""

    parity_examples: int
    timeout: float
    durable: bool = False
    durable_examples: int = 6


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("runplane", "runplane conformance suite (runplane-conformance)")
    group.addoption(
        "--runplane-backend",
        action="append",
        default=[],
        dest="runplane_backends",
        metavar="NAME",
        help="runplane backend to check; repeat to check several (each test runs once per "
        "backend). Required when the runplane_conformance tests are collected.",
    )
    group.addoption(
        "--runplane-parity-examples",
        type=int,
        default=25,
        dest="runplane_parity_examples",
        metavar="N",
        help="generated scripts per parity test, on top of the fixed examples; 0 runs only the "
        "fixed examples (default: 25).",
    )
    group.addoption(
        "--runplane-timeout",
        type=float,
        default=10.0,
        dest="runplane_timeout",
        metavar="SECONDS",
        help="how long run() or run_streamed() may take before the test fails instead of "
        "hanging; streaming tests let a tool wait half of it for the consumer (default: 10).",
    )
    group.addoption(
        "--runplane-durable",
        action="store_true",
        default=False,
        dest="runplane_durable",
        help="also check the durability profile (DUR-*): runs killed with SIGKILL at every step "
        "boundary and resumed, in real processes. For durable backends.",
    )
    group.addoption(
        "--runplane-durable-examples",
        type=int,
        default=6,
        dest="runplane_durable_examples",
        metavar="N",
        help="generated scripts (each killed at a drawn step) per backend in the durability "
        "profile, on top of the fixed script killed at every step; 0 runs only the fixed one "
        "(default: 6).",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(*ids): the runplane conformance requirement(s) a test checks "
        f"(listed in {DOCS}).",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """One test per named backend, with the backend name in the test id."""
    if BACKEND_FIXTURE not in metafunc.fixturenames:
        return
    names = _backend_names(metafunc.config)
    if not names:
        return  # suite tests: pytest_collection_modifyitems raises the usage error
    metafunc.parametrize(BACKEND_FIXTURE, names, ids=names, indirect=True, scope="session")


@pytest.fixture(scope="session")
def runplane_backend(request: pytest.FixtureRequest) -> type[BackendRunner]:
    """The runner class (`runplane.runner(name)`) of the backend under test."""
    name = getattr(request, "param", None)
    if name is None:
        pytest.fail(_no_backend_message(), pytrace=False)
    import runplane

    return runplane.runner(name)


@pytest.fixture(scope="session")
def runplane_settings(pytestconfig: pytest.Config) -> ConformanceSettings:
    return _settings(pytestconfig)


@pytest.hookimpl(trylast=True)  # after -k/-m deselection: only what will run counts
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Check the command line and the suite's markers, but only when suite tests are collected."""
    suite_items = [item for item in items if _in_suite(getattr(item, "module", None))]
    if not suite_items:
        return
    if not config.getoption("runplane_durable"):  # the profile is opt-in
        profile = [i for i in suite_items if _in_profile(getattr(i, "module", None))]
        if profile:
            config.hook.pytest_deselected(items=profile)
            items[:] = [i for i in items if i not in profile]
            suite_items = [i for i in suite_items if i not in profile]
        if not suite_items:
            return
    names = _backend_names(config)
    if not names:
        raise pytest.UsageError(_no_backend_message())
    _settings(config)
    _check_backends(names)
    tracked: dict[str, tuple[str, tuple[str, ...]]] = {}
    for item in suite_items:
        ids = tuple(str(i) for mark in item.iter_markers(MARKER) for i in mark.args)
        unknown = [i for i in ids if i not in REQUIREMENTS]
        if not ids or unknown:
            raise pytest.UsageError(
                f"runplane-conformance bug: {item.nodeid} must carry a {MARKER} marker with "
                f"known requirement ids (unknown: {unknown})."
            )
        callspec = getattr(item, "callspec", None)
        backend = str(callspec.params[BACKEND_FIXTURE]) if callspec is not None else "?"
        item.user_properties.append(("runplane_backend", backend))
        item.user_properties.extend(("runplane_requirement", i) for i in ids)
        tracked[item.nodeid] = (backend, ids)
    reporter = _RequirementReport(names, tracked)
    config.pluginmanager.register(reporter, "runplane-conformance-report")


def _in_suite(module: ModuleType | None) -> bool:
    file = getattr(module, "__file__", None)
    return file is not None and Path(file).resolve().parent == SUITE_DIR


def _in_profile(module: ModuleType | None) -> bool:
    file = getattr(module, "__file__", None)
    return file is not None and Path(file).name == DURABILITY_MODULE


def _backend_names(config: pytest.Config) -> list[str]:
    names: list[str] = config.getoption("runplane_backends") or []
    return list(dict.fromkeys(names))  # repeated names would only run the same tests twice


def _settings(config: pytest.Config) -> ConformanceSettings:
    examples = int(config.getoption("runplane_parity_examples"))
    timeout = float(config.getoption("runplane_timeout"))
    durable_examples = int(config.getoption("runplane_durable_examples"))
    if examples < 0:
        raise pytest.UsageError("--runplane-parity-examples must be 0 or more.")
    if timeout <= 0:
        raise pytest.UsageError("--runplane-timeout must be a positive number of seconds.")
    if durable_examples < 0:
        raise pytest.UsageError("--runplane-durable-examples must be 0 or more.")
    return ConformanceSettings(
        parity_examples=examples,
        timeout=timeout,
        durable=bool(config.getoption("runplane_durable")),
        durable_examples=durable_examples,
    )


def _installed() -> str:
    try:
        import runplane

        names = sorted(runplane.backends())
    except Exception as exc:  # a broken plugin must not hide the usage message
        return f"(listing installed backends failed: {type(exc).__name__}: {exc})"
    return f"Installed backends: {', '.join(names)}." if names else "No backends are installed."


def _no_backend_message() -> str:
    return (
        "runplane-conformance: the conformance tests were collected but no backend was named. "
        "Pass --runplane-backend NAME (repeat it to check several backends), for example "
        "`pytest --pyargs runplane_conformance --runplane-backend openai`. " + _installed()
    )


def _check_backends(names: list[str]) -> None:
    """Unknown or broken backends are usage errors with runplane's own message, not crashes."""
    import runplane

    for name in names:
        try:
            runplane.runner(name).backend()
        except runplane.RunplaneError as exc:
            raise pytest.UsageError(f"--runplane-backend {name}: {exc}") from exc


class _RequirementReport:
    """Names the requirement behind every failure, per backend, so a report reads as a verdict."""

    def __init__(
        self, backends: list[str], tracked: dict[str, tuple[str, tuple[str, ...]]]
    ) -> None:
        self.backends = backends
        self.tracked = tracked
        self.failed: dict[tuple[str, str], list[str]] = {}

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        entry = self.tracked.get(item.nodeid)
        if entry is not None and report.failed:
            text = "\n".join(f"{i}: {REQUIREMENTS[i]}" for i in entry[1])
            report.sections.append(("runplane requirement (see docs/conformance.md)", text))
        return report

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        entry = self.tracked.get(report.nodeid)
        if entry is None or not report.failed:
            return
        backend, ids = entry
        for rid in ids:
            nodes = self.failed.setdefault((backend, rid), [])
            if report.nodeid not in nodes:
                nodes.append(report.nodeid)

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        tr = terminalreporter
        tr.write_sep("=", "runplane conformance")
        for backend in self.backends:
            checked = {i for b, ids in self.tracked.values() if b == backend for i in ids}
            failed = sorted({rid for (b, rid) in self.failed if b == backend}, key=_id_order)
            if not failed:
                met = f"backend {backend!r}: all {len(checked)} requirements met"
                tr.write_line(met, green=True)
                continue
            tr.write_line(
                f"backend {backend!r}: FAILED {len(failed)} of {len(checked)} requirements: "
                + ", ".join(failed),
                red=True,
                bold=True,
            )
            for rid in failed:
                tr.write_line(f"  {rid}: {REQUIREMENTS[rid]}")
                for nodeid in self.failed[(backend, rid)]:
                    tr.write_line(f"      {nodeid}")
        tr.write_line(f"What each requirement means, and why it matters: {DOCS}.")


def _id_order(rid: str) -> int:
    keys = list(REQUIREMENTS)
    return keys.index(rid) if rid in keys else len(keys)
