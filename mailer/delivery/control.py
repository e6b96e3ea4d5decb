"""Pause and resume a digest's send (command line, dashboard, and 5.7.x replies).

A pause is a state in the database, so it reaches every sender, in every
process: each one looks at the digest's status about once a second and
stops after the messages it has in flight. Nothing is lost: unsent rows stay
pending and the next run after ``resume`` carries on.
"""

from __future__ import annotations

import logging

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from mailer.models import Digest, DigestStatus

log = logging.getLogger("mailer.delivery")


def pause_digest(session: Session, digest_id: int | None, reason: str) -> Digest | None:
    """Pause digest ``digest_id`` (None: the newest sending one); the caller commits.

    Returns the digest, or None when there is no such digest sending.
    """
    digest = _find(session, digest_id, DigestStatus.SENDING)
    if digest is None:
        return None
    # A guarded UPDATE: a sender finishing the digest at this very moment wins.
    result = session.execute(
        update(Digest).where(Digest.id == digest.id, Digest.status == DigestStatus.SENDING)
        .values(status=DigestStatus.PAUSED, paused_reason=reason[:2000])
        .execution_options(synchronize_session=False)
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        return None
    session.refresh(digest)
    log.warning("digest %d paused: %s", digest.id, reason)
    return digest


def resume_digest(session: Session, digest_id: int | None) -> Digest | None:
    """Resume paused digest ``digest_id`` (None: the oldest paused one); the caller commits."""
    digest = _find(session, digest_id, DigestStatus.PAUSED)
    if digest is None:
        return None
    digest.status = DigestStatus.SENDING
    digest.paused_reason = None
    session.flush()
    log.info("digest %d resumed", digest.id)
    return digest


def _find(session: Session, digest_id: int | None, status: DigestStatus) -> Digest | None:
    """The digest with that id and status; without an id, the one to act on."""
    query = select(Digest).where(Digest.status == status)
    if digest_id is not None:
        query = query.where(Digest.id == digest_id)
    elif status == DigestStatus.SENDING:
        query = query.order_by(Digest.id.desc())
    else:
        query = query.order_by(Digest.id)
    return session.scalars(query.limit(1)).first()
