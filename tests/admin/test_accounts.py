"""Admin accounts: create_admin's rules and the ``admin create`` command."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from werkzeug.security import check_password_hash

from mailer.admin import AdminError, create_admin, set_admin_password
from mailer.admin.accounts import authenticate
from mailer.models import AdminUser


def test_create_admin_hashes_the_password(session):
    admin = create_admin(session, "  Ops@Example.IT ", "a long enough password")
    session.commit()
    assert admin.email == "ops@example.it"
    assert admin.password_hash != "a long enough password"
    assert admin.password_hash.startswith(("scrypt:", "pbkdf2:"))
    assert check_password_hash(admin.password_hash, "a long enough password")


@pytest.mark.parametrize("email", ["", "not-an-address", "a@", "@example.it", "a b@example.it", "x@exa mple.it"])
def test_create_admin_refuses_a_bad_address(session, email):
    with pytest.raises(AdminError, match="not a valid email address"):
        create_admin(session, email, "a long enough password")


def test_create_admin_accepts_a_local_address(session):
    # Nothing is mailed to an admin: admin@localhost is a fine login name.
    assert create_admin(session, "admin@localhost", "a long enough password").email == "admin@localhost"


@pytest.mark.parametrize("password", ["", "short", "123456789"])
def test_create_admin_refuses_a_short_password(session, password):
    with pytest.raises(AdminError, match="at least 10 characters"):
        create_admin(session, "ops@example.it", password)


def test_create_admin_refuses_a_blank_or_huge_password(session):
    with pytest.raises(AdminError, match="only spaces"):
        create_admin(session, "ops@example.it", " " * 12)
    with pytest.raises(AdminError, match="too long"):
        create_admin(session, "ops@example.it", "x" * 5000)


def test_create_admin_refuses_an_existing_account_in_any_case(session):
    create_admin(session, "ops@example.it", "a long enough password")
    session.commit()
    with pytest.raises(AdminError, match="already exists"):
        create_admin(session, "OPS@example.it", "another long password")
    assert session.scalar(select(func.count()).select_from(AdminUser)) == 1


def test_authenticate(session):
    create_admin(session, "ops@example.it", "a long enough password")
    session.commit()
    admin = authenticate(session, "Ops@Example.it", "a long enough password")
    assert admin is not None and admin.last_login_at is not None
    assert authenticate(session, "ops@example.it", "a long enough passwore") is None
    assert authenticate(session, "nobody@example.it", "a long enough password") is None
    assert authenticate(session, "ops@example.it", "x" * 100_000) is None


def test_set_admin_password(session):
    create_admin(session, "ops@example.it", "a long enough password")
    set_admin_password(session, "ops@example.it", "a brand new password")
    assert authenticate(session, "ops@example.it", "a brand new password") is not None
    with pytest.raises(AdminError, match="too short"):
        set_admin_password(session, "ops@example.it", "short")
    with pytest.raises(AdminError, match="no admin account"):
        set_admin_password(session, "nobody@example.it", "a brand new password")


def _admins(app):
    from mailer.db import session_scope

    with session_scope(app) as s:
        return [a.email for a in s.scalars(select(AdminUser))]


def test_admin_create_command_reads_stdin(app, runner):
    result = runner.invoke(args=["admin", "create", "ops@example.it", "--password-stdin"],
                           input="a long enough password\n")
    assert result.exit_code == 0, result.output
    assert "admin ops@example.it created" in result.output
    assert _admins(app) == ["ops@example.it"]


def test_admin_create_command_prompts_twice(app, runner):
    result = runner.invoke(args=["admin", "create", "ops@example.it"],
                           input="a long enough password\na long enough password\n")
    assert result.exit_code == 0, result.output
    assert _admins(app) == ["ops@example.it"]


@pytest.mark.parametrize(("email", "password", "message"), [
    ("ops@example.it", "short\n", "too short"),
    ("nonsense", "a long enough password\n", "not a valid email address"),
])
def test_admin_create_command_fails_with_a_reason(app, runner, email, password, message):
    result = runner.invoke(args=["admin", "create", email, "--password-stdin"], input=password)
    assert result.exit_code == 1
    assert message in result.output
    assert _admins(app) == []


def test_admin_create_command_refuses_a_second_account(app, runner):
    args = ["admin", "create", "ops@example.it", "--password-stdin"]
    assert runner.invoke(args=args, input="a long enough password\n").exit_code == 0
    result = runner.invoke(args=args, input="another long password\n")
    assert result.exit_code == 1
    assert "already exists" in result.output


def test_admin_password_command(app, runner):
    runner.invoke(args=["admin", "create", "ops@example.it", "--password-stdin"], input="a long enough password\n")
    result = runner.invoke(args=["admin", "password", "OPS@example.it", "--password-stdin"],
                           input="a brand new password\n")
    assert result.exit_code == 0, result.output
    from mailer.db import session_scope

    with session_scope(app) as s:
        assert authenticate(s, "ops@example.it", "a brand new password") is not None
    result = runner.invoke(args=["admin", "password", "nobody@example.it", "--password-stdin"],
                           input="a brand new password\n")
    assert result.exit_code == 1 and "no admin account" in result.output
