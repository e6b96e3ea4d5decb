"""A lean SMTP sink for benchmarks: accepts every message and discards it.

aiosmtpd tops out near 1,200 messages/s on this machine, so a benchmark
against it measures the server, not the sender. This one does the least an
SMTP server can (no parsing beyond the command verb, no storage) on one
asyncio loop, in its own process so that it has a core of its own.

``python bench/sink.py --port 2600`` serves until killed. The extra command
``XSTAT`` answers ``250 <messages> <first> <last>``: how many messages were
accepted, and the monotonic times of the first MAIL and of the last accepted
message, so a benchmark can time the sender from the server's side;
``XRST`` sets them back to zero.
"""

from __future__ import annotations

import argparse
import asyncio
import time

EHLO = b"250-sink\r\n250-8BITMIME\r\n250-SIZE 52428800\r\n250 SMTPUTF8\r\n"
STATS = {"messages": 0, "first": 0.0, "last": 0.0}


class Sink(asyncio.Protocol):
    """One connection: commands line by line, DATA up to the lone dot."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Greet the client."""
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.buffer = b""
        self.in_data = False
        self.transport.write(b"220 sink ESMTP\r\n")

    def data_received(self, data: bytes) -> None:
        """Answer every complete command; skip the message body."""
        buffer = self.buffer + data
        while buffer:
            if self.in_data:
                end = buffer.find(b"\r\n.\r\n")
                if end < 0:
                    # Keep only what could be the start of the terminator.
                    buffer = buffer[-4:]
                    break
                buffer = buffer[end + 5 :]
                self.in_data = False
                STATS["messages"] += 1
                STATS["last"] = time.monotonic()
                self.transport.write(b"250 2.0.0 queued\r\n")
                continue
            end = buffer.find(b"\r\n")
            if end < 0:
                break
            line, buffer = buffer[:end], buffer[end + 2 :]
            if self.command(line[:4].upper()):
                # The body may follow at once: keep a "\r\n" before it so
                # that an empty body still ends on "\r\n.\r\n".
                self.in_data = True
                buffer = b"\r\n" + buffer
        self.buffer = buffer

    def command(self, verb: bytes) -> bool:
        """Reply to one command verb; True when a message body follows."""
        if verb in (b"EHLO", b"HELO"):
            self.transport.write(EHLO)
        elif verb == b"MAIL":
            if not STATS["first"]:
                STATS["first"] = time.monotonic()
            self.transport.write(b"250 2.1.0 ok\r\n")
        elif verb == b"DATA":
            self.transport.write(b"354 go ahead\r\n")
            return True
        elif verb == b"QUIT":
            self.transport.write(b"221 bye\r\n")
            self.transport.close()
        elif verb == b"XRST":
            STATS.update(messages=0, first=0.0, last=0.0)
            self.transport.write(b"250 reset\r\n")
        elif verb == b"XSTA":
            self.transport.write(f"250 {STATS['messages']} {STATS['first']} {STATS['last']}\r\n".encode())
        else:  # RCPT, RSET, NOOP
            self.transport.write(b"250 ok\r\n")
        return False


async def serve(host: str, port: int) -> None:
    """Serve until cancelled."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Sink, host, port, reuse_address=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    """Parse the arguments and serve."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2600)
    args = parser.parse_args()
    asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
