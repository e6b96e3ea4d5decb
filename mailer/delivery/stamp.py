"""The stamp that ties a report (bounce, complaint) to a delivery we really made.

Delivery ids are sequential, so a report that merely names one proves
nothing: anyone can mail the bounce address. Each reader's copy therefore
carries its delivery id with a MAC of it (HMAC-SHA256 under a key derived
from ``MAILER_SECRET_KEY`` for this purpose only, cut to 96 bits), in the
Message-ID and, with ``MAILER_BOUNCE_ADDRESS``, in the VERP envelope sender
(``bounce+<id>-<mac>@domain``), as Postfix's VERP and the big senders do.
Only a report that quotes a stamp which verifies can suppress anybody; and
whoever holds a reader's copy (the only way to learn its stamp) could press
its one-click unsubscribe link anyway.
"""

from __future__ import annotations

import hashlib
import hmac
import re

PURPOSE = b"mailer.delivery.stamp"
# 96 bits: past 2**80 guesses, hex so that no relay's case folding can break it.
MAC_OCTETS = 12
# The stamp in a Message-ID (<digest-D.N.S.MAC@domain>) or a VERP address (local+N-MAC@domain).
IN_MESSAGE_ID = re.compile(r"<digest-\d+\.(\d{1,19})\.\d+\.([0-9a-fA-F]{24})@[^>\s]*>")
IN_ADDRESS = re.compile(r"\+(\d{1,19})-([0-9a-fA-F]{24})@")


class Stamper:
    """Makes and checks the stamps of one secret key (one HMAC each)."""

    def __init__(self, secret_key: str) -> None:
        """Derive this purpose's own key, so that no other signature of the app can serve as a stamp."""
        self._key = hmac.digest(secret_key.encode("utf-8"), PURPOSE, hashlib.sha256)

    def mac(self, delivery_id: int) -> str:
        """The MAC of a delivery id, as 24 lower-case hex digits."""
        return hmac.digest(self._key, str(delivery_id).encode("ascii"), hashlib.sha256)[:MAC_OCTETS].hex()

    def verify(self, delivery_id: int, mac: str) -> bool:
        """Whether ``mac`` is the delivery's own (compared in constant time)."""
        return hmac.compare_digest(self.mac(delivery_id), mac.lower())

    def verp(self, bounce_address: str, delivery_id: int) -> str:
        """The envelope sender of one delivery: ``local+<id>-<mac>@domain`` (Postfix's recipient_delimiter)."""
        local, _, domain = bounce_address.rpartition("@")
        return f"{local}+{delivery_id}-{self.mac(delivery_id)}@{domain}"

    def found(self, text: str) -> tuple[set[int], int]:
        """The delivery ids whose stamps in ``text`` verify, and how many stamps did not."""
        good: set[int] = set()
        bad = 0
        for pattern in (IN_MESSAGE_ID, IN_ADDRESS):
            for match in pattern.finditer(text):
                delivery_id = int(match.group(1))
                if self.verify(delivery_id, match.group(2)):
                    good.add(delivery_id)
                else:
                    bad += 1
        return good, bad
