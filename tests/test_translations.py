"""The translations: Italian complete and well formed, catalogues in step with the code.

Italian is the default language and English must be complete, for every page
and mail. The msgids are English, so the ``en`` catalogue may leave msgstr
empty; the ``it`` one may not. A developer who wraps a new string in ``_()``
and forgets ``make translations`` (or the Italian text) gets a failure here
that names the string.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog, Message
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po
from flask import Flask
from flask.testing import FlaskClient
from markupsafe import escape
from sqlalchemy import select
from sqlalchemy.orm import Session

from config import defaults
from mailer.models import OutboundMail

ROOT = Path(__file__).resolve().parent.parent
TRANSLATIONS = ROOT / "mailer" / "translations"
POT = TRANSLATIONS / "messages.pot"
LANGUAGES = ("it", "en")
UPDATE_HINT = "run `make translations`, then translate the new entries of mailer/translations/it"
# A %-placeholder as Python formats it: %(name)s, %(num)d, %(x).1f, or a bare %s.
PLACEHOLDER = re.compile(r"%(?:\((\w+)\))?[-#0 +]*(?:\d+|\*)?(?:\.\d+)?([diouxXeEfFgGcrsa%])")
# Italian keeps these as they are (loanwords, names, codes); any other msgstr
# equal to its msgid is an English string pasted in as a "translation".
SAME_IN_ITALIAN = {"Email", "Feed", "Feeds", "Password", "ok", "Newsletter", "Digest", "Digests", "Admin", "Dashboard"}

Key = tuple[str | None, str | tuple[str, ...]]


def key(message: Message) -> Key:
    """A message's identity: its context and msgid (both forms for a plural)."""
    msgid = tuple(message.id) if isinstance(message.id, (list, tuple)) else message.id
    return (message.context, msgid)


def name(k: Key) -> str:
    """A msgid as a developer greps for it."""
    msgid = k[1][0] if isinstance(k[1], tuple) else k[1]
    return repr(msgid) if k[0] is None else f"{msgid!r} (context {k[0]!r})"


def entries(catalog: Catalog) -> Iterator[Message]:
    """The messages of a catalogue, without its header."""
    return (m for m in catalog if m.id)


def load(language: str) -> Catalog:
    """The ``.po`` catalogue of ``language``."""
    path = TRANSLATIONS / language / "LC_MESSAGES" / "messages.po"
    assert path.exists(), f"{path} is missing: create it with `pybabel init -l {language}`"
    with path.open("rb") as handle:
        return read_po(handle, locale=language)


def strings(message: Message) -> list[str]:
    """The msgstr of a message, as a list (one per plural form)."""
    return list(message.string) if isinstance(message.string, (list, tuple)) else [message.string or ""]


def msgids(message: Message) -> list[str]:
    """The msgid of a message, as a list (singular and plural)."""
    return list(message.id) if isinstance(message.id, (list, tuple)) else [message.id]


def placeholders(text: str) -> set[tuple[str | None, str]]:
    """The %-placeholders of ``text`` as (name, conversion), without ``%%``."""
    return {(m.group(1), m.group(2)) for m in PLACEHOLDER.finditer(text) if m.group(2) != "%"}


def translation(language: str, msgid: str) -> str:
    """The msgstr of ``msgid`` (which must exist), for the page and mail checks."""
    message = load(language).get(msgid)
    assert message is not None and message.string, f"{msgid!r} has no {language} translation"
    return str(message.string)


@pytest.fixture(scope="module")
def extracted(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    """The strings of the sources now, extracted as `make translations` does."""
    out = tmp_path_factory.mktemp("i18n") / "messages.pot"
    # Same config, keywords and inputs as the Makefile; locations kept so the
    # coverage check below can see which files contributed.
    subprocess.run(
        [sys.executable, "-m", "babel.messages.frontend", "-q", "extract", "-F", "babel.cfg",
         "-k", "_l", "-k", "lazy_gettext", "--sort-output", "-o", str(out), "mailer", "templates"],
        cwd=ROOT, check=True, capture_output=True,
    )
    with out.open("rb") as handle:
        return read_po(handle)


def test_extraction_reaches_code_pages_and_mails(extracted: Catalog) -> None:
    """babel.cfg patterns match: a wrong one extracts nothing, silently."""
    files = {path for m in entries(extracted) for path, _line in m.locations}
    assert any(f.startswith("mailer/") and f.endswith(".py") for f in files), "no string from mailer/**.py"
    assert any(f.startswith("templates/pages/") for f in files), "no string from templates/pages/"
    assert any(f.startswith("templates/email/") and f.endswith(".html") for f in files), "no string from mail HTML"
    assert any(f.startswith("templates/email/") and f.endswith(".txt") for f in files), "no string from mail text"


def test_pot_is_up_to_date_with_the_sources(extracted: Catalog) -> None:
    with POT.open("rb") as handle:
        pot = {key(m) for m in entries(read_po(handle))}
    fresh = {key(m) for m in entries(extracted)}
    new = sorted(name(k) for k in fresh - pot)
    gone = sorted(name(k) for k in pot - fresh)
    assert not new, f"strings missing from messages.pot ({UPDATE_HINT}): {', '.join(new)}"
    assert not gone, f"strings no longer in the sources, still in messages.pot ({UPDATE_HINT}): {', '.join(gone)}"


@pytest.mark.parametrize("language", LANGUAGES)
def test_catalogue_holds_every_source_string(extracted: Catalog, language: str) -> None:
    catalog = {key(m) for m in entries(load(language))}
    fresh = {key(m) for m in entries(extracted)}
    missing = sorted(name(k) for k in fresh - catalog)
    stale = sorted(name(k) for k in catalog - fresh)
    assert not missing, f"{language} catalogue lacks ({UPDATE_HINT}): {', '.join(missing)}"
    assert not stale, f"{language} catalogue holds strings gone from the sources ({UPDATE_HINT}): {', '.join(stale)}"


def test_italian_is_complete() -> None:
    catalog = load("it")
    untranslated = sorted(name(key(m)) for m in entries(catalog) if not all(strings(m)))
    fuzzy = sorted(name(key(m)) for m in entries(catalog) if m.fuzzy)
    assert not untranslated, f"untranslated in it/messages.po: {', '.join(untranslated)}"
    assert not fuzzy, f"fuzzy (guessed by pybabel update, check and unflag) in it/messages.po: {', '.join(fuzzy)}"
    assert catalog.plural_forms == "nplurals=2; plural=(n != 1);"
    assert not any(len(strings(m)) != 2 for m in entries(catalog) if m.pluralizable), "Italian has two plural forms"


def test_english_needs_no_fuzzy_guess() -> None:
    """A fuzzy English msgstr would be a stale text, silently skipped at compile time."""
    fuzzy = sorted(name(key(m)) for m in entries(load("en")) if m.fuzzy)
    assert not fuzzy, f"fuzzy in en/messages.po: {', '.join(fuzzy)}"


def test_italian_is_not_english_pasted_in() -> None:
    copied = sorted(
        name(key(m)) for m in entries(load("it"))
        if any(s == i for s, i in zip(strings(m), msgids(m), strict=False)) and msgids(m)[0] not in SAME_IN_ITALIAN
        and re.search(r"[A-Za-z]{3}", msgids(m)[0])
    )
    assert not copied, f"msgstr equal to the English msgid in it/messages.po: {', '.join(copied)}"


def test_msgids_use_named_placeholders() -> None:
    """Flask-Babel formats with a dict: a bare %s would print the whole dict."""
    with POT.open("rb") as handle:
        pot = read_po(handle)
    bare = sorted(name(key(m)) for m in entries(pot) for i in msgids(m) if any(n is None for n, _c in placeholders(i)))
    assert not bare, f"use %(name)s placeholders in: {', '.join(bare)}"


@pytest.mark.parametrize("language", LANGUAGES)
def test_placeholders_and_markup_survive_translation(language: str) -> None:
    wrong = []
    for message in entries(load(language)):
        expected = set().union(*(placeholders(i) for i in msgids(message)))
        for text in filter(None, strings(message)):
            # Every form keeps the placeholders: Italian has no form without the number.
            if placeholders(text) != expected:
                wrong.append(f"{name(key(message))}: {sorted(placeholders(text))} != {sorted(expected)}")
                continue
            if expected:
                try:
                    text % {n: 1 for n, _c in expected}
                except (ValueError, TypeError, KeyError) as exc:
                    wrong.append(f"{name(key(message))}: {exc}")
            # Translations are plain text: HTML that the msgid lacks would be escaped or injected.
            if text.count("<") != msgids(message)[0].count("<"):
                wrong.append(f"{name(key(message))}: markup differs")
    assert not wrong, f"{language}/messages.po:\n" + "\n".join(wrong)


@pytest.mark.parametrize("language", LANGUAGES)
def test_compiled_catalogue_matches_the_po(language: str) -> None:
    """Pages read the .mo: one older than the .po shows yesterday's text."""
    mo = TRANSLATIONS / language / "LC_MESSAGES" / "messages.mo"
    hint = "run `make install` (or `.venv/bin/pybabel compile -d mailer/translations`)"
    assert mo.exists(), f"{mo} is missing: {hint}"
    with mo.open("rb") as handle:
        compiled = {key(m): strings(m) for m in entries(read_mo(handle))}
    # What pybabel compile writes: translated singulars, and every plural, its
    # empty forms filled with the English msgid.
    source = {
        key(m): [s or msgids(m)[min(i, 1)] for i, s in enumerate(strings(m))]
        for m in entries(load(language)) if (m.pluralizable or m.string) and not m.fuzzy
    }
    differ = sorted(name(k) for k in source.keys() | compiled.keys() if source.get(k) != compiled.get(k))
    assert not differ, f"{mo} is out of date ({hint}): {', '.join(differ[:10])}"


def shown(text: str, html: str) -> bool:
    """Whether ``text`` is on the page: Jinja's ``_()`` output is not escaped, a Python one is."""
    return text in html or str(escape(text)) in html


def page(client: FlaskClient, accept_language: str | None) -> str:
    """The home page's HTML, for a browser sending ``accept_language``."""
    headers = {"Accept-Language": accept_language} if accept_language else {}
    answer = client.get("/", headers=headers)
    assert answer.status_code == 200
    return answer.get_data(as_text=True)


HOME_PAGE_MSGIDS = ("Don't miss any news!", "Subscribe", "Privacy notice")


def assert_italian(html: str) -> None:
    """The page is Italian: lang attribute, translated texts, no English msgid."""
    assert '<html lang="it">' in html
    for msgid in HOME_PAGE_MSGIDS:
        assert shown(translation("it", msgid), html), msgid
        assert not shown(msgid, html), msgid


@pytest.mark.parametrize("accept_language", [None, "fr-FR,fr;q=0.9", "*"])
def test_home_page_is_italian_by_default(make_app: Callable[..., Flask], accept_language: str | None) -> None:
    """With the shipped MAILER_LOCALE (the fixtures' app is English), any other browser gets Italian."""
    assert defaults.LOCALE == "it"
    app = make_app(LOCALE=defaults.LOCALE)
    assert_italian(page(app.test_client(), accept_language))


def test_home_page_follows_an_italian_browser(client: FlaskClient) -> None:
    assert_italian(page(client, "it-IT,it;q=0.9,en;q=0.5"))


def test_home_page_follows_an_english_browser(make_app: Callable[..., Flask]) -> None:
    html = page(make_app(LOCALE="it").test_client(), "en-GB,en;q=0.9,it;q=0.5")
    assert '<html lang="en">' in html
    for msgid in HOME_PAGE_MSGIDS:
        assert shown(msgid, html), msgid
        assert not shown(translation("it", msgid), html), msgid


@pytest.mark.parametrize("language", LANGUAGES)
def test_confirmation_mail_is_in_the_readers_language(
        app: Flask, client: FlaskClient, session: Session, language: str) -> None:
    address = f"lettore-{language}@example.it"
    # The browser says the other language: the reader's own choice wins for the mail.
    other = "en" if language == "it" else "it"
    answer = client.post("/api/subscribe", json={"email": address, "consent": True, "language": language},
                         headers={"Accept-Language": other})
    assert answer.status_code == 202
    mail = session.scalars(select(OutboundMail).where(OutboundMail.to_address == address)).one()

    def say(msgid: str, **values: object) -> str:
        text = translation("it", msgid) if language == "it" else msgid
        return text % values if values else text

    assert mail.subject == say("Confirm your subscription to %(site)s", site=app.config["SITE_NAME"])
    assert say("One click to confirm your subscription") in mail.text
    assert shown(say("If the button does not work, copy this link into your browser:"), mail.html)
    if language == "it":
        assert "Confirm your subscription" not in mail.text + mail.html
