"""Banner images of the demo feed, drawn here so a fresh install needs no network.

PNG (not SVG) because mail clients such as Gmail do not show SVG images.
"""

from __future__ import annotations

import struct
import zlib
from functools import lru_cache

WIDTH, HEIGHT = 640, 320
# Top and bottom colour of each banner's gradient.
PALETTE: dict[str, tuple[tuple[int, int, int], tuple[int, int, int]]] = {
    "ai": ((94, 53, 177), (30, 136, 229)),
    "security": ((183, 28, 28), (66, 66, 66)),
    "web": ((0, 137, 123), (124, 179, 66)),
    "mobile": ((245, 124, 0), (251, 192, 45)),
    "hardware": ((55, 71, 79), (0, 151, 167)),
    "other": ((121, 85, 72), (189, 189, 189)),
}


@lru_cache(maxsize=len(PALETTE))
def banner(name: str) -> bytes:
    """The PNG banner for ``name`` (a key of PALETTE): a vertical gradient."""
    top, bottom = PALETTE[name]
    rows = bytearray()
    for y in range(HEIGHT):
        share = y / (HEIGHT - 1)
        colour = bytes(round(a + (b - a) * share) for a, b in zip(top, bottom, strict=True))
        rows += b"\x00" + colour * WIDTH  # filter type 0, then the row's pixels
    header = struct.pack(">IIBBBBB", WIDTH, HEIGHT, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(bytes(rows), 9))
            + _chunk(b"IEND", b""))


def _chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, type, data, CRC."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
