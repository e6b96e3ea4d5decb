"""The admin's forms (Flask-WTF: each one carries and checks a CSRF token)."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import BooleanField, EmailField, Field, PasswordField, StringField
from wtforms.validators import DataRequired, Length, ValidationError


class LoginForm(FlaskForm):  # type: ignore[misc]
    """Address and password."""

    email = EmailField(_l("Email"), validators=[DataRequired(), Length(max=320)])
    password = PasswordField(_l("Password"), validators=[DataRequired()])


class ActionForm(FlaskForm):  # type: ignore[misc]
    """A button that changes something: only the CSRF token."""


class EraseForm(FlaskForm):  # type: ignore[misc]
    """Erasing a reader cannot be undone: an explicit tick is required."""

    confirm = BooleanField(
        _l("I understand that the address and profile are deleted for good"),
        validators=[DataRequired(_l("Tick the box to confirm the erasure."))],
    )


class UnsubscribeForm(FlaskForm):  # type: ignore[misc]
    """Unsubscribe a reader on their behalf, with an optional note for the consent log."""

    reason = StringField(_l("Note for the consent log (optional)"), validators=[Length(max=300)])


class PauseForm(FlaskForm):  # type: ignore[misc]
    """Pause a send, with an optional reason kept on the digest."""

    reason = StringField(_l("Reason (optional)"), validators=[Length(max=500)])


def _http_url(_form: FlaskForm, field: StringField) -> None:
    """Accept only absolute http(s) URLs with a host."""
    value = (field.data or "").strip()
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ValidationError(_l("Enter a valid http:// or https:// address.")) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError(_l("Enter a valid http:// or https:// address."))
    field.data = value


class AddFeedForm(FlaskForm):  # type: ignore[misc]
    """The URL of a new RSS or Atom feed."""

    url = StringField(_l("Feed URL"), validators=[DataRequired(), Length(max=2000), _http_url])


class ImportForm(FlaskForm):  # type: ignore[misc]
    """A CSV file of readers, and whether they already consented elsewhere or
    are sent a request to confirm (one or the other)."""

    file = FileField(_l("CSV file"), validators=[FileRequired(_l("Choose a CSV file."))])
    confirmed = BooleanField(_l("These readers already gave their consent elsewhere (import them as confirmed)"))
    send_confirmation = BooleanField(_l("Send them a request to confirm"))

    def validate_send_confirmation(self, field: Field) -> None:
        """Confirmed readers need no confirmation: tick one box or the other."""
        if field.data and self.confirmed.data:
            raise ValidationError(_l("Either they already gave their consent, or they are sent a request to "
                                     "confirm: tick only one of the two."))
