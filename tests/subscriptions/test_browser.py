"""Debian's chromium, headless: the signup page, the mails, the embeddable box.

Sign up on the page, open the confirmation link from the mail the real SMTP
server caught, confirm, then unsubscribe from the link in a real digest.
Skipped, with the reason, where chromium or chromedriver is not installed
(``apt-get install chromium chromium-driver``).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.serving import make_server

from mailer.models import Article, ConsentEvent, Feed, SubscriberStatus, utcnow
from mailer.subscriptions.consent import text_version
from tests.http_server import FeedServer
from tests.smtp_sink import SmtpSink
from tests.subscriptions.conftest import delivered, subscriber

pytestmark = pytest.mark.browser

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
SCREENSHOTS = os.environ.get("MAILER_SCREENSHOTS_DIR")  # e.g. docs/screenshots to refresh them


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def browser() -> Iterator[Any]:
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        pytest.skip(f"needs {CHROMIUM} and {CHROMEDRIVER}: apt-get install chromium chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900",
                     "--lang=en-US", "--disable-gpu"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.implicitly_wait(0)
    yield driver
    driver.quit()


@pytest.fixture
def live(make_app, feed_server: FeedServer) -> Iterator[tuple[Flask, str]]:
    """The app served by a real HTTP server on a free port, as a browser sees it."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    site = feed_server.url("").rstrip("/")
    app = make_app(BASE_URL=base, SIGNUP_MIN_SECONDS=1, CORS_ORIGINS=[site])
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield app, base
    server.shutdown()
    thread.join(5)


def wait_for(driver: Any, css: str, text: str | None = None, timeout: float = 10) -> Any:
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    # While the next page loads, an element found a moment ago may belong to the
    # old document ("Node ... does not belong to the document"): look again.
    wait = WebDriverWait(driver, timeout, ignored_exceptions=(StaleElementReferenceException, WebDriverException))
    if text is not None:
        wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, css), text))
    return wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, css)))


def _add_article(session: Session, base: str) -> None:
    feed = Feed(url=f"{base}/demo/feed.xml", title="Demo")
    session.add(feed)
    session.flush()
    session.add(Article(feed_id=feed.id, dedup_key="a1", url="https://www.example.it/a1", title="Nuovo processore",
                        summary_html="<p>Più veloce.</p>", summary_text="Più veloce.", topic="hardware",
                        published_at=utcnow() - timedelta(hours=1)))
    session.commit()


def test_signup_confirm_and_unsubscribe(browser: Any, live: tuple[Flask, str], smtp_server: SmtpSink,
                                        session: Session) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    app, base = live
    browser.get(f"{base}/?lang=en")
    assert "miss any news" in browser.find_element(By.TAG_NAME, "h1").text
    browser.find_element(By.ID, "email").send_keys("lettore@example.it")
    browser.find_element(By.CSS_SELECTOR, "input[value=hardware]").click()
    # Keyboard only for the consent box: Tab onto it... Space ticks it.
    consent = browser.find_element(By.ID, "consent")
    assert not consent.is_selected()
    consent.send_keys(Keys.SPACE)
    assert consent.is_selected()
    import time

    time.sleep(1.1)  # a person takes longer than SIGNUP_MIN_SECONDS to fill the form
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_for(browser, "h1", "Check your inbox")

    [mail] = delivered(smtp_server, "lettore@example.it")
    text = mail.message.get_body(("plain",)).get_content()
    link = re.search(rf"{re.escape(base)}/confirm/\S+", text)
    assert link, text
    browser.get(link.group(0))
    assert subscriber(session, "lettore@example.it").status is SubscriberStatus.PENDING  # the GET did nothing
    browser.find_element(By.CSS_SELECTOR, "main form button").click()
    wait_for(browser, "h1", "You are subscribed")
    reader = subscriber(session, "lettore@example.it")
    assert reader.status is SubscriberStatus.CONFIRMED and reader.topics == "hardware"

    # A real digest, then its unsubscribe link.
    from mailer.pipeline import send_digest

    _add_article(session, base)
    send_digest(app, poll=False, echo=lambda _line: None)
    digests = [m for m in smtp_server.to("lettore@example.it") if m.message["List-Unsubscribe"]]
    assert digests, "the digest did not arrive"
    part = digests[0].message.get_body(("html",))
    assert part is not None
    html = part.get_content()
    unsubscribe = re.search(rf'href="({re.escape(base)}/unsubscribe/[^"]+)"', html)
    assert unsubscribe, html
    assert digests[0].message["List-Unsubscribe"].strip("<>") == unsubscribe.group(1)
    browser.get(unsubscribe.group(1))
    assert subscriber(session, "lettore@example.it").status is SubscriberStatus.CONFIRMED
    browser.find_element(By.CSS_SELECTOR, "main form button").click()
    wait_for(browser, "h1", "You are unsubscribed")
    assert subscriber(session, "lettore@example.it").status is SubscriberStatus.UNSUBSCRIBED


EMBED_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>An article</title></head>
<body><article><h1>An article</h1><p>Text.</p></article>
<form class="nl-box" data-newsletter-signup data-language="en" data-endpoint="{base}/api/subscribe">
  <label for="nl-email">Your email</label>
  <input id="nl-email" name="email" type="email" autocomplete="email" required aria-describedby="nl-status">
  <label class="nl-consent"><input type="checkbox" name="consent" required aria-describedby="nl-status">
    I want the newsletter and I have read the <a href="{base}/privacy">privacy notice</a>.</label>
  <label><input type="checkbox" name="topics" value="ai"> AI</label>
  <button type="submit">Subscribe</button>
  <p id="nl-status" data-status role="status" aria-live="polite"></p>
</form>
<script src="{base}/static/embed.js" defer></script></body></html>"""


def test_embedded_box_on_another_site(browser: Any, live: tuple[Flask, str], feed_server: FeedServer,
                                      session: Session) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    _app, base = live
    page = feed_server.add("/2026/article.html", EMBED_PAGE.format(base=base),
                           headers={"Content-Type": "text/html; charset=utf-8"})
    browser.get(page)
    email = browser.find_element(By.ID, "nl-email")
    email.send_keys("not-an-address", Keys.ENTER)  # keyboard only
    status = wait_for(browser, "#nl-status[data-kind=error]")
    assert "needs an @" in status.text
    assert email.get_attribute("aria-invalid") == "true"
    assert browser.switch_to.active_element == email  # the focus went back to the field
    email.clear()
    email.send_keys("lettrice@example.it", Keys.ENTER)
    wait_for(browser, "#nl-status[data-kind=error]", "consent")
    consent = browser.find_element(By.NAME, "consent")
    # The corrected address is no longer marked wrong; the unticked box is.
    assert email.get_attribute("aria-invalid") is None and consent.get_attribute("aria-invalid") == "true"
    consent.send_keys(Keys.SPACE)
    browser.find_element(By.CSS_SELECTOR, "input[value=ai]").click()
    browser.find_element(By.CSS_SELECTOR, "form button").click()
    status = wait_for(browser, "#nl-status[data-kind=success]")
    assert "we sent you an email" in status.text
    assert browser.find_element(By.ID, "nl-email").get_attribute("value") == ""
    assert consent.get_attribute("aria-invalid") is None  # nothing stays marked wrong after a success
    reader = subscriber(session, "lettrice@example.it")
    assert reader.topics == "ai" and reader.status is SubscriberStatus.PENDING
    event = session.scalar(select(ConsentEvent).where(ConsentEvent.email_hash == reader.email_hash))
    assert event is not None and event.channel == "api" and event.source_page == page
    assert event.consent_text_version == text_version(
        "I want the newsletter and I have read the privacy notice.", "en")


@pytest.mark.parametrize("width", [375, 1280])
def test_signup_page_fits_the_screen(browser: Any, live: tuple[Flask, str], width: int, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    _app, base = live
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": 900, "deviceScaleFactor": 2 if width < 600 else 1, "mobile": width < 600})
    browser.get(f"{base}/?lang=it")
    overflow = browser.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page scrolls sideways by {overflow}px at {width}px"
    button = browser.find_element(By.CSS_SELECTOR, "button[type=submit]")
    email = browser.find_element(By.ID, "email")
    assert email.size["width"] >= min(width - 80, 500)  # the field uses the room it has
    assert button.location["x"] >= 0 and button.location["x"] + button.size["width"] <= width
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": height, "deviceScaleFactor": 2 if width < 600 else 1, "mobile": width < 600})
    target = Path(SCREENSHOTS) if SCREENSHOTS else tmp_path
    target.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(target / f"signup-{width}.png"))


def test_my_data_through_the_mailed_link(browser: Any, live: tuple[Flask, str], smtp_server: SmtpSink,
                                         session: Session) -> None:
    """The preferences page mails a link; the link shows the consent record and erases; then it is dead."""
    from selenium.webdriver.common.by import By

    from mailer.subscriptions.addresses import parse_address
    from mailer.subscriptions.consent import Origin
    from mailer.subscriptions.signup import SignupRequest
    from mailer.tokens import preferences_token
    from tests.subscriptions.conftest import mails, signup_at

    app, base = live
    signup_at(app, SignupRequest(address=parse_address("dati@example.it"), topics="", language="en", channel="form",
                                 consent_text="I want it", origin=Origin(ip="192.0.2.7")))
    confirm = re.search(r"/confirm/\S+", mails(session, "dati@example.it")[0].text)
    assert confirm
    app.test_client().post(confirm.group(0))
    reader = subscriber(session, "dati@example.it")
    with app.app_context():
        preferences = f"{base}/preferences/{preferences_token(reader.id)}"
    browser.get(preferences)
    assert not browser.find_elements(By.CSS_SELECTOR, "input[value=erase]")  # nothing to erase with from here
    browser.find_element(By.CSS_SELECTOR, "form:has(input[value=data-link]) button").click()
    wait_for(browser, "p.success", "We have sent a link to dati@example.it")
    mail = next(m for m in delivered(smtp_server, "dati@example.it")
                if "/my-data/" in m.message.get_body(("plain",)).get_content())
    link = re.search(rf"{re.escape(base)}/my-data/\S+", mail.message.get_body(("plain",)).get_content())
    assert link
    browser.get(link.group(0))
    wait_for(browser, "h1", "Your data")
    assert "192.0.2.7" in browser.find_element(By.CSS_SELECTOR, "table.consent-log").text
    browser.find_element(By.ID, "confirm-erase").click()
    browser.find_element(By.CSS_SELECTOR, "button.danger").click()
    wait_for(browser, "h1", "Your data is deleted")
    browser.get(link.group(0))
    wait_for(browser, "h1", "This link has expired")
