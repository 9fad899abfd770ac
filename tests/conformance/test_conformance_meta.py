"""The conformance suite fails each known defect and passes the direct backend.

One pytest subprocess runs the suite against every backend in `defective_backends.py` and against
`openai`, with `--runplane-backend` repeated; which requirements failed for which backend is read
from the JUnit report (each test carries its backend and requirement ids as properties) and checked
against the suite's own summary. The usage errors and the plugin's inertness are checked with
separate small runs.
"""

from __future__ import annotations

import dataclasses
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from runplane_conformance.requirements import DURABLE_REQUIREMENTS, REQUIREMENTS
from support.defective_backends import DEFECTS, EXPECTED_FAILURES

pytest_plugins = ["pytester"]

DEFECTIVE_MODULE = Path(__file__).parents[1] / "support" / "defective_backends.py"
CONFTEST = """
import runplane

import defective_backends

runplane.register_plugin(defective_backends, name="defective-backends")
"""
BACKENDS = [*DEFECTS, "openai"]
# Without --runplane-durable the durability profile is not run (test_durability_meta.py runs it).
CHECKED = set(REQUIREMENTS) - DURABLE_REQUIREMENTS
SUMMARY = re.compile(
    r"^backend '(?P<name>[^']+)': (?:all (?P<met>\d+) requirements met|"
    r"FAILED \d+ of (?P<checked>\d+) requirements: (?P<failed>.+))$"
)


@dataclasses.dataclass
class SuiteRun:
    """Per backend: the requirements its tests checked and those with a failing test."""

    checked: dict[str, set[str]]
    failed: dict[str, set[str]]
    summary: dict[str, set[str]]
    output: str


_runs: dict[str, SuiteRun] = {}


def base_args() -> list[str]:
    return ["-p", "no:cacheprovider", "--strict-markers", "--pyargs", "runplane_conformance"]


def suite_run(pytester: pytest.Pytester) -> SuiteRun:
    """The combined run, done once per session by whichever test needs it first."""
    if "all" in _runs:
        return _runs["all"]
    pytester.makepyfile(defective_backends=DEFECTIVE_MODULE.read_text(encoding="utf-8"))
    pytester.makeconftest(CONFTEST)
    args = [*base_args(), "--runplane-timeout", "2", "--runplane-parity-examples", "3"]
    for name in BACKENDS:
        args += ["--runplane-backend", name]
    junit = pytester.path / "report.xml"
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
    summary: dict[str, set[str]] = {}
    for line in result.outlines:
        match = SUMMARY.match(line.strip())
        if match:
            listed = match.group("failed")
            summary[match.group("name")] = set(listed.split(", ")) if listed else set()
    _runs["all"] = SuiteRun(checked, failed, summary, output)
    return _runs["all"]


def test_every_defect_has_expectations() -> None:
    assert set(DEFECTS) == set(EXPECTED_FAILURES)
    for defect, ids in EXPECTED_FAILURES.items():
        assert ids, defect
        assert ids <= set(REQUIREMENTS), f"{defect}: unknown ids {ids - set(REQUIREMENTS)}"


@pytest.mark.slow
def test_direct_backend_meets_every_requirement(pytester: pytest.Pytester) -> None:
    run = suite_run(pytester)
    assert run.checked["openai"] == CHECKED, run.output
    assert run.failed["openai"] == set(), run.output
    assert run.summary.get("openai") == set(), run.output


@pytest.mark.slow
@pytest.mark.parametrize("defect", sorted(EXPECTED_FAILURES))
def test_defect_fails_its_requirements(pytester: pytest.Pytester, defect: str) -> None:
    run = suite_run(pytester)
    assert run.checked[defect] == CHECKED, f"{defect} was not checked fully"
    missed = EXPECTED_FAILURES[defect] - run.failed[defect]
    assert not missed, f"the suite did not fail {defect} on {sorted(missed)}"
    assert run.failed[defect] != CHECKED, f"{defect} failed everything: a broken test?"
    assert run.summary.get(defect) == run.failed[defect], "summary disagrees with the report"


def test_suite_without_backend_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess(*base_args())
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*no backend was named. Pass --runplane-backend NAME*"])
    result.stderr.fnmatch_lines(["*Installed backends:*openai*"])


def test_unknown_backend_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess(*base_args(), "--runplane-backend", "no-such-backend")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "*--runplane-backend no-such-backend: Unknown runplane backend 'no-such-backend'. "
            "Installed backends: *openai (from runplane-openai)*"
        ]
    )
    assert "Traceback" not in result.stderr.str()


def test_bad_option_values_are_usage_errors(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess(
        *base_args(), "--runplane-backend", "openai", "--runplane-timeout", "0"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--runplane-timeout must be a positive number*"])


def test_plugin_is_inert_in_other_test_runs(pytester: pytest.Pytester) -> None:
    """Installed means loaded by every pytest run: it must not import, check or report anything."""
    pytester.makepyfile(
        test_unrelated="""
        import sys

        def test_nothing_was_imported():
            assert "runplane" not in sys.modules
            assert "agents" not in sys.modules
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--strict-markers")
    result.assert_outcomes(passed=1)
    assert "runplane conformance" not in result.stdout.str()
    assert "--runplane-backend" in pytester.runpytest_subprocess("--help").stdout.str()
