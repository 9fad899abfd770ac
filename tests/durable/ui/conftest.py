"""Fixtures for the web UI's tests: a real `runplane server` subprocess, real programs making
runs behind it (ui_program.py), and a real headless Chromium driven through WebDriver.

Tests marked `browser` need Debian's `chromium` and `chromium-driver` (`nox -s ui` installs
them and runs these tests; `nox -s tests` leaves them out). Without them a browser test is
skipped, saying how to get them, unless RUNPLANE_UI_REQUIRE_BROWSER=1 (the ui session sets it),
where it fails. Screenshots go to RUNPLANE_UI_ARTIFACTS (default: .ci/artifacts/ui/ in the
repository), which CI keeps.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.durable_server import Server
from support.ui_browser import CHROMEDRIVER, CHROMIUM, TOKEN, Browser, Programs, require_chromium

WINDOW = (1280, 1000)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "browser: drives a real headless Chromium (nox -s ui; not in nox -s tests)"
    )


def _server(tmp_path: Path, token: str | None) -> Iterator[Server]:
    server = Server(f"sqlite:///{tmp_path / 'runs.db'}", tmp_path / "server.log", token=token)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """`runplane server` on a fresh SQLite database, no token."""
    yield from _server(tmp_path, None)


@pytest.fixture
def token_server(tmp_path: Path) -> Iterator[Server]:
    """`runplane server` with RUNPLANE_TOKEN set."""
    yield from _server(tmp_path, TOKEN)


def _programs(server: Server, tmp_path: Path) -> Iterator[Programs]:
    workdir = tmp_path / "programs"
    workdir.mkdir(exist_ok=True)
    programs = Programs(server, workdir)
    try:
        yield programs
    finally:
        programs.stop()


@pytest.fixture
def programs(server: Server, tmp_path: Path) -> Iterator[Programs]:
    yield from _programs(server, tmp_path)


@pytest.fixture
def token_programs(token_server: Server, tmp_path: Path) -> Iterator[Programs]:
    yield from _programs(token_server, tmp_path)


# -- the browser ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """One headless Chromium for the session (starting one takes seconds on a busy machine);
    each test gets it back with no cookie and no page open."""
    require_chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-dev-shm-usage",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
    ):
        options.add_argument(argument)
    # An alert stays open for the test to see, instead of being dismissed by the next command.
    options.set_capability("unhandledPromptBehavior", "ignore")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        yield driver
    finally:
        with contextlib.suppress(Exception):
            driver.quit()


@pytest.fixture
def browser(chromium: Any, request: pytest.FixtureRequest) -> Iterator[Browser]:
    yield Browser(chromium, request.node.name.replace("[", "-").replace("]", ""))
    with contextlib.suppress(Exception):
        chromium.get("about:blank")  # closes the page's event streams
        chromium.delete_all_cookies()
        chromium.set_window_size(*WINDOW)
        chromium.get_log("browser")  # the next test starts with an empty console
