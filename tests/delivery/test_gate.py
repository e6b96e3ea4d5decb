"""The send engine's rule: a connection ends its next message only after the previous 250 is committed."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from sqlalchemy import Connection, create_engine, event

from mailer.delivery.deliveries import Claim
from mailer.delivery.faults import SendOutcome
from mailer.delivery.gate import Gate, Result, Results, commit
from mailer.models import DeliveryStatus


def _item(number: int) -> Claim:
    return Claim(number, 1, 1, number, f"reader{number}@example.org", DeliveryStatus.PENDING, 0,
                datetime.now(UTC))


def test_the_next_message_ends_only_after_the_previous_sent_is_committed() -> None:
    engine = create_engine("sqlite://")
    order: list[str] = []
    event.listen(engine, "commit", lambda _conn: order.append("commit"))
    results = Results()
    gate = Gate(results)

    def connection_thread() -> None:
        gate.hold()  # the 250 of message 1
        results.put(Result(_item(1), SendOutcome.SENT, "250 OK", gate))
        assert gate.wait(lambda: False)  # the final "." of message 2
        order.append("message 2 ends")

    thread = threading.Thread(target=connection_thread)
    thread.start()
    batch = results.gather(wait=5)
    assert [r.item.delivery_id for r in batch] == [1]
    assert results.gather(wait=5) == []  # the thread asked to hurry: it is waiting at its final "."

    def write(conn: Connection, written: list[Result]) -> None:
        order.append(f"write {len(written)}")

    with engine.connect() as conn:
        conn.begin()
        commit(conn, batch, write)
    thread.join(5)
    assert order == ["write 1", "commit", "message 2 ends"]


def test_a_hard_stop_abandons_the_message_waiting_at_its_final_dot() -> None:
    results = Results()
    gate = Gate(results)
    gate.hold()
    assert gate.wait(lambda: True) is False  # no final ".": the server drops the message
    assert results.gather(wait=1) == []  # it had asked for the commit


def test_an_open_gate_does_not_wait_and_a_sent_per_connection_is_one_commit() -> None:
    results = Results()
    gates = [Gate(results), Gate(results)]
    assert gates[0].wait(lambda: False)  # nothing uncommitted on this connection
    for number, gate in enumerate(gates, 1):
        gate.hold()
        results.put(Result(_item(number), SendOutcome.SENT, "250 OK", gate))
    results.put(Result(_item(3), SendOutcome.DEFERRED, "451 later"))
    assert [r.item.delivery_id for r in results.gather(wait=1, connections=2)] == [1, 2, 3]
