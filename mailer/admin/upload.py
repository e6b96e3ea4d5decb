"""An uploaded CSV read as it arrives: the form's parts in order, the file's rows as they come.

Werkzeug's form parser reads a whole body before the view runs, spooling
files past 500 KB to a temporary file. The import reads the request stream
itself (``MultipartDecoder``): the form's small fields first (the CSRF token
and the options, which the page puts before the file), then the file's
bytes as a text handle that ``import_csv`` reads line by line. Nothing is
kept but the line being read, nothing is written to disk.

The encoding is chosen where the first non-ASCII byte shows up: UTF-8 when
it starts a valid UTF-8 sequence, else Windows-1252 (what Excel saves),
as ``decode_csv`` decides for a whole file.
"""

from __future__ import annotations

import codecs
import io
import re
from collections.abc import Iterator
from typing import IO, Any

from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import BadRequest, RequestEntityTooLarge
from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartDecoder, NeedData

CHUNK = 64 * 1024
_NON_ASCII = re.compile(rb"[\x80-\xff]")


class UploadError(BadRequest):
    """The body is not the import form as the page sends it."""


class MultipartStream:
    """The parts of a ``multipart/form-data`` body, decoded from ``stream`` as it is read."""

    def __init__(self, stream: IO[bytes], boundary: str, *, max_field_bytes: int, max_parts: int) -> None:
        """``max_field_bytes`` caps a text field, ``max_parts`` the number of parts (413 past either)."""
        self.stream = stream
        self.decoder = MultipartDecoder(boundary.encode("latin-1"), max_parts=max_parts)
        self.max_field_bytes = max_field_bytes
        self.events = self._events()
        self.filename: str | None = None

    def _events(self) -> Iterator[Field | File | Data]:
        """Every event up to the end of the body, reading the stream only when the decoder needs more."""
        ended = False
        while True:
            try:
                event = self.decoder.next_event()
            except ValueError as exc:  # a malformed body, or one cut short
                raise UploadError(str(exc)) from None
            if isinstance(event, NeedData):
                if ended:
                    raise UploadError("the upload ended early")
                chunk = self.stream.read(CHUNK)
                ended = not chunk
                self.decoder.receive_data(chunk or None)
                continue
            if isinstance(event, Epilogue):
                return
            if isinstance(event, Field | File | Data):
                yield event

    def fields_before_file(self) -> MultiDict[str, str]:
        """The text fields up to the first file part (``filename`` is then its name); all of them if none."""
        fields: MultiDict[str, str] = MultiDict()
        name, value = None, bytearray()
        for event in self.events:
            if isinstance(event, File):
                self.filename = event.filename  # "" when the browser had no file chosen
                return fields
            if isinstance(event, Field):
                name, value = event.name, bytearray()
                continue
            value += event.data
            if len(value) > self.max_field_bytes:
                raise RequestEntityTooLarge
            if not event.more_data and name is not None:
                fields.add(name, value.decode("utf-8", "replace"))
        return fields

    def file_chunks(self) -> Iterator[bytes]:
        """The current file part's bytes, chunk by chunk, as they arrive."""
        for event in self.events:
            if not isinstance(event, Data):
                raise UploadError("a part began inside the file")
            if event.data:
                yield event.data
            if not event.more_data:
                return

    def parts_after(self) -> int:
        """Read the rest of the body; how many parts it still held."""
        return sum(1 for event in self.events if isinstance(event, Field | File))


class Utf8Upload(io.RawIOBase):
    """A file's bytes as UTF-8: as they are when they are UTF-8, else read as Windows-1252."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        """Bytes from ``chunks``; ``encoding`` is known once the first non-ASCII byte has come."""
        super().__init__()
        self.chunks = chunks
        self.encoding: str | None = None
        self.undecided = b""  # from the first non-ASCII byte, until it says which encoding
        self.out = bytearray()

    def readable(self) -> bool:
        """A stream to read."""
        return True

    def readinto(self, buffer: Any) -> int:
        """Fill ``buffer`` from the next chunks; 0 at the end."""
        while not self.out:
            chunk = next(self.chunks, None)
            if chunk is None:
                self._finish()
                break
            self._feed(chunk)
        size = min(len(buffer), len(self.out))
        buffer[:size] = self.out[:size]
        del self.out[:size]
        return size

    def _feed(self, chunk: bytes) -> None:
        if self.encoding == "utf-8":
            self.out += chunk
            return
        if self.encoding == "windows-1252":
            self.out += chunk.decode("cp1252", "replace").encode("utf-8")  # one byte, one character
            return
        data = self.undecided + chunk
        found = _NON_ASCII.search(data)
        if found is None:
            self.out += data  # ASCII reads the same in both
            self.undecided = b""
            return
        self.out += data[:found.start()]
        rest = data[found.start():]
        verdict = _starts_utf8(rest)
        if verdict is None:  # a sequence cut by the chunk: wait for the next one
            self.undecided = rest
            return
        self.encoding = "utf-8" if verdict else "windows-1252"
        self.undecided = b""
        self._feed(rest)

    def _finish(self) -> None:
        if self.undecided:  # a file that ends inside its first UTF-8 sequence is not UTF-8
            self.encoding = "windows-1252"
            self._feed(self.undecided)
            self.undecided = b""
        self.encoding = self.encoding or "utf-8"


def _starts_utf8(data: bytes) -> bool | None:
    """Whether ``data`` starts with a valid UTF-8 sequence; None when too few bytes have come to tell."""
    try:
        text = codecs.getincrementaldecoder("utf-8")().decode(data[:4])
    except UnicodeDecodeError as exc:
        return exc.start > 0  # a valid character came before the bad byte
    if text:
        return True
    return None if len(data) < 4 else False


class CsvUpload:
    """The text of an uploaded CSV, line by line, for ``import_csv``.

    ``import_csv`` reads the first line to find the delimiter and seeks back
    to the start: that one line is kept so it can be read again; the rest
    is read once, as it arrives.
    """

    def __init__(self, chunks: Iterator[bytes]) -> None:
        """The text of ``chunks`` (UTF-8 or Windows-1252, see ``Utf8Upload``)."""
        self.raw = Utf8Upload(chunks)
        self.text = io.TextIOWrapper(io.BufferedReader(self.raw, CHUNK), encoding="utf-8-sig", errors="replace",
                                     newline="")
        self.head = self.text.readline()
        self.at_start = True

    @property
    def encoding(self) -> str:
        """The encoding the file was read in (final once it has been read)."""
        return self.raw.encoding or "utf-8"

    def readable(self) -> bool:
        """A stream to read."""
        return True

    def seekable(self) -> bool:
        """Only back to the start, and only while the first line has not been passed."""
        return True

    def tell(self) -> int:
        """0 at the start, else the length of the first line (what ``seek`` accepts)."""
        return 0 if self.at_start else len(self.head)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Back to the start after reading the first line, nothing else."""
        if whence != io.SEEK_SET or offset not in (0, self.tell()):
            raise io.UnsupportedOperation("an upload is read once")
        if offset == 0:
            self.at_start = True
        return offset

    def readline(self, size: int | None = -1) -> str:
        """The next line, with its line break."""
        if self.at_start:
            self.at_start = False
            return self.head
        return self.text.readline()

    def __next__(self) -> str:
        """The next line; StopIteration at the end."""
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    def __iter__(self) -> CsvUpload:
        """Lines, as a file."""
        return self
