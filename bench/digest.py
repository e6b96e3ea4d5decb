"""Benchmark: compose a digest of 200 articles for 30 segments; per-reader fill-in cost.

Run by hand: ``.venv/bin/python bench/digest.py [--readers-per-segment N] [--rounds N]``.

Everything is measured in the same run and printed as ratios to its raw limit:

- compose: the whole ``compose_digest`` (pick, 31 renders, 31 premailer runs,
  inserts) against the sum of the premailer runs inside it, the cost that
  cannot go away; and against what rendering per reader would have cost;
- fill-in: per reader, sign the two tokens and put them into the serialised
  message, against a bare ``bytes.replace`` of the same placeholders in the
  same message.
"""

from __future__ import annotations

import argparse
import email.policy
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

from digest_sample import NOW, SEGMENTS, add_sample_week, sample_app
from sqlalchemy import func, select

from mailer import tokens
from mailer.db import get_engine, session_scope
from mailer.digest import PREFERENCES_TOKEN, UNSUBSCRIBE_TOKEN, compose_digest, render
from mailer.models import Delivery, DigestEdition

ARTICLES = 200


@dataclass
class ComposeRun:
    """What one compose took, and the full edition it made."""

    seconds: float
    premailer_seconds: float
    premailer_runs: int
    editions: int
    deliveries: int
    html: str
    text: str
    subject: str


def compose_once(readers_per_segment: int) -> ComposeRun:
    """One compose on a fresh database; the premailer runs inside it are timed."""
    premailer_times: list[float] = []
    inline_css = render.inline_css

    def timed_inline_css(html: str, base_url: str) -> str:
        started = time.perf_counter()
        try:
            return inline_css(html, base_url)
        finally:
            premailer_times.append(time.perf_counter() - started)

    render.inline_css = timed_inline_css
    try:
        with tempfile.TemporaryDirectory() as scratch:
            app = sample_app(Path(scratch))
            with app.app_context(), session_scope(app) as session:
                add_sample_week(session, articles=ARTICLES, readers_per_segment=readers_per_segment)
            with app.app_context(), session_scope(app) as session:
                started = time.perf_counter()
                digest = compose_digest(session, app.config, NOW)
                elapsed = time.perf_counter() - started
                assert digest is not None
                editions = session.scalar(select(func.count()).select_from(DigestEdition)) or 0
                deliveries = session.scalar(select(func.count()).select_from(Delivery)) or 0
                sample = session.scalar(select(DigestEdition).where(DigestEdition.topics == ""))
                assert sample is not None
                html, text, subject = sample.html, sample.text, sample.subject
            get_engine(app).dispose()
    finally:
        render.inline_css = inline_css
    return ComposeRun(elapsed, sum(premailer_times), len(premailer_times), editions, deliveries, html, text, subject)


def serialise(html: str, text: str, subject: str) -> bytes:
    """The edition as one message, with its placeholders, as delivery would hold it."""
    message = EmailMessage(policy=email.policy.SMTP)
    message["From"] = "Notizie Tech <newsletter@example.it>"
    message["To"] = "reader@example.org"
    message["Subject"] = subject
    message.set_content(text, cte="8bit")
    message.add_alternative(html, subtype="html", cte="8bit")
    return message.as_bytes()


def per_call_us(functions: dict[str, Callable[[int], bytes]], calls: int, batches: int = 7) -> dict[str, float]:
    """Microseconds per call of each ``function(i)``: batches interleaved, best batch kept."""
    best = {name: float("inf") for name in functions}
    for _ in range(batches):
        for name, function in functions.items():
            started = time.perf_counter()
            for i in range(calls):
                function(i)
            best[name] = min(best[name], (time.perf_counter() - started) / calls * 1e6)
    return best


def main() -> None:
    """Run both measurements and print the figures and ratios."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--readers-per-segment", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    rounds = [compose_once(args.readers_per_segment) for _ in range(args.rounds)]
    best = min(rounds, key=lambda r: r.seconds)
    per_run = best.premailer_seconds / best.premailer_runs
    print(f"compose: {ARTICLES} articles, {len(SEGMENTS)} reader segments, {best.deliveries} readers "
          f"-> {best.editions} editions + the archive copy")
    print(f"  compose_digest            {best.seconds:.3f} s  (best of {args.rounds}; "
          f"median {statistics.median(r.seconds for r in rounds):.3f} s)")
    print(f"  premailer runs            {best.premailer_runs} x {per_run * 1000:.1f} ms = "
          f"{best.premailer_seconds:.3f} s")
    print(f"  ratio compose / premailer {best.seconds / best.premailer_seconds:.2f}  (1.00 would be premailer alone)")
    per_reader = best.deliveries * per_run
    print(f"  premailer per reader would take {per_reader:.1f} s: {per_reader / best.seconds:.0f}x this compose")

    raw = serialise(best.html, best.text, best.subject)
    unsubscribe, preferences = UNSUBSCRIBE_TOKEN.encode(), PREFERENCES_TOKEN.encode()
    calls = 2000
    # The bare replace puts in the very same tokens, computed beforehand.
    ready = [(tokens.unsubscribe_token(i + 1, "bench").encode(), tokens.preferences_token(i + 1, "bench").encode())
             for i in range(calls)]

    def bare(i: int) -> bytes:
        u, p = ready[i]
        return raw.replace(unsubscribe, u).replace(preferences, p)

    def fill(i: int) -> bytes:
        u = tokens.unsubscribe_token(i + 1, "bench").encode()
        p = tokens.preferences_token(i + 1, "bench").encode()
        return raw.replace(unsubscribe, u).replace(preferences, p)

    assert fill(0) == bare(0) and unsubscribe not in fill(0) and fill(0).count(b"/unsubscribe/") == 2
    timings = per_call_us({"bare": bare, "fill": fill}, calls)
    print(f"fill-in per reader on the {len(raw) / 1024:.1f} KiB serialised message (text + HTML, 8bit):")
    print(f"  bare bytes.replace        {timings['bare']:.1f} us")
    print(f"  sign tokens + replace     {timings['fill']:.1f} us  "
          f"(ratio {timings['fill'] / timings['bare']:.2f} to the bare replace)")
    print(f"  one premailer run costs {per_run * 1e6 / timings['fill']:.0f}x one reader's fill-in")


if __name__ == "__main__":
    main()
