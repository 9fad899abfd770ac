"""A network namespace joined to the host by a veth pair, whose link a test cuts and restores.

A process started inside (`Netns.popen`) reaches the host only through the pair, at
`host_address`; `cut()` sets the host's end down, so every packet between them is dropped
silently (a connection in flight stalls, a new one fails after ARP gives up), as when a
machine's network goes away, while the process keeps running. `restore()` brings it back:
stalled connections resume by TCP's retransmissions. The host end's address stays reachable
from the host itself during a cut (its local route survives), so a server bound there serves
the host's processes throughout.

Needs root and iproute2 (`ip netns`); `unavailable()` says why not, for a skip. Names carry
this process's pid (`rpn<pid>n<seq>`, at most 15 characters), so concurrent test sessions never
collide and `remove_leftovers()` deletes those of a process that is gone (a session killed
before its teardown). Each namespace takes a free /30 of 10.213.0.0/16, chosen under a lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import itertools
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["PREFIX", "Netns", "network_namespace", "remove_leftovers", "unavailable"]

PREFIX = "rpn"
_NAME = re.compile(rf"^{PREFIX}(\d+)[nhp](\d+)$")
_POOL = ipaddress.IPv4Network("10.213.0.0/16")
_LOCK = Path("/tmp/runplane-netns.lock")
_IP_SECONDS = 30.0  # one `ip` command, on a loaded machine
_SEQ = itertools.count(1)


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        ["ip", *args], capture_output=True, text=True, timeout=_IP_SECONDS, check=False
    )
    if check and done.returncode != 0:
        raise RuntimeError(f"`ip {' '.join(args)}` failed ({done.returncode}): {done.stderr}")
    return done


def unavailable() -> str | None:
    """Why a network namespace cannot be made here (a skip reason), or None."""
    if os.geteuid() != 0:
        return "network namespaces need root (`ip netns add`); this test runs as a user"
    if shutil.which("ip") is None:
        return "network namespaces need iproute2's `ip` command, which is not installed"
    try:
        listed = _ip("netns", "list", check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"`ip netns list` could not run: {exc}"
    if listed.returncode != 0:
        return f"`ip netns` is not available here: {listed.stderr.strip()}"
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _namespaces() -> list[str]:
    return [line.split()[0] for line in _ip("netns", "list").stdout.splitlines() if line.strip()]


def _links() -> list[str]:
    out = _ip("-o", "link", "show").stdout
    return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines()]


def remove_leftovers() -> list[str]:
    """Delete the namespaces and links of this module whose creating process is gone; their
    names. Those of live processes (another session's) are left alone."""
    removed: list[str] = []
    for name in _namespaces():
        found = _NAME.match(name)
        if found and not _alive(int(found.group(1))):
            _kill_inside(name)
            _ip("netns", "del", name, check=False)
            removed.append(name)
    for name in _links():
        found = _NAME.match(name)
        # Deleting one end of a pair deletes its peer: that one's own deletion then fails.
        if (
            found
            and not _alive(int(found.group(1)))
            and _ip("link", "del", name, check=False).returncode == 0
        ):
            removed.append(name)
    return removed


def _kill_inside(namespace: str) -> None:
    """SIGKILL what still runs inside `namespace` (only processes a test started there)."""
    pids = _ip("netns", "pids", namespace, check=False).stdout.split()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)


def _free_subnet() -> ipaddress.IPv4Network:
    """A /30 of the pool no interface of the host holds an address of (call under the lock)."""
    used: set[ipaddress.IPv4Address] = set()
    for line in _ip("-o", "-4", "addr", "show").stdout.splitlines():
        found = re.search(r"inet (\d+\.\d+\.\d+\.\d+)/", line)
        if found:
            used.add(ipaddress.IPv4Address(found.group(1)))
    subnets = list(_POOL.subnets(new_prefix=30))
    start = (os.getpid() * 7) % len(subnets)  # sessions start far apart, then look on
    for subnet in subnets[start:] + subnets[:start]:
        if not any(address in subnet for address in used):
            return subnet
    raise RuntimeError(f"every /30 of {_POOL} is in use; `ip -4 addr` shows them")


@dataclass
class Netns:
    """A namespace `name` whose end `ns_if` (at `ns_address`) pairs with the host's `host_if`
    (at `host_address`)."""

    name: str
    host_if: str
    ns_if: str
    host_address: str
    ns_address: str
    started: list[subprocess.Popen[Any]] = field(default_factory=list)
    cut_at: float | None = None  # time.monotonic() of the last cut, while cut

    def command(self, cmd: Sequence[str]) -> list[str]:
        """`cmd` run inside the namespace (its pid is the command's: `ip netns exec` execs)."""
        return ["ip", "netns", "exec", self.name, *cmd]

    def run(self, cmd: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """`cmd` inside, to its end (bounded: 60 s unless `timeout` says otherwise)."""
        kwargs.setdefault("timeout", 60.0)
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        kwargs.setdefault("check", False)
        done: subprocess.CompletedProcess[str] = subprocess.run(self.command(cmd), **kwargs)
        return done

    def popen(self, cmd: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        """`cmd` started inside; killed at teardown if it still runs."""
        proc: subprocess.Popen[Any] = subprocess.Popen(self.command(cmd), **kwargs)
        self.started.append(proc)
        return proc

    def cut(self) -> None:
        """Drop the link: from now on nothing passes between the namespace and the host."""
        _ip("link", "set", self.host_if, "down")
        self.cut_at = time.monotonic()

    def restore(self) -> None:
        """Bring the link back, and return once both ends carry it again."""
        _ip("link", "set", self.host_if, "up")
        self.cut_at = None
        self._wait_up()

    def _wait_up(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            host = _ip("-o", "link", "show", self.host_if).stdout
            inside = _ip("-n", self.name, "-o", "link", "show", self.ns_if).stdout
            if "LOWER_UP" in host and "LOWER_UP" in inside:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the veth pair is not up within {timeout} s:\n{host}{inside}")
            time.sleep(0.02)

    def _teardown(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGCONT)
                proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.communicate(timeout=30)
        _kill_inside(self.name)
        _ip("netns", "del", self.name, check=False)
        if self.host_if in _links():  # gone with its peer, unless something still held it
            _ip("link", "del", self.host_if, check=False)


@contextlib.contextmanager
def network_namespace() -> Iterator[Netns]:
    """A fresh namespace with lo and its veth end up, joined to the host; torn down on exit
    (its processes killed, the namespace and both links deleted), whatever happened."""
    remove_leftovers()
    seq = next(_SEQ)
    pid = os.getpid()
    name, host_if, ns_if = (f"{PREFIX}{pid}{kind}{seq}" for kind in "nhp")
    if len(host_if) > 15:
        raise RuntimeError(f"interface name {host_if!r} is longer than Linux's 15 characters")
    _LOCK.touch(exist_ok=True)
    with open(_LOCK, "r+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        subnet = _free_subnet()
        host_address, ns_address = (str(a) for a in list(subnet.hosts())[:2])
        made = Netns(name, host_if, ns_if, host_address, ns_address)
        try:
            _ip("netns", "add", name)
            _ip("link", "add", host_if, "type", "veth", "peer", "name", ns_if)
            _ip("addr", "add", f"{host_address}/30", "dev", host_if)
        except BaseException:
            made._teardown()
            raise
    try:
        _ip("link", "set", ns_if, "netns", name)
        _ip("-n", name, "link", "set", "lo", "up")
        _ip("-n", name, "addr", "add", f"{ns_address}/30", "dev", ns_if)
        _ip("-n", name, "link", "set", ns_if, "up")
        _ip("link", "set", host_if, "up")
        made._wait_up()
        yield made
    finally:
        made._teardown()
