"""Fixtures of the admin tests: an admin account and a logged-in client."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session
from werkzeug.security import generate_password_hash

from mailer.models import AdminUser

ADMIN_EMAIL = "admin@example.it"
ADMIN_PASSWORD = "correct horse battery"


def add_admin(session: Session, email: str = ADMIN_EMAIL, password: str = ADMIN_PASSWORD) -> AdminUser:
    """An admin row with a cheap hash: scrypt (create_admin's) costs ~0.1 s a login on
    this shared machine, and most tests log in once. test_accounts covers create_admin."""
    admin = AdminUser(email=email, password_hash=generate_password_hash(password, method="pbkdf2:sha256:1000"))
    session.add(admin)
    session.flush()
    return admin


@pytest.fixture
def admin_account(app: Flask, session: Session) -> str:
    """An admin account in the database; returns its address."""
    add_admin(session)
    session.commit()
    return ADMIN_EMAIL


def log_in(client: FlaskClient, email: str = ADMIN_EMAIL, password: str = ADMIN_PASSWORD, **kwargs: object):
    """POST the login form (with its CSRF token when the app checks them)."""
    page = client.get("/admin/login")
    data = {"email": email, "password": password}
    token = csrf_token(page.get_data(as_text=True))
    if token:
        data["csrf_token"] = token
    return client.post("/admin/login", data=data, **kwargs)


def csrf_token(html: str) -> str | None:
    """The first CSRF token in a page, if any."""
    found = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"|name="csrf_token" value="([^"]+)"', html)
    return (found.group(1) or found.group(2)) if found else None


@pytest.fixture
def admin_client(client: FlaskClient, admin_account: str) -> FlaskClient:
    """A test client logged in as the admin."""
    response = log_in(client)
    assert response.status_code == 303, response.get_data(as_text=True)
    return client
