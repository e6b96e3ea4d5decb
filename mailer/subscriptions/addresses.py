"""Email addresses: validate, normalise, hash.

One subscriber per normalised address: the whole address lower-cased (every
mail provider a news site's readers use treats the local part without case),
with an IDN domain in its ASCII form, since that is what goes into RCPT TO and
``user@città.it`` and ``user@xn--citt-3na.it`` are the same mailbox.

The rules we refuse on are checked one by one before email-validator runs, so
the reader gets a message in their language saying what is wrong.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from functools import lru_cache

import idna
from email_validator import EmailNotValidError, ValidatedEmail, validate_email
from email_validator.syntax import validate_email_domain_name, validate_email_length, validate_email_local_part
from flask_babel import gettext as _

MAX_LENGTH = 254  # RFC 5321's path limit minus the angle brackets


class AddressError(ValueError):
    """The address is refused; ``str(error)`` says why, in the page's language."""

    def __init__(self, reason: str, code: str = "invalid_email") -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


@dataclass(frozen=True)
class Address:
    """A valid, normalised address."""

    email: str  # lower-cased, ASCII domain: stored and mailed to
    display: str  # the same with the domain in Unicode: shown on pages
    hash: str  # sha256 of ``email``: the identity kept after erasure


def email_hash(normalised: str) -> str:
    """The sha256 (hex) of a normalised address: the identity of a live reader.

    Unkeyed, but only ever stored next to the address itself (and in the
    signup queue for milliseconds); erasure swaps it for ``erased_hash``.
    """
    return hashlib.sha256(normalised.encode("utf-8")).hexdigest()


@lru_cache(maxsize=4)
def _erasure_mac(secret_key: str) -> hmac.HMAC:
    """An HMAC keyed for ``erased_hash`` (its key derived from SECRET_KEY for this one purpose), to copy."""
    key = hmac.new(secret_key.encode("utf-8"), b"mailer.erased-address", hashlib.sha256).digest()
    return hmac.new(key, digestmod=hashlib.sha256)


def erased_hash(plain_hash: str, secret_key: str) -> str:
    """What erasure keeps of an address: HMAC-SHA256 of its ``email_hash`` (hex, 64 characters).

    Keyed, so that the row left behind cannot be matched against a list of
    addresses by anyone without the secret key (a plain sha256 can: it
    matched ``sha256sum``). Computed from the plain hash, not the address,
    so that rows erased before it existed can be converted (migration 0011).
    A new MAILER_SECRET_KEY makes earlier erasures unrecognisable: see
    docs/deploy.md.
    """
    mac = _erasure_mac(secret_key).copy()  # a signup batch hashes each address: skip the key set-up
    mac.update(plain_hash.encode("ascii"))
    return mac.hexdigest()


def display_address(normalised: str) -> str:
    """The address with an ``xn--`` domain shown in Unicode, for pages."""
    local, _sep, domain = normalised.rpartition("@")
    if "xn--" not in domain:
        return normalised
    try:
        return f"{local}@{idna.decode(domain)}"
    except idna.IDNAError:
        return normalised


def parse_address(raw: str) -> Address:
    """Validate ``raw`` and return its normalised form; raise AddressError."""
    _refuse_obvious(raw)
    candidate = raw.strip()
    ascii_email = _fast_path(candidate)
    if ascii_email is None:
        try:
            valid = validate_email(
                candidate,
                check_deliverability=False,  # no DNS during a signup request, nor in tests
                allow_smtputf8=False,
                allow_quoted_local=False,
                allow_domain_literal=False,
                allow_display_name=False,
            )
        except EmailNotValidError as exc:
            raise AddressError(_reason(str(exc))) from None
        ascii_email = valid.ascii_email or valid.normalized
    email = ascii_email.lower()
    if len(email) > MAX_LENGTH:
        raise AddressError(_("The address is too long: at most %(max)d characters.", max=MAX_LENGTH))
    return Address(email=email, display=display_address(email), hash=email_hash(email))


def _reason(detail: str) -> str:
    """email-validator's refusal (English only) said in the page's language.

    Its messages are matched by their wording (email-validator 2.x); one we
    do not know gets the general sentence rather than English on an Italian
    page.
    """
    detail = detail.lower()
    characters = "contains invalid characters" in detail or "must have an @" in detail
    if "two periods" in detail:
        return str(_("The address cannot have two dots in a row."))
    if "period" in detail and "hyphen" not in detail and "separated" not in detail:
        return str(_("The address cannot start or end with a dot, nor have one next to the @."))
    if "hyphen" in detail:
        return str(_("A part of the domain after the @ cannot start or end with a hyphen."))
    if characters and "before the @" in detail:
        return str(_("The part before the @ has characters that are not allowed (use letters, digits and . _ + -)."))
    if characters or ("after the @" in detail and "invalid" in detail):
        return str(_("The domain after the @ has characters that are not allowed."))
    if "special-use or reserved" in detail:
        return str(_("That domain is reserved: it cannot receive mail."))
    if "too long" in detail or "so many characters" in detail:
        return str(_("The address, or a part of its domain, is too long."))
    return str(_("This is not a valid email address: please check it."))


@lru_cache(maxsize=20_000)
def _ascii_domain(domain: str) -> str:
    """The checked ASCII form of a domain (cached: a big import has few domains)."""
    return str(validate_email_domain_name(domain, test_environment=False, globally_deliverable=True)["ascii_domain"])


def _fast_path(candidate: str) -> str | None:
    """The ASCII address, checked as email-validator does; None to let it decide.

    For plain ASCII addresses (what ``_refuse_obvious`` lets through: one @,
    no quotes, spaces or brackets) this runs email-validator's own checks,
    with the domain's cached, so that importing 100,000 rows does not check
    ``gmail.com`` 30,000 times. Anything it does not accept goes to the full
    ``validate_email``, which also words the refusal.
    """
    if not candidate.isascii():
        return None
    local, _sep, domain = candidate.rpartition("@")
    try:
        local_info = validate_email_local_part(local, allow_smtputf8=False, allow_empty_local=False,
                                               quoted_local_part=False, strict=False)
        checked = ValidatedEmail()
        checked.original = candidate
        checked.local_part, checked.ascii_local_part = local_info["local_part"], local_info["ascii_local_part"]
        checked.domain = checked.ascii_domain = _ascii_domain(domain)
        checked.normalized = checked.ascii_email = f"{checked.ascii_local_part}@{checked.ascii_domain}"
        checked.smtputf8 = False
        validate_email_length(checked)
    except EmailNotValidError:
        return None
    return str(checked.ascii_email)


def _refuse_obvious(raw: str) -> None:
    """Refuse, with a message of our own, what the issue lists by name."""
    if "\r" in raw or "\n" in raw:
        raise AddressError(_("The address must be on one line: it contains a line break."))
    candidate = raw.strip()
    if not candidate:
        raise AddressError(_("Please enter your email address."), code="missing_email")
    if len(candidate) > MAX_LENGTH:
        raise AddressError(_("The address is too long: at most %(max)d characters.", max=MAX_LENGTH))
    if candidate.startswith('"'):
        raise AddressError(_("Addresses with quotes before the @ are not accepted."))
    if any(c.isspace() for c in candidate):
        raise AddressError(_("The address cannot contain spaces."))
    ats = candidate.count("@")
    if ats == 0:
        raise AddressError(_("The address needs an @ between the name and the domain, as in name@example.it."))
    if ats > 1:
        raise AddressError(_("The address has more than one @: it must have exactly one."))
    local, _sep, domain = candidate.rpartition("@")
    if not local:
        raise AddressError(_("The address needs a name before the @."))
    if not domain:
        raise AddressError(_("The address needs a domain after the @, as in name@example.it."))
    if domain.startswith("["):
        raise AddressError(_("Addresses with an IP address in brackets after the @ are not accepted."))
    if "." not in domain.strip("."):
        raise AddressError(_("The domain after the @ needs a dot, as in example.it."))
    if not local.isascii():
        raise AddressError(_("Only Latin letters, digits and . _ + - are accepted before the @."))
