"""Admin accounts: creation, password changes and the password check.

Passwords are hashed with werkzeug (scrypt by default). Addresses are
compared lower-cased, so ``Admin@Example.it`` and ``admin@example.it`` are the
same account.
"""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from mailer.admin.sessions import end_all_sessions
from mailer.models import AdminUser, utcnow

MIN_PASSWORD_LENGTH = 10
# Hashing a megabyte-long "password" costs CPU for nothing: scrypt would take
# it, but nobody types one, and a login form must not be a way to burn cycles.
MAX_PASSWORD_LENGTH = 1024
# Checked when the address is unknown, so that a wrong address costs as much
# time as a wrong password and the timing does not reveal which accounts exist.
_DUMMY_HASH = generate_password_hash("not a real password, only for timing")


class AdminError(ValueError):
    """An admin account cannot be created or changed (bad address, weak password, exists)."""


def normalise_admin_email(email: str) -> str:
    """The stored form of an admin's address; raise AdminError when it is not one."""
    candidate = email.strip()
    local, _at, domain = candidate.rpartition("@")
    # Admins log in with it, nothing is mailed to it: admin@localhost (like
    # the development From address) is fine, and no DNS lookup is needed.
    on_localhost = domain.lower() == "localhost"
    try:
        validated = validate_email(
            f"{local}@example.com" if on_localhost else candidate,
            check_deliverability=False,
            globally_deliverable=False,
        )
    except EmailNotValidError as exc:
        raise AdminError(f"{candidate!r} is not a valid email address: {exc}") from None
    if on_localhost:
        return f"{validated.local_part}@localhost".lower()
    return validated.normalized.lower()


def check_new_password(password: str) -> None:
    """Raise AdminError when ``password`` is too weak or unreasonably long."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AdminError(f"the password is too short: use at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise AdminError(f"the password is too long: use at most {MAX_PASSWORD_LENGTH} characters")
    if not password.strip():
        raise AdminError("the password cannot be only spaces")


def find_admin(session: Session, email: str) -> AdminUser | None:
    """The account for ``email`` (any case), or None."""
    return session.scalar(select(AdminUser).where(AdminUser.email == email.strip().lower()))


def create_admin(session: Session, email: str, password: str) -> AdminUser:
    """Create an admin account; raise AdminError naming the problem.

    The caller commits. A bad address, a password shorter than
    ``MIN_PASSWORD_LENGTH`` and an existing account are refused.
    """
    address = normalise_admin_email(email)
    check_new_password(password)
    if find_admin(session, address) is not None:
        raise AdminError(f"an admin account for {address} already exists")
    admin = AdminUser(email=address, password_hash=generate_password_hash(password))
    try:
        # A savepoint: when another process created the same account in the
        # meantime, only this insert is undone, not the caller's transaction.
        with session.begin_nested():
            session.add(admin)
    except IntegrityError:
        raise AdminError(f"an admin account for {address} already exists") from None
    return admin


def set_admin_password(session: Session, email: str, password: str) -> AdminUser:
    """Change an admin's password (signing out their other sessions); the caller commits."""
    admin = find_admin(session, email)
    if admin is None:
        raise AdminError(f"there is no admin account for {email.strip()}")
    check_new_password(password)
    admin.password_hash = generate_password_hash(password)
    end_all_sessions(session, admin)
    return admin


def authenticate(session: Session, email: str, password: str) -> AdminUser | None:
    """The admin with this address and password, or None (records the login time)."""
    admin = find_admin(session, email) if len(password) <= MAX_PASSWORD_LENGTH else None
    if admin is None:
        check_password_hash(_DUMMY_HASH, password[:MAX_PASSWORD_LENGTH])
        return None
    if not check_password_hash(admin.password_hash, password):
        return None
    admin.last_login_at = utcnow()
    return admin
