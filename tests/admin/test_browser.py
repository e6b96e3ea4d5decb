"""The dashboard in Debian's chromium, headless: log in, find a reader, pause and resume a send."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from mailer.admin.sending import get_sender
from mailer.models import DeliveryStatus, Digest, DigestStatus, SubscriberStatus
from tests.admin import seed
from tests.admin.conftest import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.admin.live import browser_missing, chromium, live_server

pytestmark = pytest.mark.browser

missing = browser_missing()
if missing:
    pytest.skip(f"browser tests skipped: {missing}", allow_module_level=True)

from selenium.common.exceptions import StaleElementReferenceException, WebDriverException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as ec  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


@pytest.fixture
def browser():
    with chromium() as driver:
        yield driver


def test_log_in_find_a_reader_pause_and_resume(app, session, admin_account, browser, smtp_server):
    seed.reader(session, "giulia.bianchi@example.it", topics="ai", language="it")
    seed.reader(session, "marco@example.org", SubscriberStatus.PENDING)
    made = seed.digest(session, "2026-W09", DigestStatus.SENDING, subject="Le notizie della settimana")
    for n in range(3):
        seed.delivery(session, made, seed.reader(session, f"lettore{n}@example.it"), DeliveryStatus.PENDING)
    session.commit()
    # A page being replaced may answer for its old document: look again.
    wait = WebDriverWait(browser, 15, ignored_exceptions=(StaleElementReferenceException, WebDriverException))

    with live_server(app) as base:
        # Any admin page leads to the login form first.
        browser.get(f"{base}/admin/readers/")
        wait.until(ec.presence_of_element_located((By.ID, "email")))
        assert "/admin/login" in browser.current_url
        browser.find_element(By.ID, "email").send_keys(ADMIN_EMAIL)
        browser.find_element(By.ID, "password").send_keys(ADMIN_PASSWORD)
        browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
        wait.until(ec.presence_of_element_located((By.ID, "readers")))
        assert browser.current_url.endswith("/admin/readers/")

        # Find a reader and open the record.
        search = browser.find_element(By.ID, "q")
        search.send_keys("bianchi")
        search.submit()
        wait.until(ec.text_to_be_present_in_element((By.ID, "result-count"), "1 reader"))
        browser.find_element(By.LINK_TEXT, "giulia.bianchi@example.it").click()
        wait.until(ec.presence_of_element_located((By.ID, "consent-log")))
        assert "signup" in browser.find_element(By.ID, "consent-log").text
        assert "Artificial intelligence" in browser.page_source

        # Pause the running send with a reason.
        browser.find_element(By.LINK_TEXT, "Digests").click()
        wait.until(ec.presence_of_element_located((By.ID, "running")))
        browser.find_element(By.ID, f"reason-{made.id}").send_keys("a typo in the subject")
        browser.find_element(By.CSS_SELECTOR, "#running button[name=pause]").click()
        wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, "main"), "Sending paused."))
        assert "a typo in the subject" in browser.find_element(By.ID, "running").text
        session.expire_all()
        assert session.get(Digest, made.id).status is DigestStatus.PAUSED

        # Resume it: the web app carries the send on.
        browser.find_element(By.XPATH, "//section[@id='running']//button[normalize-space()='Resume']").click()
        wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, "main"), "Sending resumed"))
        assert get_sender(app).wait(60)
        session.expire_all()
        assert session.scalar(select(Digest.status).where(Digest.id == made.id)) is DigestStatus.FINISHED
        assert len(smtp_server.messages) == 3
        # The page notices the end of the send by itself (admin.js polls) and shows the history.
        wait.until(lambda driver: not driver.find_elements(By.ID, "running"))
        assert "finished" in browser.find_element(By.ID, "history").text

        # Log out.
        browser.find_element(By.XPATH, "//header//button[normalize-space()='Log out']").click()
        wait.until(ec.presence_of_element_located((By.ID, "password")))
        browser.get(f"{base}/admin/")
        assert "/admin/login" in browser.current_url
