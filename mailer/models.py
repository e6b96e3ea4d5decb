"""The tables, and nothing else.

``subscriptions/`` and the pipeline ``feeds -> digest -> delivery`` meet only
here. Times are stored in UTC (timezone-aware on PostgreSQL; SQLite keeps them
naive, so ``utcnow()`` is naive UTC everywhere for one behaviour on both).
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """The current time in UTC, naive (see the module docstring)."""
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    """Declarative base with a naming convention, so migrations name constraints."""

    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSON, list[str]: JSON}


def _enum(cls: type[enum.Enum]) -> Enum:
    # Stored as plain strings (no native ENUM type): adding a state is a code
    # change, not a migration that locks a big table on PostgreSQL.
    return Enum(cls, native_enum=False, length=20, values_callable=lambda e: [m.value for m in e])


# --- subscriptions ---------------------------------------------------------


class SubscriberStatus(enum.StrEnum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    # Reported our mail as spam (an ARF complaint): never mailed again unless they
    # sign up anew and confirm (a fresh double opt-in).
    COMPLAINED = "complained"
    ERASED = "erased"


class Subscriber(Base):
    """A reader. Only ``subscriptions/`` changes ``status``."""

    __tablename__ = "subscribers"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Normalised address, lower-cased, IDN domain in its ASCII (xn--) form so
    # that it can go straight into RCPT TO; None once erased.
    email: Mapped[str | None] = mapped_column(String(320), unique=True)
    # sha256 of the normalised address: kept after erasure to suppress re-imports.
    email_hash: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[SubscriberStatus] = mapped_column(_enum(SubscriberStatus), index=True)
    language: Mapped[str] = mapped_column(String(8), default="it")
    # Sorted, comma-separated topic slugs; "" means every topic. A string (not a
    # join table) so that readers group into digest segments with one GROUP BY.
    topics: Mapped[str] = mapped_column(String(500), default="")
    # Changes at every new signup: a confirm token carries it, so an old
    # confirmation link does nothing after an unsubscribe and a new signup.
    confirm_nonce: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    confirmed_at: Mapped[datetime | None] = mapped_column(DateTime)
    unsubscribed_at: Mapped[datetime | None] = mapped_column(DateTime)
    # The latest signup still waiting for its confirmation (None when none is):
    # the purge of unconfirmed signups goes by it. No index: the daily purge
    # can scan, while every signup would pay for one more B-tree write.
    confirm_requested_at: Mapped[datetime | None] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)
    # Mail-bombing limits: when confirmation mails went out lately.
    confirmations_sent: Mapped[list[str]] = mapped_column(default=list)
    # When the address was last typed into a signup, whatever came of it.
    last_signup_at: Mapped[datetime | None] = mapped_column(DateTime)

    consent_events: Mapped[list[ConsentEvent]] = relationship(
        back_populates="subscriber", order_by="ConsentEvent.id"
    )


class ConsentAction(enum.StrEnum):
    """What a consent event records (``ConsentEvent.action``)."""

    SIGNUP = "signup"
    CONFIRM = "confirm"
    PREFERENCES = "preferences"
    UNSUBSCRIBE = "unsubscribe"
    ERASURE = "erasure"
    IMPORT = "import"
    BOUNCE = "bounce"
    COMPLAINT = "complaint"
    PURGE = "purge"


class ConsentChannel(enum.StrEnum):
    """How a consent event came in (``ConsentEvent.channel``, ``QueuedSignup.channel``)."""

    FORM = "form"
    API = "api"
    ONE_CLICK = "one-click"
    LINK = "link"
    ADMIN = "admin"
    IMPORT = "import"
    SYSTEM = "system"


class ConsentEvent(Base):
    """The append-only consent log: what a reader agreed to, when and how."""

    __tablename__ = "consent_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscribers.id", ondelete="SET NULL"), index=True
    )
    email_hash: Mapped[str] = mapped_column(String(64), index=True)
    action: Mapped[ConsentAction] = mapped_column(_enum(ConsentAction))
    channel: Mapped[ConsentChannel] = mapped_column(_enum(ConsentChannel))
    occurred_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    ip: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(500))
    # Version (hash) of the consent text the reader saw, and its language.
    consent_text_version: Mapped[str | None] = mapped_column(String(64))
    language: Mapped[str | None] = mapped_column(String(8))
    source_page: Mapped[str | None] = mapped_column(String(1000))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)

    subscriber: Mapped[Subscriber | None] = relationship(back_populates="consent_events")


class QueuedSignup(Base):
    """A signup request waiting to be applied: the only row a signup request writes.

    The request validates, inserts this row and answers; a worker thread of
    the web app (and the scheduler, for what a dead process left) applies
    the queue in batches: the subscriber, its consent event and its
    confirmation mail, in one transaction per batch. So a viral article's
    flood of signups costs each request one small INSERT, and the answer is
    the same, in time too, whatever the address. Rows live for seconds.
    """

    __tablename__ = "signup_queue"

    id: Mapped[int] = mapped_column(primary_key=True)
    received_at: Mapped[datetime] = mapped_column(DateTime)
    email: Mapped[str] = mapped_column(String(320))  # normalised (mailer.subscriptions.addresses)
    email_hash: Mapped[str] = mapped_column(String(64))
    topics: Mapped[str] = mapped_column(String(500))
    language: Mapped[str] = mapped_column(String(8))
    channel: Mapped[ConsentChannel] = mapped_column(_enum(ConsentChannel))  # FORM or API
    consent_text: Mapped[str] = mapped_column(Text)
    ip: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(500))
    source_page: Mapped[str | None] = mapped_column(String(1000))
    # A worker's claim on the row; a claim older than a minute is void (its worker died).
    claimed_by: Mapped[str | None] = mapped_column(String(32))
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime)


class MailKind(enum.StrEnum):
    """What an ``OutboundMail`` is."""

    # A signup's confirmation.
    CONFIRM = "confirm"
    # An import's request to confirm (``subscribers import --send-confirmation``),
    # which comes in bulk: the outbox sends it after the signups' mails, and the
    # signups' hourly cap does not count it.
    IMPORT_CONFIRM = "confirm-import"
    # A reader's "my data" link, asked for on the preferences page.
    DATA_LINK = "data-link"


class OutboundMail(Base):
    """Transactional mail (confirmations) waiting to leave, or sent.

    ``subscriptions/`` renders the mail and inserts a row when it applies a
    signup (see ``QueuedSignup``); the outbox worker of ``delivery/`` (a thread of the web app) sends it
    right after (or, when the signups' hourly cap held it back, at its ``not_before``), so the answer
    never waits on SMTP and is the same for every address. Rows are the meeting point, so neither
    package imports the other.
    """

    __tablename__ = "outbound_mails"
    # The signups' hourly cap counts one kind's rows by ``not_before``; a
    # network's share, its rows of the last hour (mailer/subscriptions/budget.py).
    __table_args__ = (Index("ix_outbound_mails_kind_not_before", "kind", "not_before"),
                      Index("ix_outbound_mails_network_created", "network", "created_at"))

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[MailKind] = mapped_column(_enum(MailKind))
    to_address: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(500))
    html: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    # When the outbox tries again (None: at once); also a sender's claim.
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime)
    # When it may leave: its creation, or later when CONFIRM_MAILS_PER_HOUR held it back
    # (next_attempt_at says so to the outbox too).
    not_before: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # A signup's source network, as a keyed hash (its share of the cap); None for an import's mail.
    network: Mapped[str | None] = mapped_column(String(16))


class AdminUser(Base):
    """An operator who may log in to ``/admin/``."""

    __tablename__ = "admin_users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime)


class AdminSession(Base):
    """A login to ``/admin/``: the session cookie carries its id, logging out deletes it.

    Only a SHA-256 of the id is kept, so the table (a backup, a read-only
    leak) opens no session. A password change deletes the admin's rows.
    """

    __tablename__ = "admin_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    admin_id: Mapped[int] = mapped_column(ForeignKey("admin_users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime)


# --- feeds -----------------------------------------------------------------


class FeedSource(enum.StrEnum):
    """Who manages a feed: ``MAILER_FEEDS`` (its list decides) or the admin."""

    CONFIG = "config"
    ADMIN = "admin"


class Feed(Base):
    """An RSS/Atom feed, from ``MAILER_FEEDS`` or added in the admin."""

    __tablename__ = "feeds"

    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(String(2000), unique=True)
    title: Mapped[str | None] = mapped_column(String(500))
    enabled: Mapped[bool] = mapped_column(default=True)
    source: Mapped[FeedSource] = mapped_column(_enum(FeedSource), default=FeedSource.CONFIG)
    etag: Mapped[str | None] = mapped_column(String(500))
    last_modified: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_fetched_at: Mapped[datetime | None] = mapped_column(DateTime)
    last_success_at: Mapped[datetime | None] = mapped_column(DateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None] = mapped_column(DateTime)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    # Articles published before this are never kept: set at the first
    # successful fetch (and on re-enabling) to FIRST_FETCH_DAYS back, so a
    # new feed does not flood the next digest with its history.
    keep_since: Mapped[datetime | None] = mapped_column(DateTime)
    # sha256 of the last body stored: servers without ETag often resend the
    # same bytes, which then cost no parsing.
    body_hash: Mapped[str | None] = mapped_column(String(64))
    # When its URL left MAILER_FEEDS and the feed was disabled for that: only
    # then does the URL coming back enable it again (not after the admin's "disable").
    left_config_at: Mapped[datetime | None] = mapped_column(DateTime)
    # The server answered 429/503 with Retry-After: not polled before this.
    retry_after_at: Mapped[datetime | None] = mapped_column(DateTime)

    articles: Mapped[list[Article]] = relationship(back_populates="feed")


class Article(Base):
    """An article, kept once however often its feed repeats it."""

    __tablename__ = "articles"
    __table_args__ = (UniqueConstraint("feed_id", "dedup_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    feed_id: Mapped[int] = mapped_column(ForeignKey("feeds.id", ondelete="CASCADE"), index=True)
    # The guid, else the link without tracking parameters and fragment.
    dedup_key: Mapped[str] = mapped_column(String(2000))
    # sha256 of the link without tracking parameters and fragment: the same
    # article in two feeds (a site's main and section feeds) is kept once.
    link_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    # sha256 of the item as the feed gave it: an unchanged item costs nothing.
    content_hash: Mapped[str | None] = mapped_column(String(64))
    url: Mapped[str] = mapped_column(String(2000))
    title: Mapped[str] = mapped_column(String(1000))
    # Sanitised HTML summary and its plain-text edition.
    summary_html: Mapped[str] = mapped_column(Text, default="")
    summary_text: Mapped[str] = mapped_column(Text, default="")
    image_url: Mapped[str | None] = mapped_column(String(2000))
    author: Mapped[str | None] = mapped_column(String(500))
    categories: Mapped[list[str]] = mapped_column(default=list)
    topic: Mapped[str] = mapped_column(String(50), index=True)
    published_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    found_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # The digest that carried it: an article is never in two digests.
    digest_id: Mapped[int | None] = mapped_column(ForeignKey("digests.id"), index=True)

    feed: Mapped[Feed] = relationship(back_populates="articles")


# --- digest ----------------------------------------------------------------


class DigestStatus(enum.StrEnum):
    SENDING = "sending"
    PAUSED = "paused"
    FINISHED = "finished"


class Digest(Base):
    """One week's digest: its articles, editions and deliveries."""

    __tablename__ = "digests"

    id: Mapped[int] = mapped_column(primary_key=True)
    # The period of MAILER_DIGEST_SCHEDULE it covers, keyed by its local start with
    # the UTC offset ("2026-11-23 08:00+01:00", ``digest.period.period_key``): unique,
    # so a rerun or a second scheduler cannot compose a second digest for one period.
    period: Mapped[str] = mapped_column(String(40), unique=True)
    subject: Mapped[str] = mapped_column(String(500))
    status: Mapped[DigestStatus] = mapped_column(_enum(DigestStatus), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    paused_reason: Mapped[str | None] = mapped_column(Text)
    # The web archive copy: the full edition without any reader's tokens, in MAILER_LOCALE.
    archive_html: Mapped[str] = mapped_column(Text, default="")
    # The same copy in the other languages readers can choose: {"en": html}.
    archive_translations: Mapped[dict[str, str] | None] = mapped_column(JSON, default=dict)
    article_count: Mapped[int] = mapped_column(Integer, default=0)

    editions: Mapped[list[DigestEdition]] = relationship(back_populates="digest")


class DigestEdition(Base):
    """A digest rendered for one segment (topics, language): premailer ran once.

    ``html`` and ``text`` hold placeholders for the per-reader tokens, filled
    in by ``delivery/`` on the final bytes.
    """

    __tablename__ = "digest_editions"
    __table_args__ = (UniqueConstraint("digest_id", "topics", "language"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    digest_id: Mapped[int] = mapped_column(ForeignKey("digests.id", ondelete="CASCADE"))
    topics: Mapped[str] = mapped_column(String(500))
    language: Mapped[str] = mapped_column(String(8))
    subject: Mapped[str] = mapped_column(String(500))
    html: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)

    digest: Mapped[Digest] = relationship(back_populates="editions")


# --- delivery --------------------------------------------------------------


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"
    SENT = "sent"
    DEFERRED = "deferred"
    FAILED = "failed"
    SKIPPED = "skipped"  # the reader left before their turn: nothing was sent, nothing failed


class Delivery(Base):
    """One digest to one reader: the send queue lives in this table."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("digest_id", "subscriber_id"),
        Index("ix_deliveries_queue", "digest_id", "status", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    digest_id: Mapped[int] = mapped_column(ForeignKey("digests.id", ondelete="CASCADE"))
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"), index=True)
    edition_id: Mapped[int] = mapped_column(ForeignKey("digest_editions.id", ondelete="CASCADE"))
    status: Mapped[DeliveryStatus] = mapped_column(_enum(DeliveryStatus), default=DeliveryStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_reply: Mapped[str | None] = mapped_column(Text)
    # A hard bounce (5.1.x, 5.2.1): ``subscriptions.suppress_bounced`` turns
    # it into the reader's "bounced" status, since only subscriptions/ may.
    bounce: Mapped[bool] = mapped_column(default=False)
    # A complaint (ARF) about this very copy: ``subscriptions.suppress_complained``
    # turns it into the reader's "complained" status.
    complaint: Mapped[bool] = mapped_column(default=False, server_default=false())
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime)
    # A sender's claim on the row (multi-process sends); expires at lease_until.
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    lease_until: Mapped[datetime | None] = mapped_column(DateTime)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime)
    updated_at: Mapped[datetime | None] = mapped_column(DateTime)


class Lock(Base):
    """Named locks with a lease, for jobs on databases without advisory locks."""

    __tablename__ = "locks"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    owner: Mapped[str] = mapped_column(String(200))
    acquired_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime)


class RateCounter(Base):
    """A fixed-window rate-limit counter (``mailer.ratelimit``), shared by every process.

    The per-IP signup limit and the admin login limits count here by
    default, so that every gunicorn worker (and every host on the same
    database) sees the same budget.
    """

    __tablename__ = "rate_counters"

    # The ``limits`` key: scope, client and window, the client as a hash (no IP or address is
    # stored): ``LIMITER/signup/<32 hex>/10/1/minute``.
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    hits: Mapped[int] = mapped_column(Integer)
    # End of the window, in seconds since the epoch (as ``limits`` counts).
    expires_at: Mapped[float] = mapped_column(Float)


class JobOutcome(enum.StrEnum):
    """How a scheduler job's run ended (``JobRun.outcome``)."""

    OK = "ok"
    ERROR = "error"
    SKIPPED = "skipped"  # another scheduler (or a send started by hand) held the lock
    STOPPED = "stopped"  # the scheduler was stopping


class JobRun(Base):
    """The last run of each scheduler job (shared by every scheduler process).

    At start the scheduler compares ``last_fire_at`` with the schedule: a run
    missed while no scheduler was up fires once, not once per missed slot.
    """

    __tablename__ = "job_runs"

    name: Mapped[str] = mapped_column(String(50), primary_key=True)
    # The scheduled time (UTC) that the last finished run covered.
    last_fire_at: Mapped[datetime | None] = mapped_column(DateTime)
    started_at: Mapped[datetime | None] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    outcome: Mapped[JobOutcome | None] = mapped_column(_enum(JobOutcome))
    error: Mapped[str | None] = mapped_column(Text)


__all__ = [
    "AdminUser",
    "Article",
    "Base",
    "ConsentAction",
    "ConsentChannel",
    "ConsentEvent",
    "Delivery",
    "DeliveryStatus",
    "Digest",
    "DigestEdition",
    "DigestStatus",
    "Feed",
    "FeedSource",
    "JobOutcome",
    "JobRun",
    "Lock",
    "MailKind",
    "OutboundMail",
    "RateCounter",
    "Subscriber",
    "SubscriberStatus",
    "utcnow",
]
