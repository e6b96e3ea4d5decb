"""Turn a function that writes to a file into a streamed HTTP response body.

``export_csv(session, handle)`` writes rows to a file, as the command line
needs; a download wants an iterator of chunks. The writer runs in a thread
and hands chunks over a small bounded queue: memory stays at a few chunks
whatever the size, and a client that goes away stops the writer.
"""

from __future__ import annotations

import io
import queue
import threading
from collections.abc import Callable, Iterator

CHUNK = 64 * 1024
QUEUE_CHUNKS = 8
# How long the writer waits for a slow client before giving up on it.
STALL_SECONDS = 300.0


class _CancelledError(Exception):
    """The client went away: the writer thread stops."""


class _ErrorChunk:
    def __init__(self, error: BaseException) -> None:
        self.error = error


_DONE = object()


class QueueWriter(io.TextIOBase):
    """A text file whose contents go, as UTF-8 chunks, into a queue."""

    def __init__(self, chunks: queue.Queue[object], cancelled: threading.Event) -> None:
        """Write into ``chunks``; stop with _CancelledError once ``cancelled`` is set."""
        super().__init__()
        self._chunks = chunks
        self._cancelled = cancelled
        self._buffer: list[str] = []
        self._size = 0

    def writable(self) -> bool:
        """A write-only file."""
        return True

    def write(self, text: str) -> int:
        """Buffer ``text``; hand over a chunk once the buffer is big enough."""
        self._buffer.append(text)
        self._size += len(text)
        if self._size >= CHUNK:
            self.flush()
        return len(text)

    def flush(self) -> None:
        """Hand the buffered text over (waiting while the queue is full)."""
        if not self._buffer:
            return
        data = "".join(self._buffer).encode("utf-8")
        self._buffer, self._size = [], 0
        self.put(data)

    def put(self, item: object) -> None:
        """Put ``item`` in the queue, giving up when the reader is gone."""
        waited = 0.0
        while True:
            if self._cancelled.is_set():
                raise _CancelledError
            try:
                self._chunks.put(item, timeout=0.5)
                return
            except queue.Full:
                waited += 0.5
                if waited >= STALL_SECONDS:
                    raise _CancelledError from None


def stream_writes(write: Callable[[io.TextIOBase], None]) -> Iterator[bytes]:
    """Run ``write(handle)`` in a thread, yielding what it writes as UTF-8 chunks.

    An exception in ``write`` is raised again here, ending the response early
    (the download is then visibly incomplete, not silently short).
    """
    chunks: queue.Queue[object] = queue.Queue(maxsize=QUEUE_CHUNKS)
    cancelled = threading.Event()
    writer = QueueWriter(chunks, cancelled)

    def run() -> None:
        try:
            write(writer)
            writer.flush()
            writer.put(_DONE)
        except _CancelledError:
            return
        except BaseException as exc:  # noqa: BLE001 - handed to the reading side
            try:
                writer.put(_ErrorChunk(exc))
            except _CancelledError:
                return

    thread = threading.Thread(target=run, name="admin-export", daemon=True)
    thread.start()
    try:
        while True:
            try:
                item = chunks.get(timeout=1.0)
            except queue.Empty:
                if thread.is_alive():
                    continue
                raise RuntimeError("the export stopped without finishing") from None
            if item is _DONE:
                return
            if isinstance(item, _ErrorChunk):
                raise item.error
            assert isinstance(item, bytes)
            yield item
    finally:
        # Normal end, an error, or the client closed the connection (the
        # server closes this generator): let the writer go either way.
        cancelled.set()
