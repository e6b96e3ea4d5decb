"""Benchmark: ``POST /api/subscribe`` under gunicorn -w 2 on SQLite, against a bare insert.

Run by hand from the repository root (needs ``wrk``: ``apt-get install wrk``;
without it a Python load generator is used)::

    .venv/bin/python bench/signup.py [--seconds 10] [--connections 16]

Every app runs under the same ``gunicorn -w 2`` settings on a fresh SQLite
file, on loopback; every request signs up a new address. Measured in the same
run and printed as ratios to the raw limit, the bare endpoint (parse the
JSON, insert one row with SQLAlchemy):

- ``signup``: the real signup with the outbox thread taken out: the request
  (validation, limits, the queue row) and, in the same processes, the signup
  worker threads applying the queue (subscriber, consent event, mail rendered
  into the outbox). After the load the bench waits until the queue is empty
  and checks that every request has its subscriber and its consent event;
  the drain time and the CPU seconds per signup (gunicorn's processes, load
  and drain) are printed beside the bare endpoint's;
- ``no-limiter``: the same without the per-IP limit (``RATELIMIT_ENABLED`` off), to show
  what the limiter itself costs;
- ``smtp-down``: the real app, its outbox thread on, the SMTP port closed:
  every confirmation must still be in the outbox after the run, which shows
  that none was sent inside a request;
- ``sending``: the real app while its outbox thread sends every confirmation
  to bench/sink.py (a lean SMTP sink in a process of its own).

Then the timing gap: one request at a time, the median latency of a signup
for a pending, a confirmed and an unsubscribed address, as ratios to the
median for a new address.

The VM this was written on is noisy (the bare endpoint alone gives ~1,100 or
~2,200 requests/s from one run to the next), so bare and signup runs are
alternated in pairs and the median of the pairs' ratios is the figure.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from signup_apps import BareBase  # noqa: E402
from sqlalchemy import create_engine, func, select, text  # noqa: E402

from mailer.db import make_engine  # noqa: E402
from mailer.models import Base, ConsentEvent, OutboundMail, Subscriber  # noqa: E402

WRK_SCRIPT = """
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("id", threads)
end
local counter = 0
request = function()
  counter = counter + 1
  local body = '{"email": "reader-' .. id .. '-' .. counter .. '@example.it", "consent": true}'
  return wrk.format("POST", "/api/subscribe", {["Content-Type"] = "application/json"}, body)
end
"""


def free_port() -> int:
    """A free loopback port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_listening(port: int, timeout: float = 30) -> None:
    """Wait until something accepts connections on ``port``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing listens on port {port}")


def start_gunicorn(app: str, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """``gunicorn -w 2`` on loopback, quiet (the outbox's warnings go to a log file)."""
    command = [str(ROOT / ".venv/bin/gunicorn"), "-w", "2", "-b", f"127.0.0.1:{port}", "--chdir", str(ROOT / "bench"),
               "--log-level", "warning", f"signup_apps:{app}"]
    log = open(Path(env["BENCH_LOG"]), "ab")  # noqa: SIM115 - closed with the process
    process = subprocess.Popen(command, env={**os.environ, **env}, stderr=log, stdout=log)
    wait_listening(port)
    return process


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its live children (gunicorn's master and workers)."""
    ticks = os.sysconf("SC_CLK_TCK")
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    total = 0
    for process in [pid, *map(int, children)]:
        fields = Path(f"/proc/{process}/stat").read_text().rpartition(")")[2].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def drain(database_url: str, timeout: float = 120) -> float:
    """Wait until the signup queue is empty; the seconds it took."""
    engine = create_engine(database_url)
    started = time.monotonic()
    try:
        while True:
            with engine.connect() as db:
                left = db.scalar(text("SELECT COUNT(*) FROM signup_queue"))
            if not left:
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                raise SystemExit(f"{left} signups still queued after {timeout:.0f} s")
            time.sleep(0.05)
    finally:
        engine.dispose()


def warm_up(port: int) -> None:
    """A few requests first, so that no worker's first request (imports, template compiles) is timed."""
    conn = http.client.HTTPConnection("127.0.0.1", port)
    for n in range(WARM_UP):
        conn.request("POST", "/api/subscribe", json.dumps({"email": f"warm-{n}@example.it", "consent": True}),
                     {"Content-Type": "application/json"})
        conn.getresponse().read()
    conn.close()


def run_wrk(port: int, seconds: int, connections: int, workdir: Path) -> float:
    """Requests per second (every one must get a 2xx)."""
    script = workdir / "signup.lua"
    script.write_text(WRK_SCRIPT)
    result = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "-s", str(script), f"http://127.0.0.1:{port}/api/subscribe"],
        capture_output=True, text=True, check=True)
    output = result.stdout
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if bad:
        raise SystemExit(f"{bad.group(1)} requests failed:\n{output}")
    errors = re.search(r"Socket errors: .*", output)
    if errors:
        print(f"    wrk: {errors.group(0)}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", output)
    assert match, output
    return float(match.group(1))


def run_python_load(port: int, seconds: int, connections: int) -> float:
    """A Python load generator for machines without wrk (threads, keep-alive)."""
    done, failures = [0], [0]
    stop = time.monotonic() + seconds

    def worker(number: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port)
        count = 0
        while time.monotonic() < stop:
            count += 1
            body = json.dumps({"email": f"py-{number}-{count}@example.it", "consent": True})
            conn.request("POST", "/api/subscribe", body, {"Content-Type": "application/json"})
            response = conn.getresponse()
            response.read()
            if response.status == 202:
                done[0] += 1
            else:
                failures[0] += 1

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures[0]:
        raise SystemExit(f"{failures[0]} requests failed")
    return done[0] / seconds


def timing_gap(port: int, database_url: str, rounds: int) -> dict[str, float]:
    """Median latency per address state, one request at a time on one connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port)

    def signup(address: str) -> float:
        body = json.dumps({"email": address, "consent": True})
        started = time.perf_counter()
        conn.request("POST", "/api/subscribe", body, {"Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        assert response.status == 202, response.status
        return time.perf_counter() - started

    states = ("pending", "confirmed", "unsubscribed")
    for state in states:
        signup(f"{state}@example.it")
    engine = create_engine(database_url)
    with engine.begin() as db:
        for state in ("confirmed", "unsubscribed"):
            db.execute(text("UPDATE subscribers SET status = :s WHERE email = :e"),
                       {"s": state, "e": f"{state}@example.it"})
    engine.dispose()
    samples: dict[str, list[float]] = {"new": [], **{s: [] for s in states}}
    for n in range(rounds):
        samples["new"].append(signup(f"gap-{n}@example.it"))
        for state in states:
            samples[state].append(signup(f"{state}@example.it"))
    return {state: statistics.median(values) for state, values in samples.items()}


WARM_UP = 40  # requests of warm_up(), before the measure


def signups_done(database_url: str, name: str) -> int:
    """Signups stored: the bare endpoint's rows, or the real app's consent events."""
    engine = create_engine(database_url)
    with engine.connect() as db:
        done = db.scalar(text(f"SELECT COUNT(*) FROM {'bare_signups' if name == 'bare' else 'consent_events'}"))
    engine.dispose()
    return int(done or 0)


def outbox_counts(database_url: str) -> tuple[int, int, int, int]:
    """(subscribers, consent events, confirmation mails queued, of which still unsent)."""
    engine = create_engine(database_url)
    table = OutboundMail.__table__
    with engine.connect() as db:
        readers = db.scalar(select(func.count()).select_from(Subscriber)) or 0
        events = db.scalar(select(func.count()).select_from(ConsentEvent)) or 0
        queued = db.scalar(select(func.count()).select_from(table)) or 0
        unsent = db.scalar(select(func.count()).select_from(table).where(table.c.sent_at.is_(None))) or 0
    engine.dispose()
    return readers, events, queued, unsent


def main() -> None:
    """Run the apps, alternating the bare one and the real one, and print the ratios."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=6, help="length of each load run")
    parser.add_argument("--pairs", type=int, default=3, help="bare/signup pairs, alternated (the machine is shared)")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=200, help="requests per state for the timing gap")
    args = parser.parse_args()
    use_wrk = shutil.which("wrk") is not None
    print(f"load: {'wrk -t2' if use_wrk else 'python threads'}, {args.connections} connections, {args.seconds}s "
          f"per run; gunicorn -w 2 (sync workers), SQLite in WAL mode; {os.cpu_count()} CPUs")

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        closed_port, sink_port = free_port(), free_port()
        sink = subprocess.Popen([sys.executable, str(ROOT / "bench/sink.py"), "--port", str(sink_port)])
        wait_listening(sink_port)
        runs = [("bare", "bare_app", "off", closed_port), ("signup", "mailer_app", "off", closed_port)] * args.pairs
        runs += [("no-limiter", "mailer_app", "off", closed_port), ("smtp-down", "mailer_app", "on", closed_port),
                 ("sending", "mailer_app", "on", sink_port)]
        rates: dict[str, list[float]] = {}
        cpu: dict[str, list[float]] = {}
        drains: list[float] = []
        try:
            for number, (name, app, outbox, smtp_port) in enumerate(runs):
                url = f"sqlite:///{workdir / f'{name}-{number}.sqlite3'}"
                engine = make_engine(url)
                (BareBase if name == "bare" else Base).metadata.create_all(engine)
                engine.dispose()
                port = free_port()
                env = {"BENCH_DATABASE_URL": url, "BENCH_SMTP_URL": f"smtp://127.0.0.1:{smtp_port}",
                       "BENCH_OUTBOX": outbox, "BENCH_LOG": str(workdir / "gunicorn.log"),
                       "BENCH_LIMITER": "off" if name == "no-limiter" else "on"}
                server = start_gunicorn(app, port, env)
                line = f"  {name:>10}: "
                try:
                    warm_up(port)
                    if name != "bare":
                        drain(url)
                    before = cpu_seconds(server.pid)
                    rate = (run_wrk(port, args.seconds, args.connections, workdir) if use_wrk
                            else run_python_load(port, args.seconds, args.connections))
                    line += f"{rate:7.0f} requests/s"
                    if name != "bare":
                        drains.append(drain(url))
                        line += f", queue drained {drains[-1]:.2f} s after the load"
                    used = cpu_seconds(server.pid) - before
                    done = signups_done(url, name) - WARM_UP
                    cpu.setdefault(name, []).append(used / done)
                    line += f", {used / done * 1e6:.0f} us CPU per signup"
                    rates.setdefault(name, []).append(rate)
                    if name != "bare":
                        readers, events, queued, unsent = outbox_counts(url)
                        line += f" ({queued} mails queued, {unsent} unsent)"
                        # Every request applied: its subscriber (all addresses are new) and its consent event.
                        if not readers == events == queued:
                            raise SystemExit(f"{readers} subscribers, {events} events, {queued} mails: some lost")
                        if name == "smtp-down" and unsent != queued:
                            raise SystemExit("a confirmation mail left although the SMTP server was closed")
                    if name == "signup" and "gap" not in locals():
                        gap = timing_gap(port, url, args.rounds)
                finally:
                    server.terminate()
                    server.wait(10)
                print(line)
        finally:
            sink.terminate()
            sink.wait(10)

    bare = statistics.median(rates["bare"])
    pairs = [q / b for b, q in zip(rates["bare"], rates["signup"], strict=True)]
    cpu_pairs = [b / q for b, q in zip(cpu["bare"], cpu["signup"], strict=True)]
    print(f"ratios to the bare insert (median {bare:.0f} requests/s); goal 0.50 or more:")
    print(f"  signup (request + queue applied in the same processes, mail left in the outbox): "
          f"{statistics.median(pairs):.2f} (pairs: {', '.join(f'{r:.2f}' for r in pairs)})")
    print(f"    by CPU per signup (bare's / ours, load and drain): {statistics.median(cpu_pairs):.2f} "
          f"(pairs: {', '.join(f'{r:.2f}' for r in cpu_pairs)}); queue drained within "
          f"{max(drains):.2f} s of the end of the load")
    print(f"  no-limiter (the same without the per-IP limit, to see its cost): {rates['no-limiter'][0] / bare:.2f}")
    for name in ("smtp-down", "sending"):
        print(f"  {name} (outbox thread on): {rates[name][0] / bare:.2f}")
    print("  smtp-down: every confirmation was still in the outbox after the run: none left inside a request")
    base = gap["new"]
    print(f"timing gap (signup app, one request at a time, median; new address {base * 1000:.2f} ms = 1.00):")
    print("  " + "  ".join(f"{state} {gap[state] / base:.2f}" for state in ("pending", "confirmed", "unsubscribed")))


if __name__ == "__main__":
    main()
