"""The web UI's tests' helpers: programs making runs behind a `runplane server` (the UI tests'
ui_program.py), and a headless Chromium driven through WebDriver (Selenium), with screenshots
kept under RUNPLANE_UI_ARTIFACTS (default: .ci/artifacts/ui/ in the repository)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from support.durable_server import Server, server_env

__all__ = [
    "ARTIFACTS",
    "CHROMEDRIVER",
    "CHROMIUM",
    "TOKEN",
    "WAIT",
    "Browser",
    "Programs",
    "require_chromium",
]

REPO = Path(__file__).resolve().parents[2]
HERE = REPO / "tests" / "durable" / "ui"
PROGRAM = HERE / "ui_program.py"
ARTIFACTS = Path(os.environ.get("RUNPLANE_UI_ARTIFACTS", REPO / ".ci" / "artifacts" / "ui"))
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WAIT = 60.0  # any one wait in a browser test: generous, for a loaded 2-core machine
# ASCII: RemoteEngine (httpx) sends its RUNPLANE_TOKEN as an ASCII header.
TOKEN = "ui-t0ken-s3cret"


@dataclass
class Programs:
    """Runs made by ui_program.py processes behind one server; every process is ended after."""

    server: Server
    workdir: Path
    procs: list[subprocess.Popen[str]] = field(default_factory=list)

    def env(self, **extra: str) -> dict[str, str]:
        env = server_env(self.server.url)
        env.pop("UI_GATE", None)
        env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")])
        if self.server.token is not None:
            env["RUNPLANE_TOKEN"] = self.server.token
        return {**env, **extra}

    def start(self, scenario: str, run_id: str, **extra: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, str(PROGRAM), scenario, run_id],
            cwd=self.workdir,
            env=self.env(**extra),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.procs.append(proc)
        return proc

    def run(self, scenario: str, run_id: str, **extra: str) -> str:
        """Run the scenario to its end (or its pause for approval); its printed outcome."""
        proc = self.start(scenario, run_id, **extra)
        out, err = proc.communicate(timeout=WAIT * 2)
        assert proc.returncode == 0, f"ui_program {scenario} {run_id} failed:\n{err}"
        return out

    def wait_for(self, run_id: str, event_type: str) -> None:
        """Until the run's event log holds an event of `event_type` (read through the API)."""
        headers = (
            {} if self.server.token is None else {"Authorization": f"Bearer {self.server.token}"}
        )
        url = f"{self.server.url}/api/v1/runs/{quote(run_id, safe='')}/events"
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            answer = httpx.get(url, headers=headers, timeout=30)
            if answer.status_code == 200 and any(
                e["type"] == event_type for e in answer.json()["events"]
            ):
                return
            time.sleep(0.05)
        raise AssertionError(f"run {run_id} wrote no {event_type} event within {WAIT:.0f} s")

    def worker(self, ref: str) -> subprocess.Popen[str]:
        """`runplane worker REF` behind the server (it imports ui_program)."""
        proc = subprocess.Popen(
            [sys.executable, "-m", "runplane", "worker", ref, "--poll", "0.1"],
            cwd=HERE,
            env=self.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.communicate(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.communicate(timeout=15)


# -- the browser ----------------------------------------------------------------------------------


def require_chromium() -> None:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.path.exists(p)]
    if not missing:
        return
    why = (
        f"{', '.join(missing)} missing: the web UI's browser tests need Debian's chromium and "
        "chromium-driver (`nox -s ui` installs them, as root, and runs these tests)"
    )
    if os.environ.get("RUNPLANE_UI_REQUIRE_BROWSER") == "1":
        pytest.fail(why)
    pytest.skip(why)


@dataclass
class Browser:
    """A headless Chromium, and what the tests ask of it."""

    driver: Any
    test_name: str

    def open(self, url: str) -> None:
        self.driver.get(url)

    def until(self, what: Callable[[], Any], message: str, timeout: float = WAIT) -> Any:
        """Wait for `what()` to be truthy; fail with `message` and a screenshot if it is not."""
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                found = what()
            except Exception as exc:  # the page changing under a lookup: look again
                last = exc
                found = None
            if found:
                return found
            time.sleep(0.1)
        self.shot("timeout")
        raise AssertionError(f"{message} (not within {timeout:.0f} s; last error: {last!r})")

    def css(self, selector: str) -> list[Any]:
        from selenium.webdriver.common.by import By

        return list(self.driver.find_elements(By.CSS_SELECTOR, selector))

    def text(self, selector: str) -> str:
        found = self.css(selector)
        return " ".join(e.text for e in found)

    def script(self, code: str, *args: Any) -> Any:
        return self.driver.execute_script(code, *args)

    def shot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{self.test_name}-{name}.png"
        self.driver.save_screenshot(str(path))
        return path

    def alert_text(self) -> str | None:
        """The text of an open alert (or confirm) dialog, None when there is none."""
        from selenium.common.exceptions import NoAlertPresentException

        try:
            return str(self.driver.switch_to.alert.text)
        except NoAlertPresentException:
            return None

    def console_errors(self) -> list[str]:
        return [e["message"] for e in self.driver.get_log("browser") if e["level"] == "SEVERE"]
