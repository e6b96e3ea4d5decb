"""One sending thread per SMTP connection.

A worker takes claimed deliveries from the run's inbox, and for each one:
waits for the rate limit, checks that the reader is still confirmed,
renders the message and sends it. Before the final "." of a message it
waits until the previous message's "sent" is committed, so a crash can
leave at most one accepted but unrecorded message on this connection.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import Connection

from mailer.delivery.compose import envelope_address
from mailer.delivery.faults import Outcome, classify
from mailer.delivery.queue import Item
from mailer.delivery.report import DeliveryError
from mailer.delivery.transport import Reply, Transport
from mailer.models import Subscriber, SubscriberStatus

if TYPE_CHECKING:
    from mailer.delivery.run import Run

log = logging.getLogger("mailer.delivery")


@dataclass(frozen=True, slots=True)
class Result:
    """What happened to one delivery, for the run's main thread to record."""

    item: Item
    outcome: Outcome
    reply: str | None = None
    worker: Worker | None = None


class ReaderCheck:
    """Is the reader still confirmed? One indexed lookup just before each message.

    Runs on a connection of its own in autocommit mode, so each lookup sees
    the latest committed state (an unsubscribe a second ago), with the
    driver's cursor directly: this runs once per message.
    """

    def __init__(self, conn: Connection) -> None:
        """Use ``conn`` (opened with isolation_level="AUTOCOMMIT") until ``close``."""
        self._conn = conn
        self._cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
        self._sql = f"SELECT status FROM {Subscriber.__tablename__} WHERE id = {mark}"  # noqa: S608 - no input

    def confirmed(self, subscriber_id: int) -> bool:
        """True when the subscriber exists and is confirmed right now."""
        self._cursor.execute(self._sql, (subscriber_id,))
        row = self._cursor.fetchone()
        return row is not None and row[0] == SubscriberStatus.CONFIRMED.value

    def close(self) -> None:
        """Give the connection back."""
        self._cursor.close()
        self._conn.close()


# Put on the results queue by a worker waiting for a commit: not a result.
HURRY = Result(None, Outcome.RELEASED)  # type: ignore[arg-type]


class Worker(threading.Thread):
    """Sends the run's messages over one persistent connection."""

    def __init__(self, run: Run, number: int, transport: Transport, check: Callable[[], ReaderCheck]) -> None:
        """``check`` opens this thread's database connection for the reader checks."""
        super().__init__(name=f"smtp-{number}", daemon=True)
        self.owner = run
        self.transport = transport
        self._open_check = check
        # Set while this connection has no accepted-but-uncommitted message.
        self.committed = threading.Event()
        self.committed.set()

    def run(self) -> None:
        """Connect, then send until the inbox hands out ``None``."""
        run = self.owner
        check: ReaderCheck | None = None
        try:
            check = self._open_check()
            self.transport.open()
            while True:
                item = run.inbox.get()
                if item is None:
                    break
                try:
                    result = self.deliver(item, check)
                except BaseException:  # a lost server that will not take us back, or a bug
                    run.results.put(Result(item, Outcome.RELEASED))
                    raise
                if result.outcome is Outcome.SENT:
                    self.committed.clear()  # before the main thread can see the result
                run.results.put(result)
        except DeliveryError as exc:
            run.fail(exc)
        except Exception as exc:  # any bug must stop the run, not hang it
            log.exception("sending thread %s failed", self.name)
            run.fail(DeliveryError(f"sending thread failed: {type(exc).__name__}: {exc}"))
        finally:
            self.transport.close()
            if check is not None:
                check.close()

    def deliver(self, item: Item, check: ReaderCheck) -> Result:
        """Send one delivery (or decide not to) and say what happened."""
        run = self.owner
        if run.halted(item.digest_id):
            return Result(item, Outcome.RELEASED)
        run.bucket.take()
        # Checked after the rate limit's wait, right before the message leaves.
        if not item.email or not check.confirmed(item.subscriber_id):
            return Result(item, Outcome.SKIPPED)
        address, problem = envelope_address(item.email, self.transport.smtputf8)
        if address is None:
            return Result(item, Outcome.FAILED, problem)
        payload, options = run.composer.payload(item, address, self.transport.eightbit)
        reply: Reply = self.transport.send(
            run.composer.envelope_from(item), address, payload, options=options, before_end=self.wait_committed
        )
        outcome = classify(reply)
        if outcome is Outcome.PAUSE:  # stop this digest on every connection now, not after the commit
            run.halt(item.digest_id)
        return Result(item, outcome, str(reply), self)

    def wait_committed(self) -> bool:
        """Wait until the previous "sent" is committed; False if the run is stopping hard."""
        if not self.committed.is_set():
            self.owner.results.put(HURRY)  # commit now: somebody is waiting for it
            while not self.committed.wait(0.5):
                if self.owner.aborted:
                    return False
        return not self.owner.aborted


def drain(inbox: queue.SimpleQueue[Item | None]) -> list[Item]:
    """Take every delivery still waiting in ``inbox`` (not the ``None`` stops)."""
    items: list[Item] = []
    while True:
        try:
            item = inbox.get_nowait()
        except queue.Empty:
            return items
        if item is not None:
            items.append(item)
