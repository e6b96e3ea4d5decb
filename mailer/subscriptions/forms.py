"""The signup and preferences forms (Flask-WTF), and the form's timestamp.

The signup form carries two traps for bots besides CSRF: a honeypot field
that people never see (``homepage``) and a signed timestamp of when the page
was served (``started``), so an answer posted sooner than
``SIGNUP_MIN_SECONDS`` after it is refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from flask import current_app
from flask_babel import get_locale
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from itsdangerous import BadData, URLSafeTimedSerializer
from wtforms import BooleanField, Field, HiddenField, SelectField, SelectMultipleField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, ValidationError
from wtforms.widgets import CheckboxInput, ListWidget

from mailer.config import LOCALES
from mailer.subscriptions.addresses import Address, AddressError, parse_address
from mailer.topics import topic_name, topic_slugs

LANGUAGE_NAMES = {"it": "Italiano", "en": "English"}  # each in its own language
FORM_MAX_AGE = 24 * 3600


# WTForms' own words for these ("'x' is not a valid choice for this field.")
# have no Italian in its catalogue: ours say it in the page's language.
BAD_TOPIC = _l("Choose among the topics shown.")
BAD_LANGUAGE = _l("Choose one of the languages shown.")


class CheckboxesField(SelectMultipleField):  # type: ignore[misc]
    """A list of checkboxes (WTForms' multi-select, drawn as checkboxes)."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


def _timestamp_serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="mailer.signup-form")


def form_timestamp() -> str:
    """A signed "the form was served now" value for the hidden field."""
    return str(_timestamp_serializer().dumps("signup"))


def form_age(value: str) -> float | None:
    """Seconds since the form was served, or None if the value is forged or too old."""
    try:
        _payload, signed_at = _timestamp_serializer().loads(value, max_age=FORM_MAX_AGE, return_timestamp=True)
    except BadData:
        return None
    return float((datetime.now(UTC) - signed_at).total_seconds())


def topic_choices(topics: Mapping[str, Any]) -> list[SelectChoice]:
    """(slug, name in the page's language) for every configured topic."""
    language = str(get_locale() or current_app.config["LOCALE"])
    return [SelectChoice(slug, topic_name(topics, slug, language)) for slug in topic_slugs(topics)]


def language_choices() -> list[SelectChoice]:
    """The languages the newsletter is written in, each named in itself."""
    return [SelectChoice(code, name) for code, name in LANGUAGE_NAMES.items()]


class SignupForm(FlaskForm):  # type: ignore[misc]
    """``GET /`` and ``POST /subscribe``."""

    email = StringField(_l("Your email address"), render_kw={"autocomplete": "email", "inputmode": "email"})
    topics = CheckboxesField(_l("Topics"), choices=[], validate_choice=True, invalid_choice_message=BAD_TOPIC)
    language = SelectField(_l("Language of the newsletter"), choices=language_choices,
                           invalid_choice_message=BAD_LANGUAGE)
    consent = BooleanField(validators=[DataRequired(message=_l("Please tick the box: we need your consent."))])
    homepage = StringField(_l("Leave this field empty"), render_kw={"autocomplete": "off", "tabindex": "-1"})
    started = HiddenField()

    address: Address | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.topics.choices = topic_choices(current_app.config["TOPICS"])
        if not self.language.data or self.language.data not in LOCALES:
            self.language.data = str(get_locale() or current_app.config["LOCALE"])

    def validate_email(self, field: Field) -> None:
        """Validate and normalise the address, keeping the reason if refused."""
        try:
            self.address = parse_address(field.data or "")
        except AddressError as exc:
            raise ValidationError(exc.reason) from None

    def validate_language(self, field: Field) -> None:
        """Only the languages the newsletter is written in."""
        if field.data not in LOCALES:
            raise ValidationError(_l("Please choose a language from the list."))


class PreferencesForm(FlaskForm):  # type: ignore[misc]
    """The topics and language part of ``/preferences/<token>``.

    No CSRF token: the signed token in the URL is the authority, and the
    page must work from a mail without a session.
    """

    class Meta:
        csrf = False

    topics = CheckboxesField(_l("Topics"), choices=[], validate_choice=True, invalid_choice_message=BAD_TOPIC)
    language = SelectField(_l("Language of the newsletter"), choices=language_choices,
                           invalid_choice_message=BAD_LANGUAGE)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.topics.choices = topic_choices(current_app.config["TOPICS"])
