"""One sending thread per SMTP connection.

A worker takes claimed deliveries from its inbox, and for each one: waits
for the rate limit, checks that the reader is still confirmed, renders the
message and sends it, ending it only when its gate says the previous one is
committed (``gate.py``). Its collaborators are narrow: the inbox, the
results, a ``Switch`` that says when to stop, and what builds the message.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

from sqlalchemy import Connection

from mailer.delivery.deliveries import Claim
from mailer.delivery.faults import SendOutcome, classify
from mailer.delivery.gate import Gate, Result, Results
from mailer.delivery.personalise import Composer, envelope_address
from mailer.delivery.report import DeliveryError
from mailer.delivery.senders import TokenBucket
from mailer.delivery.transport import Reply, Transport
from mailer.models import Subscriber, SubscriberStatus

log = logging.getLogger("mailer.delivery")
Inbox = queue.SimpleQueue[Claim | None]  # None: the worker stops


class Switch:
    """When a run's messages must stop leaving: a digest paused, a stop asked, a hard abort."""

    def __init__(self, stop: threading.Event) -> None:
        """``stop`` (SIGTERM): finish the messages in flight, start no other."""
        self.stop = stop
        self.aborted = False
        self.error: DeliveryError | None = None
        self._halted: set[int] = set()

    def halted(self, digest_id: int) -> bool:
        """Whether the digest's remaining messages must not leave (paused, stopping)."""
        return self.aborted or self.stop.is_set() or digest_id in self._halted

    def halt(self, digest_id: int) -> None:
        """Stop sending this digest (it was paused)."""
        self._halted.add(digest_id)

    def is_aborted(self) -> bool:
        """A hard stop: messages in flight are abandoned before their final "."."""
        return self.aborted

    def fail(self, error: DeliveryError) -> None:
        """A worker cannot go on: stop the run, keep the first error."""
        if self.error is None:
            self.error = error
        self.aborted = True


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


class ConnectionThread(threading.Thread):
    """Sends messages over one persistent connection."""

    def __init__(self, number: int, transport: Transport, check: Callable[[], ReaderCheck], *,
                 inbox: Inbox, results: Results, switch: Switch, composer: Composer,
                 bucket: TokenBucket) -> None:
        """``check`` opens this thread's database connection for the reader checks."""
        super().__init__(name=f"smtp-{number}", daemon=True)
        self.transport = transport
        self._open_check = check
        self._inbox = inbox
        self._results = results
        self._switch = switch
        self._composer = composer
        self._bucket = bucket
        self.gate = Gate(results)

    def run(self) -> None:
        """Connect, then send until the inbox hands out ``None``."""
        check: ReaderCheck | None = None
        try:
            check = self._open_check()
            self.transport.open()
            while (item := self._inbox.get()) is not None:
                try:
                    result = self.deliver(item, check)
                except BaseException:  # a lost server that will not take us back, or a bug
                    self._results.put(Result(item, SendOutcome.RELEASED))
                    raise
                if result.outcome is SendOutcome.SENT:
                    self.gate.hold()  # before the committing thread can see the result
                self._results.put(result)
        except DeliveryError as exc:
            self._switch.fail(exc)
        except Exception as exc:  # any bug must stop the run, not hang it
            log.exception("sending thread %s failed", self.name)
            self._switch.fail(DeliveryError(f"sending thread failed: {type(exc).__name__}: {exc}"))
        finally:
            self.transport.close()
            if check is not None:
                check.close()

    def deliver(self, item: Claim, check: ReaderCheck) -> Result:
        """Send one delivery (or decide not to) and say what happened."""
        if self._switch.halted(item.digest_id):
            return Result(item, SendOutcome.RELEASED)
        self._bucket.take()
        # Checked after the rate limit's wait, right before the message leaves.
        if not item.email or not check.confirmed(item.subscriber_id):
            return Result(item, SendOutcome.SKIPPED)
        address, problem = envelope_address(item.email, self.transport.smtputf8)
        if address is None:
            return Result(item, SendOutcome.FAILED, problem)
        payload, options = self._composer.payload(item, address, self.transport.eightbit)
        reply: Reply = self.transport.send(
            self._composer.envelope_from(item), address, payload, options=options,
            before_end=lambda: self.gate.wait(self._switch.is_aborted),
        )
        outcome = classify(reply)
        if outcome is SendOutcome.PAUSE:  # stop this digest on every connection now, not after the commit
            self._switch.halt(item.digest_id)
        return Result(item, outcome, str(reply), self.gate)


def drain(inbox: Inbox) -> list[Claim]:
    """Take every delivery still waiting in ``inbox`` (not the ``None`` stops)."""
    items: list[Claim] = []
    while True:
        try:
            item = inbox.get_nowait()
        except queue.Empty:
            return items
        if item is not None:
            items.append(item)
