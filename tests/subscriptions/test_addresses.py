"""Address rules: what is accepted, how it is normalised, what is refused and why."""

from __future__ import annotations

import hashlib

import pytest
from flask import Flask

from mailer.subscriptions.addresses import AddressError, display_address, parse_address


@pytest.mark.parametrize(("raw", "stored"), [
    ("Mario.Rossi@Example.IT", "mario.rossi@example.it"),
    ("  anna+news@example.it ", "anna+news@example.it"),  # plus addressing, spaces trimmed
    ("lucia@città.it", "lucia@xn--citt-3na.it"),  # IDN: mail goes to the ASCII form
    ("lucia@xn--citt-3na.it", "lucia@xn--citt-3na.it"),
    ("o'brien@example.co.uk", "o'brien@example.co.uk"),
])
def test_accepted_and_normalised(app: Flask, raw: str, stored: str) -> None:
    with app.test_request_context():
        address = parse_address(raw)
    assert address.email == stored
    assert address.hash == hashlib.sha256(stored.encode()).hexdigest()


def test_idn_spellings_are_one_address(app: Flask) -> None:
    with app.test_request_context():
        unicode_form, ascii_form = parse_address("Lucia@Città.it"), parse_address("lucia@xn--citt-3na.it")
    assert unicode_form.hash == ascii_form.hash
    assert unicode_form.display == "lucia@città.it"
    assert display_address("lucia@xn--citt-3na.it") == "lucia@città.it"


@pytest.mark.parametrize(("raw", "words"), [
    ("mario@example.it\r\nBcc: victim@example.it", "line break"),
    ("mario@exa\nmple.it", "line break"),
    ("a" * 250 + "@example.it", "too long"),
    ('"mario rossi"@example.it', "quotes"),
    ('"a@b"@example.it', "quotes"),
    ("mario@[192.168.0.1]", "IP address"),
    ("mario@localhost", "needs a dot"),
    ("mario.example.it", "needs an @"),
    ("mario@@example.it", "more than one @"),
    ("mario@rossi@example.it", "more than one @"),
    ("@example.it", "name before the @"),
    ("mario@", "domain after the @"),
    ("mario rossi@example.it", "spaces"),
    ("màrio@example.it", "before the @"),
    ("", "enter your email"),
    ("mario@example..it", "two dots in a row"),
    ("mario@-example.it", "hyphen"),
    ("a..b@example.it", "two dots in a row"),
    ("mario.@example.it", "start or end with a dot"),
    ("mario@example.it.", "start or end with a dot"),
    ("mario@_x.it", "domain after the @ has characters"),
    ("ma,rio@example.it", "before the @ has characters"),
    ("ma(rio)@example.it", "before the @ has characters"),
    ("mario@example.invalid", "reserved"),
    ("mario@" + "x" * 70 + ".it", "too long"),
    ("mario@example.123", "not a valid email address"),
])
def test_refused_with_a_reason(app: Flask, raw: str, words: str) -> None:
    with app.test_request_context(headers={"Accept-Language": "en"}), pytest.raises(AddressError) as refused:
        parse_address(raw)
    assert words in refused.value.reason


@pytest.mark.parametrize("raw", ["a..b@example.it", "mario.@example.it", "mario@_x.it", "ma,rio@example.it",
                                 "mario@example.invalid", "mario@-x.it", "mario@example.123", "a@" + "x" * 70 + ".it"])
def test_every_refusal_is_in_the_pages_language(app: Flask, raw: str) -> None:
    """email-validator speaks English only: an Italian page must not quote it."""
    with app.test_request_context(headers={"Accept-Language": "it"}), pytest.raises(AddressError) as refused:
        parse_address(raw)
    reason = refused.value.reason
    assert not any(word in reason for word in ("period", "sign", "invalid", "character", "address", "cannot")), reason


def test_length_limit_is_254(app: Flask) -> None:
    local = "a" * 64
    domain = ".".join(["b" * 60] * 3) + ".it"  # 186 characters
    with app.test_request_context():
        assert len(parse_address(f"{local}@{domain}").email) == 64 + 1 + len(domain)
        with pytest.raises(AddressError):
            parse_address(f"{local}@{'c' * 5}.{domain}")  # 257 characters


def test_fast_path_agrees_with_email_validator() -> None:
    """The cached path that big imports take accepts nothing email-validator refuses."""
    import random
    import string

    from email_validator import EmailNotValidError, validate_email

    from mailer.subscriptions.addresses import _fast_path

    rng = random.Random(3)
    alphabet = string.ascii_letters + string.digits + ".-_+!#$%&'*/=?^`{|}~()<>,;:\\"
    labels = ["example", "it", "com", "xn--citt-3na", "localhost", "test", "invalid", "123", "-a", "a-", "", "a" * 64]
    accepted = 0
    for _ in range(4000):
        local = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 10)))
        domain = ".".join(rng.choice(labels) for _ in range(rng.randint(1, 3)))
        address = f"{local}@{domain}"
        fast = _fast_path(address)
        if fast is None:
            continue
        accepted += 1
        try:
            full = validate_email(address, check_deliverability=False, allow_smtputf8=False)
        except EmailNotValidError:
            pytest.fail(f"{address!r}: accepted by the fast path, refused by email-validator")
        assert fast == full.ascii_email
    assert accepted > 100
