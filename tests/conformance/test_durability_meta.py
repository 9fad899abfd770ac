"""The durability profile fails each broken durable backend, and passes the real one.

One pytest subprocess runs the profile (`--runplane-durable`) against the real durable backend,
every backend of `broken_durable_backends.py` and the direct `openai` backend. The broken ones are
installed as a distribution with an entry point, so the profile's own child processes find them
as they would a published backend. Which requirements failed for which backend is read from the
JUnit report. Also: the profile stays out of runs without the flag, its runs go to the database
the environment names, with nothing else changed, and the durable backend meets it on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import os
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
from runplane_conformance.requirements import DURABLE_REQUIREMENTS
from runplane_durable import LocalEngine
from support.broken_durable_backends import EXPECTED_FAILURES, WITHOUT_HISTORY
from support.dists import make_dist
from support.durable import fresh_pg_database, sqlite_url

pytestmark = pytest.mark.slow
pytest_plugins = ["pytester"]

BROKEN_MODULE = Path(__file__).parents[1] / "support" / "broken_durable_backends.py"
BACKENDS = ["durable", *EXPECTED_FAILURES, WITHOUT_HISTORY, "openai"]
_runs: dict[str, tuple[dict[str, set[str]], dict[str, set[str]], str]] = {}


def profile_args(*backends: str) -> list[str]:
    args = ["-p", "no:cacheprovider", "--pyargs", "runplane_conformance", "--runplane-durable"]
    for name in backends:
        args += ["--runplane-backend", name]
    return args


def environment(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, **extra: str) -> None:
    """The broken backends installed (a distribution on PYTHONPATH) for pytester's subprocess."""
    root = make_dist(
        pytester.path / "dists",
        "runplane-broken-durable",
        entry_points={"broken": "broken_durable_backends"},
        modules={"broken_durable_backends": BROKEN_MODULE.read_text(encoding="utf-8")},
    )
    path = os.environ.get("PYTHONPATH", "")
    monkeypatch.setenv("PYTHONPATH", f"{root}{os.pathsep}{path}" if path else str(root))
    monkeypatch.delenv("RUNPLANE_DATABASE_URL", raising=False)
    for name, value in extra.items():
        monkeypatch.setenv(name, value)


def profile_run(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> tuple[dict[str, set[str]], dict[str, set[str]], str]:
    """Per backend, the requirements checked and those failed (once per session)."""
    if "all" in _runs:
        return _runs["all"]
    environment(pytester, monkeypatch)
    junit = pytester.path / "report.xml"
    args = [*profile_args(*BACKENDS), "--runplane-durable-examples", "1", "-k", "durability"]
    result = pytester.runpytest_subprocess(*args, f"--junitxml={junit}", timeout=900)
    output = "\n".join(result.outlines + result.errlines)
    assert junit.exists(), output
    checked: dict[str, set[str]] = {name: set() for name in BACKENDS}
    failed: dict[str, set[str]] = {name: set() for name in BACKENDS}
    for case in ET.parse(junit).getroot().iter("testcase"):
        props = [(p.get("name"), p.get("value")) for p in case.iter("property")]
        backend = next(str(v) for k, v in props if k == "runplane_backend")
        ids = {str(v) for k, v in props if k == "runplane_requirement"}
        checked[backend] |= ids
        if case.find("failure") is not None or case.find("error") is not None:
            failed[backend] |= ids
    _runs["all"] = (checked, failed, output)
    return _runs["all"]


def test_every_broken_backend_has_expectations() -> None:
    for name, ids in EXPECTED_FAILURES.items():
        assert ids, name
        assert ids <= DURABLE_REQUIREMENTS, f"{name}: {ids - DURABLE_REQUIREMENTS}"
        assert ids != DURABLE_REQUIREMENTS, f"{name} would fail everything: not one defect"


def test_durable_backend_meets_the_profile(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked, failed, output = profile_run(pytester, monkeypatch)
    assert checked["durable"] == DURABLE_REQUIREMENTS, output
    assert failed["durable"] == set(), output


@pytest.mark.parametrize("broken", sorted(EXPECTED_FAILURES))
def test_broken_backend_fails_its_requirements(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, broken: str
) -> None:
    checked, failed, output = profile_run(pytester, monkeypatch)
    assert checked[broken] == DURABLE_REQUIREMENTS, output
    assert failed[broken] == EXPECTED_FAILURES[broken], output


def test_direct_backend_is_reported_not_durable(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, failed, output = profile_run(pytester, monkeypatch)
    assert failed["openai"] == DURABLE_REQUIREMENTS, output
    assert "backend 'openai' is not durable" in output
    assert "implements runplane.SupportsDurability" in output
    assert "Traceback" not in output


def test_incomplete_capabilities_are_reported(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, failed, output = profile_run(pytester, monkeypatch)
    assert failed[WITHOUT_HISTORY] == DURABLE_REQUIREMENTS, output
    assert "is not a runplane.DurableCapabilities (missing: run_id, history)" in output


def test_profile_needs_the_flag(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--pyargs", "runplane_conformance.test_durability",
        "--runplane-backend", "durable",
    )  # fmt: skip
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    result.stdout.fnmatch_lines(["*8 deselected*"])


def test_bad_examples_value_is_a_usage_error(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    args = [*profile_args("durable"), "--runplane-durable-examples", "-1"]
    result = pytester.runpytest_subprocess(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--runplane-durable-examples must be 0 or more*"])


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    yield from fresh_pg_database()


def conformance_runs(url: str) -> list[str]:
    """The ids of the runs the profile left in the database at `url`."""

    async def runs() -> list[str]:
        engine = LocalEngine(url)
        try:
            return [r.id for r in await engine.list_runs(limit=None)]
        finally:
            await engine.dispose()

    return [i for i in asyncio.run(runs()) if i.startswith("conformance-")]


def test_profile_runs_where_the_environment_says(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The environment reaches the profile's processes as it is: here RUNPLANE_DATABASE_URL."""
    url = sqlite_url(tmp_path)
    environment(pytester, monkeypatch, RUNPLANE_DATABASE_URL=url)
    args = [*profile_args("durable"), "-k", "changed_program and input"]
    result = pytester.runpytest_subprocess(*args)
    result.assert_outcomes(passed=1)
    assert len(conformance_runs(url)) == 2  # the uninterrupted run, and the one killed


def test_durable_backend_meets_the_profile_on_postgresql(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, pg_url: str
) -> None:
    environment(pytester, monkeypatch, RUNPLANE_DATABASE_URL=pg_url)
    args = [*profile_args("durable"), "--runplane-durable-examples", "0", "-k", "durability"]
    result = pytester.runpytest_subprocess(*args, timeout=600)
    result.assert_outcomes(passed=8)
    result.stdout.fnmatch_lines(["*backend 'durable': all 5 requirements met*"])
    # an uninterrupted run per mode, one per kill point, one per changed program
    assert len(conformance_runs(pg_url)) == 3 + 13 + 4
