"""Run the openai-agents SDK's own runner tests unswapped and with `agents.Runner` swapped.

    python tests/sdk_swap/run.py [--backend openai] [--only PATTERN] [-k EXPR] [pytest args...]

The claim checked: every SDK test that passes against the SDK's own `Runner` also passes when
`agents.Runner` is `runplane.runner(BACKEND)` ("class" mode) and when `runplane.install(BACKEND)`
has taken the SDK's default-runner slot ("install" mode). The tests come from the sdist of the
openai-agents version installed here, so they always match the SDK being run. Exit status 0 means
no test that passes unswapped fails, errors or disappears swapped.
"""

from __future__ import annotations

import argparse
import ast
import fnmatch
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
PLUGIN = "swap_plugin"
SDK_DIST = "openai-agents"
SWAP_MODES = ("class", "install")

# The runner-relevant test files of the SDK; names missing from an sdist are skipped.
DEFAULT_FILES = (
    "test_agent_runner.py",
    "test_agent_runner_streamed.py",
    "test_agent_runner_sync.py",
    "test_run_state.py",
    "test_hitl_*.py",
    "test_guardrails.py",
    "test_agent_hooks.py",
    "test_run_hooks.py",
    "test_global_hooks.py",
    "test_max_turns.py",
    "test_cancel_streaming.py",
    "test_agent_as_tool.py",
    "test_tool_use_behavior.py",
    "test_run_error_details.py",
    "test_runner_guardrail_resume.py",
    "test_stream_events.py",
    "test_soft_cancel.py",
    "test_run.py",
    "test_error_logging_redaction.py",
)

# Backend -> test-id pattern (fnmatch, as printed in the report) -> why it cannot pass swapped.
# A match is reported but does not fail the harness. Add an entry only for a difference that is
# inherent to what the backend is, never to paper over a runplane bug. `openai` has none.
KNOWN_DIFFERENCES: dict[str, dict[str, str]] = {
    "durable": {
        "tests.test_run::test_static_run_methods_call_into_default_runner": (
            "the test installs a Mock as the SDK's default runner and expects Runner.run_sync to "
            "call the mock's run_sync; a durable run must journal the async loop, so its run_sync "
            "drives the default runner's run() on the SDK's own run_sync machinery instead"
        ),
        "tests.test_runner_guardrail_resume::"
        "test_runner_resume_preserves_guardrail_results_on_reinterruption": (
            "the test hand-builds a RunState with SimpleNamespace internals that "
            "RunState.to_json() cannot serialize; the durable backend must store a run's input "
            "to resume it, so it raises JournalSerializationError instead of running it"
        ),
    },
}

# Needed by the SDK's pytest configuration or fixtures whatever the selected files import.
ALWAYS = {
    "pytest": "pytest",
    "pytest_asyncio": "pytest-asyncio",
    "pytest_mock": "pytest-mock",
    "inline_snapshot": "inline-snapshot",
}
# What run.py takes from the sdist besides tests/ (uv.lock: the SDK CI's transitive test deps).
TOP_LEVEL_FILES = (("pyproject.toml",), ("uv.lock",))
# Import names that differ from their distribution's name.
MODULE_TO_DIST = {"google": "protobuf", "grpc": "grpcio", "yaml": "pyyaml", "jwt": "pyjwt"}


def stage(message: str) -> None:
    print(f"==> {message}", flush=True)


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# -- the SDK's tests ---------------------------------------------------------------------------


def cache_root() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "runplane" / "sdk-tests"


def sdist_for(version: str, cache: Path) -> Path:
    """The sdist of `version`, downloaded once into `cache` with pip (atomically)."""
    cache.mkdir(parents=True, exist_ok=True)
    found = sorted(cache.glob("openai[_-]agents-*.tar.gz"))
    if found:
        stage(f"sdist: reusing {found[0]}")
        return found[0]
    stage(f"sdist: downloading {SDK_DIST}=={version} (pip download --no-binary :all:)")
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--no-binary",
            ":all:",
            "--quiet",
            f"{SDK_DIST}=={version}",
            "-d",
            tmp,
        ]
        print("    $ " + " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)
        downloaded = sorted(Path(tmp).glob("openai[_-]agents-*.tar.gz"))
        if len(downloaded) != 1:
            raise SystemExit(f"pip download produced {downloaded}, expected one sdist")
        target = cache / downloaded[0].name
        downloaded[0].replace(target)
    return target


def extract_tests(sdist: Path, dest: Path, agents_dir: Path) -> Path:
    """`tests/`, `pyproject.toml` and `uv.lock` of the sdist, laid out as the SDK's checkout.

    `src/agents` is a symlink to the installed package: the SDK's redaction tests locate SDK
    frames in tracebacks through `tests/../src/agents`, and the code under test is the installed
    SDK, never the sdist's copy (which is not extracted, so it cannot shadow it).
    """
    with tarfile.open(sdist) as tar:
        members: list[tarfile.TarInfo] = []
        for member in tar.getmembers():
            parts = Path(member.name).parts
            if len(parts) < 2 or not (parts[1] == "tests" or parts[1:] in TOP_LEVEL_FILES):
                continue
            if not (member.isfile() or member.isdir()):
                continue
            member.name = str(Path(*parts[1:]))
            members.append(member)
        if hasattr(tarfile, "data_filter"):
            tar.extractall(dest, members=members, filter="data")
        else:  # pragma: no cover - Pythons without extraction filters
            for member in members:
                if Path(member.name).is_absolute() or ".." in Path(member.name).parts:
                    raise SystemExit(f"refusing to extract {member.name!r} from {sdist}")
            tar.extractall(dest, members=members)
    (dest / "src").mkdir()
    (dest / "src" / "agents").symlink_to(agents_dir, target_is_directory=True)
    return dest


def select_files(tests: Path, patterns: list[str], only: list[str]) -> list[Path]:
    files: list[Path] = []
    for pattern in patterns:
        matched = sorted(tests.glob(pattern))
        if not matched:
            print(f"    (not in this sdist, skipped: tests/{pattern})")
        files.extend(m for m in matched if m not in files)
    if only:
        files = [f for f in files if any(o in f.name or fnmatch.fnmatch(f.name, o) for o in only)]
    return files


# -- test dependencies ------------------------------------------------------------------------


def dev_requirements(pyproject: Path) -> dict[str, str]:
    """The sdist's `dev` dependency group, normalized name -> requirement string."""
    text = pyproject.read_text()
    reqs: list[str]
    if sys.version_info >= (3, 11):
        import tomllib

        group = tomllib.loads(text).get("dependency-groups", {}).get("dev", [])
        reqs = [r for r in group if isinstance(r, str)]
    else:  # no TOML parser in the 3.10 standard library; the group is a list of strings
        match = re.search(r"^\[dependency-groups\].*?^dev\s*=\s*\[(.*?)^\]", text, re.S | re.M)
        reqs = re.findall(r'"([^"]+)"', match.group(1)) if match else []
    out: dict[str, str] = {}
    for req in reqs:
        name = re.match(r"[A-Za-z0-9._-]+", req)
        if name:
            out.setdefault(normalize(name.group(0)), req)
    return out


def locked_packages(lock: Path) -> set[str]:
    """Normalized names of every package in the SDK's uv.lock (its CI's test environment)."""
    if not lock.is_file():
        return set()
    names = re.findall(r'^\[\[package\]\]\nname = "([^"]+)"', lock.read_text(), re.M)
    return {normalize(n) for n in names}


def local_module(root: Path, dotted: str) -> Path | None:
    base = root.joinpath(*dotted.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def third_party_imports(files: list[Path], root: Path) -> set[str]:
    """Top-level modules imported by `files`, their conftests and the `tests.*` helpers they use."""
    queue = list(files)
    for f in files:
        for parent in f.parents:
            if parent == root:
                break
            if (parent / "conftest.py").is_file():
                queue.append(parent / "conftest.py")
    seen: set[Path] = set()
    found: set[str] = set()
    while queue:
        path = queue.pop()
        if path in seen:
            continue
        seen.add(path)
        package = ".".join(path.relative_to(root).parent.parts)
        dotted_names: list[str] = []
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                dotted_names.extend(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    module = ".".join([*base, *([node.module] if node.module else [])])
                else:
                    module = node.module or ""
                dotted_names.append(module)
                dotted_names.extend(f"{module}.{alias.name}" for alias in node.names)
        for dotted in dotted_names:
            top = dotted.split(".")[0]
            if top == "tests":
                local = local_module(root, dotted)
                if local is not None:
                    queue.append(local)
            elif top and top not in sys.stdlib_module_names and top != "agents":
                found.add(top)
    return found


def install_test_dependencies(files: list[Path], root: Path) -> None:
    """pip-install what the selected files import and this environment lacks.

    Requirements come from the sdist's `dev` group; a module imported by the tests but only
    present in the SDK's CI through another package (httpx) is taken from its uv.lock, unpinned.
    """
    dev = dev_requirements(root / "pyproject.toml")
    locked = locked_packages(root / "uv.lock")
    wanted = dict(ALWAYS)
    for module in sorted(third_party_imports(files, root)):
        wanted.setdefault(module, MODULE_TO_DIST.get(module, module))
    missing = {m: d for m, d in wanted.items() if importlib.util.find_spec(m) is None}
    print(f"    already importable: {', '.join(sorted(set(wanted) - set(missing)))}")
    specs: list[str] = []
    for module, dist in sorted(missing.items()):
        if normalize(dist) in dev:
            specs.append(dev[normalize(dist)])
        elif normalize(dist) in locked:
            specs.append(dist)
        else:
            print(f"    !! {module} is imported but neither in the dev group nor in uv.lock")
    if not specs:
        print("    nothing to install")
        return
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", *specs]
    print("    $ " + " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)
    importlib.invalidate_caches()


# -- running and comparing --------------------------------------------------------------------


@dataclass
class Run:
    mode: str
    returncode: int
    seconds: float
    outcomes: dict[str, str]
    messages: dict[str, str]
    log: Path
    swap: dict[str, object] = field(default_factory=dict)

    @property
    def counts(self) -> Counter[str]:
        return Counter(self.outcomes.values())


def parse_junit(path: Path) -> tuple[dict[str, str], dict[str, str]]:
    """Outcome (passed/failed/skipped/error) and first message line per test id."""
    outcomes: dict[str, str] = {}
    messages: dict[str, str] = {}
    if not path.is_file():
        return outcomes, messages
    for case in ET.parse(path).getroot().iter("testcase"):
        test_id = f"{case.get('classname', '')}::{case.get('name', '')}"
        outcome = "passed"
        for tag in ("skipped", "failure", "error"):  # later tags win: an error beats a failure
            element = case.find(tag)
            if element is not None:
                outcome = {"failure": "failed"}.get(tag, tag)
                text = element.get("message") or element.text or ""
                messages[test_id] = (text.strip().splitlines() or [""])[0][:160]
        outcomes[test_id] = outcome
    return outcomes, messages


def child_env() -> dict[str, str]:
    """This environment, minus what would make the SDK's tests test something else."""
    env = dict(os.environ)
    # The SDK's conftest installs an in-memory trace processor and several runner tests assert
    # on the spans it records; nothing is exported, so tracing stays on as in the SDK's own CI.
    # Endpoint settings would point the direct backend (not the SDK) at a server: not parity.
    for name in sorted(env):
        if name == "OPENAI_AGENTS_DISABLE_TRACING" or name.startswith("RUNPLANE_OPENAI_"):
            print(f"    unset for the test runs: {name}")
            del env[name]
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE), env.get("PYTHONPATH")) if p)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


PROGRESS = re.compile(r"\[\s*\d+%\]\s*$")
SUMMARY = re.compile(r"^=*\s*\d+ (passed|failed|skipped|error|errors|deselected)\b|no tests ran")


def run_pytest(
    mode: str,
    root: Path,
    files: list[Path],
    backend: str,
    pytest_args: list[str],
    timeout: float,
    env: dict[str, str],
) -> Run:
    junit = root / f"junit-{mode}.xml"
    report = root / f"swap-{mode}.json"
    log = root / f"pytest-{mode}.log"
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-rfE",
        "--tb=short",
        "-p",
        "no:cacheprovider",
        "--continue-on-collection-errors",
        "--rootdir",
        str(root),
        "-c",
        str(root / "pyproject.toml"),
        f"--junitxml={junit}",
    ]
    if mode != "sdk":
        cmd += ["-p", PLUGIN, f"--sdk-swap={mode}", f"--sdk-swap-backend={backend}"]
        cmd += [f"--sdk-swap-report={report}"]
    cmd += [str(f.relative_to(root)) for f in files] + pytest_args
    print(f"    $ (cd {root} && {' '.join(cmd[2:])})", flush=True)
    start = time.monotonic()
    with log.open("w") as out:
        proc = subprocess.Popen(
            cmd,
            cwd=root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        # A hung run (a stream nobody finishes) must fail the harness, not stall it.
        watchdog = threading.Timer(timeout, proc.kill)
        watchdog.start()
        assert proc.stdout is not None
        for line in proc.stdout:
            out.write(line)
            if PROGRESS.search(line) or SUMMARY.search(line):
                print(f"    {line.rstrip()}", flush=True)
        returncode = proc.wait()
        timed_out = not watchdog.is_alive()
        watchdog.cancel()
    if timed_out:
        print(f"    !! the {mode} run exceeded {timeout:.0f}s and was killed")
        returncode = -1
    seconds = time.monotonic() - start
    outcomes, messages = parse_junit(junit)
    swap = json.loads(report.read_text()) if report.is_file() else {}
    return Run(mode, returncode, seconds, outcomes, messages, log, swap)


def known_reason(backend: str, test_id: str) -> str | None:
    for pattern, reason in KNOWN_DIFFERENCES.get(backend, {}).items():
        if fnmatch.fnmatchcase(test_id, pattern):
            return reason
    return None


def divergences(base: Run, swapped: Run) -> list[tuple[str, str, str]]:
    """(test id, unswapped outcome, swapped outcome) for every test that got worse when swapped."""
    out: list[tuple[str, str, str]] = []
    for test_id, before in sorted(base.outcomes.items()):
        after = swapped.outcomes.get(test_id, "missing")
        worse = before == "passed" and after != "passed"
        newly_errors = after == "error" and before != "error"
        if worse or newly_errors:
            out.append((test_id, before, after))
    out.extend(
        (test_id, "missing", after)
        for test_id, after in sorted(swapped.outcomes.items())
        if test_id not in base.outcomes and after in ("failed", "error")
    )
    return out


def report(runs: list[Run], narrowed: bool, backend: str) -> int:
    base, swapped_runs = runs[0], runs[1:]
    print()
    header = f"{'run':<10}{'passed':>8}{'failed':>8}{'skipped':>9}{'error':>7}{'time':>9}"
    print(header + "  runs through runplane")
    print("-" * (len(header) + 24))
    for run in runs:
        c = run.counts
        via = ""
        if run.swap:
            runs_by_mode = run.swap.get("runs", {})
            total = sum(runs_by_mode.values()) if isinstance(runs_by_mode, dict) else 0
            tests_with_runs = run.swap.get("tests_with_runs", [])
            n_tests = len(tests_with_runs) if isinstance(tests_with_runs, list) else 0
            via = f"  {total} runs from {n_tests} tests"
        name = "unswapped" if run.mode == "sdk" else run.mode
        print(
            f"{name:<10}{c['passed']:>8}{c['failed']:>8}{c['skipped']:>9}{c['error']:>7}"
            f"{run.seconds:>8.1f}s{via}"
        )
    status = 0
    for run in runs:
        if run.returncode not in (0, 1):
            print(
                f"\n!! the {run.mode} pytest run ended with exit code {run.returncode}: {run.log}"
            )
            status = 2
    uncollected = sorted(t for t in base.outcomes if t.startswith("::"))
    if uncollected:
        # A file that does not even import unswapped would make its parity vacuously true.
        print(f"\n!! not collected unswapped, so not checked: {', '.join(uncollected)}")
        print(f"   (see {base.log}; usually a missing test dependency)")
        status = 2
    env_failures = sorted(
        t for t, o in base.outcomes.items() if o in ("failed", "error") and t not in uncollected
    )
    if env_failures:
        print(f"\nFail unswapped too (environment, not counted): {len(env_failures)}")
        for test_id in env_failures:
            print(f"  {test_id}: {base.messages.get(test_id, '')}")
    for run in swapped_runs:
        runs_by_mode = run.swap.get("runs", {})
        if not (isinstance(runs_by_mode, dict) and sum(runs_by_mode.values())):
            if narrowed:
                print(f"\n{run.mode}: no run went through runplane (no runner test selected?)")
            else:
                print(f"\n!! {run.mode}: no run went through runplane: the swap did not take")
                status = max(status, 1)
        diffs = divergences(base, run)
        improved = [
            t for t, o in base.outcomes.items() if o != "passed" and run.outcomes.get(t) == "passed"
        ]
        unexplained = [d for d in diffs if known_reason(backend, d[0]) is None]
        print(f"\n{run.mode}: {len(unexplained)} divergence(s)", end="")
        print(f", {len(diffs) - len(unexplained)} known" if len(diffs) != len(unexplained) else "")
        for test_id, before, after in diffs:
            reason = known_reason(backend, test_id)
            tag = f"KNOWN ({reason})" if reason else run.messages.get(test_id, "")
            print(f"  {before} -> {after}: {test_id}\n      {tag}")
        if improved:
            print(f"  (pass only swapped: {', '.join(sorted(improved))})")
        if unexplained:
            status = max(status, 1)
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog="Unrecognised arguments are passed to pytest.",
    )
    parser.add_argument("--backend", default="openai", help="runplane backend (default: openai)")
    parser.add_argument(
        "--only", action="append", default=[], metavar="PATTERN", help="keep matching files"
    )
    parser.add_argument("-k", dest="keyword", help="pytest -k expression")
    parser.add_argument(
        "--modes", default=",".join(SWAP_MODES), help="swap modes to run (default: class,install)"
    )
    parser.add_argument(
        "--extra", action="append", default=[], metavar="GLOB", help="more tests/ files to run"
    )
    parser.add_argument("--cache-dir", type=Path, help="default: ~/.cache/runplane/sdk-tests")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per pytest run")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args, pytest_args = parser.parse_known_args(argv)
    modes = [m for m in args.modes.split(",") if m]
    if not modes or any(m not in SWAP_MODES for m in modes):
        parser.error(f"--modes takes a comma-separated subset of {', '.join(SWAP_MODES)}")
    if args.keyword:
        pytest_args = ["-k", args.keyword, *pytest_args]

    started = time.monotonic()
    version = importlib.metadata.version(SDK_DIST)
    spec = importlib.util.find_spec("agents")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("the `agents` package (openai-agents) is not importable here")
    agents_dir = Path(next(iter(spec.submodule_search_locations))).resolve()
    stage(f"{SDK_DIST} {version} installed at {agents_dir}; backend {args.backend!r}")

    sdist = sdist_for(version, (args.cache_dir or cache_root()) / version)
    work = Path(tempfile.mkdtemp(prefix=f"runplane-sdk-tests-{version}-"))
    stage(f"extracting tests/ into {work}")
    root = extract_tests(sdist, work, agents_dir)
    files = select_files(root / "tests", [*DEFAULT_FILES, *args.extra], args.only)
    if not files:
        raise SystemExit("no test file selected")
    print(f"    files ({len(files)}): {' '.join(f.name for f in files)}")

    stage("test dependencies (the sdist's dev group, only what the selected files import)")
    install_test_dependencies(files, root)

    env = child_env()
    runs: list[Run] = []
    for mode in ["sdk", *modes]:
        label = "unswapped (agents.Runner is the SDK's)" if mode == "sdk" else f"swapped: {mode}"
        stage(f"pytest run {len(runs) + 1}/{len(modes) + 1}, {label}")
        runs.append(run_pytest(mode, root, files, args.backend, pytest_args, args.timeout, env))

    stage("comparing outcomes per test id")
    status = report(
        runs, narrowed=bool(args.only or args.keyword or pytest_args), backend=args.backend
    )
    print(f"\ntotal {time.monotonic() - started:.0f}s; ", end="")
    if status == 0 and not args.keep:
        shutil.rmtree(work)
        print("PARITY: every test that passes unswapped passes swapped")
    else:
        print(f"logs and junit XML kept in {work}")
        print(
            {0: "PARITY HOLDS", 1: "PARITY BROKEN (see divergences above)"}.get(
                status, "NOT CHECKED (see the errors above)"
            )
        )
    return status


if __name__ == "__main__":
    sys.exit(main())
