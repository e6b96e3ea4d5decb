"""The command line's own behaviour: output files, standard output, a database out of reach."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from flask.testing import FlaskCliRunner
from sqlalchemy.orm import Session

from mailer.models import Article, Feed, utcnow
from tests.http_server import FeedServer
from tests.scheduler.conftest import rss

ROOT = Path(__file__).resolve().parent.parent
UNREACHABLE = "postgresql+psycopg://postgres:hunter2@127.0.0.1:1/nodb"


def add_article(session: Session, title: str = "Dalla riga di comando") -> None:
    """One new article, so that a digest is due."""
    feed = Feed(url="https://news.example.it/feed.xml", title="Tech News Example")
    session.add(feed)
    session.flush()
    session.add(Article(feed_id=feed.id, dedup_key="guid-1", url="https://news.example.it/articoli/1", title=title,
                        summary_html="<p>Sommario.</p>", summary_text="Sommario.", topic="ai",
                        published_at=utcnow()))
    session.commit()


def test_preview_writes_nothing_when_no_digest_is_due(runner: FlaskCliRunner, tmp_path: Path) -> None:
    out = tmp_path / "preview.html"
    out.write_text("last week's preview", encoding="utf-8")
    result = runner.invoke(args=["digest", "preview", "--out", str(out)])
    assert (result.exit_code, result.output) == (0, "no digest is due: no new articles\n")
    assert out.read_text(encoding="utf-8") == "last week's preview"  # left as it was, not emptied
    missing = tmp_path / "new.html"
    assert runner.invoke(args=["digest", "preview", "--out", str(missing)]).exit_code == 0
    assert not missing.exists()


def test_preview_to_standard_output(runner: FlaskCliRunner, session: Session, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(args=["digest", "preview", "--out", "-"])
    assert (result.exit_code, result.stdout, result.stderr) == (0, "", "no digest is due: no new articles\n")
    add_article(session)
    result = runner.invoke(args=["digest", "preview", "--out", "-"])
    assert result.exit_code == 0, result.output
    assert "</html>" in result.stdout and "Dalla riga di comando" in result.stdout and result.stderr == ""
    assert not (tmp_path / "-").exists()


@pytest.mark.parametrize("command", [["digest", "preview"], ["subscribers", "export"]])
def test_an_output_file_that_cannot_be_written_is_one_line(
    runner: FlaskCliRunner, session: Session, tmp_path: Path, command: list[str]
) -> None:
    add_article(session)
    missing = tmp_path / "missing" / "out.txt"
    result = runner.invoke(args=[*command, "--out", str(missing)])
    assert result.exit_code == 1
    assert result.output == f"error: cannot write {missing}: No such file or directory\n"
    assert result.exception is None or isinstance(result.exception, SystemExit)
    result = runner.invoke(args=[*command, "--out", str(tmp_path)])
    assert (result.exit_code, result.output) == (1, f"error: cannot write {tmp_path}: Is a directory\n")


def test_export_to_standard_output_with_a_dash(runner: FlaskCliRunner, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(args=["subscribers", "export", "--out", "-"])
    assert result.exit_code == 0
    assert result.stdout.startswith("email,status,")
    assert not (tmp_path / "-").exists()


def test_preview_languages_are_the_supported_ones(runner: FlaskCliRunner, session: Session, tmp_path: Path) -> None:
    add_article(session)
    result = runner.invoke(args=["digest", "preview", "--out", str(tmp_path / "p.html"), "--language", "fr"])
    assert result.exit_code == 2 and "'fr' is not one of 'it', 'en'" in result.output
    assert not (tmp_path / "p.html").exists()
    result = runner.invoke(args=["digest", "preview", "--out", str(tmp_path / "p.html"), "--language", "it"])
    assert result.exit_code == 0, result.output
    assert '<html lang="it"' in (tmp_path / "p.html").read_text(encoding="utf-8")


def _flask(tmp_path: Path, *args: str, database_url: str = UNREACHABLE) -> subprocess.CompletedProcess[str]:
    """``flask --app wsgi ARGS`` as an operator runs it, on ``database_url``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILER_")}
    env.update({"MAILER_DATABASE_URL": database_url, "MAILER_INSTANCE_PATH": str(tmp_path / "instance")})
    return subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", *args], cwd=ROOT, env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)


@pytest.mark.slow
@pytest.mark.parametrize("command", [
    ["db", "upgrade"], ["feeds", "fetch"], ["digest", "send"], ["subscribers", "export"], ["subscribers", "import"],
    ["scheduler", "run"],  # does not start, rather than log tracebacks every minute
])
def test_a_database_out_of_reach_is_one_line_without_the_password(tmp_path: Path, command: list[str]) -> None:
    if command[-1] == "import":
        (tmp_path / "list.csv").write_text("email\nanna@example.it\n", encoding="utf-8")
        command = [*command, str(tmp_path / "list.csv")]
    result = _flask(tmp_path, *command)
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert line.startswith("error: cannot reach the database at postgresql+psycopg://postgres:***@127.0.0.1:1/nodb: ")
    assert line.endswith("Connection refused")  # the driver's whole reason, not its last word
    assert "hunter2" not in result.stdout + result.stderr
    assert result.stdout == ""


@pytest.mark.slow
def test_a_database_without_its_schema_says_to_upgrade(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.sqlite3'}"
    result = _flask(tmp_path, "feeds", "fetch", database_url=url)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"error: the database at {url} has no schema yet (no such table: feeds): run 'flask --app wsgi db upgrade'"
    ]


@pytest.mark.slow
def test_feeds_fetch_prints_each_feed_once(database_url: str, feed_server: FeedServer, tmp_path: Path) -> None:
    """The line on standard output, and no log record of the same feed on the terminal's standard error."""
    url = feed_server.add("/feed.xml", rss(2))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILER_")}
    env.update({"MAILER_DATABASE_URL": database_url, "MAILER_INSTANCE_PATH": str(tmp_path / "instance"),
                "MAILER_FEEDS": url})
    result = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "feeds", "fetch"], cwd=ROOT, env=env,
                            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"ok     {url}: 2 new, 0 updated"]
    assert url not in result.stderr
