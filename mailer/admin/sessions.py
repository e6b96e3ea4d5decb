"""Admin logins kept on the server (``admin_sessions``), as Django keeps its sessions.

Flask's cookie only carries a random id (signed, httponly); the row is what
makes it a login. Logging out deletes the row, so a cookie copied before
still leads to the login page; a password change deletes all of that
admin's rows; a row lasts ``ADMIN_SESSION_HOURS``. Each login gets a new id
(nothing chosen before it survives: no session fixation).
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from mailer.models import AdminSession, AdminUser, utcnow


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8", "surrogatepass")).hexdigest()


def open_session(db: Session, admin: AdminUser, hours: float) -> str:
    """A new login of ``admin`` for ``hours``; its id, for the cookie. The caller commits.

    Logins that ran out are dropped on the way, so the table holds only live ones.
    """
    now = utcnow()
    db.execute(delete(AdminSession).where(AdminSession.expires_at <= now))
    session_id = secrets.token_urlsafe(32)
    db.add(AdminSession(id_hash=_hash(session_id), admin_id=admin.id, created_at=now,
                        expires_at=now + timedelta(hours=hours)))
    return session_id


def session_admin(db: Session, session_id: str) -> AdminUser | None:
    """The admin whose live login has this id, or None (unknown, ended or expired)."""
    return db.scalar(
        select(AdminUser).join(AdminSession, AdminSession.admin_id == AdminUser.id)
        .where(AdminSession.id_hash == _hash(session_id), AdminSession.expires_at > utcnow())
    )


def end_session(db: Session, session_id: str) -> None:
    """End this login (logout). The caller commits."""
    db.execute(delete(AdminSession).where(AdminSession.id_hash == _hash(session_id)))


def end_all_sessions(db: Session, admin: AdminUser) -> None:
    """End every login of ``admin`` (a password change). The caller commits."""
    db.execute(delete(AdminSession).where(AdminSession.admin_id == admin.id))
