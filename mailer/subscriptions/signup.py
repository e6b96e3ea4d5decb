"""Signup: the rules behind ``POST /subscribe`` and ``POST /api/subscribe``.

A request only validates and queues (``enqueue``: one INSERT into
``signup_queue``, then the answer). ``apply_queue`` applies the queue in
batches, from the web app's signup worker thread (``worker.py``) and from
the scheduler: per batch, one read of the subscribers concerned, then one
short write transaction that deletes the batch, applies the rules in
memory and writes the outcome (the subscribers, the consent events, the
confirmation mails). So

- the request costs what a one-row insert costs, and is the same request,
  statement for statement and in time, whatever the address's state;
- on SQLite, whose write lock covers the whole database, the lock is held
  for one small INSERT per request and one burst per batch, not for a
  request's reads and rendering;
- a flood of requests for one address meets the per-address limits in
  memory, in order, however many arrive in the same batch.

The rules, whatever the address's state: a new, pending, unsubscribed,
bounced, complained or erased address gets a (fresh) confirmation mail (it
stays in its state until the link is clicked), within the mail-bombing limits
and the confirmation budget (``budget.py``: past the hourly cap the mail waits
in the outbox, past its network's share it is dropped); a confirmed one gets
nothing and keeps its settings, since anybody can type anybody's address into
the form. Every request gets one consent event.

Batches are claimed (``claimed_by``), so two workers never apply the same
requests, and written with optimistic checks (a known subscriber is updated
only if its status and nonce are still those read; a new address may meet
another worker's insert): on a conflict the batch is read and applied again.
A worker that dies mid-batch leaves a claim that expires after a minute.
"""

from __future__ import annotations

import enum
import logging
import secrets
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from flask import Flask
from sqlalchemy import Row, Table, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from mailer.db import get_engine
from mailer.locks import advisory_key
from mailer.models import ConsentAction, MailKind, QueuedSignup, Subscriber, SubscriberStatus, utcnow
from mailer.subscriptions import consent
from mailer.subscriptions.addresses import Address, erased_hash
from mailer.subscriptions.budget import OUTBOX, Allowance, Budget, Refusal, Source, read_budget, source_of
from mailer.subscriptions.consent import INSERT_EVENT
from mailer.subscriptions.mails import ConfirmationTemplate, confirmation_template, notify_outbox
from mailer.subscriptions.throttle import recent_sends, recently_mailed

log = logging.getLogger("mailer.subscriptions")

QUEUE = cast(Table, QueuedSignup.__table__)
SUBSCRIBERS = cast(Table, Subscriber.__table__)
BATCH = 500
CLAIM_TIMEOUT = timedelta(minutes=1)
# Attempts at one batch when other writers keep changing its subscribers.
ATTEMPTS = 5

# The statements, built once: the request path runs one of them thousands
# of times a minute, and building a statement (and its cache key) per
# request would cost more than the database takes.
ENQUEUE = insert(QUEUE)
_FREE = or_(QUEUE.c.claimed_at.is_(None), QUEUE.c.claimed_at < bindparam("stale"))
CLAIM = (
    update(QUEUE)
    .where(QUEUE.c.id.in_(
        # SKIP LOCKED on PostgreSQL (two workers take different rows); SQLite
        # has one writer at a time and ignores it. The outer _FREE is checked
        # again on rows another claim changed meanwhile.
        select(QUEUE.c.id).where(_FREE).order_by(QUEUE.c.id).limit(bindparam("limit"))
        .with_for_update(skip_locked=True).scalar_subquery()
    ), _FREE)
    .values(claimed_by=bindparam("token"), claimed_at=bindparam("now"))
    .returning(*QUEUE.c)
)
RELEASE = delete(QUEUE).where(QUEUE.c.id.in_(bindparam("ids", expanding=True)),
                              QUEUE.c.claimed_by == bindparam("token"))
# A confirmation to the subscriber that the hourly cap held back is still in the outbox, untried.
WAITING = select(OUTBOX.c.id).where(
    OUTBOX.c.subscriber_id == SUBSCRIBERS.c.id, OUTBOX.c.kind == MailKind.CONFIRM, OUTBOX.c.sent_at.is_(None),
    OUTBOX.c.attempts == 0, OUTBOX.c.not_before > OUTBOX.c.created_at,
).exists()
READ_SUBSCRIBERS = select(
    SUBSCRIBERS.c.id, SUBSCRIBERS.c.email_hash, SUBSCRIBERS.c.status, SUBSCRIBERS.c.confirm_nonce,
    SUBSCRIBERS.c.confirmations_sent, SUBSCRIBERS.c.unsubscribed_at, WAITING.label("waiting"),
).where(SUBSCRIBERS.c.email_hash.in_(bindparam("hashes", expanding=True)))
INSERT_SUBSCRIBERS = insert(SUBSCRIBERS).returning(SUBSCRIBERS.c.id, SUBSCRIBERS.c.email_hash,
                                                   sort_by_parameter_order=True)
INSERT_MAILS = insert(OUTBOX)
BATCH_LOCK = select(func.pg_advisory_xact_lock(advisory_key("signup-batches")))
_UPDATES: dict[frozenset[str], Any] = {}


class Outcome(enum.StrEnum):
    """What a signup did (never shown to the requester; kept in its consent event)."""

    MAILED = "mailed"  # a confirmation mail is queued, to leave at once
    HELD = "held"  # queued, to leave when CONFIRM_MAILS_PER_HOUR allows
    WAITING = "waiting"  # the address's held mail has not left yet: it still will
    THROTTLED = "throttled"  # the address had one lately
    CAPPED = "capped"  # dropped: the hourly cap would hold it past CONFIRM_MAX_WAIT_HOURS
    NETWORK_SHARE = "network-share"  # dropped: its network's share of the hour is spent
    ALREADY_CONFIRMED = "already-confirmed"


REFUSED = {Refusal.CAP: Outcome.CAPPED, Refusal.NETWORK: Outcome.NETWORK_SHARE}


@dataclass(frozen=True)
class SignupRequest:
    """A validated signup, from the form or the API."""

    address: Address
    topics: str  # normalised (mailer.topics.normalise_topics)
    language: str
    channel: str  # ConsentChannel.FORM or ConsentChannel.API
    consent_text: str
    origin: consent.Origin = consent.NOWHERE


def new_nonce() -> str:
    """A fresh value that binds confirm tokens to one pending signup."""
    return secrets.token_hex(16)


def enqueue(engine: Engine, req: SignupRequest, now: datetime | None = None) -> None:
    """Queue a signup request (committed on return); then wake the signup worker."""
    with engine.begin() as conn:
        conn.execute(ENQUEUE, {
            "received_at": now or utcnow(), "email": req.address.email, "email_hash": req.address.hash,
            "topics": req.topics, "language": req.language, "channel": req.channel,
            "consent_text": req.consent_text, "ip": req.origin.ip, "user_agent": req.origin.user_agent,
            "source_page": req.origin.source_page,
        })


# --- applying the queue ----------------------------------------------------


@dataclass
class Reader:
    """A subscriber as a batch sees it: read once, changed in memory, written once."""

    email_hash: str
    id: int | None  # None: new in this batch
    status: SubscriberStatus
    nonce: str
    sent: list[str]
    # The status and nonce read: the write checks that they are unchanged.
    read_status: SubscriberStatus | None = None
    read_nonce: str | None = None
    changes: dict[str, Any] = field(default_factory=dict)
    erased_at: datetime | None = None
    # A mail held by the hourly cap waits for the reader: its link must stay good.
    waiting: bool = False

    @classmethod
    def known(cls, row: Row[Any]) -> Reader:
        """A subscriber read from the database."""
        status = SubscriberStatus(row.status)
        return cls(row.email_hash, row.id, status, row.confirm_nonce, list(row.confirmations_sent or []),
                   read_status=status, read_nonce=row.confirm_nonce,
                   erased_at=row.unsubscribed_at if status is SubscriberStatus.ERASED else None,
                   waiting=bool(row.waiting))


@dataclass(frozen=True)
class Mail:
    """A confirmation mail to queue: for whom, in which language, with which nonce, from where, when."""

    reader: Reader
    email: str
    language: str
    nonce: str
    network: str | None  # the key of its source network (budget.Source)
    held_until: datetime | None = None  # None: it leaves at once


@dataclass
class Plan:
    """What a batch writes."""

    readers: dict[str, Reader] = field(default_factory=dict)
    mails: list[Mail] = field(default_factory=list)
    # One consent event per request: its values, and the reader it belongs to.
    events: list[tuple[Reader, dict[str, Any]]] = field(default_factory=list)
    # For the log: mails dropped per network, dropped for the cap, and when the held ones leave.
    dropped: Counter[str] = field(default_factory=Counter)
    capped: int = 0
    held: list[datetime] = field(default_factory=list)


def plan_batch(rows: Sequence[Row[Any]], known: Mapping[str, Row[Any]], allowance: Allowance,
               sources: Mapping[str | None, Source | None]) -> Plan:
    """Apply the rules to ``rows`` (queued requests, oldest first), in memory.

    ``known``: the subscribers of these addresses, as read; ``allowance``:
    the confirmation budget, spent here; ``sources``: each row's IP's network.
    """
    plan = Plan(readers={email_hash: Reader.known(row) for email_hash, row in known.items()})
    for row in rows:
        reader = plan.readers.get(row.email_hash)
        if reader is not None and reader.erased_at is not None and row.received_at <= reader.erased_at:
            # Typed in before the reader asked to be erased: the erasure wins,
            # and nothing of the request is kept.
            continue
        source = sources.get(row.ip)
        network = source.key if source is not None else None
        refusal = allowance.refusal(network)
        if reader is None:
            reader = plan.readers[row.email_hash] = _new_reader(row)
            outcome = REFUSED[refusal] if refusal is not None else Outcome.MAILED
            if outcome is Outcome.MAILED:
                reader.sent = [row.received_at.isoformat()]
                reader.changes["confirmations_sent"] = reader.sent
        else:
            outcome = _known_request(reader, row, REFUSED[refusal] if refusal is not None else None)
        if outcome is Outcome.MAILED:
            at = allowance.spend(network)
            held = at > allowance.now
            if held:
                outcome, reader.waiting = Outcome.HELD, True
                plan.held.append(at)
            plan.mails.append(Mail(reader, row.email, row.language, reader.nonce, network, at if held else None))
        elif outcome is Outcome.NETWORK_SHARE:
            plan.dropped[source.network if source is not None else "?"] += 1
        elif outcome is Outcome.CAPPED:
            plan.capped += 1
        plan.events.append((reader, _signup_event(row, outcome)))
    return plan


def _new_reader(row: Row[Any]) -> Reader:
    """A first signup for the address: a pending subscriber."""
    reader = Reader(row.email_hash, None, SubscriberStatus.PENDING, new_nonce(), [])
    at = row.received_at
    reader.changes.update(
        email=row.email, email_hash=row.email_hash, status=SubscriberStatus.PENDING, language=row.language,
        topics=row.topics, confirm_nonce=reader.nonce, created_at=at, updated_at=at, confirm_requested_at=at,
        last_signup_at=at, confirmations_sent=[],
    )
    return reader


def _known_request(reader: Reader, row: Row[Any], refused: Outcome | None) -> Outcome:
    """A signup for an address we have (or had earlier in the batch); ``refused``: the budget's answer."""
    at = row.received_at
    reader.changes["last_signup_at"] = at
    if reader.status is SubscriberStatus.CONFIRMED:
        return Outcome.ALREADY_CONFIRMED
    throttled = recently_mailed(reader.sent, at)
    if throttled or reader.waiting:
        if reader.status is SubscriberStatus.PENDING:
            # Still the same reader: new choices, the latest mailed link (or
            # the one still waiting to leave) stays good, and the purge counts from now.
            reader.changes.update(topics=row.topics, language=row.language, confirm_requested_at=at, updated_at=at)
        return Outcome.THROTTLED if throttled else Outcome.WAITING
    if refused is not None:
        return refused
    # A new nonce voids the links of earlier signups; back on an erased row,
    # the address is stored again: it is a new consent.
    reader.nonce = new_nonce()
    reader.sent = [moment.isoformat() for moment in recent_sends(reader.sent, at)] + [at.isoformat()]
    reader.changes.update(
        confirm_nonce=reader.nonce, confirmations_sent=reader.sent, confirm_requested_at=at, topics=row.topics,
        language=row.language, email=row.email, updated_at=at,
    )
    if reader.erased_at is not None:
        # Nothing of the erased reader: this one begins now, under the plain hash of a live address.
        reader.changes.update(created_at=at, email_hash=row.email_hash)
    return Outcome.MAILED


def _signup_event(row: Row[Any], outcome: Outcome) -> dict[str, Any]:
    """The consent event of a signup request, whatever its outcome."""
    origin = consent.Origin(ip=row.ip, user_agent=row.user_agent, source_page=row.source_page)
    return consent.event(
        None, row.email_hash, ConsentAction.SIGNUP, row.channel, origin,
        language=row.language,
        text_version=consent.text_version(row.consent_text, row.language),
        details={"outcome": str(outcome), "topics": row.topics, "consent_text": row.consent_text},
        now=row.received_at,
    )


class Conflict(Exception):
    """Another writer changed what the batch read: read and apply it again."""


class ClaimLost(Exception):
    """Another worker took the batch over (its claim had expired): leave it to that one."""


def apply_queue(app: Flask, *, limit: int = BATCH, stop: threading.Event | None = None) -> int:
    """Apply every queued signup that no live worker holds; return how many (needs an app context).

    Safe to run in several threads and processes at once.
    """
    engine = get_engine(app)
    done = 0
    while stop is None or not stop.is_set():
        token, rows = claim_batch(engine, limit)
        if rows:
            done += apply_batch(app, engine, token, rows)
        if len(rows) < limit:
            break
    return done


def claim_batch(engine: Engine, limit: int = BATCH, now: datetime | None = None) -> tuple[str, list[Row[Any]]]:
    """Claim up to ``limit`` queued requests for this worker: (its token, the rows, oldest first)."""
    token, now = secrets.token_hex(16), now or utcnow()
    with engine.begin() as conn:
        rows = conn.execute(CLAIM, {"token": token, "now": now, "stale": now - CLAIM_TIMEOUT, "limit": limit}).all()
    return token, sorted(rows, key=lambda row: row.id)


@dataclass(frozen=True)
class Batch:
    """Claimed rows and what the batch reads once about them."""

    token: str
    rows: list[Row[Any]]
    sources: dict[str | None, Source | None]  # each IP's network

    @property
    def networks(self) -> set[str]:
        """The keys of the networks the batch's requests came from."""
        return {source.key for source in self.sources.values() if source is not None}


def apply_batch(app: Flask, engine: Engine, token: str, rows: list[Row[Any]]) -> int:
    """Apply claimed rows; return how many (0 if another worker took them over)."""
    config = app.config
    secret = str(config["SECRET_KEY"])
    batch = Batch(token, rows, {ip: source_of(ip, secret) for ip in {row.ip for row in rows}})
    for attempt in range(ATTEMPTS):
        with engine.connect() as conn:
            known, budget, now = _read(config, conn, batch)
            plan = plan_batch(rows, known, budget.allowance(config, now), batch.sources)
            try:
                with conn.begin():
                    plan = _write(config, conn, batch, known, plan, budget)
            except ClaimLost:
                log.warning("signup batch taken over by another worker (this one was too slow)")
                return 0
            except (Conflict, IntegrityError):
                log.info("signup batch met another writer (attempt %d): applying it again", attempt + 1)
                continue
        if plan.mails:
            notify_outbox(app)
        _log_budget(config, plan)
        return len(rows)
    log.error("signup batch of %d requests not applied after %d attempts; it will be retried", len(rows), ATTEMPTS)
    return 0


def _log_budget(config: Mapping[str, Any], plan: Plan) -> None:
    """One line per network whose mails were dropped, one for the cap's drops, one for the held mails."""
    for network, count in plan.dropped.items():
        log.warning("%d confirmation mail(s) not queued: %s has spent its CONFIRM_MAILS_PER_NETWORK_PER_HOUR (%s)",
                    count, network, config["CONFIRM_MAILS_PER_NETWORK_PER_HOUR"])
    if plan.capped:
        log.error("%d confirmation mail(s) not queued: CONFIRM_MAILS_PER_HOUR (%s) would hold them longer than "
                  "CONFIRM_MAX_WAIT_HOURS", plan.capped, config["CONFIRM_MAILS_PER_HOUR"])
    if plan.held:
        log.warning("%d confirmation mail(s) wait for CONFIRM_MAILS_PER_HOUR (%s); the last leaves at %s UTC",
                    len(plan.held), config["CONFIRM_MAILS_PER_HOUR"], max(plan.held).isoformat(timespec="seconds"))


def _read(config: Mapping[str, Any], conn: Connection,
          batch: Batch) -> tuple[dict[str, Row[Any]], Budget, datetime]:
    """The subscribers of the batch's addresses and the confirmation budget (and when it was read),
    read outside any write transaction."""
    hashes = sorted({row.email_hash for row in batch.rows})
    # An erased reader's row keeps only the keyed hash: look for both, and
    # file what is found under the plain one, as the requests are.
    plain_of = {erased_hash(plain, config["SECRET_KEY"]): plain for plain in hashes}
    known = {plain_of.get(row.email_hash, row.email_hash): row
             for row in conn.execute(READ_SUBSCRIBERS, {"hashes": hashes + sorted(plain_of)})}
    now = utcnow()
    budget = read_budget(conn, config, now, batch.networks, len(batch.rows))
    conn.rollback()  # end the read (PostgreSQL opened a transaction for it)
    return known, budget, now


def _write(config: Mapping[str, Any], conn: Connection, batch: Batch, known: Mapping[str, Row[Any]],
           plan: Plan, budget: Budget) -> Plan:
    """The batch's one write transaction; the plan written. Raises Conflict or ClaimLost.

    The plan was made before, so that the write lock (the whole database on
    SQLite) is held only for the writes. Batches write one at a time (on
    SQLite that lock, on PostgreSQL a transaction-level advisory lock), so
    the budget read again here is exact: when another batch spent some of
    it meanwhile, the rules run again with what is left.
    """
    rows = batch.rows
    templates = {(mail.language, mail.email): confirmation_template(config, mail.language).for_address(mail.email)
                 for mail in plan.mails}
    if conn.execute(RELEASE, {"ids": [row.id for row in rows], "token": batch.token}).rowcount != len(rows):
        raise ClaimLost
    if conn.dialect.name == "postgresql":
        conn.execute(BATCH_LOCK)
    if plan.mails:
        now = utcnow()
        fresh = read_budget(conn, config, now, batch.networks, len(rows))
        if fresh != budget:
            plan = plan_batch(rows, known, fresh.allowance(config, now), batch.sources)
    new = sorted((reader for reader in plan.readers.values() if reader.id is None), key=lambda r: r.email_hash)
    if new:
        ids = {found.email_hash: found.id for found in conn.execute(
            INSERT_SUBSCRIBERS, [reader.changes for reader in new])}
        for reader in new:
            reader.id = ids[reader.email_hash]
    for reader in plan.readers.values():
        if reader.read_status is not None and reader.changes:
            _update(conn, reader)
    if plan.mails:
        conn.execute(INSERT_MAILS, [_mail_row(config, templates, mail) for mail in plan.mails])
    if plan.events:
        conn.execute(INSERT_EVENT, [{**values, "subscriber_id": reader.id} for reader, values in plan.events])
    return plan


def _mail_row(config: Mapping[str, Any], templates: Mapping[tuple[str, str], ConfirmationTemplate],
              mail: Mail) -> dict[str, Any]:
    """The outbox row of a planned mail: its network, and when a held one may leave."""
    template = (templates.get((mail.language, mail.email))
                or confirmation_template(config, mail.language).for_address(mail.email))
    values = template.values(config, cast(int, mail.reader.id), mail.nonce)
    values["network"], values["next_attempt_at"] = mail.network, mail.held_until
    if mail.held_until is not None:
        values["not_before"] = mail.held_until
    return values


def _update(conn: Connection, reader: Reader) -> None:
    """Write a known reader's changes, if its status and nonce are still those read."""
    columns = frozenset(reader.changes)
    statement = _UPDATES.get(columns)
    if statement is None:
        values: dict[str, Any] = {name: bindparam(f"new_{name}") for name in columns}
        # Kept as it is unless the settings changed (its onupdate would say they did).
        values.setdefault("updated_at", SUBSCRIBERS.c.updated_at)
        statement = _UPDATES[columns] = update(SUBSCRIBERS).where(
            SUBSCRIBERS.c.id == bindparam("subscriber_id"),
            SUBSCRIBERS.c.status == bindparam("read_status"),
            SUBSCRIBERS.c.confirm_nonce == bindparam("read_nonce"),
        ).values(values)
    found = conn.execute(statement, {
        "subscriber_id": reader.id, "read_status": reader.read_status, "read_nonce": reader.read_nonce,
        **{f"new_{name}": value for name, value in reader.changes.items()},
    }).rowcount
    if found != 1:
        raise Conflict


def backlog(engine: Engine) -> int:
    """How many signup requests wait in the queue."""
    with engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(QUEUE)) or 0)
