"""Who holds a lease: host, pid and a per-process token, so a dead holder can be recognised."""

from __future__ import annotations

import os
import socket
import uuid

__all__ = ["current_owner", "owner_is_dead"]

_token: tuple[int, str] | None = None


def current_owner() -> str:
    global _token
    pid = os.getpid()
    if _token is None or _token[0] != pid:  # a forked child is a different owner
        _token = (pid, uuid.uuid4().hex[:12])
    return f"{socket.gethostname()}:{pid}:{_token[1]}"


def owner_is_dead(owner: str) -> bool:
    """True only when certain: the owner ran on this host and its pid no longer exists.

    A pid reused by another process reads as alive, so the run then waits for lease expiry:
    the safe side.
    """
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
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
