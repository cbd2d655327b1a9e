"""Local server processes kstream starts itself (Kafka, FerretDB): free ports, liveness, stopping.

>>> a, b = free_ports(2)
>>> a != b and port_free(a)
True
>>> alive(os.getpid())
True
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
from pathlib import Path

from kstream.retry import wait_until

__all__ = ["free_ports", "port_free", "alive", "terminate", "write_private"]

log = logging.getLogger(__name__)


def free_ports(count: int) -> list[int]:
    """``count`` distinct free localhost ports (held open together so none repeats)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]


def port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Kafka binds: a TIME_WAIT leftover is no conflict
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child still "exists"; check its state
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.split(") ", 1)[1][:1] != "Z"
    return True


def terminate(pids: int | list[int], timeout_s: float = 30) -> bool:
    """SIGTERM every pid together and wait; SIGKILL those still alive after ``timeout_s``. True if any ran."""
    pids = [p for p in ([pids] if isinstance(pids, int) else pids) if alive(p)]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    wait_until(lambda: not any(alive(p) for p in pids), timeout_s, interval=0.2)
    for pid in pids:
        if alive(pid):
            log.warning("process %d did not stop within %.0fs; killing it", pid, timeout_s)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    return bool(pids)


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to a file only its owner can read (mode 0600), whatever existed before."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        os.fchmod(out.fileno(), 0o600)
        out.write(text)
