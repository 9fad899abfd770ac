"""Who holds a lease: one execution of a run, named by host, pid, a per-process token and a count.

Each opening of a run gets its own holder name, so two executions of one run id in one process
(two threads, two tasks) are told apart exactly as two processes are. A dead holder can be
recognised: on this host by its pid, and in this process by its execution having ended.
"""

from __future__ import annotations

import getpass
import itertools
import os
import socket
import threading
import uuid

__all__ = ["current_owner", "holder_process", "owner_is_dead", "requester", "retire"]

_token: tuple[int, str] | None = None
_count = itertools.count(1)
_live: set[str] = set()  # holders of this process whose execution has not ended
_lock = threading.Lock()


def _process() -> str:
    global _token
    pid = os.getpid()
    if _token is None or _token[0] != pid:  # a forked child is a different owner
        _token = (pid, uuid.uuid4().hex[:12])
    return f"{socket.gethostname()}:{pid}:{_token[1]}"


def current_owner() -> str:
    """A new holder name for an execution starting now; `retire` it when the execution ends."""
    owner = f"{_process()}:{next(_count)}"
    with _lock:
        _live.add(owner)
    return owner


def retire(owner: str) -> None:
    with _lock:
        _live.discard(owner)


def holder_process(owner: str) -> tuple[str, int | None]:
    """The host and pid a holder name says it ran in (pid None for a name not made here)."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    return host, int(pid_text) if pid_text.isdigit() else None


def owner_is_dead(owner: str) -> bool:
    """True only when certain: the holder's execution ended in this process, or it ran on this
    host and its pid no longer exists.

    A pid reused by another process reads as alive, so the run then waits for lease expiry:
    the safe side.
    """
    host, pid = holder_process(owner)
    if host != socket.gethostname() or pid is None:
        return False
    if pid == os.getpid():
        if not owner.startswith(_process() + ":"):
            return False  # a previous process with our pid (a reused pid): not known dead
        with _lock:
            return owner not in _live
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def requester() -> tuple[str, int, str | None]:
    """Who this process is, for a request it makes of a run (a cancel): host, pid and user (None
    when the system knows no name for this uid)."""
    try:
        user: str | None = getpass.getuser()
    except Exception:  # no USER variable and no passwd entry (a bare container)
        user = None
    return socket.gethostname(), os.getpid(), user
