"""The confirmation budget: ``CONFIRM_MAILS_PER_HOUR`` for everybody, a share of it per source network.

A signup's confirmation mail is never refused for the hour's budget: it is
queued with a ``not_before`` time, the first moment at which it fits the
sliding hour (oldest first), and the outbox sends it then. It is dropped
only when it would leave later than ``CONFIRM_MAX_WAIT_HOURS`` after the
signup: by then the reader has stopped waiting for it, and a backlog that
long is a flood's, which would otherwise crowd out tomorrow's readers too.

Each source network (IPv4 /24, IPv6 /48: the block one subscriber, or one
rented server, usually holds) may queue at most
``CONFIRM_MAILS_PER_NETWORK_PER_HOUR`` of them an hour; past that the mails
are dropped, not held, so that a flood from a few networks neither spends
the hour's budget nor fills the next hours' queue. The outbox keeps a keyed
hash of the network, not the address. Requests from this host or a private
network (a proxy whose hop ``MAILER_PROXY_FIX_HOPS`` does not declare) have
no network share: they stay under the global cap and the per-IP limit.

Imports (``MAIL_IMPORT_CONFIRM``) are the operator's: they neither spend
nor wait for this budget.
"""

from __future__ import annotations

import bisect
import enum
import hashlib
import hmac
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple, cast

from sqlalchemy import Table, bindparam, func, select
from sqlalchemy.engine import Connection

from mailer.models import MAIL_CONFIRM, OutboundMail

HOUR = timedelta(hours=1)
OUTBOX = cast(Table, OutboundMail.__table__)
IPV4_PREFIX, IPV6_PREFIX = 24, 48
# Where only this host, the local network or an undeclared proxy can be.
INTERNAL = tuple(ipaddress.ip_network(block) for block in (
    "127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16",
    "::1/128", "fc00::/7", "fe80::/10",
))

# The latest confirmation mails' not_before times (the sliding hour and what waits), at most the cap.
SCHEDULE = (select(OUTBOX.c.not_before)
            .where(OUTBOX.c.kind == MAIL_CONFIRM, OUTBOX.c.not_before > bindparam("since"))
            .order_by(OUTBOX.c.not_before.desc()).limit(bindparam("cap")))
# Mails each network queued in the last hour (only confirmations carry a network).
SHARES = (select(OUTBOX.c.network, func.count())
          .where(OUTBOX.c.network.in_(bindparam("networks", expanding=True)), OUTBOX.c.created_at > bindparam("since"))
          .group_by(OUTBOX.c.network))


def network_of(ip: str | None) -> str | None:
    """The source network of ``ip`` (``203.0.113.0/24``, ``2001:db8:1::/48``); None where no share applies."""
    try:
        address = ipaddress.ip_address(ip or "")
    except ValueError:
        return None  # no address (a test, a socket): nothing to group
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if any(address in block for block in INTERNAL):
        return None
    prefix = IPV4_PREFIX if address.version == 4 else IPV6_PREFIX
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


def network_key(network: str, secret: str) -> str:
    """What the outbox stores of a network: a keyed hash, so the table names no address."""
    return hmac.new(secret.encode(), b"confirm-network:" + network.encode(), hashlib.sha256).hexdigest()[:16]


class Source(NamedTuple):
    """The network a signup came from."""

    network: str  # 203.0.113.0/24: for the log line when its share is spent
    key: str  # its keyed hash: what the outbox keeps


def source_of(ip: str | None, secret: str) -> Source | None:
    """The source network of ``ip``, or None where no share applies (``network_of``)."""
    network = network_of(ip)
    return None if network is None else Source(network, network_key(network, secret))


class Refusal(enum.Enum):
    """Why a confirmation mail is not queued."""

    NETWORK = "network"  # its network's share of the hour is spent
    CAP = "cap"  # the hourly cap would hold it longer than CONFIRM_MAX_WAIT_HOURS


@dataclass(frozen=True)
class Budget:
    """What the budget was when read: compared again inside the batch's write."""

    schedule: tuple[datetime, ...]  # not_before of the latest confirmation mails, oldest first
    shares: Mapping[str, int]  # network key -> mails it queued in the last hour

    def allowance(self, config: Mapping[str, Any], now: datetime) -> Allowance:
        """A copy to spend in memory, for one plan."""
        wait = min(timedelta(hours=float(config["CONFIRM_MAX_WAIT_HOURS"])),
                   timedelta(days=int(config["PURGE_UNCONFIRMED_DAYS"])))
        return Allowance(now=now, cap=int(config["CONFIRM_MAILS_PER_HOUR"]),
                         share=int(config["CONFIRM_MAILS_PER_NETWORK_PER_HOUR"]), horizon=now + wait,
                         times=list(self.schedule), queued=dict(self.shares))


@dataclass
class Allowance:
    """The budget being spent by one plan, mail by mail, oldest request first."""

    now: datetime
    cap: int
    share: int
    horizon: datetime  # a mail that would leave later is dropped
    times: list[datetime]
    queued: dict[str, int] = field(default_factory=dict)

    def refusal(self, network: str | None) -> Refusal | None:
        """Why one more mail from ``network`` (a key) may not be queued; None if it may."""
        if network is not None and self.queued.get(network, 0) >= self.share:
            return Refusal.NETWORK
        return Refusal.CAP if self.slot() is None else None

    def slot(self) -> datetime | None:
        """When one more mail may leave: at most ``cap`` in any hour; None past the horizon."""
        if self.cap <= 0:
            return None
        at = self.now if len(self.times) < self.cap else max(self.now, self.times[-self.cap] + HOUR)
        return at if at <= self.horizon else None

    def spend(self, network: str | None) -> datetime:
        """Queue one more mail (``refusal`` said it may go); when it may leave."""
        at = self.slot()
        assert at is not None, "refusal() first"
        bisect.insort(self.times, at)
        if network is not None:
            self.queued[network] = self.queued.get(network, 0) + 1
        return at


def read_budget(conn: Connection, config: Mapping[str, Any], now: datetime, networks: Iterable[str]) -> Budget:
    """The budget now: two reads on the outbox's indexes, bounded by the cap and the shares."""
    since = now - HOUR
    times = conn.execute(SCHEDULE, {"since": since, "cap": max(0, int(config["CONFIRM_MAILS_PER_HOUR"]))}).scalars()
    keys = sorted(set(networks))
    shares: dict[str, int] = {}
    if keys:
        shares = {key: int(count) for key, count in conn.execute(SHARES, {"networks": keys, "since": since})}
    return Budget(schedule=tuple(sorted(times)), shares=shares)
