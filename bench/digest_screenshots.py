"""Screenshots of a sample digest at 375 and 800 px, by Debian's headless chromium.

Run by hand: ``.venv/bin/python bench/digest_screenshots.py [OUT_DIR]`` (default
``docs/screenshots``). It composes the sample week, fills in fake tokens the way
``delivery/`` does, points the article images at local placeholder pictures
(there is no network here) and writes ``digest-375.png``, ``digest-800.png``,
``digest-800-dark.png`` and the HTML and text parts it shot.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

from digest_sample import IMAGE_BASE, NOW, STORIES, add_sample_week, sample_app
from sqlalchemy import select

from mailer.db import session_scope
from mailer.digest import PREFERENCES_TOKEN, UNSUBSCRIBE_TOKEN, compose_digest
from mailer.models import DigestEdition

COLOURS = {"ai": (88, 86, 214), "security": (192, 57, 43), "web": (39, 174, 96), "mobile": (41, 128, 185),
           "hardware": (211, 84, 0), "other": (127, 140, 141)}


def png(path: Path, rgb: tuple[int, int, int], width: int = 224, height: int = 160) -> None:
    """Write a diagonal-gradient PNG (no imaging library needed)."""
    rows = []
    for y in range(height):
        row = bytearray([0])
        for x in range(width):
            shade = 0.65 + 0.35 * (x + y) / (width + height)
            row += bytes(min(255, int(c * shade + 40 * (1 - shade))) for c in rgb)
        rows.append(bytes(row))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                     + chunk(b"IDAT", zlib.compress(b"".join(rows))) + chunk(b"IEND", b""))


def shoot(chromium: str, page: Path, out: Path, width: int, height: int, *flags: str) -> None:
    """One headless screenshot of ``page``."""
    subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *flags,
         f"--screenshot={out}", f"--window-size={width},{height}", page.as_uri()],
        check=True, capture_output=True, timeout=120,
    )


def main() -> None:
    """Compose the sample, write both parts, take both screenshots."""
    out_dir = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots").resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("chromium is missing: apt-get update && apt-get install -y chromium")
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        app = sample_app(work, LOGO_URL=None, DIGEST_MAX_ARTICLES=8)
        with app.app_context(), session_scope(app) as session:
            add_sample_week(session, articles=len(STORIES) + 3, readers_per_segment=1)
            compose_digest(session, app.config, NOW)
            edition = session.scalar(select(DigestEdition).where(DigestEdition.topics == "",
                                                                 DigestEdition.language == "it"))
            assert edition is not None
            html, text = edition.html, edition.text
        for name, rgb in COLOURS.items():
            png(work / f"{name}.png", rgb)
        for placeholder, token in ((UNSUBSCRIBE_TOKEN, "MQ.sample-unsubscribe-token"),
                                   (PREFERENCES_TOKEN, "MQ.sample-preferences-token")):
            html, text = html.replace(placeholder, token), text.replace(placeholder, token)
        page = work / "digest.html"
        page.write_text(html.replace(IMAGE_BASE, work.as_uri() + "/"), encoding="utf-8")
        (out_dir / "digest.html").write_text(html, encoding="utf-8")
        (out_dir / "digest.txt").write_text(text, encoding="utf-8")
        shoot(chromium, page, out_dir / "digest-375.png", 375, 3500)
        shoot(chromium, page, out_dir / "digest-800.png", 800, 2450)
        # Clients that honour prefers-color-scheme (Apple Mail, iOS) get the dark palette.
        shoot(chromium, page, out_dir / "digest-800-dark.png", 800, 1200, "--force-dark-mode",
              "--blink-settings=preferredColorScheme=0")
    print(f"wrote {out_dir}/digest-375.png, digest-800.png, digest-800-dark.png, digest.html, digest.txt")


if __name__ == "__main__":
    main()
