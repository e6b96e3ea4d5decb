"""Who is sending: this sender's name on its claims, SQLite's one-sender lock, and the send rate.

On PostgreSQL any number of senders, on any number of hosts, share a digest
through row claims. SQLite has no row locks: there a file lock beside the
database admits one sender at a time, and the kernel drops it when the
process dies, even by SIGKILL, so a rerun never waits for a dead sender.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from sqlalchemy.engine import make_url

from mailer.delivery.report import SenderBusyError


def _namespace() -> str:
    """This process's PID namespace: PIDs only mean something inside one."""
    try:
        return os.readlink("/proc/self/ns/pid").removeprefix("pid:[").removesuffix("]")
    except OSError:
        return "-"


def sender_name() -> str:
    """``host/pid-namespace/pid/nonce``: what this sender writes in ``claimed_by``."""
    host = socket.gethostname()[:40] or "localhost"
    return f"{host}/{_namespace()}/{os.getpid()}/{uuid.uuid4().hex[:8]}"


def is_dead_neighbour(claimant: str) -> bool:
    """True when ``claimant`` ran on this host, in this PID namespace, and is gone.

    Only then can its claims be taken back before their lease runs out; a
    sender elsewhere is presumed alive until its lease expires.
    """
    parts = claimant.split("/")
    if len(parts) != 4 or not parts[2].isdigit():
        return False
    host, namespace, pid = parts[0], parts[1], int(parts[2])
    if host != (socket.gethostname()[:40] or "localhost") or namespace != _namespace() or namespace == "-":
        return False
    if pid == os.getpid():
        # Another run in this very process (the dashboard's and the
        # scheduler's threads): alive, or its lease will tell.
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


@contextlib.contextmanager
def exclusive_sender(database_url: str) -> Iterator[bool]:
    """On SQLite, hold the one-sender lock (raise SenderBusyError); elsewhere do nothing.

    Yields True when this sender is alone by construction (SQLite), so that
    it may take back any claim left in the queue.
    """
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        yield False
        return
    path = Path(f"{url.database}.send-lock")
    with path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise SenderBusyError(
                f"another sender (pid {holder}) is sending from this database; SQLite allows one at a time, "
                "so this one exits: try again when it has finished"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# --- the send rate ---------------------------------------------------------
# ``MAILER_SEND_RATE``: at most so many messages a second, as a token bucket.
#
# One bucket per run, shared by the connections of this process. The bucket
# holds at most one second of tokens, so after a pause the sender does not
# burst past what the provider allows.

class TokenBucket:
    """``rate`` tokens a second, up to ``burst``; ``rate`` 0 means no limit."""

    def __init__(self, rate: float, burst: float | None = None, clock: Callable[[], float] | None = None,
                 sleep: Callable[[float], None] | None = None) -> None:
        """A full bucket: the first ``burst`` messages leave at once.

        ``clock`` and ``sleep`` default to this module's ``time`` functions,
        looked up when called (a test replaces them).
        """
        self.rate = rate
        self.burst = max(1.0, burst if burst is not None else rate)
        self.tokens = self.burst
        self._clock = clock or (lambda: time.monotonic())
        self._sleep = sleep or (lambda seconds: time.sleep(seconds))
        self._stamp = self._clock()
        self._lock = threading.Lock()

    def take(self) -> None:
        """Wait until a token is there and take it."""
        if not self.rate:
            return
        with self._lock:
            now = self._clock()
            self.tokens = min(self.burst, self.tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            self.tokens -= 1
            # Going below zero books a future token: wait for it outside the
            # bucket's state, holding the lock so the waits queue up in order.
            wait = -self.tokens / self.rate if self.tokens < 0 else 0.0
            if wait:
                self._sleep(wait)
