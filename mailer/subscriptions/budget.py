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

Imports (``MailKind.IMPORT_CONFIRM``) are the operator's: they neither spend
nor wait for this budget.
"""

from __future__ import annotations

import bisect
import enum
import functools
import hashlib
import hmac
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple, cast

from sqlalchemy import Table, bindparam, func, select
from sqlalchemy.engine import Connection

from mailer.models import MailKind, OutboundMail

HOUR = timedelta(hours=1)
OUTBOX = cast(Table, OutboundMail.__table__)
IPV4_PREFIX, IPV6_PREFIX = 24, 48
# Where only this host, the local network or an undeclared proxy can be.
INTERNAL = tuple(ipaddress.ip_network(block) for block in (
    "127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16",
    "::1/128", "fc00::/7", "fe80::/10",
))

# The confirmation mails of the sliding hour and those waiting after it: how many (never
# past the cap, so a viral hour costs a batch at most ``cap`` index entries), and, once a
# batch may fill the hour, the latest ``cap`` of their not_before times.
_WINDOW = OUTBOX.c.kind == MailKind.CONFIRM, OUTBOX.c.not_before > bindparam("since")
COUNT = select(func.count()).select_from(select(OUTBOX.c.id).where(*_WINDOW).limit(bindparam("cap")).subquery())
SCHEDULE = select(OUTBOX.c.not_before).where(*_WINDOW).order_by(OUTBOX.c.not_before.desc()).limit(bindparam("cap"))
# Mails each network queued in the last hour (only confirmations carry a network).
SHARES = (select(OUTBOX.c.network, func.count())
          .where(OUTBOX.c.network.in_(bindparam("networks", expanding=True)), OUTBOX.c.created_at > bindparam("since"))
          .group_by(OUTBOX.c.network))


# (version, network, mask) as integers: a batch classifies each of its IPs, and ipaddress's
# own containment tests and network parsing are slow for that (bench/FIGURES.md).
_INTERNAL = tuple((block.version, int(block.network_address), int(block.netmask)) for block in INTERNAL)
_PREFIX_MASK = {4: (1 << 32) - (1 << (32 - IPV4_PREFIX)), 6: (1 << 128) - (1 << (128 - IPV6_PREFIX))}


def network_of(ip: str | None) -> str | None:
    """The source network of ``ip`` (``203.0.113.0/24``, ``2001:db8:1::/48``); None where no share applies."""
    try:
        address = ipaddress.ip_address(ip or "")
    except ValueError:
        return None  # no address (a test, a socket): nothing to group
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    version, value = address.version, int(address)
    if any(version == v and value & mask == network for v, network, mask in _INTERNAL):
        return None
    if version == 4:
        return f"{ipaddress.IPv4Address(value & _PREFIX_MASK[4])}/{IPV4_PREFIX}"
    return f"{ipaddress.IPv6Address(value & _PREFIX_MASK[6])}/{IPV6_PREFIX}"


def network_key(network: str, secret: str) -> str:
    """What the outbox stores of a network: a keyed hash, so the table names no address."""
    return hmac.new(secret.encode(), b"confirm-network:" + network.encode(), hashlib.sha256).hexdigest()[:16]


class Source(NamedTuple):
    """The network a signup came from."""

    network: str  # 203.0.113.0/24: for the log line when its share is spent
    key: str  # its keyed hash: what the outbox keeps


@functools.lru_cache(maxsize=4096)  # a flood comes from the same few addresses again and again
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

    count: int  # confirmation mails in the sliding hour or waiting, at most the cap
    schedule: tuple[datetime, ...]  # their latest not_before times, oldest first (read once the hour may fill)
    shares: Mapping[str, int]  # network key -> mails it queued in the last hour

    def allowance(self, config: Mapping[str, Any], now: datetime) -> Allowance:
        """A copy to spend in memory, for one plan."""
        wait = min(timedelta(hours=float(config["CONFIRM_MAX_WAIT_HOURS"])),
                   timedelta(days=int(config["PURGE_UNCONFIRMED_DAYS"])))
        return Allowance(now=now, cap=int(config["CONFIRM_MAILS_PER_HOUR"]),
                         share=int(config["CONFIRM_MAILS_PER_NETWORK_PER_HOUR"]), horizon=now + wait,
                         filled=self.count, times=list(self.schedule), queued=dict(self.shares))


@dataclass
class Allowance:
    """The budget being spent by one plan, mail by mail, oldest request first."""

    now: datetime
    cap: int
    share: int
    horizon: datetime  # a mail that would leave later is dropped
    filled: int  # mails in the sliding hour or waiting (at most the cap, then counted on)
    times: list[datetime]  # their not_before, complete once ``filled`` reaches the cap
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
        at = self.now if self.filled < self.cap else max(self.now, self.times[-self.cap] + HOUR)
        return at if at <= self.horizon else None

    def spend(self, network: str | None) -> datetime:
        """Queue one more mail (``refusal`` said it may go); when it may leave."""
        at = self.slot()
        assert at is not None, "refusal() first"
        bisect.insort(self.times, at)
        self.filled += 1
        if network is not None:
            self.queued[network] = self.queued.get(network, 0) + 1
        return at


def read_budget(conn: Connection, config: Mapping[str, Any], now: datetime, networks: Iterable[str],
                mails: int) -> Budget:
    """The budget now, for a batch of at most ``mails`` mails: reads on the outbox's indexes, bounded by the
    cap and the shares; the not_before times only when the batch may fill the hour."""
    since, cap = now - HOUR, max(0, int(config["CONFIRM_MAILS_PER_HOUR"]))
    count = int(conn.execute(COUNT, {"since": since, "cap": cap}).scalar() or 0)
    times = conn.execute(SCHEDULE, {"since": since, "cap": cap}).scalars().all() if count + mails > cap else ()
    keys = sorted(set(networks))
    shares: dict[str, int] = {}
    if keys:
        shares = {key: int(count) for key, count in conn.execute(SHARES, {"networks": keys, "since": since})}
    return Budget(count=count, schedule=tuple(sorted(times)), shares=shares)
