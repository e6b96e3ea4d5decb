"""The send engine's one rule: a connection ends its next message only after
the previous message's 250 is committed.

So a crash (even SIGKILL) leaves at most one accepted but unrecorded message
per connection, and the rerun sends at most that one again. The pieces:

- a worker that got a 250 holds its connection's ``Gate`` before handing
  the result over, and waits on it just before the next message's final ".";
- ``Results`` carries results from the workers to the thread that owns the
  database, which gathers them into one batch (group commit);
- ``commit`` writes a batch, commits it, and only then opens the gates.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection

from mailer.delivery.deliveries import Claim
from mailer.delivery.faults import SendOutcome

# The longest a result waits for others to share its commit.
LINGER = 0.005


class Gate:
    """One connection's gate: closed from its 250 until that "sent" is committed."""

    def __init__(self, results: Results) -> None:
        """Open; ``results`` is where a waiting worker asks for the commit to come now."""
        self._results = results
        self._committed = threading.Event()
        self._committed.set()

    def hold(self) -> None:
        """A 250 arrived: close the gate (before the result can reach the committing thread)."""
        self._committed.clear()

    def open(self) -> None:
        """The "sent" is committed: the next message may end."""
        self._committed.set()

    def wait(self, aborted: Callable[[], bool]) -> bool:
        """Wait until the previous "sent" is committed; False if the run stops hard meanwhile."""
        if not self._committed.is_set():
            self._results.hurry()  # somebody is waiting for the commit: make it now
            while not self._committed.wait(0.5):
                if aborted():
                    return False
        return not aborted()


@dataclass(frozen=True, slots=True)
class Result:
    """What happened to one delivery; ``gate`` is the sending connection's, for a 250."""

    item: Claim
    outcome: SendOutcome
    reply: str | None = None
    gate: Gate | None = None


class Results:
    """The workers' results on their way to the thread that commits them."""

    def __init__(self) -> None:
        """Empty."""
        self._queue: queue.SimpleQueue[Result | None] = queue.SimpleQueue()  # None: hurry

    def put(self, result: Result) -> None:
        """Hand a result over (a 250's gate already held)."""
        self._queue.put(result)

    def hurry(self) -> None:
        """A worker has reached its final "." and waits: commit what is there."""
        self._queue.put(None)

    def gather(self, wait: float, connections: int = 1) -> list[Result]:
        """The waiting results, waiting up to ``wait`` s for the first.

        Group commit: after the first, gather more for up to ``LINGER`` s,
        until each of the ``connections`` has a "sent" waiting (none can end
        another message before the commit), or until a worker hurries us.
        Till then the workers are busy with their next message's envelope
        and body, so the wait costs them nothing.
        """
        try:
            first = self._queue.get(timeout=wait) if wait else self._queue.get_nowait()
        except queue.Empty:
            return []
        batch = [] if first is None else [first]
        waiting = {id(first.gate)} if first is not None and first.outcome is SendOutcome.SENT else set()
        deadline = time.monotonic() + LINGER
        while first is not None and len(waiting) < connections:
            left = deadline - time.monotonic()
            try:
                result = self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if result is None:
                break
            batch.append(result)
            if result.outcome is SendOutcome.SENT:
                waiting.add(id(result.gate))
        while True:  # whatever else is there already
            try:
                result = self._queue.get_nowait()
            except queue.Empty:
                return batch
            if result is not None:
                batch.append(result)


def commit(conn: Connection, batch: list[Result], write: Callable[[Connection, list[Result]], None]) -> None:
    """Write the batch's rows, commit, and only then let the waiting connections end their message."""
    write(conn, batch)
    conn.commit()
    for result in batch:
        if result.outcome is SendOutcome.SENT and result.gate is not None:
            result.gate.open()
