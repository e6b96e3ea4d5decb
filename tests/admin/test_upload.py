"""The admin's CSV import reads the upload as it arrives: large files pass, nothing is buffered whole or spooled."""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from mailer.admin.upload import CsvUpload
from mailer.models import Subscriber
from mailer.subscriptions import csvimport
from tests.admin.conftest import add_admin, csrf_token, log_in
from tests.test_bodies import KB, CountingStream, GeneratedStream, multipart, send

MB = KB * KB
BOUNDARY = "b0undary"
CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"


def rows(count: int, note_bytes: int) -> Iterator[bytes]:
    """A CSV of ``count`` readers, each with a long note (a column the import ignores), made as it is sent."""
    yield b"email,note\n"
    for n in range(count):
        yield f"reader{n}@example.it,".encode() + b"n" * note_bytes + b"\n"


def body_size(parts) -> int:
    return sum(len(chunk) for chunk in multipart(parts, BOUNDARY))


def post(client, parts, *, chunked: bool = False):
    """POST the import form's ``parts`` (a generated value is made into bytes first: it is counted, then sent)."""
    parts = [(name, filename, value if isinstance(value, bytes) else b"".join(value))
             for name, filename, value in parts]
    stream = GeneratedStream(multipart(parts, BOUNDARY))
    answer = send(client, "/admin/readers/import", stream, CONTENT_TYPE, None if chunked else body_size(parts))
    return answer, stream


def count_readers(session) -> int:
    session.expire_all()
    return int(session.scalar(select(func.count()).select_from(Subscriber)))


def test_a_large_csv_is_imported_as_it_arrives(admin_client, session, monkeypatch) -> None:
    """20 MB (80 times the cap of other bodies): rows are imported while the rest is still on its way,
    nothing is spooled to a temporary file, and the import's memory stays a small part of the file."""
    count, note = 210, 100 * KB
    def parts() -> list[tuple[str, str | None, Iterator[bytes] | bytes]]:
        return [("confirmed", None, b"y"), ("file", "big.csv", rows(count, note))]

    total = body_size(parts())
    assert total > 20 * MB
    read_when_row_seen: list[int] = []
    stream_box: dict[str, GeneratedStream] = {}
    real_row = csvimport._subscriber_row

    def watched_row(*args, **kwargs):
        read_when_row_seen.append(stream_box["stream"].read_bytes)
        return real_row(*args, **kwargs)

    def no_spooling(*args, **kwargs):
        raise AssertionError("the upload was spooled to a temporary file")

    monkeypatch.setattr(csvimport, "_subscriber_row", watched_row)
    monkeypatch.setattr("werkzeug.formparser.default_stream_factory", no_spooling)
    stream = GeneratedStream(multipart(parts(), BOUNDARY))
    stream_box["stream"] = stream
    tracemalloc.start()
    try:
        answer = send(admin_client, "/admin/readers/import", stream, CONTENT_TYPE, total)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert answer.status_code == 200, answer.get_data(as_text=True)[:500]
    assert "Imported 210" in answer.get_data(as_text=True)
    assert count_readers(session) == count
    assert stream.read_bytes == total
    assert read_when_row_seen[0] < 2 * MB and read_when_row_seen[100] < total * 0.6
    assert peak < 4 * MB, f"peak {peak / MB:.1f} MB for a {total / MB:.0f} MB upload"


def test_an_import_over_its_cap_is_cut_and_nothing_is_kept(make_app, session) -> None:
    app = make_app(ADMIN_IMPORT_MAX_BYTES=1 * MB)
    add_admin(session)
    session.commit()
    client = app.test_client()
    assert log_in(client).status_code == 303
    parts = [("file", "big.csv", rows(30, 100 * KB))]
    answer, stream = post(client, parts, chunked=True)  # no Content-Length: cut as it streams
    assert answer.status_code == 413
    assert "The file is larger than 1 MB." in answer.get_data(as_text=True)
    assert stream.read_bytes <= 1 * MB + 128 * KB
    assert count_readers(session) == 0
    declared = CountingStream(60 * MB)
    answer = send(client, "/admin/readers/import", declared, CONTENT_TYPE, 60 * MB)
    assert answer.status_code == 413 and declared.read_bytes == 0


def test_the_csrf_token_is_checked_before_the_file_is_read(make_app, session) -> None:
    app = make_app(WTF_CSRF_ENABLED=True)
    add_admin(session)
    session.commit()
    client = app.test_client()
    assert log_in(client).status_code == 303
    parts = [("csrf_token", None, b"forged"), ("file", "big.csv", rows(100, 100 * KB))]
    answer, stream = post(client, parts)
    assert answer.status_code == 400 and "Please try again" in answer.get_data(as_text=True)
    assert stream.read_bytes < 1 * MB
    assert count_readers(session) == 0
    token = csrf_token(client.get("/admin/readers/import").get_data(as_text=True))
    answer, _stream = post(client, [("csrf_token", None, str(token).encode()), ("file", "ok.csv", rows(3, 10))])
    assert answer.status_code == 200 and count_readers(session) == 3


def test_options_sent_after_the_file_are_refused(admin_client, session) -> None:
    """A script that puts `confirmed` after the file: its rows would have been imported without it."""
    answer, _stream = post(admin_client, [("file", "late.csv", rows(3, 10)), ("confirmed", None, b"y")])
    assert answer.status_code == 400
    assert "other fields before the file" in answer.get_data(as_text=True)
    assert count_readers(session) == 0


def test_no_file_chosen(admin_client) -> None:
    """A browser sends an empty file part when no file was chosen."""
    answer, _stream = post(admin_client, [("file", "", b"")])
    assert answer.status_code == 400 and "Choose a CSV file." in answer.get_data(as_text=True)


def split_every(data: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start:start + size]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 4096])
def test_the_encoding_is_found_wherever_the_chunks_break(size: int) -> None:
    text = "email;nome\nmario@example.it;Niccolò Perché €\n"
    utf8 = CsvUpload(split_every("\ufeff".encode() + text.encode("utf-8"), size))
    assert "".join(utf8) == text and utf8.encoding == "utf-8"
    excel = CsvUpload(split_every(text.encode("cp1252"), size))
    assert "".join(excel) == text and excel.encoding == "windows-1252"


def test_the_first_line_can_be_read_again() -> None:
    """import_csv reads the header line to find the delimiter, then seeks back."""
    upload = CsvUpload(iter([b"email;x\r\n", b"a@example.it;1\r\n"]))
    assert upload.tell() == 0 and upload.readline() == "email;x\r\n"
    upload.seek(0)
    assert list(upload) == ["email;x\r\n", "a@example.it;1\r\n"]
