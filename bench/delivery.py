"""Benchmark: ``digest send`` against plain smtplib, on the same lean sink.

For each reader count (20,000 and 100,000 by default) it builds a database
with that many confirmed readers and one sending digest (a realistic ~60 KB
edition), starts ``bench/sink.py`` in its own process, then runs, one after
the other against that sink:

1. the raw limit: plain smtplib, ``SMTP_CONNECTIONS`` threads with one
   persistent connection each, sending the same bytes (one reader's
   rendered copy) to as many recipients;
2. ``flask --app wsgi digest send``, a real process on that database.

The rate is measured on the sink's side (first MAIL to last accepted
message); CPU and peak memory come from each process's rusage. It prints
messages/s, the ratio to smtplib (goal: 0.9), CPU ms per message and peak
RSS (goal: under 150 MB at 100,000).

    .venv/bin/python bench/delivery.py [--readers 20000 100000] [--connections 4] [--db URL] [--repeat 3]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import smtplib
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

UNSUBSCRIBE, PREFERENCES = "x0UNSUBSCRIBETOKEN0x", "x0PREFERENCESTOKEN0x"


def edition_html(articles: int = 30) -> str:
    """A digest-like HTML edition: inlined styles, Italian text, lines under 300 octets."""
    style = 'style="font-family:Georgia,serif;font-size:16px;line-height:1.5;color:#1a1a1a;margin:0 0 12px 0"'
    parts = ["<!DOCTYPE html>\n<html lang=\"it\"><head><meta charset=\"utf-8\"><title>Notizie</title></head>",
             '<body style="margin:0;padding:0;background:#f4f4f4">',
             '<table role="presentation" width="100%" style="border-collapse:collapse;max-width:640px">']
    for n in range(articles):
        parts += [
            '<tr><td style="padding:16px 24px;background:#ffffff;border-bottom:1px solid #e5e5e5">',
            f'<h2 style="font-family:Georgia,serif;font-size:20px;margin:0 0 8px 0"><a href="https://www.example.it/'
            f'articoli/{n}/una-notizia-importante?utm_source=newsletter" style="color:#0b5cad;text-decoration:none">'
            f"Perché l'intelligenza artificiale cambierà il lavoro n. {n}</a></h2>",
            f"<p {style}>Un riassunto dell'articolo, con qualche dettaglio in più: è la settimana",
            "in cui i processori, le città e le aziende hanno scoperto cosa può fare davvero un modello",
            "linguistico, e perché conviene guardarlo da vicino prima di farsi un'opinione.</p>",
            f'<p {style}><img src="https://www.example.it/img/{n}.jpg" width="592" alt="" '
            'style="display:block;width:100%;height:auto;border:0"></p></td></tr>',
        ]
    parts += [
        '<tr><td style="padding:24px;font-size:12px;color:#666666">Ricevi questa mail perché sei iscritto.',
        f'<a href="https://news.example.it/unsubscribe/{UNSUBSCRIBE}" style="color:#666666">Disiscriviti</a> ·',
        f'<a href="https://news.example.it/preferences/{PREFERENCES}" style="color:#666666">Preferenze</a>',
        "</td></tr></table></body></html>",
    ]
    return "\n".join(parts) + "\n"


def edition_text(articles: int = 30) -> str:
    """The plain-text edition."""
    lines = ["Le notizie della settimana", ""]
    for n in range(articles):
        lines += [f"{n + 1}. Perché l'intelligenza artificiale cambierà il lavoro n. {n}",
                  f"   https://www.example.it/articoli/{n}/una-notizia-importante", ""]
    lines += [f"Disiscriviti: https://news.example.it/unsubscribe/{UNSUBSCRIBE}",
              f"Preferenze: https://news.example.it/preferences/{PREFERENCES}"]
    return "\n".join(lines) + "\n"


def build_database(url: str, readers: int) -> None:
    """A fresh schema with ``readers`` confirmed readers and one sending digest."""
    from sqlalchemy import insert

    from mailer.db import make_engine
    from mailer.models import (
        Base,
        Delivery,
        DeliveryStatus,
        Digest,
        DigestEdition,
        DigestStatus,
        Subscriber,
        SubscriberStatus,
        utcnow,
    )

    engine = make_engine(url)
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    now = utcnow()
    with engine.begin() as conn:
        for start in range(0, readers, 10_000):
            conn.execute(insert(Subscriber), [
                {"id": i + 1, "email": f"reader{i}@example.org",
                 "email_hash": hashlib.sha256(str(i).encode()).hexdigest(), "status": SubscriberStatus.CONFIRMED,
                 "language": "it", "topics": "", "confirm_nonce": "x",
                 "created_at": now, "updated_at": now, "confirmations_sent": []}
                for i in range(start, min(readers, start + 10_000))
            ])
        conn.execute(insert(Digest), [{"id": 1, "period": "BENCH", "subject": "Le notizie della settimana – bench",
                                       "status": DigestStatus.SENDING, "created_at": now, "archive_html": "",
                                       "article_count": 30}])
        conn.execute(insert(DigestEdition), [{"id": 1, "digest_id": 1, "topics": "", "language": "it",
                                              "subject": "Le notizie della settimana – bench",
                                              "html": edition_html(), "text": edition_text()}])
        for start in range(0, readers, 10_000):
            conn.execute(insert(Delivery), [
                {"digest_id": 1, "subscriber_id": i + 1, "edition_id": 1, "status": DeliveryStatus.PENDING,
                 "attempts": 0, "bounce": False, "created_at": now}
                for i in range(start, min(readers, start + 10_000))
            ])
    engine.dispose()


def sample_message() -> bytes:
    """One reader's copy, as ``digest send`` renders it (not dot-stuffed)."""
    from mailer.delivery.message import MailSettings, digest_template
    from mailer.tokens import preferences_token, unsubscribe_token

    settings = MailSettings("Notizie Tech <newsletter@example.it>", "newsletter@example.it",
                            "https://news.example.it", "Notizie Tech <digest.example.it>", None, "example.it")
    template = digest_template(settings, subject="Le notizie della settimana – bench", text=edition_text(),
                               html=edition_html(), language="it", archive_url="https://news.example.it/archive/1",
                               eightbit=True, placeholders=(UNSUBSCRIBE, PREFERENCES))
    return template.render([unsubscribe_token(1, "k").encode(), preferences_token(1, "k").encode(),
                            b"reader0@example.org", b"Wed, 25 Nov 2026 08:00:00 +0000",
                            b"<digest-1.1.1@example.it>"], wire=False)


def baseline(port: int, readers: int, connections: int, message_file: str) -> None:
    """The raw limit: plain smtplib threads with persistent connections (run in a child)."""
    message = Path(message_file).read_bytes()

    def run(offset: int) -> None:
        conn = smtplib.SMTP("127.0.0.1", port, local_hostname="bench")
        conn.ehlo()
        for i in range(offset, readers, connections):
            conn.sendmail("newsletter@example.it", [f"reader{i}@example.org"], message, ["BODY=8BITMIME"])
        conn.quit()

    threads = [threading.Thread(target=run, args=(n,)) for n in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


@dataclass
class Measure:
    """One run: messages the sink counted, its time window, the process's CPU and memory."""

    messages: int
    seconds: float
    cpu: float
    peak_mb: float
    wall: float

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds else 0.0


def sink_command(port: int, command: str) -> str:
    """Send an X-command to the sink and return its reply."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        handle = sock.makefile("rb")
        handle.readline()
        sock.sendall(command.encode() + b"\r\n")
        reply = handle.readline().decode().strip()
        sock.sendall(b"QUIT\r\n")
    return reply


def measured(command: list[str], port: int, env: dict[str, str]) -> Measure:
    """Run ``command`` to its end; the sink's window, and the child's rusage."""
    sink_command(port, "XRST")
    start = time.perf_counter()
    child = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert child.stdout is not None
    output = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{command[2:]} failed:\n{output.decode(errors='replace')[-3000:]}")
    messages, first, last = sink_command(port, "XSTA").split()[1:4]
    return Measure(int(messages), float(last) - float(first), usage.ru_utime + usage.ru_stime,
                   usage.ru_maxrss / 1024, wall)


def free_port() -> int:
    """A free loopback port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def requeue(url: str) -> None:
    """Put the benchmark digest back to sending with every delivery pending."""
    from sqlalchemy import update

    from mailer.db import make_engine
    from mailer.models import Delivery, DeliveryStatus, Digest, DigestStatus

    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(update(Delivery).values(status=DeliveryStatus.PENDING, attempts=0, sent_at=None,
                                             last_reply=None))
        conn.execute(update(Digest).values(status=DigestStatus.SENDING, finished_at=None))
    engine.dispose()


def bench(readers: int, connections: int, database: str | None, workdir: Path, repeat: int = 1) -> None:
    """Build, measure both, print the comparison for ``readers``."""
    url = database or f"sqlite:///{workdir / f'bench-{readers}.sqlite3'}"
    started = time.perf_counter()
    # In a child: the peak memory a child reports counts the parent it was
    # forked from, so this process stays small.
    message_file = workdir / "message.eml"
    subprocess.run([sys.executable, __file__, "--build", url, str(readers), str(message_file)], check=True)
    print(f"\n{readers:,} readers, {connections} connections, {message_file.stat().st_size / 1024:.0f} KB a message, "
          f"{url.split(':')[0]} (set up in {time.perf_counter() - started:.0f} s)")
    port = free_port()
    sink = subprocess.Popen([sys.executable, str(ROOT / "bench" / "sink.py"), "--port", str(port)])
    try:
        for _ in range(100):
            try:
                sink_command(port, "NOOP")
                break
            except OSError:
                time.sleep(0.05)
        plain = {k: v for k, v in os.environ.items() if not k.startswith("MAILER_")}
        env = {**plain, "MAILER_ENV": "production", "MAILER_SECRET_KEY": "bench-secret-key-16+",
               "MAILER_DATABASE_URL": url,
               "MAILER_SMTP_URL": f"smtp://127.0.0.1:{port}", "MAILER_SMTP_CONNECTIONS": str(connections),
               "MAILER_FROM": "Notizie Tech <newsletter@example.it>", "MAILER_BASE_URL": "https://news.example.it",
               "MAILER_INSTANCE_PATH": str(workdir / "instance"), "MAILER_FEEDS": "https://news.example.it/feed"}
        print(f"  {'':14} {'msg/s':>8} {'CPU ms/msg':>11} {'peak MB':>8} {'wall s':>7}")
        ratios = []
        for round_ in range(repeat):
            if round_:  # the same rows again: back to pending
                subprocess.run([sys.executable, __file__, "--requeue", url], check=True)
            raw = measured([sys.executable, __file__, "--baseline", str(port), str(readers), str(connections),
                            str(message_file)], port, plain)
            ours = measured([sys.executable, "-m", "flask", "--app", "wsgi", "digest", "send"], port, env)
            for name, run in (("plain smtplib", raw), ("digest send", ours)):
                if run.messages != readers:
                    sys.exit(f"{name}: the sink counted {run.messages} messages, not {readers}")
                print(f"  {name:14} {run.rate:8.0f} {1000 * run.cpu / readers:11.3f} {run.peak_mb:8.1f} "
                      f"{run.wall:7.1f}")
            ratios.append(ours.rate / raw.rate)
            print(f"  ratio digest send / plain smtplib: {ratios[-1]:.2f} (goal 0.90); CPU {ours.cpu / raw.cpu:.2f}x; "
                  f"peak memory {ours.peak_mb:.0f} MB (goal < 150 MB at 100,000)")
    finally:
        sink.terminate()
        sink.wait()
    if repeat > 1:
        print(f"  ratio over {repeat} rounds: median {statistics.median(ratios):.2f}, best {max(ratios):.2f}")


def main() -> None:
    """Parse the arguments and run the benchmark (or, as a child, the baseline)."""
    if len(sys.argv) > 1 and sys.argv[1] == "--build":
        build_database(sys.argv[2], int(sys.argv[3]))
        Path(sys.argv[4]).write_bytes(sample_message())
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--requeue":
        requeue(sys.argv[2])
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--baseline":
        port, readers, connections, message_file = sys.argv[2:6]
        baseline(int(port), int(readers), int(connections), message_file)
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readers", type=int, nargs="+", default=[20_000, 100_000])
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--db", default=None, help="a PostgreSQL URL to use instead of a SQLite file")
    parser.add_argument("--repeat", type=int, default=1, help="rounds of both, alternating (a busy machine is noisy)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mailer-bench-") as workdir:
        for readers in args.readers:
            bench(readers, args.connections, args.db, Path(workdir), args.repeat)


if __name__ == "__main__":
    main()
