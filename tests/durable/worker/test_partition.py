"""A worker cut off from its server, really: the worker runs in a network namespace of its own,
joined to the host by a veth pair, and the test drops the link (`support/netns.py`) while the
worker keeps running. The `runplane server` listens on the host's end of the pair (a token, as
any non-loopback bind needs), on SQLite and PostgreSQL; the run and the second worker run on
the host, where the server stays reachable through the cut.

A: a remote tool's task. The cut-off worker's task lease expires, the other worker runs the
task and the run gets its result; the cut-off worker's tool ends during the cut and its result,
sent again through the cut, is refused once the link is back: recorded once, executed twice.
B: a run executed by a worker. Its run lease expires during the cut, the other worker takes the
run over and finishes it; the cut-off worker, back, has its late steps refused, gives the run
up and serves on: every journal step exactly once, both attempts named.

Needs root and `ip netns` (skipped, saying so, without them). Every wait is on a condition,
bounded; leases are short (1.5 s), and a test's processes all start at once (each waits for its
turn once imported: an import takes seconds on a loaded machine), so each test takes a few
seconds beyond that start.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from runplane_durable.records import JournalRecord, TaskRecord
from support.durable import fresh_pg_database, sqlite_url
from support.durable_server import Server, running_server
from support.netns import Netns, network_namespace, remove_leftovers, unavailable
from support.workers import TIMEOUT, Jobs, wait_until

pytestmark = pytest.mark.slow

TESTS = Path(__file__).resolve().parents[2]
LAUNCH = "from support.partition_programs import main; main()"
LEASE = "1.5"  # seconds: the cut-off worker's leases, far shorter than the cut
TOKEN = secrets.token_urlsafe(16)
FINAL = "done {key}: STEP_A-0, STEP_B-1"


@pytest.fixture
def netns() -> Iterator[Netns]:
    reason = unavailable()
    if reason is not None:
        pytest.skip(reason)
    with network_namespace() as made:
        yield made


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield sqlite_url(tmp_path)
    else:
        yield from fresh_pg_database()


@pytest.fixture
def server(netns: Netns, database: str, tmp_path: Path) -> Iterator[Server]:
    """A `runplane server` on the host's end of the veth pair, with a token."""
    with running_server(
        database, tmp_path / "server.log", token=TOKEN, host=netns.host_address
    ) as made:
        yield made


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""


def _refused_completions(server: Server) -> int:
    """How many task results the server refused (409), by its access log."""
    return sum(
        1
        for line in _text(server.log).splitlines()
        if "/api/v1/tasks/complete" in line and '" 409' in line
    )


# -- the namespace itself -------------------------------------------------------------------------


def test_a_namespace_reaches_the_host_until_its_link_is_cut(netns: Netns) -> None:
    """A process inside reaches a listener on the host's end; during a cut a new connection
    fails and one in flight stalls; restored, the stalled one goes on. Torn down, nothing of it
    is left."""
    import socket

    listener = socket.socket()
    listener.bind((netns.host_address, 0))
    listener.listen()
    port = listener.getsockname()[1]
    client = "\n".join(
        [
            "import socket, sys",
            f"s = socket.create_connection(({netns.host_address!r}, {port}), timeout=60)",
            "print('connected', flush=True)",
            "sys.stdin.readline()",  # the test cuts the link meanwhile
            "s.sendall(b'through the cut')",
            "print(s.recv(100).decode(), flush=True)",
        ]
    )
    inside = netns.popen(
        [sys.executable, "-c", client],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert inside.stdout is not None
    assert inside.stdin is not None
    conn, (peer, _) = listener.accept()
    assert peer == netns.ns_address  # it came through the pair
    assert inside.stdout.readline().strip() == "connected"
    netns.cut()
    inside.stdin.write("go\n")
    inside.stdin.flush()
    conn.settimeout(1.0)
    with pytest.raises(TimeoutError):
        conn.recv(100)  # nothing passes while cut
    probe = f"import socket; socket.create_connection(({netns.host_address!r}, {port}), timeout=8)"
    failed = netns.run([sys.executable, "-c", probe])
    assert failed.returncode != 0
    assert "No route to host" in failed.stderr or "timed out" in failed.stderr, failed.stderr
    netns.restore()
    conn.settimeout(TIMEOUT)
    assert conn.recv(100) == b"through the cut"  # TCP retransmitted it once the link was back
    conn.sendall(b"answered")
    assert inside.stdout.readline().strip() == "answered"
    assert netns.run([sys.executable, "-c", probe]).returncode == 0
    conn.close()
    listener.close()


def test_a_request_in_flight_when_the_link_drops_fails_as_a_broken_connection(
    netns: Netns,
) -> None:
    """A `RemoteEngine`'s transport (`http1.Http1Transport`) asks a server that took the
    request; then the link drops. The kernel's keepalive probes find the link dead and the
    request fails as a broken connection (which the engine retries), not by waiting out its
    read timeout (150 s, so a live server's slow database is waited for; 120 s here)."""
    import socket

    listener = socket.socket()
    listener.bind((netns.host_address, 0))
    listener.listen()
    port = listener.getsockname()[1]
    client = "\n".join(
        [
            "import asyncio, json, time, httpx",
            "from runplane_durable.http1 import Http1Transport",
            "async def main():",
            "    async with httpx.AsyncClient(transport=Http1Transport()) as client:",
            "        started = time.monotonic()",
            "        try:",
            f"            await client.get('http://{netns.host_address}:{port}/', timeout=120)",
            "        except httpx.HTTPError as exc:",
            "            return type(exc).__name__, time.monotonic() - started",
            "        return 'answered', time.monotonic() - started",
            "print(json.dumps(asyncio.run(main())), flush=True)",
        ]
    )
    inside = netns.popen([sys.executable, "-c", client], stdout=subprocess.PIPE, text=True)
    assert inside.stdout is not None
    conn, _ = listener.accept()
    conn.settimeout(TIMEOUT)
    assert conn.recv(4096).startswith(b"GET / HTTP/1.1")  # the server has the request
    netns.cut()  # and never answers: the link is gone
    try:
        outcome, waited = json.loads(inside.stdout.readline())
    finally:
        netns.restore()
        conn.close()
        listener.close()
    assert outcome in ("ReadError", "RemoteProtocolError"), (outcome, waited)  # no ReadTimeout
    assert inside.wait(TIMEOUT) == 0


def test_a_namespace_is_torn_down_even_when_the_test_fails() -> None:
    reason = unavailable()
    if reason is not None:
        pytest.skip(reason)
    seen: list[tuple[Netns, subprocess.Popen[Any]]] = []

    def failing() -> None:
        with network_namespace() as made:
            seen.append((made, made.popen([sys.executable, "-c", "import time; time.sleep(600)"])))
            raise RuntimeError("the test failed")

    with pytest.raises(RuntimeError, match="the test failed"):
        failing()
    [(made, sleeper)] = seen
    assert sleeper.poll() is not None  # its processes were killed
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    assert made.name not in listed.stdout
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True)
    assert made.host_if not in links.stdout


def _leftovers(pid: int) -> tuple[str, ...]:
    """What a session of `pid` killed mid-setup leaves, named as `network_namespace` names
    it: a namespace holding one end of a pair, and a pair still wholly on the host."""
    made = (f"rpn{pid}n9", f"rpn{pid}h9", f"rpn{pid}p9", f"rpn{pid}h8", f"rpn{pid}p8")
    subprocess.run(["ip", "netns", "add", made[0]], check=True)
    for host_end, peer in ((made[1], made[2]), (made[3], made[4])):
        veth = ["ip", "link", "add", host_end, "type", "veth", "peer", "name", peer]
        subprocess.run(veth, check=True)
    subprocess.run(["ip", "link", "set", made[2], "netns", made[0]], check=True)
    return made


def _listed() -> str:
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return namespaces + subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout


def test_leftovers_of_a_killed_session_are_removed_by_name() -> None:
    """A namespace and a link named for a process that is gone (a session killed before its
    teardown) are deleted, by `remove_leftovers` and before each new namespace; those of a
    live process are not."""
    reason = unavailable()
    if reason is not None:
        pytest.skip(reason)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait(timeout=TIMEOUT)
    mine = _leftovers(os.getpid())
    try:
        left = _leftovers(gone.pid)
        removed = remove_leftovers()
        assert left[0] in removed  # the namespace, and with it the pair it held
        assert len(removed) == 2  # and one end of the other pair, which takes its peer along
        assert not any(name in _listed() for name in left)
        left = _leftovers(gone.pid)
        with network_namespace() as live:
            assert not any(name in _listed() for name in left)
            assert live.name in _listed()
        assert all(name in _listed() for name in mine[:2] + mine[3:])  # this process lives
    finally:
        subprocess.run(["ip", "netns", "del", mine[0]], check=False)
        subprocess.run(["ip", "link", "del", mine[3]], check=False)


def test_without_root_or_iproute2_the_reason_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert "need root" in str(unavailable())
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert "iproute2" in str(unavailable())


# -- the scenarios' processes ---------------------------------------------------------------------


class Processes:
    """The processes of a scenario (`support/partition_programs.py`), on the host or inside the
    namespace, each killed at the end whatever happened. All start at once, each waiting for its
    START file (`go`) once imported; stderr in NAME.err, the tool runs in `ledger`."""

    def __init__(self, workdir: Path, netns: Netns, server: Server) -> None:
        self.workdir = workdir
        self.netns = netns
        self.url = server.url
        self.ledger = workdir / "ledger"
        self.gate = workdir / "gate"
        self.started: list[subprocess.Popen[str]] = []

    def env(self, **extra: str) -> dict[str, str]:
        env = {**os.environ, "OPENAI_AGENTS_DISABLE_TRACING": "1", "PYTHONUNBUFFERED": "1"}
        for name in ("RUNPLANE_SERVER_URL", "RUNPLANE_DATABASE_URL", "JOBS_BLOCK"):
            env.pop(name, None)
        path = os.pathsep.join(p for p in (str(TESTS), os.environ.get("PYTHONPATH")) if p)
        env.update(PYTHONPATH=path, LEDGER=str(self.ledger), RUNPLANE_TOKEN=TOKEN)
        return {**env, **extra}

    def start(
        self, name: str, *args: str, inside: bool = False, held: bool = True, **extra: str
    ) -> subprocess.Popen[str]:
        """`partition_programs ARGS` as NAME; `held`: it waits for `go(NAME)` once imported."""
        if held:
            extra["START"] = str(self.workdir / f"go-{name}")
        command = [sys.executable, "-c", LAUNCH, *args]
        options: dict[str, Any] = {
            "cwd": self.workdir,
            "env": self.env(**extra),
            "stdout": subprocess.PIPE,
            "stderr": open(self.workdir / f"{name}.err", "w", encoding="utf-8"),  # noqa: SIM115
            "text": True,
        }
        if inside:
            proc = self.netns.popen(command, **options)
        else:
            proc = subprocess.Popen(command, **options)
        self.started.append(proc)
        return proc

    def ready(self, proc: subprocess.Popen[str], name: str) -> None:
        """Until `proc` has imported everything (its first line)."""
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("ready"), line + self.stderr(name)

    def go(self, name: str) -> None:
        (self.workdir / f"go-{name}").write_text("")

    def stderr(self, name: str) -> str:
        return _text(self.workdir / f"{name}.err")

    def output(self, proc: subprocess.Popen[str], name: str) -> str:
        """Its last line, once it exited with 0. (Read from the pipe's reader, which `ready`
        may have read ahead into: `communicate(timeout=)` would read past that.)"""
        assert proc.stdout is not None
        proc.wait(timeout=TIMEOUT)  # it prints a line or two: the pipe never fills
        out = proc.stdout.read()
        assert proc.returncode == 0, self.stderr(name)
        return out.strip().splitlines()[-1]

    def lines(self) -> list[tuple[str, str, int]]:
        rows = [line.split() for line in _text(self.ledger).splitlines()]
        return [(what, call, int(pid)) for what, call, pid in rows]

    def ran(self, what: str, pid: int) -> bool:
        return any(w == what and p == pid for w, _, p in self.lines())

    def stop(self, proc: subprocess.Popen[str]) -> int:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=TIMEOUT)
        return proc.returncode

    def cleanup(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                proc.kill()
            proc.communicate(timeout=TIMEOUT)


@pytest.fixture
def procs(tmp_path: Path, netns: Netns, server: Server) -> Iterator[Processes]:
    made = Processes(tmp_path, netns, server)
    try:
        yield made
    finally:
        made.cleanup()


# -- A: a remote tool's task ----------------------------------------------------------------------


def _read(url: str, rid: str) -> tuple[list[TaskRecord], list[JournalRecord]]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    tasks = httpx.get(f"{url}/api/v1/tasks", params={"run_id": rid}, headers=headers).json()
    journal = httpx.get(f"{url}/api/v1/runs/{rid}/journal", headers=headers).json()
    return (
        [TaskRecord.from_json(t) for t in tasks["tasks"]],
        [JournalRecord.from_json(r) for r in journal["journal"]],
    )


def test_a_cut_off_workers_late_result_is_refused_and_the_task_runs_once_more_elsewhere(
    procs: Processes, netns: Netns, server: Server
) -> None:
    rid = f"partition-task-{time.time_ns()}"
    again = f"{rid}-again"
    # W1, cut off later, waits at the gate in its tool; W2, on the host, runs it at once.
    w1 = procs.start("w1", "worker", server.url, LEASE, inside=True, GATE=str(procs.gate))
    w2 = procs.start("w2", "worker", server.url, LEASE)
    run = procs.start(rid, "run", server.url, rid)
    run_again = procs.start(again, "run", server.url, again)
    for proc, name in ((w1, "w1"), (w2, "w2"), (run, rid), (run_again, again)):
        procs.ready(proc, name)
    procs.go("w1")
    procs.go(rid)
    wait_until(lambda: procs.ran("start", w1.pid), "the cut-off worker starting the tool")
    procs.go("w2")  # it finds the task held under W1's lease
    netns.cut()
    cut_at = time.monotonic()
    wait_until(lambda: procs.ran("start", w2.pid), "the task's next attempt, elsewhere")
    elsewhere = time.monotonic() - cut_at
    result = json.loads(procs.output(run, rid))
    finished = time.monotonic() - cut_at
    assert result["final_output"] == f"result: Oslo by {w2.pid}"
    # W1's tool ends while it is still cut off: its result goes out into the cut, and its
    # engine keeps sending it (RUNPLANE_SERVER_RETRY_SECONDS) until the link is back.
    procs.gate.write_text("")
    wait_until(lambda: procs.ran("end", w1.pid), "the cut-off worker's tool ending")
    time.sleep(1.0)  # its result is on its way, through the cut
    assert w1.poll() is None
    netns.restore()
    restored_at = time.monotonic()
    wait_until(lambda: "no longer holds it" in procs.stderr("w1"), "its late result refused")
    refused = time.monotonic() - restored_at
    log = procs.stderr("w1")
    assert "attempt 1 no longer holds it (the task is completed at attempt 2" in log, log
    tasks, journal = _read(server.url, rid)
    [task] = tasks
    assert (task.status, task.attempts) == ("completed", 2)
    assert task.result is not None
    assert task.result.output == {"json": f"Oslo by {w2.pid}"}  # not the late one
    [entry] = [e for e in journal if e.kind == "tool"]
    assert entry.payload["output"] == {"json": f"Oslo by {w2.pid}"}
    # Executed twice, recorded once; the late result reached the server once, and was refused.
    assert sorted(procs.lines()) == sorted(
        [
            ("start", "call-1", w1.pid),
            ("start", "call-1", w2.pid),
            ("end", "call-1", w2.pid),
            ("end", "call-1", w1.pid),
        ]
    )
    assert _refused_completions(server) == 1
    # The cut-off worker serves on: with the other one gone, the next call is its own.
    assert procs.stop(w2) == 0
    procs.go(again)
    assert json.loads(procs.output(run_again, again))["final_output"] == f"result: Oslo by {w1.pid}"
    assert procs.stderr("w1").count("no longer holds it") == 1  # said once, not retried
    assert procs.stop(w1) == 0
    print(
        f"\nfigure: link cut to the task's next attempt on the other worker: {elsewhere:.2f} s "
        f"(task lease {LEASE} s); to the run's end: {finished:.2f} s; link back to the late "
        f"result refused: {refused:.2f} s"
    )


# -- B: a run executed by a worker ----------------------------------------------------------------


def _steps(show: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [s for s in show["steps"] if s["type"] == kind]


def test_a_cut_off_workers_run_is_taken_over_and_its_late_steps_refused(
    procs: Processes,
    netns: Netns,
    server: Server,
    database: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RUNPLANE_TOKEN", TOKEN)  # every process of the test, `runs show` too
    jobs = Jobs(tmp_path, database, server=server.url)
    try:
        _run_taken_over(jobs, procs, netns, server)
    finally:
        jobs.cleanup()


def _run_taken_over(jobs: Jobs, procs: Processes, netns: Netns, server: Server) -> None:
    (jobs.workdir / "hold").write_text("")  # every tool waits while it exists
    url = server.url
    worker = ["cli", "worker", "jobs", "--server", server.url, "--poll", "0.1"]
    worker += ["--lease-seconds", LEASE]
    w1 = procs.start("w1", *worker, inside=True, held=False, RUNPLANE_SERVER_URL=url)
    w2 = procs.start("w2", *worker, RUNPLANE_SERVER_URL=url)
    first = procs.start("p1", "start", "p1", held=False, RUNPLANE_SERVER_URL=url)
    second = procs.start("p2", "start", "p2", RUNPLANE_SERVER_URL=url)
    for proc, name in ((w1, "w1"), (w2, "w2"), (first, "p1"), (second, "p2")):
        procs.ready(proc, name)
    rid = procs.output(first, "p1")  # a started run: the only worker serving claims it
    wait_until(lambda: f" {w1.pid}" in str(jobs.marker("holding")), "W1 in the run's step_a")
    procs.go("w2")
    wait_until(lambda: "runplane worker (pid" in procs.stderr("w2"), "W2 serving")
    netns.cut()
    cut_at = time.time()
    wait_until(lambda: f" {w2.pid}" in str(jobs.marker("holding")), "W2 taking the run over")
    show = jobs.show(rid)
    started = _steps(show, "attempt_started")
    assert [s["payload"]["pid"] for s in started] == [w1.pid, w2.pid]
    [ended] = _steps(show, "attempt_ended")
    assert ended["payload"]["reason"] == "lease_lost"  # alive, but silent past its lease
    took_over = started[1]["payload"]["started_at"] - cut_at
    (jobs.workdir / "hold").unlink()
    wait_until(lambda: jobs.status(rid) == "completed", "W2 finishing the run")
    finished = time.time() - cut_at
    # W1's step_a ends too, while it is cut off: its output and its next step wait for the link.
    wait_until(
        lambda: any(line.endswith(f" {w1.pid}") for line in jobs.lines("calls.log")),
        "W1's step_a ending",
    )
    journal = jobs.engine_call(lambda engine: engine.read_journal(rid))
    time.sleep(1.0)  # its writes are on their way, through the cut
    assert w1.poll() is None
    netns.restore()
    restored_at = time.time()
    wait_until(lambda: f"gave up run {rid}" in procs.stderr("w1"), "W1 giving the run up")
    gave_up = time.time() - restored_at
    log = procs.stderr("w1")
    assert "taken over by another process" in log, log
    # Nothing W1 sent late was written: every step once, W2's; W1 asked no model again.
    assert jobs.engine_call(lambda engine: engine.read_journal(rid)) == journal
    assert [(e.kind, e.key) for e in journal] == [
        ("model", "0"),
        ("tool", "1:p1-0"),
        ("model", "1"),
        ("tool", "2:p1-1"),
        ("model", "2"),
    ]
    show = jobs.show(rid)
    assert show["run"]["final_output"] == FINAL.format(key="p1")
    tools = [(s["payload"]["name"], s["attempt"]) for s in _steps(show, "tool_call")]
    assert tools == [("step_a", 2), ("step_b", 2)]
    assert [s["payload"]["reason"] for s in _steps(show, "attempt_ended")] == [
        "lease_lost",
        "finished",
    ]
    ran = sorted(" ".join(line.split()[::2]) for line in jobs.lines("calls.log"))
    assert ran == sorted([f"step_a {w1.pid}", f"step_a {w2.pid}", f"step_b {w2.pid}"])
    models = [line.split() for line in jobs.lines("model.log")]
    assert [(o, int(p)) for _, o, p in models] == [("0", w1.pid), ("1", w2.pid), ("2", w2.pid)]
    attempts = httpx.get(
        f"{server.url}/api/v1/runs/{rid}/attempts", headers={"Authorization": f"Bearer {TOKEN}"}
    ).json()["attempts"]
    assert [(a["started"]["pid"], a["ended"]["reason"]) for a in attempts] == [
        (w1.pid, "lease_lost"),
        (w2.pid, "finished"),
    ]
    # W1 serves on: with W2 gone, the next run is its own.
    assert procs.stop(w2) == 0
    procs.go("p2")
    again = procs.output(second, "p2")
    wait_until(lambda: jobs.status(again) == "completed", "W1 running the next run")
    assert [s["payload"]["pid"] for s in _steps(jobs.show(again), "attempt_started")] == [w1.pid]
    assert w1.poll() is None
    # Given up for good: a list of runs it asked for before the cut, arriving late, never made
    # it open the run again (`worker: starting run ...` once).
    assert procs.stderr("w1").count(f"run {rid} (agent") == 1, procs.stderr("w1")
    assert procs.stop(w1) == 0, procs.stderr("w1")
    print(
        f"\nfigure: link cut to the run's takeover by the other worker: {took_over:.2f} s "
        f"(run lease {LEASE} s); to the run's end: {finished:.2f} s; link back to the cut-off "
        f"worker giving the run up: {gave_up:.2f} s"
    )
