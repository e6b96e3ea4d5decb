"""The digest in a real browser (headless chromium): phone and desktop layouts."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer.digest import compose_digest
from mailer.models import Article, DigestEdition, Subscriber
from tests.digest.conftest import NOW

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless chromium driven by chromedriver (Debian's packages)."""
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        pytest.skip("chromium and chromedriver are not installed (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))
    yield driver
    driver.quit()


def _edition_file(app: Flask, session: Session, tmp_path: Path) -> Path:
    digest = compose_digest(session, app.config, NOW)
    session.commit()
    assert digest is not None
    edition = session.scalars(select(DigestEdition)).one()
    page = tmp_path / "digest.html"
    # No network here: the thumbnail points at nothing, its box keeps its size.
    page.write_text(edition.html, encoding="utf-8")
    return page


def _measure(browser: Any, page: Path, width: int) -> dict[str, float]:
    browser.set_window_size(width, 1200)
    browser.get(page.as_uri())
    script = """
        const box = (cls) => document.getElementsByClassName(cls)[0].getBoundingClientRect();
        return {scroll: document.documentElement.scrollWidth, viewport: window.innerWidth,
                container: box('d-container').width, thumb: box('d-thumb').width,
                h1: parseFloat(getComputedStyle(document.getElementsByClassName('d-h1')[0]).fontSize)};
    """
    result: dict[str, float] = browser.execute_script(script)
    return result


def test_phone_and_desktop_layouts(
    app_context: Flask, session: Session, add_article: Callable[..., Article],
    add_reader: Callable[..., Subscriber], browser: Any, tmp_path: Path,
) -> None:
    add_article("Un titolo abbastanza lungo da andare a capo anche su uno schermo piccolo",
                image_url="https://img.example.it/a.png",
                summary_html="<p>Un sommario con una parolamoltolungasenzaspazichenondevesfondare il layout.</p>")
    add_article("Un altro titolo")
    add_reader()
    page = _edition_file(app_context, session, tmp_path)

    desktop = _measure(browser, page, 800)
    assert desktop["container"] == 600
    assert desktop["thumb"] == 112
    assert desktop["h1"] == 26

    phone = _measure(browser, page, 375)
    assert phone["scroll"] <= phone["viewport"]  # nothing scrolls sideways
    assert phone["container"] == phone["viewport"]  # full width, no side margins
    # The phone media query survived premailer and beats the inlined styles.
    assert phone["thumb"] == 80
    assert phone["h1"] == 23
